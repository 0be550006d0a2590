//! The scenario's `[expect]` as pass/fail gates on a load test, k6-style: each gate says its
//! name, the measured value and the limit, and any failure gives the run its own exit code.

use std::collections::BTreeMap;
use std::time::Duration;

use synth::Component;
use synth::scenario::Expect;

/// What the gates are checked against.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    pub freshness_p99: Option<Duration>,
    pub freshness_max: Option<Duration>,
    /// End-to-end rate over the broker-only baseline's.
    pub rate_ratio: Option<f64>,
    pub lost: u64,
    /// Peak resident memory per component.
    pub peak_rss: BTreeMap<Component, u64>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GateResult {
    /// e.g. `freshness_p99`, `max_rss.relay`.
    pub gate: String,
    pub limit: String,
    pub measured: String,
    pub passed: bool,
}

impl std::fmt::Display for GateResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: measured {}, limit {}",
            if self.passed { "pass" } else { "FAIL" },
            self.gate,
            self.measured,
            self.limit
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Every gate the scenario sets, in a fixed order. A gate whose figure could not be measured
/// fails: a gate must never pass by not looking.
pub fn evaluate(expect: &Expect, m: &Measured) -> Vec<GateResult> {
    let mut out = Vec::new();
    let mut upper = |gate: &str, limit: Option<Duration>, value: Option<Duration>| {
        if let Some(limit) = limit {
            out.push(GateResult {
                gate: gate.into(),
                limit: format!("<= {}", ms(limit)),
                measured: value.map_or_else(|| "nothing measured".into(), ms),
                passed: value.is_some_and(|v| v <= limit),
            });
        }
    };
    upper(
        "freshness_p99",
        expect.freshness_p99.map(|s| s.get()),
        m.freshness_p99,
    );
    upper(
        "freshness_max",
        expect.freshness_max.map(|s| s.get()),
        m.freshness_max,
    );
    if let Some(limit) = expect.min_rate_ratio {
        out.push(GateResult {
            gate: "min_rate_ratio".into(),
            limit: format!(">= {:.3} of the broker-only baseline", limit.get()),
            measured: m
                .rate_ratio
                .map_or_else(|| "nothing measured".into(), |r| format!("{r:.3}")),
            passed: m.rate_ratio.is_some_and(|r| r >= limit.get()),
        });
    }
    out.push(GateResult {
        gate: "max_lost".into(),
        limit: format!("<= {}", expect.max_lost),
        measured: format!("{} lost", m.lost),
        passed: m.lost <= expect.max_lost,
    });
    for (component, limit) in &expect.max_rss {
        let peak = m.peak_rss.get(component).copied();
        out.push(GateResult {
            gate: format!("max_rss.{component}"),
            limit: format!("<= {}", mib(limit.0)),
            measured: peak.map_or_else(|| "not observed".into(), mib),
            passed: peak.is_some_and(|p| p <= limit.0),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use synth::Bytes;
    use synth::scenario::{Ratio, Span};

    fn expect() -> Expect {
        Expect {
            freshness_p99: Some(Span::new(Duration::from_secs(2))),
            freshness_max: Some(Span::new(Duration::from_secs(5))),
            min_rate_ratio: Some(Ratio::new(0.5).unwrap()),
            max_lost: 0,
            max_rss: [(Component::Relay, Bytes(100 << 20))].into(),
            ..Expect::default()
        }
    }

    fn good() -> Measured {
        Measured {
            freshness_p99: Some(Duration::from_millis(1500)),
            freshness_max: Some(Duration::from_millis(4000)),
            rate_ratio: Some(0.6),
            lost: 0,
            peak_rss: [(Component::Relay, 50 << 20)].into(),
        }
    }

    fn failed(results: &[GateResult]) -> Vec<&str> {
        results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.gate.as_str())
            .collect()
    }

    #[test]
    fn every_gate_passes_within_its_limit() {
        let results = evaluate(&expect(), &good());
        assert_eq!(results.len(), 5);
        assert!(failed(&results).is_empty(), "{results:?}");
    }

    #[test]
    fn each_gate_fails_on_its_own_and_says_what_it_saw() {
        let cases: [(&str, fn(&mut Measured)); 5] = [
            ("freshness_p99", |m| {
                m.freshness_p99 = Some(Duration::from_millis(2001))
            }),
            ("freshness_max", |m| {
                m.freshness_max = Some(Duration::from_secs(6))
            }),
            ("min_rate_ratio", |m| m.rate_ratio = Some(0.49)),
            ("max_lost", |m| m.lost = 1),
            ("max_rss.relay", |m| {
                m.peak_rss.insert(Component::Relay, 101 << 20);
            }),
        ];
        for (gate, break_it) in cases {
            let mut m = good();
            break_it(&mut m);
            let results = evaluate(&expect(), &m);
            assert_eq!(failed(&results), [gate]);
            let shown = results.iter().find(|r| r.gate == gate).unwrap().to_string();
            assert!(
                shown.starts_with(&format!("FAIL {gate}: measured ")),
                "{shown}"
            );
            assert!(shown.contains("limit"), "{shown}");
        }
    }

    #[test]
    fn a_gate_with_nothing_measured_fails() {
        let results = evaluate(&expect(), &Measured::default());
        assert_eq!(
            failed(&results),
            [
                "freshness_p99",
                "freshness_max",
                "min_rate_ratio",
                "max_rss.relay"
            ]
        );
        assert!(results[0].measured.contains("nothing measured"));
    }
}
