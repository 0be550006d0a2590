//! A crash in the middle of `cargo xtask up --provider containers` (the process killed after two
//! containers started) leaves no container behind once the next `down` or `up` of that stack ran.
//!
//! They need an engine and the images: `cargo xtask ci` builds the images (step `images`) before
//! its `test` step; by hand, run `cargo xtask images` first. Without an engine they fail and say
//! so; they never skip.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The docker CLI, aimed at the engine the container provider uses.
fn docker() -> Command {
    let engine = stack::engine::Engine::require().unwrap_or_else(|e| {
        panic!("{e}\n(the container provider's tests need an engine and `cargo xtask images`)")
    });
    engine.docker()
}

/// The ids of the stack's containers (`running` only, or all).
fn containers(stack: &str, running: bool) -> Vec<String> {
    let mut c = docker();
    c.args(["ps", "-q", "--no-trunc", "--filter"])
        .arg(format!("label=sluice.stack={stack}"));
    if !running {
        c.arg("-a");
    }
    let out = c.output().expect("the docker CLI runs");
    assert!(out.status.success(), "docker ps: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Starts `up`, SIGKILLs it once two of the stack's containers run; returns the ids left.
fn crash_up_after_two_containers(stack: &str) -> Vec<String> {
    assert!(
        containers(stack, false).is_empty(),
        "stack {stack} starts clean"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["up", "--provider", "containers", "--stack", stack])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xtask runs");
    let started = Instant::now();
    while containers(stack, true).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "two containers did not start within 90 s"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("`up` ended ({status}) before two containers ran");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    // The engine finishes a create request the killed client had sent: wait until the set of
    // containers stops changing.
    let mut left = containers(stack, false);
    loop {
        std::thread::sleep(Duration::from_millis(1500));
        let now = containers(stack, false);
        if now == left {
            break;
        }
        left = now;
    }
    assert!(
        left.len() >= 2,
        "the crash left containers behind: {left:?}"
    );
    left
}

/// Removes the stack's containers whatever happened, so a failing test leaks nothing.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = containers(self.0, false);
        if !ids.is_empty() {
            let _ = docker().args(["rm", "-f", "-v"]).args(&ids).output();
        }
        let _ = xtask(&["down", "--stack", self.0]);
    }
}

#[test]
fn down_after_a_crash_during_up_removes_what_was_left() {
    let stack = "crash-then-down";
    let _cleanup = Cleanup(stack);
    let left = crash_up_after_two_containers(stack);
    let out = xtask(&["down", "--stack", stack]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("removed container").count(),
        left.len(),
        "{}",
        stderr(&out)
    );
    assert!(containers(stack, false).is_empty(), "no container left");
}

#[test]
fn up_after_a_crash_during_up_replaces_what_was_left() {
    let stack = "crash-then-up";
    let _cleanup = Cleanup(stack);
    let left = crash_up_after_two_containers(stack);
    let out = xtask(&["up", "--provider", "containers", "--stack", stack]);
    assert!(out.status.success(), "{}", stderr(&out));
    let now = containers(stack, false);
    assert_eq!(now.len(), 4, "exactly the new stack's four: {now:?}");
    assert!(
        left.iter().all(|id| !now.contains(id)),
        "the crashed run's containers are gone: {left:?} vs {now:?}"
    );
    let status = xtask(&["status", "--stack", stack]);
    assert!(status.status.success(), "{}", stderr(&status));
    let out = xtask(&["down", "--stack", stack]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(containers(stack, false).is_empty(), "no container left");
}
