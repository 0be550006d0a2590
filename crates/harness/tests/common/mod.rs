//! What the harness's real-stack test binaries share: a run on the binary's scratch stack, and
//! the chaos tests' scenario and checks. Each binary (chaos, chaos_mixed, e2e, e2e_properties)
//! has a stack of its own, so `cargo xtask test` runs them at once.
#![allow(dead_code)] // each binary uses its part

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use harness::prove::Orchestrator;
use harness::prove::{DbtSteps, RunConfig, RunReport, run};
use harness::rig::components::{BatcherShape, ComponentBinaries};
use stack::scratch::ScratchStack;
use synth::chaos::FaultKind;

/// One run at a time: runs reset the shared stack's warehouse and queues.
pub static RUNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One run of `scenario` (and its fault schedule) on `stack`, its report printed.
pub async fn run_on(
    stack: &Arc<ScratchStack>,
    scenario: synth::Scenario,
    overlap: u64,
    quiesce_timeout: Duration,
    dbt: DbtSteps,
    orchestrator: Orchestrator,
) -> RunReport {
    run_shaped(
        stack,
        scenario,
        overlap,
        quiesce_timeout,
        dbt,
        orchestrator,
        BatcherShape::Poller,
    )
    .await
}

/// [`run_on`] with the batcher run in `shape`.
pub async fn run_shaped(
    stack: &Arc<ScratchStack>,
    scenario: synth::Scenario,
    overlap: u64,
    quiesce_timeout: Duration,
    dbt: DbtSteps,
    orchestrator: Orchestrator,
    shape: BatcherShape,
) -> RunReport {
    let chaos = scenario.faults().expect("a valid fault schedule");
    let binaries = ComponentBinaries::beside_current_exe()
        .expect("component binaries")
        .with_batcher(shape);
    binaries
        .check(&synth::Component::PIPELINE)
        .expect("the batcher's executables for this shape");
    let mut config = RunConfig::new(
        scenario,
        stack.root().to_owned(),
        stack.state.stack.clone(),
        binaries,
    );
    config.overlap = overlap;
    config.chaos = chaos;
    config.quiesce_timeout = quiesce_timeout;
    config.dbt = dbt;
    config.orchestrator = orchestrator;
    let report = run(&config, &mut |line: &str| eprintln!("{line}"))
        .await
        .expect("the run completes");
    eprintln!("{report}");
    report
}

/// An end-to-end run as `cargo xtask e2e` makes it: dbt's models, tests and source freshness,
/// run by the harness or by Airflow's `sluice_marts` DAG.
pub async fn e2e(
    stack: &Arc<ScratchStack>,
    scenario: synth::Scenario,
    overlap: u64,
    orchestrator: Orchestrator,
) -> RunReport {
    run_on(
        stack,
        scenario,
        overlap,
        Duration::from_secs(90),
        DbtSteps::All,
        orchestrator,
    )
    .await
}

/// A run whose question is the marts against the oracle (a random scenario, a fault schedule):
/// dbt builds the models and skips its data tests, which the smoke and dirty runs keep.
pub async fn marts_run(
    stack: &Arc<ScratchStack>,
    scenario: synth::Scenario,
    overlap: u64,
    quiesce_timeout: Duration,
) -> RunReport {
    run_on(
        stack,
        scenario,
        overlap,
        quiesce_timeout,
        DbtSteps::ModelsOnly,
        Orchestrator::Dbt,
    )
    .await
}

/// A short stream across midnight with every kind of dirty input, and `chaos` appended.
pub fn scenario(name: &str, duration_s: u32, orders: u32, chaos: &str) -> synth::Scenario {
    let text = format!(
        r#"name = "{name}"
seed = 11
start = "2026-06-01T23:59:55Z"
duration = "{duration_s}s"
[rates]
cards = 3
orders = {orders}
manufacturing = 10
[faults]
duplicate_ratio = 0.03
out_of_order_ratio = 0.05
max_lateness = "1m"
poison_ratio = 0.01
[history]
events = 100
span = "3d"
[supply]
constrained = true
[pipeline]
batch_size = 100
batch_window = "400ms"
{chaos}"#
    );
    synth::Scenario::parse(&format!("{name}.toml"), &text).expect("a valid scenario")
}

/// A chaos run on the binary's stack, alone on it. The quiescence bound is generous: the
/// scratch stack's visibility timeouts are seconds, so a healthy run ends far sooner.
pub async fn chaos_run(scenario: synth::Scenario) -> RunReport {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    marts_run(&stack, scenario, 0, Duration::from_secs(300)).await
}

/// What every chaos run must show: each fault carried out and healed, marts equal to the
/// oracle, nothing lost or unexpected, no file loaded twice.
pub fn assert_nothing_lost(report: &RunReport, kinds: &[FaultKind]) {
    assert!(report.passed(), "problems: {:#?}", report.problems);
    assert!(report.lost.is_empty(), "lost: {:?}", report.lost);
    assert!(
        report.unexpected.is_empty(),
        "unexpected: {:?}",
        report.unexpected
    );
    assert!(
        report.loaded_twice.is_empty(),
        "loaded twice: {:?}",
        report.loaded_twice
    );
    let diff = report.diff.as_ref().expect("marts were diffed");
    assert!(diff.is_match(), "{diff}");
    let ran: Vec<FaultKind> = report.faults.iter().map(|f| f.fault.kind).collect();
    assert_eq!(ran, kinds, "every fault of the schedule was carried out");
    for f in &report.faults {
        assert!(
            f.note
                .as_deref()
                .is_none_or(|n| !n.starts_with("could not")),
            "{f}"
        );
        assert!(f.recovered_after_s.is_some(), "never recovered: {f}");
    }
}

/// A copy of a folder (a dbt project, for a mutant), without dbt's build folders.
pub fn copy_dir(from: &Path, to: &Path) {
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
