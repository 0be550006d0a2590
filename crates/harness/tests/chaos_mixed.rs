//! Faults mid-run through the real components on a scratch native stack: outages of every
//! service, duplicate notices, and random schedules of every kind over a small scenario. Each
//! ends with nothing lost or unexpected and no file loaded twice. The faults that act on a
//! component alone are in `chaos.rs`.
//!
//! The component binaries are the ones `cargo test --workspace` builds beside this test.

mod common;

use common::{RUNS, assert_nothing_lost, chaos_run, marts_run, scenario};
use stack::scratch::ScratchStack;
use synth::chaos::FaultKind;

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
/// ever lost. A failing case prints its schedule, to replay with `--chaos FILE`. Each seed
/// starts at a different kind and takes the others in turn (`synth::chaos::random`); every kind
/// also has a run of its own, here, in `chaos.rs` or in `e2e_lambda.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_fault_schedules_never_lose_an_event() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    for seed in [2u64, 4] {
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
        let report = marts_run(&stack, with, 0, std::time::Duration::from_secs(300)).await;
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
