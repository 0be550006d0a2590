//! `lambda-host` as a user runs it, without a stack: what it refuses, and why. (Its runs on a
//! stack are in `harness/tests/e2e_lambda.rs`.)

use std::process::Command;

fn host(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lambda-host"))
        .args(args)
        .env_remove("SLUICE_STACK")
        .env_remove("SLUICE_INGEST_QUEUE_URL")
        .env_remove("SLUICE_BUCKET")
        .env_remove("SLUICE_RAW_FILES_TOPIC_ARN")
        .output()
        .expect("lambda-host runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_a_stack_or_a_queue_it_says_what_to_pass() {
    let (ok, err) = host(&[]);
    assert!(!ok);
    assert!(
        err.contains("no --queue-url: pass --stack NAME or --queue-url"),
        "{err}"
    );
}

#[test]
fn a_missing_bootstrap_is_named_before_anything_starts() {
    let (ok, err) = host(&[
        "--queue-url",
        "http://127.0.0.1:9/000000000000/q",
        "--bucket",
        "b",
        "--topic-arn",
        "arn:aws:sns:us-east-1:000000000000:t",
        "--bootstrap",
        "/nonexistent/bootstrap",
    ]);
    assert!(!ok);
    assert!(
        err.contains("the bootstrap /nonexistent/bootstrap does not exist"),
        "{err}"
    );
}

#[test]
fn the_help_names_the_mapping_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_lambda-host"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--batch-size",
        "--batch-window",
        "--concurrency",
        "--timeout",
        "--bootstrap",
    ] {
        assert!(help.contains(flag), "{flag} in:\n{help}");
    }
}
