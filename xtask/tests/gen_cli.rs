//! `cargo xtask gen` as a user runs it: the binary, its exit codes and its output.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("xtask runs")
}

#[test]
fn smoke_ndjson_is_deterministic_and_covers_all_sources() {
    let args = [
        "gen",
        "--scenario",
        "scenarios/smoke.toml",
        "--format",
        "ndjson",
        "--out",
        "-",
    ];
    let first = xtask(&args);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = xtask(&args);
    assert_eq!(
        first.stdout, second.stdout,
        "same scenario and seed, same bytes"
    );

    let other = xtask(&[&args[..], &["--seed", "7"]].concat());
    assert!(other.status.success());
    assert_ne!(first.stdout, other.stdout, "another seed, other data");

    let text = String::from_utf8(first.stdout).unwrap();
    let mut sources = HashSet::new();
    for line in text.lines() {
        let event =
            events::Event::from_canonical_json(line).expect("every line is a canonical event");
        assert_eq!(event.to_canonical_json(), line, "lines are canonical");
        sources.insert(event.source());
    }
    assert_eq!(sources.len(), 3, "cards, orders and manufacturing");
    let summary = String::from_utf8(first.stderr).unwrap();
    assert!(summary.contains("500 history"), "{summary}");
}

#[test]
fn proto_output_is_length_delimited_bodies_including_poison() {
    let dir = tempdir();
    let out = dir.join("dirty.bin");
    let run = xtask(&[
        "gen",
        "--scenario",
        "scenarios/dirty.toml",
        "--format",
        "proto",
        "--part",
        "stream",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let mut buf = bytes.as_slice();
    let (mut good, mut bad) = (0, 0);
    while !buf.is_empty() {
        let len = prost::encoding::decode_varint(&mut buf).unwrap() as usize;
        let (body, rest) = buf.split_at(len);
        match events::Event::decode(body) {
            Ok(_) => good += 1,
            Err(_) => bad += 1,
        }
        buf = rest;
    }
    assert!(good > 3_000, "{good}");
    assert!(bad > 0, "dirty.toml has poison bodies");
    assert!(
        !dir.join("dirty.partial").exists(),
        "no partial file left behind"
    );
}

#[test]
fn unknown_key_is_rejected_with_its_name() {
    let dir = tempdir();
    let file = dir.join("bad.toml");
    let text = std::fs::read_to_string(root().join("scenarios/smoke.toml")).unwrap();
    std::fs::write(&file, text.replace("[rates]", "[rates]\nrefunds = 3")).unwrap();
    let run = xtask(&["gen", "--scenario", file.to_str().unwrap()]);
    assert!(!run.status.success());
    assert!(run.stdout.is_empty(), "nothing generated from a bad file");
    let err = String::from_utf8(run.stderr).unwrap();
    assert!(
        err.contains("bad.toml") && err.contains("rates.refunds") && err.contains("unknown field"),
        "{err}"
    );
}

#[test]
fn every_command_is_built_and_says_what_it_does() {
    let help = String::from_utf8(xtask(&["--help"]).stdout).unwrap();
    assert!(!help.contains("[planned]"), "{help}");
    for cmd in ["gen", "up", "e2e", "load-test", "ci"] {
        assert!(help.contains(cmd), "{cmd} missing from:\n{help}");
    }
    let list = xtask(&["ci", "--list"]);
    assert!(list.status.success());
    let steps = String::from_utf8(list.stdout).unwrap();
    for step in [
        "fmt",
        "images",
        "test",
        "e2e-containers",
        "lint-workflow",
        "lint-k8s",
        "lint-checkov",
        "lint-cloudformation",
    ] {
        assert!(steps.contains(step), "{step} missing from:\n{steps}");
    }
    let quick = xtask(&["ci", "--quick", "--list"]);
    assert!(quick.status.success());
    let quick = String::from_utf8(quick.stdout).unwrap();
    let names: Vec<&str> = quick
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["fmt", "test-quick", "e2e-smoke"], "{quick}");
    let bad = xtask(&["ci", "--skip", "tset"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no CI step `tset`"));
}

#[test]
fn load_test_rejects_bad_input_before_starting_anything() {
    let dir = tempdir();
    let scenario = dir.join("bad-gate.toml");
    std::fs::write(
        &scenario,
        "name = \"g\"\nseed = 1\nduration = \"10s\"\n[rates]\ncards = 1\norders = 1\nmanufacturing = 1\n[expect]\nfreshness_p99 = \"soon\"\n",
    )
    .unwrap();
    let run = xtask(&["load-test", "--scenario", scenario.to_str().unwrap()]);
    assert!(!run.status.success());
    let err = String::from_utf8(run.stderr).unwrap();
    assert!(
        err.contains("bad-gate.toml") && err.contains("expect.freshness_p99"),
        "{err}"
    );
    assert!(
        !err.contains("building relay"),
        "rejected before building: {err}"
    );

    let report = dir.join("old-report.json");
    std::fs::write(&report, "{\"format\": 1}").unwrap();
    let run = xtask(&[
        "load-test",
        "--scenario",
        "scenarios/load-smoke.toml",
        "--baseline",
        report.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8(run.stderr).unwrap();
    assert!(
        err.contains("old-report.json") && err.contains("not a load-test report"),
        "{err}"
    );

    let run = xtask(&[
        "load-test",
        "--scenario",
        "scenarios/load-smoke.toml",
        "--rate-scale",
        "0",
    ]);
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("--rate-scale 0"));
}

#[test]
fn e2e_rejects_a_malformed_scenario_before_starting_anything() {
    let dir = tempdir();
    let file = dir.join("broken.toml");
    std::fs::write(
        &file,
        "name = \"broken\"\nduration = \"10s\"\n[rates]\ncards = -1\n",
    )
    .unwrap();
    let run = xtask(&[
        "e2e",
        "--scenario",
        file.to_str().unwrap(),
        "--stack",
        "never-started",
    ]);
    assert!(!run.status.success());
    let err = String::from_utf8(run.stderr).unwrap();
    assert!(err.contains("broken.toml"), "{err}");
    assert!(!err.contains("building relay"), "nothing started: {err}");
    let state = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/sluice/never-started");
    assert!(!state.exists(), "no stack was brought up");
}

#[test]
fn a_bad_fault_schedule_is_rejected_naming_its_entry_before_starting_anything() {
    let dir = tempdir();
    let file = dir.join("faults.toml");
    std::fs::write(
        &file,
        "[[chaos]]\nat = \"2s\"\nkind = \"kill\"\ntarget = \"relay\"\nduration = \"1s\"\n\n\
         [[chaos]]\nat = \"3s\"\nkind = \"crash-after-put\"\ntarget = \"relay\"\nduration = \"1s\"\n",
    )
    .unwrap();
    for command in ["e2e", "load-test"] {
        let run = xtask(&[
            command,
            "--scenario",
            "scenarios/smoke.toml",
            "--chaos",
            file.to_str().unwrap(),
            "--stack",
            "never-started",
        ]);
        assert!(!run.status.success());
        let err = String::from_utf8(run.stderr).unwrap();
        assert!(
            err.contains("faults.toml") && err.contains("chaos[1].target"),
            "{command}: {err}"
        );
        assert!(!err.contains("building relay"), "nothing started: {err}");
    }
    let state = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/sluice/never-started");
    assert!(!state.exists(), "no stack was brought up");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sluice-xtask-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn publish_refuses_what_it_cannot_do_before_connecting() {
    let cases: [(&[&str], &str); 4] = [
        (&["--publish", "--out", "x.ndjson"], "cannot be used with"),
        (&["--unpaced"], "--publish"),
        (
            &["--publish", "--part", "history"],
            "history cannot be published",
        ),
        (
            &["--publish", "--stack", "no-such-stack-here"],
            "no-such-stack-here",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["gen", "--scenario", "scenarios/smoke.toml"];
        args.extend_from_slice(extra);
        let out = xtask(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?} must fail");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
}

/// `--out` to a pipe or device (`/dev/null`, a FIFO) writes into it and leaves it what it was:
/// finishing with a rename, as for a regular file, would replace the device with a file.
#[test]
fn out_to_a_fifo_writes_into_it_and_keeps_it_a_fifo() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempdir().join("fifo");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("events.fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let out = xtask(&[
        "gen",
        "--scenario",
        "scenarios/smoke.toml",
        "--out",
        fifo.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Checked before waiting for the reader, which never returns if nothing wrote into the FIFO.
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced by a {kind:?}");
    let read = reader.join().unwrap();
    assert!(read.len() > 100_000, "the events went through the pipe");
    assert!(!fifo.with_extension("partial").exists());
}
