//! Faults mid-run through the real components on a scratch native stack: one run per fault
//! kind, each ending with marts equal to the oracle, no event lost or unexpected and no file
//! loaded twice; and random schedules over a small scenario that never lose an event.
//!
//! The component binaries are the ones `cargo test --workspace` builds beside this test.

use std::sync::Arc;
use std::time::Duration;

use harness::components::ComponentBinaries;
use harness::e2e::{RunConfig, RunReport, run};
use stack::scratch::ScratchStack;
use synth::chaos::FaultKind;

/// One run at a time: runs reset the shared stack's warehouse and queues.
static RUNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A short stream across midnight with every kind of dirty input, and `chaos` appended.
fn scenario(name: &str, duration_s: u32, orders: u32, chaos: &str) -> synth::Scenario {
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

async fn chaos_run(scenario: synth::Scenario) -> RunReport {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    run_on(&stack, scenario).await
}

async fn run_on(stack: &Arc<ScratchStack>, scenario: synth::Scenario) -> RunReport {
    let mut config = RunConfig::new(
        scenario.clone(),
        stack.root().to_owned(),
        stack.state.stack.clone(),
        ComponentBinaries::beside_current_exe().expect("component binaries"),
    );
    config.chaos = scenario.faults().expect("a valid schedule");
    config.quiesce_timeout = Duration::from_secs(300);
    let report = run(&config, &|line| eprintln!("{line}"))
        .await
        .expect("the run completes");
    eprintln!("{report}");
    report
}

/// What every chaos run must show: each fault carried out and healed, marts equal to the
/// oracle, nothing lost or unexpected, no file loaded twice.
fn assert_nothing_lost(report: &RunReport, kinds: &[FaultKind]) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_components_lose_nothing() {
    let report = chaos_run(scenario(
        "kill",
        12,
        100,
        r#"
[[chaos]]
at = "2s"
kind = "kill"
target = "relay"
duration = "2s"
[[chaos]]
at = "5s"
kind = "kill"
target = "batcher"
duration = "1s"
[[chaos]]
at = "7s"
kind = "kill"
target = "pipe"
duration = "2s"
"#,
    ))
    .await;
    assert_nothing_lost(&report, &[FaultKind::Kill; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_components_and_services_lose_nothing() {
    let report = chaos_run(scenario(
        "pause",
        12,
        100,
        r#"
[[chaos]]
at = "2s"
kind = "pause"
target = "batcher"
duration = "3s"
[[chaos]]
at = "3s"
kind = "pause"
target = "localstack"
duration = "2s"
[[chaos]]
at = "6s"
kind = "pause"
target = "fakesnow"
duration = "2s"
"#,
    ))
    .await;
    assert_nothing_lost(&report, &[FaultKind::Pause; 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_the_publisher_resends_the_unconfirmed() {
    // A fast stream, so bodies are in flight when the node dies.
    let report = chaos_run(scenario(
        "broker-restart",
        12,
        600,
        r#"
[[chaos]]
at = "4s"
kind = "broker-restart"
duration = "2s"
"#,
    ))
    .await;
    assert_nothing_lost(&report, &[FaultKind::BrokerRestart]);
    let published = &report.hops.published;
    assert!(
        published.reconnects >= 1,
        "the publisher reconnected: {published:?}"
    );
    assert!(
        published.republished > 0,
        "bodies unconfirmed when the node died were published again: {published:?}"
    );
    let relay = report
        .hops
        .components
        .relay
        .as_ref()
        .expect("relay metrics");
    assert!(relay.reconnects >= 1, "the relay reconnected: {relay:?}");
    // Everything confirmed before the kill is in RAW: nothing lost (above), and the copies the
    // resend made are removed by staging, so the marts still equal the oracle.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_a_put_writes_a_file_twice_and_loses_none() {
    let report = chaos_run(scenario(
        "crash-after-put",
        10,
        100,
        r#"
[[chaos]]
at = "2s"
kind = "crash-after-put"
duration = "2s"
"#,
    ))
    .await;
    assert_nothing_lost(&report, &[FaultKind::CrashAfterPut]);
    let note = report.faults[0].note.as_deref().unwrap_or_default();
    assert!(note.contains("crashed after a put"), "{note}");
    let batcher = report
        .hops
        .components
        .batcher
        .as_ref()
        .expect("batcher metrics");
    assert!(
        report.hops.raw_stream.rows > report.hops.raw_stream.distinct_events,
        "the batch whose notice was lost is written again: RAW holds copies ({:?}, {batcher:?})",
        report.hops.raw_stream
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_notices_load_no_file_twice() {
    let report = chaos_run(scenario(
        "duplicate-notice",
        8,
        100,
        r#"
[[chaos]]
at = "4s"
kind = "duplicate-notice"
count = 6
"#,
    ))
    .await;
    assert_nothing_lost(&report, &[FaultKind::DuplicateNotice]);
    let note = report.faults[0].note.as_deref().unwrap_or_default();
    assert!(note.starts_with("6 notices"), "{note}");
    let pipe = report.hops.components.pipe.as_ref().expect("pipe metrics");
    assert!(
        pipe.files_skipped >= 6,
        "the pipe skipped the files it had loaded: {pipe:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_of_every_service_lose_nothing() {
    let report = chaos_run(scenario(
        "outage",
        16,
        100,
        r#"
[[chaos]]
at = "2s"
kind = "outage"
target = "localstack"
mode = "refuse"
duration = "2s"
[[chaos]]
at = "5s"
kind = "outage"
target = "fakesnow"
mode = "blackhole"
duration = "2s"
[[chaos]]
at = "8s"
kind = "outage"
target = "rabbitmq"
mode = "reset"
duration = "2s"
[[chaos]]
at = "11s"
kind = "outage"
target = "localstack"
mode = "latency"
latency = "300ms"
duration = "2s"
"#,
    ))
    .await;
    assert_nothing_lost(&report, &[FaultKind::Outage; 4]);
}

/// Random schedules (Jepsen's staggered mix of every kind) over a small scenario: nothing is
/// ever lost. A failing case prints its schedule, to replay with `--chaos FILE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_fault_schedules_never_lose_an_event() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    for seed in [3u64, 29] {
        let base = scenario(&format!("random-{seed}"), 24, 80, "");
        let specs = synth::chaos::random(
            base.duration.expect("a duration").get(),
            seed,
            &base.components(),
        );
        let schedule = synth::chaos::to_toml(&specs);
        let mut with = base.clone();
        with.chaos = specs;
        eprintln!("random schedule, seed {seed}:\n{schedule}");
        let report = run_on(&stack, with).await;
        assert!(
            report.lost.is_empty() && report.unexpected.is_empty() && report.passed(),
            "seed {seed}: {} lost {:?}, {} unexpected; problems {:#?}\nreplay with --chaos FILE holding:\n{schedule}",
            report.lost.len(),
            report.lost.iter().take(10).collect::<Vec<_>>(),
            report.unexpected.len(),
            report.problems
        );
    }
}
