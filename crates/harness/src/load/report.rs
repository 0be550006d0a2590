//! A load test's report: `report.json` (everything, histograms re-readable), `report.md` (what a
//! person pastes into a pull request) and `report.html` (the same with charts, see
//! [`super::html`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::baseline::Baselines;
use super::compare::{Better, Comparison, Figure};
use super::freshness::SecondPoint;
use super::gates::GateResult;
use super::latency::Distribution;
use super::search::SearchResult;
use crate::rig::sampler::Sample;

/// The version of the report's layout; a reader refuses what it does not know.
pub const FORMAT: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub format: u32,
    pub scenario: String,
    pub seed: u64,
    pub started_at: String,
    pub settings: Settings,
    pub baselines: Baselines,
    pub rates: Rates,
    pub publish: PublishSection,
    pub freshness: FreshnessSection,
    pub drain: DrainSection,
    pub accounting: Accounting,
    pub resources: Resources,
    /// One point per second: cumulative counts per hop, queue depths, CPU and RSS.
    pub series: Vec<Sample>,
    /// When the reported run's schedule started, on the series' clock (which starts before the
    /// baselines): where the freshness series' seconds sit on the charts.
    #[serde(default)]
    pub run_started_at_s: f64,
    pub gates: Vec<GateResult>,
    #[serde(default)]
    pub find_max: Option<SearchResult>,
    /// The headline figures (with their run-to-run noise when repeated).
    pub figures: Vec<Figure>,
    /// Each repeated run's headline figures, when `--repeat` was more than 1.
    #[serde(default)]
    pub repeats: Vec<BTreeMap<String, f64>>,
    #[serde(default)]
    pub comparison: Option<Vec<Comparison>>,
    pub phases: Vec<(String, f64)>,
    /// The fault schedule as it happened (`--chaos` or the scenario's `[[chaos]]`), each fault
    /// with its recovery time and the duplicates it caused.
    #[serde(default)]
    pub faults: Vec<crate::rig::chaos::nemesis::FaultRecord>,
    /// With an `[oltp]` workload: the cdc's throughput, latency and the slot's WAL.
    #[serde(default)]
    pub cdc: Option<super::cdc::CdcSection>,
    /// Everything that makes the run fail (lost events, a failed drain); gates are apart.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub offered_rate: f64,
    pub rate_scale: f64,
    pub duration_s: f64,
    pub warm_up_s: f64,
    pub pack: u32,
    pub batch_size: u32,
    pub batch_window_ms: u64,
    pub file_format: String,
    /// Release or dev builds of the components.
    pub profile: String,
    /// Per-event timing (publish-time stamps, hop histograms) on.
    pub timing: bool,
    pub cpus: usize,
    /// Processes the stream was published from (1: the harness itself).
    #[serde(default = "one")]
    pub publishers: u32,
    /// How the batcher ran: `poller`, or `lambda` (its bootstrap under a Runtime API).
    #[serde(default = "poller")]
    pub batcher: String,
}

fn poller() -> String {
    "poller".into()
}

fn one() -> u32 {
    1
}

/// Events per second in the measured window (after the warm-up, until the last publish).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rates {
    pub offered: f64,
    pub published: f64,
    pub forwarded: f64,
    pub written: f64,
    pub loaded: f64,
    /// Measured events over the time from the first one's intended publish to the last one
    /// visible in RAW.
    pub end_to_end: f64,
    pub end_to_end_to_broker: f64,
    pub end_to_end_to_sqs: f64,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PublishSection {
    pub bodies: u64,
    pub events: u64,
    /// Sends more than 5 ms behind their intended time (after the warm-up).
    pub behind: u64,
    /// Actual minus intended send time.
    pub delay: Distribution,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FreshnessSection {
    /// Intended publish to visible in RAW, per event after the warm-up.
    pub end_to_end: Distribution,
    /// Per hop, as each component measured it (after the warm-up): broker -> SQS accepted
    /// (relay), SQS accepted -> object written (batcher, with the batch window), object
    /// written -> visible in RAW (notice and pipe).
    pub hops: BTreeMap<String, Distribution>,
    /// Intended publish to object written, per event (publisher, relay and batcher together).
    pub to_object: Distribution,
    /// Per second of the schedule, warm-up included.
    pub series: Vec<SecondPoint>,
    pub unmatched_rows: u64,
    /// Under a fault schedule: end to end, for the events intended while a fault was on (or
    /// within 5 s of its heal), and for the others.
    #[serde(default)]
    pub during_faults: Option<Distribution>,
    #[serde(default)]
    pub outside_faults: Option<Distribution>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DrainSection {
    /// Seconds from the last publish until each hop's backlog was empty (None: it never was).
    pub seconds: BTreeMap<String, Option<f64>>,
    pub stuck: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceCount {
    pub source: String,
    pub published: u64,
    pub distinct_in_raw: u64,
    pub rows_in_raw: u64,
    pub lost: u64,
    pub unexpected: u64,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accounting {
    pub sources: Vec<SourceCount>,
    pub lost: u64,
    pub unexpected: u64,
    /// Rows in RAW beyond one per event (redeliveries, duplicate files), removed by staging.
    pub duplicate_rows: u64,
    pub poison_published: u64,
    pub dead_lettered: u64,
    pub dead_letter_queue: u64,
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    pub peak_rss_bytes: BTreeMap<String, u64>,
    pub mean_cpu_cores: BTreeMap<String, f64>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.problems.is_empty() && self.gates.iter().all(|g| g.passed)
    }

    pub fn failed_gates(&self) -> Vec<&GateResult> {
        self.gates.iter().filter(|g| !g.passed).collect()
    }

    /// The headline figures of this run.
    pub fn headline(&self) -> Vec<Figure> {
        let fig = |name: &str, unit: &str, value: f64, better: Better| Figure {
            name: name.into(),
            unit: unit.into(),
            value,
            better,
            noise: 0.0,
        };
        let f = &self.freshness.end_to_end.percentiles;
        let mut out = vec![
            fig(
                "end-to-end rate",
                "ev/s",
                self.rates.end_to_end,
                Better::Higher,
            ),
            fig(
                "rate / broker baseline",
                "",
                self.rates.end_to_end_to_broker,
                Better::Higher,
            ),
            fig(
                "rate / SQS baseline",
                "",
                self.rates.end_to_end_to_sqs,
                Better::Higher,
            ),
            fig("freshness p50", "ms", f.p50_ms, Better::Lower),
            fig("freshness p99", "ms", f.p99_ms, Better::Lower),
            fig("freshness max", "ms", f.max_ms, Better::Lower),
            fig(
                "publish delay p99",
                "ms",
                self.publish.delay.percentiles.p99_ms,
                Better::Lower,
            ),
        ];
        if let Some(search) = &self.find_max {
            out.push(fig(
                "max sustainable rate",
                "ev/s",
                search.max_sustainable,
                Better::Higher,
            ));
        }
        for (name, bytes) in &self.resources.peak_rss_bytes {
            if matches!(name.as_str(), "relay" | "batcher" | "pipe") {
                out.push(fig(
                    &format!("peak RSS {name}"),
                    "MiB",
                    *bytes as f64 / (1024.0 * 1024.0),
                    Better::Lower,
                ));
            }
        }
        out
    }

    /// The summary a person pastes into a pull request.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let verdict = if self.passed() { "PASS" } else { "FAIL" };
        let s = &self.settings;
        let _ = writeln!(
            md,
            "# Load test `{}` (seed {}): {verdict}\n",
            self.scenario, self.seed
        );
        let _ = writeln!(
            md,
            "{} events/s offered for {:.0} s ({:.0} s warm-up) from {} publisher process{}, pack {}, batch {} / {} ms ({} batcher), {}, {} build, {} CPUs; started {}.\n",
            fmt_rate(s.offered_rate),
            s.duration_s,
            s.warm_up_s,
            s.publishers,
            if s.publishers == 1 { "" } else { "es" },
            s.pack,
            s.batch_size,
            s.batch_window_ms,
            s.batcher,
            s.file_format,
            s.profile,
            s.cpus,
            self.started_at
        );
        let b = &self.baselines;
        let r = &self.rates;
        let _ = writeln!(md, "## Throughput\n");
        let _ = writeln!(
            md,
            "| | events/s | / broker only | / SQS only |\n|---|---:|---:|---:|"
        );
        let ratio = |v: f64, base: f64| {
            if base > 0.0 {
                format!("{:.3}", v / base)
            } else {
                "-".into()
            }
        };
        let _ = writeln!(
            md,
            "| broker only (same run) | {} | 1.000 | {} |",
            fmt_rate(b.broker.events_per_s),
            ratio(b.broker.events_per_s, b.sqs.events_per_s)
        );
        let _ = writeln!(
            md,
            "| SQS only (same run) | {} | {} | 1.000 |",
            fmt_rate(b.sqs.events_per_s),
            ratio(b.sqs.events_per_s, b.broker.events_per_s)
        );
        for (name, v) in [
            ("offered", r.offered),
            ("published", r.published),
            ("forwarded (relay)", r.forwarded),
            ("written (batcher)", r.written),
            ("loaded (pipe)", r.loaded),
            ("end to end", r.end_to_end),
        ] {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} |",
                fmt_rate(v),
                ratio(v, b.broker.events_per_s),
                ratio(v, b.sqs.events_per_s)
            );
        }
        if let Some(search) = &self.find_max {
            let _ = writeln!(
                md,
                "| **max sustainable** | **{}** | {} | {} |",
                fmt_rate(search.max_sustainable),
                ratio(search.max_sustainable, b.broker.events_per_s),
                ratio(search.max_sustainable, b.sqs.events_per_s)
            );
        }
        let _ = writeln!(md, "\n## Freshness (intended publish to visible in RAW)\n");
        let _ = writeln!(
            md,
            "| | events | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        let row = |md: &mut String, name: &str, d: &Distribution| {
            let p = &d.percentiles;
            let _ = writeln!(
                md,
                "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
            );
        };
        row(&mut md, "**end to end**", &self.freshness.end_to_end);
        if let (Some(during), Some(outside)) = (
            &self.freshness.during_faults,
            &self.freshness.outside_faults,
        ) {
            row(&mut md, "end to end, during faults (+5 s)", during);
            row(&mut md, "end to end, outside faults", outside);
        }
        row(
            &mut md,
            "publish delay (intended -> sent)",
            &self.publish.delay,
        );
        for (hop, d) in &self.freshness.hops {
            row(&mut md, hop, d);
        }
        row(
            &mut md,
            "intended -> object written",
            &self.freshness.to_object,
        );
        let _ = writeln!(
            md,
            "\n{} sends fell more than 5 ms behind schedule.",
            self.publish.behind
        );
        self.markdown_changes_drain_faults_loss(&mut md);
        self.markdown_resources_search_gates(&mut md);
        md
    }

    /// Change data capture, the drain, the faults and the loss accounting.
    fn markdown_changes_drain_faults_loss(&self, md: &mut String) {
        if let Some(c) = &self.cdc {
            let kib = |b: u64| format!("{:.0} KiB", b as f64 / 1024.0);
            let _ = writeln!(md, "\n## Change data capture\n");
            let _ = writeln!(
                md,
                "{} transactions ({:.0}/s offered) made {} row changes: {:.0} changes/s from commit to broker confirm; the snapshot read {} rows in {:.1} s.\n",
                c.transactions,
                c.offered_transactions_per_s,
                c.row_changes,
                c.confirmed_changes_per_s,
                c.snapshot_rows,
                c.snapshot_s
            );
            let _ = writeln!(
                md,
                "| | changes | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|"
            );
            for (name, d) in [
                ("commit to broker confirm", &c.commit_to_confirm),
                ("commit to visible in RAW", &c.commit_to_raw),
            ] {
                let p = &d.percentiles;
                let _ = writeln!(
                    md,
                    "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
                );
            }
            let _ = writeln!(
                md,
                "\nThe slot's WAL: retained at most {} ({} at the end), unconfirmed at most {}, over {} one-second samples.",
                kib(c.retained_wal_max_bytes),
                kib(c.retained_wal_last_bytes),
                kib(c.unconfirmed_wal_max_bytes),
                c.wal.len()
            );
        }
        let _ = writeln!(md, "\n## Drain after the last publish\n");
        for (hop, secs) in &self.drain.seconds {
            let _ = writeln!(
                md,
                "- {hop}: {}",
                secs.map_or("never drained".into(), |s| format!("{s:.1} s"))
            );
        }
        if !self.faults.is_empty() {
            let _ = writeln!(md, "\n## Faults\n");
            let _ = writeln!(
                md,
                "| # | fault | from s | healed s | backlog before | backlog peak | recovered after s | duplicate rows | note |\n|---:|---|---:|---:|---:|---:|---:|---:|---|"
            );
            for (i, f) in self.faults.iter().enumerate() {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
                    i + 1,
                    f.description,
                    f.started_at_s,
                    f.healed_at_s,
                    f.backlog_before,
                    f.backlog_peak,
                    f.recovered_after_s
                        .map_or("not recovered".into(), |s| format!("{s:.1}")),
                    f.duplicates_in_raw,
                    f.note.as_deref().unwrap_or("")
                );
            }
        }
        let a = &self.accounting;
        let _ = writeln!(md, "\n## Loss accounting\n");
        let _ = writeln!(
            md,
            "| source | published | distinct in RAW | rows in RAW | lost | unexpected |\n|---|---:|---:|---:|---:|---:|"
        );
        for c in &a.sources {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                c.source, c.published, c.distinct_in_raw, c.rows_in_raw, c.lost, c.unexpected
            );
        }
        let _ = writeln!(
            md,
            "\nLost {}, unexpected {}, duplicate rows {} (removed by staging); poison {} published, {} dead-lettered by the relay, {} in the dead-letter queue.",
            a.lost,
            a.unexpected,
            a.duplicate_rows,
            a.poison_published,
            a.dead_lettered,
            a.dead_letter_queue
        );
    }

    /// Resources, the rate search, gates, the comparison, problems and phases.
    fn markdown_resources_search_gates(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Resources\n");
        let _ = writeln!(
            md,
            "| process | peak RSS MiB | mean CPU cores |\n|---|---:|---:|"
        );
        for (name, rss) in &self.resources.peak_rss_bytes {
            let cpu = self
                .resources
                .mean_cpu_cores
                .get(name)
                .copied()
                .unwrap_or(0.0);
            let _ = writeln!(
                md,
                "| {name} | {:.1} | {cpu:.2} |",
                *rss as f64 / (1024.0 * 1024.0)
            );
        }
        if let Some(search) = &self.find_max {
            let _ = writeln!(md, "\n## Rate search\n");
            let _ = writeln!(
                md,
                "| offered ev/s | delivered ev/s | p50 ms | p99 ms | drain ms | sustainable |\n|---:|---:|---:|---:|---:|---|"
            );
            for step in &search.steps {
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.0} | {:.0} | {:.0} | {} |",
                    fmt_rate(step.offered),
                    fmt_rate(step.delivered),
                    step.freshness_p50_ms,
                    step.freshness_p99_ms,
                    step.drain_ms,
                    if step.sustainable {
                        "yes".to_owned()
                    } else {
                        format!("no: {}", step.reason.as_deref().unwrap_or(""))
                    }
                );
            }
        }
        if !self.gates.is_empty() {
            let _ = writeln!(md, "\n## Gates\n");
            for g in &self.gates {
                let _ = writeln!(md, "- {g}");
            }
        }
        if let Some(comparison) = &self.comparison {
            let _ = writeln!(md, "\n## Against the baseline report\n");
            let _ = writeln!(
                md,
                "| figure | old | new | change | verdict |\n|---|---:|---:|---:|---|"
            );
            for c in comparison {
                let _ = writeln!(
                    md,
                    "| {} | {:.2} | {:.2} | {:+.1}% | {:?} |",
                    c.name, c.old, c.new, c.change_pct, c.verdict
                );
            }
        }
        if !self.problems.is_empty() {
            let _ = writeln!(md, "\n## Problems\n");
            for p in &self.problems {
                let _ = writeln!(md, "- {p}");
            }
        }
        let _ = writeln!(md, "\n## Phases\n");
        for (name, secs) in &self.phases {
            let _ = writeln!(md, "- {name}: {secs:.1} s");
        }
    }
}

fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_markdown_names_every_section_and_the_verdict() {
        let mut report = Report {
            format: FORMAT,
            scenario: "t".into(),
            ..Report::default()
        };
        report.gates.push(GateResult {
            gate: "max_lost".into(),
            limit: "<= 0".into(),
            measured: "3 lost".into(),
            passed: false,
        });
        let md = report.markdown();
        assert!(md.starts_with("# Load test `t` (seed 0): FAIL"), "{md}");
        for section in [
            "## Throughput",
            "## Freshness",
            "## Drain",
            "## Loss accounting",
            "## Resources",
            "## Gates",
            "FAIL max_lost: measured 3 lost, limit <= 0",
        ] {
            assert!(md.contains(section), "{section} missing:\n{md}");
        }
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }
}
