//! Latency distributions as the report carries them: HDR histograms in microseconds, summarised
//! as percentiles in milliseconds and kept whole (base64 V2 + DEFLATE) so a report can be
//! re-read, merged with another or cut at any other percentile.

use hdrhistogram::Histogram;
use runtime::latency::{EncodedHistogram, new_histogram};

/// The percentiles a report shows, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.highest_equivalent(h.max())),
            mean_ms: h.mean() / 1000.0,
        }
    }

    /// Percentiles never decrease: p50 <= p90 <= p99 <= p99.9 <= max.
    pub fn is_ordered(&self) -> bool {
        self.p50_ms <= self.p90_ms
            && self.p90_ms <= self.p99_ms
            && self.p99_ms <= self.p999_ms
            && self.p999_ms <= self.max_ms
    }
}

/// A distribution in the report: its percentiles and the whole histogram.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Distribution {
    #[serde(flatten)]
    pub percentiles: Percentiles,
    /// The histogram (microseconds), base64 of HdrHistogram's V2 + DEFLATE encoding.
    pub histogram: EncodedHistogram,
}

impl Distribution {
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            percentiles: Percentiles::of(h),
            histogram: EncodedHistogram::encode(h),
        }
    }

    pub fn histogram(&self) -> Histogram<u64> {
        self.histogram.decode().unwrap_or_else(|_| new_histogram())
    }
}

/// `later - earlier` of two cumulative histograms of one recorder: what was recorded between
/// the two readings (the warm-up cut off a component's histogram).
pub fn since(later: &Histogram<u64>, earlier: &Histogram<u64>) -> Histogram<u64> {
    let mut out = later.clone();
    // A reading older than `later` never holds counts `later` lacks; if it somehow does (a
    // restarted component), keep `later` whole rather than fail.
    if out.subtract(earlier).is_err() {
        return later.clone();
    }
    out
}

/// Merges histograms (e.g. the steps of a search, or repeated runs).
pub fn merge<'a>(all: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut out = new_histogram();
    for h in all {
        out.add(h).expect("same bounds and auto-resize");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of(values: &[u64]) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    #[test]
    fn percentiles_are_in_milliseconds_within_the_histograms_precision() {
        let values: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let p = Percentiles::of(&of(&values));
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 500.0).abs() <= 0.5, "{p:?}");
        assert!((p.p99_ms - 990.0).abs() <= 1.0, "{p:?}");
        assert!((p.max_ms - 1000.0).abs() <= 1.0, "{p:?}");
        assert!(p.is_ordered());
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
    }

    #[test]
    fn a_distribution_survives_json() {
        let d = Distribution::of(&of(&[10, 20, 30_000]));
        let back: Distribution = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.histogram().len(), 3);
    }

    proptest! {
        /// Merging two histograms is recording both samples into one; cutting off an earlier
        /// reading leaves exactly what came after it.
        #[test]
        fn merge_and_since_are_exact(
            a in proptest::collection::vec(1u64..10_000_000, 0..300),
            b in proptest::collection::vec(1u64..10_000_000, 0..300),
        ) {
            let (ha, hb) = (of(&a), of(&b));
            let both: Vec<u64> = a.iter().chain(&b).copied().collect();
            let merged = merge([&ha, &hb]);
            prop_assert_eq!(&merged, &of(&both));
            prop_assert_eq!(since(&merged, &ha), hb);
            prop_assert!(Percentiles::of(&merged).is_ordered());
        }
    }
}
