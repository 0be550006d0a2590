//! The worker as a user (or a Job) starts it: a bad shard or scenario is refused before it
//! connects anywhere, with one `failed` line that names the problem and a non-zero exit.
//! (Publishing for real is load_cli's `--publishers 2` run in xtask's tests.)

use std::process::Command;

fn worker(args: &[&str], shard: &str, shards: &str) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_publisher"))
        .args(args)
        .env("SLUICE_SHARD", shard)
        .env("SLUICE_SHARDS", shards)
        // Nothing listens there: a worker that tried to connect would fail differently.
        .env("SLUICE_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no line on stdout; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), serde_json::from_str(line).unwrap())
}

fn smoke() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/smoke.toml").to_owned()
}

#[test]
fn a_shard_beyond_the_count_is_refused_by_name() {
    let (code, line) = worker(&["--scenario", &smoke()], "2", "2");
    assert_eq!(code, Some(1));
    assert_eq!(line["line"], "failed");
    assert_eq!(line["error"], "shard 2 of 2: shards are numbered 0 to 1");
}

#[test]
fn a_missing_scenario_is_named() {
    let (code, line) = worker(&["--scenario", "scenarios/nope.toml"], "0", "2");
    assert_eq!(code, Some(1));
    let error = line["error"].as_str().unwrap();
    assert!(error.contains("scenarios/nope.toml"), "{error}");
}

#[test]
fn an_unreachable_broker_fails_with_the_connect_error() {
    let (code, line) = worker(&["--scenario", &smoke()], "0", "2");
    assert_eq!(code, Some(1));
    let error = line["error"].as_str().unwrap();
    assert!(
        error.contains("publishing shard 0") && error.contains("connecting to RabbitMQ"),
        "{error}"
    );
}
