//! Freshness of every event that reached RAW: the time its row became visible (the pipe's
//! commit, from its load log) minus the time it was meant to be published (the schedule), so a
//! publisher that fell behind cannot make the pipeline look fresher than it is.
//!
//! The intended time needs no table of events: an event's `produced_at` is the stream's start
//! (in event time) plus its offset in the schedule, and the run knows the wall-clock instant the
//! schedule started, so `intended = run start + (produced_at - scenario start)`.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead as _;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use pipe::load::LoadRecord;
use runtime::latency::new_histogram;

use super::latency::Percentiles;
use crate::rig::warehouse::WarehouseError;

/// Where a run's schedule sits in wall-clock and in event time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// When the schedule's offset 0 was, microseconds since the epoch.
    pub run_start_us: u64,
    /// The scenario's `start`: the event time at offset 0.
    pub scenario_start: DateTime<Utc>,
    /// Events with an offset below this are left out of the statistics (not of the series).
    pub warm_up: Duration,
}

impl Clock {
    /// The schedule offset of an event produced at `produced_at`.
    pub fn offset_us(&self, produced_at: DateTime<Utc>) -> i64 {
        (produced_at - self.scenario_start)
            .num_microseconds()
            .unwrap_or(i64::MAX)
    }

    /// The wall-clock instant an event was meant to be published.
    pub fn intended_us(&self, produced_at: DateTime<Utc>) -> u64 {
        (self.run_start_us as i64 + self.offset_us(produced_at)).max(0) as u64
    }
}

/// Freshness percentiles of the events meant for one second of the schedule.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SecondPoint {
    /// Seconds since the schedule's start.
    pub second: u64,
    pub events: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug)]
pub struct Freshness {
    /// Intended publish to visible in RAW, per event after the warm-up (microseconds).
    pub end_to_end: Histogram<u64>,
    /// Intended publish to its object written (publisher, relay and batcher together).
    pub to_object: Histogram<u64>,
    /// Object written to visible in RAW (notice and pipe).
    pub object_to_visible: Histogram<u64>,
    /// Per second of the schedule, warm-up included.
    pub series: Vec<SecondPoint>,
    /// Distinct events found in RAW.
    pub events: u64,
    /// Of which measured (after the warm-up, with a load record).
    pub measured: u64,
    /// The earliest intended publish and the latest visibility of the measured events
    /// (microseconds since the epoch): the span their delivery took.
    pub first_intended_us: Option<u64>,
    pub last_visible_us: Option<u64>,
    /// Rows whose file has no load record (a pipe without `--load-log`, or a lost log line).
    pub unmatched: u64,
    /// Under a fault schedule: end-to-end freshness of the events intended while a fault was
    /// on, and of the others.
    pub faults: Option<(Histogram<u64>, Histogram<u64>)>,
}

/// Reads the pipe's load log: file key to its load record (the last one, should a file be
/// recorded twice).
pub fn read_load_log(path: &Path) -> std::io::Result<HashMap<String, LoadRecord>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = HashMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        if let Ok(record) = serde_json::from_str::<LoadRecord>(&line) {
            out.insert(record.key.clone(), record);
        }
    }
    Ok(out)
}

/// Accumulates events one at a time (pure; [`measure`] feeds it from RAW).
#[derive(Debug)]
pub struct Accumulator {
    clock: Clock,
    end_to_end: Histogram<u64>,
    to_object: Histogram<u64>,
    object_to_visible: Histogram<u64>,
    per_second: BTreeMap<u64, Histogram<u64>>,
    events: u64,
    unmatched: u64,
    measured: u64,
    first_intended_us: Option<u64>,
    last_visible_us: Option<u64>,
    fault_windows: Vec<(Duration, Duration)>,
    during_faults: Histogram<u64>,
    outside_faults: Histogram<u64>,
}

/// How long after a fault's heal its events still count as "during" it: the backlog it built
/// is still draining.
pub const FAULT_TAIL: Duration = Duration::from_secs(5);

impl Accumulator {
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            end_to_end: new_histogram(),
            to_object: new_histogram(),
            object_to_visible: new_histogram(),
            per_second: BTreeMap::new(),
            events: 0,
            unmatched: 0,
            measured: 0,
            first_intended_us: None,
            last_visible_us: None,
            fault_windows: Vec::new(),
            during_faults: new_histogram(),
            outside_faults: new_histogram(),
        }
    }

    /// Splits the measured events into those intended to be published while a fault was on
    /// (from its start until [`FAULT_TAIL`] after its heal) and the rest.
    pub fn with_fault_windows(mut self, windows: &[(Duration, Duration)]) -> Self {
        self.fault_windows = windows
            .iter()
            .map(|&(start, end)| (start, end + FAULT_TAIL))
            .collect();
        self
    }

    /// One distinct event: produced at `produced_at`, loaded from a file with `load` (None when
    /// the file has no load record).
    pub fn add(&mut self, produced_at: DateTime<Utc>, load: Option<&LoadRecord>) {
        self.events += 1;
        let Some(load) = load else {
            self.unmatched += 1;
            return;
        };
        let intended = self.clock.intended_us(produced_at);
        let fresh = load.visible_at_us.saturating_sub(intended);
        let offset = self.clock.offset_us(produced_at).max(0) as u64;
        self.per_second
            .entry(offset / 1_000_000)
            .or_insert_with(new_histogram)
            .saturating_record(fresh);
        if Duration::from_micros(offset) < self.clock.warm_up {
            return;
        }
        self.end_to_end.saturating_record(fresh);
        if !self.fault_windows.is_empty() {
            let at = Duration::from_micros(offset);
            if self.fault_windows.iter().any(|&(a, b)| at >= a && at <= b) {
                self.during_faults.saturating_record(fresh);
            } else {
                self.outside_faults.saturating_record(fresh);
            }
        }
        self.measured += 1;
        self.first_intended_us = Some(self.first_intended_us.map_or(intended, |f| f.min(intended)));
        self.last_visible_us = Some(
            self.last_visible_us
                .map_or(load.visible_at_us, |l| l.max(load.visible_at_us)),
        );
        if let Some(created) = load.created_at_us {
            self.to_object
                .saturating_record(created.saturating_sub(intended));
            self.object_to_visible
                .saturating_record(load.visible_at_us.saturating_sub(created));
        }
    }

    pub fn finish(self) -> Freshness {
        let series = self
            .per_second
            .into_iter()
            .map(|(second, h)| {
                let p = Percentiles::of(&h);
                SecondPoint {
                    second,
                    events: p.count,
                    p50_ms: p.p50_ms,
                    p99_ms: p.p99_ms,
                    max_ms: p.max_ms,
                }
            })
            .collect();
        Freshness {
            end_to_end: self.end_to_end,
            to_object: self.to_object,
            object_to_visible: self.object_to_visible,
            series,
            events: self.events,
            unmatched: self.unmatched,
            measured: self.measured,
            first_intended_us: self.first_intended_us,
            last_visible_us: self.last_visible_us,
            faults: (!self.fault_windows.is_empty())
                .then_some((self.during_faults, self.outside_faults)),
        }
    }
}

impl Freshness {
    /// Measured events per second, from the first one's intended publish to the last one
    /// visible: what the pipeline delivered end to end.
    pub fn delivered_rate(&self) -> f64 {
        match (self.first_intended_us, self.last_visible_us) {
            (Some(a), Some(b)) if b > a => self.measured as f64 / ((b - a) as f64 / 1e6),
            _ => 0.0,
        }
    }
}

/// Every distinct streamed event in RAW (its first load), joined with the load log.
pub async fn measure(
    sf: &snowflake::Client,
    loads: &HashMap<String, LoadRecord>,
    clock: Clock,
    fault_windows: &[(Duration, Duration)],
) -> Result<Freshness, WarehouseError> {
    let rows = crate::rig::warehouse::first_loads_of_stream(sf).await?;
    let mut acc = Accumulator::new(clock).with_fault_windows(fault_windows);
    for (produced, file) in rows {
        let Ok(produced) = DateTime::parse_from_rfc3339(&produced) else {
            continue;
        };
        acc.add(produced.with_timezone(&Utc), loads.get(file.as_str()));
    }
    Ok(acc.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn clock() -> Clock {
        Clock {
            run_start_us: 1_000_000_000_000,
            scenario_start: at("2026-03-01T00:00:00Z"),
            warm_up: Duration::from_secs(1),
        }
    }

    fn load(created_after_start_ms: u64, visible_after_start_ms: u64) -> LoadRecord {
        LoadRecord {
            key: "k".into(),
            rows: 1,
            created_at_us: Some(clock().run_start_us + created_after_start_ms * 1000),
            received_at_us: None,
            visible_at_us: clock().run_start_us + visible_after_start_ms * 1000,
        }
    }

    #[test]
    fn freshness_is_visible_minus_intended_and_splits_at_the_object() {
        let mut acc = Accumulator::new(clock());
        // Meant for 2.5 s into the run, in an object written at 3.0 s, visible at 3.4 s.
        acc.add(at("2026-03-01T00:00:02.500Z"), Some(&load(3000, 3400)));
        // In the warm-up: in the series, not the statistics.
        acc.add(at("2026-03-01T00:00:00.200Z"), Some(&load(900, 1000)));
        acc.add(at("2026-03-01T00:00:03Z"), None);
        let f = acc.finish();
        assert_eq!((f.events, f.unmatched), (3, 1));
        assert_eq!(f.end_to_end.len(), 1);
        assert!(f.end_to_end.equivalent(f.end_to_end.max(), 900_000));
        assert!(f.to_object.equivalent(f.to_object.max(), 500_000));
        assert!(
            f.object_to_visible
                .equivalent(f.object_to_visible.max(), 400_000)
        );
        assert_eq!(
            f.series
                .iter()
                .map(|p| (p.second, p.events))
                .collect::<Vec<_>>(),
            [(0, 1), (2, 1)]
        );
        assert!(
            (f.series[0].p50_ms - 800.0).abs() < 1.0,
            "{:?}",
            f.series[0]
        );
    }

    #[test]
    fn events_meant_during_a_fault_or_its_tail_are_told_apart() {
        let mut acc = Accumulator::new(clock())
            .with_fault_windows(&[(Duration::from_secs(5), Duration::from_secs(7))]);
        // (intended ms, visible ms): outside, during, in the tail after the heal, outside.
        for (intended, visible) in [
            (3000, 3500),
            (6000, 9000),
            (11_000, 13_000),
            (13_000, 13_400),
        ] {
            let produced = clock().scenario_start + chrono::Duration::milliseconds(intended);
            acc.add(produced, Some(&load(visible as u64 - 100, visible as u64)));
        }
        let f = acc.finish();
        let (during, outside) = f.faults.expect("a schedule was given");
        assert_eq!((during.len(), outside.len()), (2, 2));
        assert!(during.equivalent(during.max(), 3_000_000));
        assert!(outside.equivalent(outside.max(), 500_000));
        assert!(Accumulator::new(clock()).finish().faults.is_none());
    }

    #[test]
    fn the_breakdown_adds_up_to_the_end_to_end_figure() {
        let mut acc = Accumulator::new(clock());
        for i in 0..500u64 {
            let intended_ms = 1000 + i * 10;
            let created = intended_ms + 200 + (i % 7) * 30;
            let visible = created + 100 + (i % 5) * 40;
            let produced =
                clock().scenario_start + chrono::Duration::milliseconds(intended_ms as i64);
            acc.add(produced, Some(&load(created, visible)));
        }
        let f = acc.finish();
        let (e2e, a, b) = (
            f.end_to_end.mean(),
            f.to_object.mean(),
            f.object_to_visible.mean(),
        );
        assert!((e2e - (a + b)).abs() / e2e < 0.01, "{e2e} vs {a} + {b}");
    }

    #[test]
    fn a_missing_load_log_is_empty_and_bad_lines_are_skipped() {
        let dir = std::env::temp_dir().join(format!("sluice-loadlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(read_load_log(&dir.join("none.ndjson")).unwrap().is_empty());
        let path = dir.join("log.ndjson");
        let record = load(1, 2);
        std::fs::write(
            &path,
            format!("{}\nnot json\n", serde_json::to_string(&record).unwrap()),
        )
        .unwrap();
        let loads = read_load_log(&path).unwrap();
        assert_eq!(loads["k"], record);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
