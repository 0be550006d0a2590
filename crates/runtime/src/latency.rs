//! Hop latencies a component measures per event (e.g. the relay: broker publish to SQS
//! accepted), kept in an HDR histogram and carried in the metrics file as base64 of the
//! histogram's V2 + DEFLATE encoding, so a reader can merge, subtract and take any percentile.

use std::sync::Mutex;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};

/// Microseconds, 1 µs to 1 hour, 3 significant digits (0.1% resolution).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// A histogram recorded from several tasks.
#[derive(Debug)]
pub struct LatencyRecorder(Mutex<Histogram<u64>>);

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self(Mutex::new(new_histogram()))
    }
}

impl LatencyRecorder {
    /// Records one latency in microseconds (clamped into the histogram's range).
    pub fn record(&self, micros: u64) {
        self.record_n(micros, 1);
    }

    /// Records `n` events with the same latency.
    pub fn record_n(&self, micros: u64, n: u64) {
        let mut h = self.0.lock().expect("latency histogram lock");
        h.saturating_record_n(micros.max(1), n);
    }

    pub fn encoded(&self) -> EncodedHistogram {
        EncodedHistogram::encode(&self.0.lock().expect("latency histogram lock"))
    }
}

/// A histogram as text: base64 of V2 + DEFLATE.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EncodedHistogram(pub String);

#[derive(Debug, thiserror::Error)]
#[error("not an encoded HDR histogram: {0}")]
pub struct DecodeError(String);

impl EncodedHistogram {
    pub fn encode(h: &Histogram<u64>) -> Self {
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(h, &mut bytes)
            .expect("serializing into memory");
        Self(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The histogram; an empty string is an empty histogram.
    pub fn decode(&self) -> Result<Histogram<u64>, DecodeError> {
        if self.0.is_empty() {
            return Ok(new_histogram());
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.0)
            .map_err(|e| DecodeError(e.to_string()))?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut std::io::Cursor::new(bytes))
            .map_err(|e| DecodeError(format!("{e:?}")))?;
        h.auto(true);
        Ok(h)
    }
}

impl EncodedHistogram {
    /// Both histograms together (a component's counts before and after a restart).
    pub fn plus(&self, other: &EncodedHistogram) -> EncodedHistogram {
        match (self.decode(), other.decode()) {
            (Ok(mut a), Ok(b)) => {
                a.add(&b).expect("same bounds and auto-resize");
                EncodedHistogram::encode(&a)
            }
            (Ok(_), Err(_)) => self.clone(),
            (Err(_), _) => other.clone(),
        }
    }
}

/// The AMQP header publishers set to the publish time, in microseconds since the epoch: the
/// relay measures its hop from it.
pub const PUBLISHED_AT_HEADER: &str = "sluice-published-at";

/// Microseconds since the Unix epoch, the unit of the timestamps components exchange.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_the_metrics_file() {
        let r = LatencyRecorder::default();
        for v in [5, 100, 1_000, 250_000, 7_000_000] {
            r.record(v);
        }
        r.record_n(0, 3);
        let encoded = r.encoded();
        let json = serde_json::to_string(&encoded).unwrap();
        let back: EncodedHistogram = serde_json::from_str(&json).unwrap();
        let h = back.decode().unwrap();
        assert_eq!(h.len(), 8);
        assert_eq!(h.min(), 1, "zero is recorded as the 1 µs floor");
        assert!(h.equivalent(h.max(), 7_000_000));
        assert!(EncodedHistogram::default().decode().unwrap().is_empty());
        assert!(EncodedHistogram("nope".into()).decode().is_err());
    }
}
