//! Small random scenarios (revisions, late events, duplicates, poison, overlap with the
//! history, either file format) through the real components on a scratch native stack: the
//! marts always equal the oracle. The shipped dirty scenario runs in `e2e_incremental.rs`, in
//! waves, its marts checked after each. A stack of its own, so it runs
//! beside `e2e.rs`. The publisher's own test (`publish/`) shares the stack.
//!
//! The component binaries are the ones `cargo test --workspace` builds beside this test.

mod common;
mod publish;

use std::time::Duration;

use common::{RUNS, marts_run};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use stack::scratch::ScratchStack;

/// A small scenario: a few seconds around midnight with random rates and faults.
#[derive(Debug, Clone)]
struct Small {
    seed: u64,
    rates: (u32, u32, u32),
    duplicate_ratio: f64,
    late_ratio: f64,
    history: u32,
    overlap: u64,
    parquet: bool,
    /// card_updates, order_amendments, order_cancellations, batch_corrections
    revisions: (f64, f64, f64, f64),
}

impl Small {
    fn toml(&self) -> String {
        format!(
            r#"name = "prop-{seed}"
seed = {seed}
start = "2026-05-09T23:59:58Z"
duration = "3s"
[rates]
cards = {c}
orders = {o}
manufacturing = {m}
[faults]
duplicate_ratio = {d}
out_of_order_ratio = {l}
max_lateness = "90s"
poison_ratio = 0.02
[revisions]
card_updates = {r0}
order_amendments = {r1}
order_cancellations = {r2}
batch_corrections = {r3}
[history]
events = {h}
span = "3d"
[supply]
constrained = true
[pipeline]
batch_size = 50
batch_window = "300ms"
file_format = "{format}"
"#,
            seed = self.seed,
            c = self.rates.0,
            o = self.rates.1,
            m = self.rates.2,
            d = self.duplicate_ratio,
            l = self.late_ratio,
            h = self.history,
            r0 = self.revisions.0,
            r1 = self.revisions.1,
            r2 = self.revisions.2,
            r3 = self.revisions.3,
            format = if self.parquet { "parquet" } else { "ndjson" },
        )
    }
}

fn small() -> impl Strategy<Value = Small> {
    (
        any::<u64>(),
        (1u32..6, 5u32..60, 1u32..12),
        0.0..0.3f64,
        0.0..0.5f64,
        0u32..300,
        0u64..20,
        any::<bool>(),
        (0u32..50, 0u32..20, 0u32..10, 0u32..40),
    )
        .prop_map(
            |(seed, rates, duplicate_ratio, late_ratio, history, overlap, parquet, r)| Small {
                seed,
                rates,
                duplicate_ratio: (duplicate_ratio * 100.0).round() / 100.0,
                late_ratio: (late_ratio * 100.0).round() / 100.0,
                history,
                overlap,
                parquet,
                revisions: (
                    f64::from(r.0) / 100.0,
                    f64::from(r.1) / 100.0,
                    f64::from(r.2) / 100.0,
                    f64::from(r.3) / 100.0,
                ),
            },
        )
}

/// Proptest's generator and runner, without shrinking: each case is a whole pipeline run plus a
/// dbt build (about half a minute), so a handful of cases, and a failing one prints its scenario
/// for `cargo xtask e2e`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marts_always_equal_the_oracle_for_small_random_scenarios() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    let mut runner = TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    for case in 1..=3 {
        let small = small().new_tree(&mut runner).unwrap().current();
        let toml = small.toml();
        eprintln!("case {case}: overlap {}\n{toml}", small.overlap);
        let scenario = synth::Scenario::parse("prop.toml", &toml)
            .unwrap_or_else(|e| panic!("generated scenario is valid: {e}\n{toml}"));
        let report = marts_run(&stack, scenario, small.overlap, Duration::from_secs(90)).await;
        assert!(
            report.passed(),
            "case {case} (overlap {}):\n{toml}\nproblems: {:#?}",
            small.overlap,
            report.problems
        );
    }
}
