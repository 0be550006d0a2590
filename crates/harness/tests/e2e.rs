//! End to end through the real components on a scratch native stack: the smoke scenario's
//! marts equal the oracle and their snapshots, a dbt model without its dedup is caught with a
//! row-level diff, and small random scenarios always give marts equal to the oracle.
//!
//! The component binaries are the ones `cargo test --workspace` builds beside this test.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use harness::components::ComponentBinaries;
use harness::dbt::{Dbt, DbtCommand, DbtConfig};
use harness::diff::diff_marts;
use harness::e2e::{RunConfig, RunReport, run};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use stack::scratch::ScratchStack;

/// One run at a time: runs reset the shared stack's warehouse and queues.
static RUNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn e2e(stack: &Arc<ScratchStack>, scenario: synth::Scenario, overlap: u64) -> RunReport {
    let mut config = RunConfig::new(
        scenario,
        stack.root().to_owned(),
        stack.state.stack.clone(),
        ComponentBinaries::beside_current_exe().expect("component binaries"),
    );
    config.overlap = overlap;
    config.quiesce_timeout = Duration::from_secs(90);
    let report = run(&config, &|line| eprintln!("{line}"))
        .await
        .expect("the run completes");
    eprintln!("{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_marts_match_the_oracle_and_the_snapshots() {
    // Take the stack before the lock, so both tests hold it and it stays up between them.
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    let scenario = synth::Scenario::load(root().join("scenarios/smoke.toml")).unwrap();
    // History overlapping the stream gives staging copies to drop.
    let report = e2e(&stack, scenario, 40).await;
    assert!(report.passed(), "{:#?}", report.problems);
    assert_eq!(
        report.hops.raw_union.rows - report.hops.raw_union.distinct_events,
        40,
        "the overlap is loaded twice and kept once"
    );
    let marts = report.marts.as_ref().expect("marts were read");
    insta::assert_snapshot!("smoke_dim_card", marts.dim_card.to_csv());
    insta::assert_snapshot!("smoke_fct_orders", marts.fct_orders.to_csv());
    insta::assert_snapshot!(
        "smoke_fct_batch_performance",
        marts.fct_batch_performance.to_csv()
    );

    // The same warehouse through a project whose staging keeps every copy: the diff catches it.
    let broken = broken_project(&stack.state.dir.join("dbt-broken"));
    let mut dbt_config =
        DbtConfig::for_stack(&stack.state, stack.state.dir.join("dbt-broken-work"), true);
    dbt_config.project_dir = broken;
    let dbt = Dbt::new(dbt_config).unwrap();
    let [models, tests] = <[_; 2]>::try_from(
        dbt.invoke(&[DbtCommand::Run, DbtCommand::Test])
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(models.ok(), "the broken models still build:\n{models}");
    assert!(
        tests
            .failures
            .iter()
            .any(|f| f.unique_id.contains("unique_stg_events_event_id")),
        "dbt's own unique test fails too:\n{tests}"
    );
    let sf = snowflake::Client::connect(stack::snowflake_config(&stack.state).unwrap())
        .await
        .unwrap();
    let actual = harness::warehouse::read_marts(&sf).await.unwrap();
    let diff = diff_marts(marts, &actual);
    assert!(!diff.is_match());
    let orders = &diff.tables[1];
    assert!(
        !orders.repeated.is_empty(),
        "order lines of copied events repeat:\n{diff}"
    );
    assert!(diff.to_string().contains("repeated   ord-"), "{diff}");
}

/// infra/dbt with the dedup taken out of stg_events.
fn broken_project(dir: &Path) -> PathBuf {
    let source = root().join("infra/dbt");
    let _ = std::fs::remove_dir_all(dir);
    copy_dir(&source, dir);
    let model = dir.join("models/staging/stg_events.sql");
    let sql = std::fs::read_to_string(&model).unwrap();
    let cut = sql.find("qualify").expect("stg_events dedups with QUALIFY");
    std::fs::write(&model, &sql[..cut]).unwrap();
    dir.to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if !matches!(entry.file_name().to_str(), Some("target" | "logs")) {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

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
    )
        .prop_map(
            |(seed, rates, duplicate_ratio, late_ratio, history, overlap, parquet)| Small {
                seed,
                rates,
                duplicate_ratio: (duplicate_ratio * 100.0).round() / 100.0,
                late_ratio: (late_ratio * 100.0).round() / 100.0,
                history,
                overlap,
                parquet,
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
        let report = e2e(&stack, scenario, small.overlap).await;
        assert!(
            report.passed(),
            "case {case} (overlap {}):\n{toml}\nproblems: {:#?}",
            small.overlap,
            report.problems
        );
    }
}
