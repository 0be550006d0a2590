//! Faults mid-run through the real components on a scratch native stack, one run per fault
//! kind that acts on a component: killed, paused, a broker restarted under them, a batcher
//! crashed between its put and its notice. Each ends with marts equal to the oracle, no event
//! lost or unexpected and no file loaded twice. Outages, duplicate notices and random mixes are
//! in `chaos_mixed.rs` (a stack of its own, so the two run at once).
//!
//! The component binaries are the ones `cargo test --workspace` builds beside this test.

mod common;

use common::{assert_nothing_lost, chaos_run, scenario};
use synth::chaos::FaultKind;

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
    // A fast stream, so bodies are in flight when the node dies; it ends a second after the
    // node is back, since what follows the heal proves nothing more.
    let report = chaos_run(scenario(
        "broker-restart",
        7,
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
