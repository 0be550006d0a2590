//! The stack commands' handling of bad input, as a user meets it (no services are started).

use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_unknown_provider_lists_the_known_ones() {
    let out = xtask(&["up", "--provider", "docker"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("docker")
            && err.contains("native")
            && err.contains("external")
            && err.contains("containers"),
        "{err}"
    );
}

#[test]
fn a_stack_name_with_path_characters_is_refused() {
    for cmd in ["up", "status", "down", "env"] {
        let out = xtask(&[cmd, "--stack", "../etc"]);
        assert!(!out.status.success(), "{cmd}");
        assert!(
            stderr(&out).contains("invalid stack name \"../etc\""),
            "{cmd}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn commands_on_a_stack_that_does_not_exist_say_how_to_start_it() {
    for cmd in [&["status"][..], &["down"], &["env"], &["sql", "SELECT 1"]] {
        let out = xtask(&[cmd, &["--stack", "never-started-here"]].concat());
        assert!(!out.status.success(), "{cmd:?}");
        assert!(
            stderr(&out).contains("cargo xtask up --stack never-started-here"),
            "{cmd:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_fault_on_a_service_process_is_refused_on_the_container_provider_before_anything_starts() {
    let out = xtask(&[
        "e2e",
        "--provider",
        "containers",
        "--stack",
        "never-started-here",
        "--scenario",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/chaos.toml"),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("only the native provider runs") && err.contains("broker-restart rabbitmq"),
        "{err}"
    );
    assert!(
        !err.contains("Compiling") && !err.contains("bringing up"),
        "refused before building or starting anything: {err}"
    );
}

#[test]
fn an_engine_that_does_not_answer_is_named_and_nothing_starts() {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "up",
            "--provider",
            "containers",
            "--stack",
            "no-engine-here",
        ])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("xtask runs");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("DOCKER_HOST=unix:///nonexistent/docker.sock does not answer"),
        "{err}"
    );
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/sluice/no-engine-here"
    );
    assert!(!std::path::Path::new(dir).exists(), "nothing started");
}
