//! The batcher as production runs it: its Lambda bootstrap (`batcher-lambda`) in execution
//! environments under a Lambda Runtime API, fed by an SQS event-source mapping (`lambda-host`),
//! end to end through the real pipeline on a scratch native stack. The smoke scenario's marts
//! equal the oracle; a dirty stream with an environment killed mid-invocation (after its S3
//! put, before its notice) and a handler that fails part of its batches loses nothing: the
//! records the function reported failed come back and are written.
//!
//! The binaries are the ones `cargo test --workspace` builds beside this test.

mod common;

use std::time::Duration;

use common::{Orchestrator, RUNS, assert_nothing_lost, root, run_shaped, scenario};
use harness::prove::DbtSteps;
use harness::rig::components::BatcherShape;
use stack::scratch::ScratchStack;
use synth::chaos::FaultKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke_through_the_lambda_equals_the_oracle() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    let smoke = synth::Scenario::load(root().join("scenarios/smoke.toml")).unwrap();
    let report = run_shaped(
        &stack,
        smoke,
        0,
        Duration::from_secs(90),
        DbtSteps::ModelsOnly,
        Orchestrator::Dbt,
        BatcherShape::Lambda,
    )
    .await;
    assert!(report.passed(), "problems: {:#?}", report.problems);
    let diff = report.diff.as_ref().expect("marts were diffed");
    assert!(diff.is_match(), "{diff}");
    let batcher = report
        .hops
        .components
        .batcher
        .as_ref()
        .expect("the Lambda host's metrics");
    assert!(
        batcher.invocations > 0 && batcher.events_written >= report.hops.raw_stream.distinct_events,
        "the function's processes wrote the stream: {batcher:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dirty_with_a_killed_environment_and_partial_failures_loses_nothing() {
    let stack = ScratchStack::shared().await;
    let _one = RUNS.lock().await;
    let report = run_shaped(
        &stack,
        scenario(
            "lambda-faults",
            10,
            100,
            r#"
[[chaos]]
at = "1s"
kind = "crash-after-put"
duration = "2s"
[[chaos]]
at = "5s"
kind = "partial-failure"
duration = "2s"
"#,
        ),
        0,
        Duration::from_secs(300),
        DbtSteps::ModelsOnly,
        Orchestrator::Dbt,
        BatcherShape::Lambda,
    )
    .await;
    assert_nothing_lost(
        &report,
        &[FaultKind::CrashAfterPut, FaultKind::PartialFailure],
    );
    let crash = report.faults[0].note.as_deref().unwrap_or_default();
    assert!(crash.contains("crashed after a put"), "{crash}");
    let partial = report.faults[1].note.as_deref().unwrap_or_default();
    let failed: u64 = partial
        .strip_prefix("the batcher reported ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count of failed records: {partial}"));
    assert!(
        failed > 0,
        "the handler failed part of its batches while armed: {partial}"
    );
    assert!(
        report.hops.raw_stream.rows > report.hops.raw_stream.distinct_events,
        "the crashed invocation's batch is written again: RAW holds copies ({:?})",
        report.hops.raw_stream
    );
}
