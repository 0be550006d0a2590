//! `cargo xtask load-test` through the real stack, as a user runs it: the reports it writes, and
//! the exit code and message of a gate it cannot meet. The components are the ones `cargo test`
//! built beside this test (`--bin-dir`); the command brings its own stack up and down.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// target/debug, where cargo put xtask and (for their own tests) relay, batcher and pipe.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xtask"))
        .parent()
        .unwrap()
        .to_owned()
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("xtask runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn load_smoke_writes_its_reports_and_an_impossible_gate_fails_with_the_gate_code() {
    let pid = std::process::id();
    let stack = format!("lt{pid}");
    let out = std::env::temp_dir().join(format!("sluice-load-{pid}"));
    let _ = std::fs::remove_dir_all(&out);
    let bins = bin_dir();
    // No --out: the reports go to the run folder it prints, which must outlive the stack.
    // Published by two worker processes, the stream split between them (the gated run below
    // publishes from the harness itself).
    let smoke = xtask(&[
        "load-test",
        "--scenario",
        "scenarios/load-smoke.toml",
        "--stack",
        &stack,
        "--keep",
        "--bin-dir",
        bins.to_str().unwrap(),
        "--publishers",
        "2",
    ]);
    let ok = smoke.status.success();

    // The same scenario with a gate no pipeline meets, on the stack the first run left up.
    let scenario = std::fs::read_to_string(root().join("scenarios/load-smoke.toml"))
        .unwrap()
        .replace("freshness_p99 = \"20s\"", "freshness_p99 = \"1ms\"")
        .replace("duration = \"20s\"", "duration = \"8s\"")
        .replace("warm_up = \"5s\"", "warm_up = \"2s\"");
    assert!(scenario.contains("\"1ms\""));
    // A relay killed and started again mid-run: its resource series goes on with the new process.
    let scenario = format!(
        "{scenario}\n[[chaos]]\nat = \"2s\"\nkind = \"kill\"\ntarget = \"relay\"\nduration = \"1s\"\n"
    );
    std::fs::create_dir_all(&out).unwrap();
    let impossible = out.join("impossible.toml");
    std::fs::write(&impossible, scenario).unwrap();
    let gated = xtask(&[
        "load-test",
        "--scenario",
        impossible.to_str().unwrap(),
        "--stack",
        &stack,
        "--bin-dir",
        bins.to_str().unwrap(),
        "--out",
        out.join("gated").to_str().unwrap(),
    ]);
    let down = xtask(&["down", "--stack", &stack]);
    assert!(ok, "{}", text(&smoke));
    assert!(down.status.success(), "{}", text(&down));

    // The reports, at the path it printed, after the stack went down; the components' logs
    // beside them.
    let stdout = String::from_utf8_lossy(&smoke.stdout);
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("reports: "))
        .and_then(|l| l.split(" (report.json").next())
        .map(|p| root().join(p))
        .unwrap_or_else(|| panic!("no `reports:` line\n{}", text(&smoke)));
    assert!(
        !dir.starts_with(root().join("target/sluice").join(&stack)),
        "{} is inside the stack's folder",
        dir.display()
    );
    for file in [
        "report.json",
        "report.md",
        "report.html",
        "components/relay.log",
    ] {
        assert!(
            dir.join(file).is_file(),
            "{file} missing in {}",
            dir.display()
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    for section in [
        "settings",
        "baselines",
        "rates",
        "publish",
        "freshness",
        "drain",
        "accounting",
        "resources",
        "series",
        "gates",
        "figures",
        "phases",
    ] {
        assert!(!report[section].is_null(), "no `{section}` in report.json");
    }
    let positive = |path: &str| {
        let v = report.pointer(path).and_then(|v| v.as_f64()).unwrap_or(0.0);
        assert!(v > 0.0, "{path} = {v}");
    };
    for path in [
        "/baselines/broker/events_per_s",
        "/baselines/sqs/events_per_s",
        "/rates/offered",
        "/rates/published",
        "/rates/loaded",
        "/rates/end_to_end",
        "/freshness/end_to_end/p50_ms",
    ] {
        positive(path);
    }
    let e2e = &report["freshness"]["end_to_end"];
    let p = |k: &str| e2e[k].as_f64().unwrap();
    assert!(
        p("p50_ms") <= p("p90_ms")
            && p("p90_ms") <= p("p99_ms")
            && p("p99_ms") <= p("p999_ms")
            && p("p999_ms") <= p("max_ms"),
        "{e2e}"
    );
    assert_eq!(report["accounting"]["lost"], 0);
    assert_eq!(report["accounting"]["unexpected"], 0);
    // Two workers' reports and histograms merged into the whole stream's: 300 events/s for
    // 20 s, the delays of the 15 s after the warm-up.
    assert_eq!(report["settings"]["publishers"], 2);
    assert_eq!(report["publish"]["bodies"], 6000);
    assert_eq!(report["publish"]["delay"]["count"], 4500);
    assert!(
        report["resources"]["mean_cpu_cores"]["publishers"].as_f64() > Some(0.0),
        "the workers' CPU: {}",
        report["resources"]
    );
    for shard in 0..2 {
        let log = dir.join(format!("publishers/publisher-{shard}.log"));
        assert!(log.is_file(), "{} missing", log.display());
    }
    for hop in [
        "broker -> SQS (relay)",
        "SQS -> S3 (batcher)",
        "S3 -> RAW (pipe)",
    ] {
        let count = report["freshness"]["hops"][hop]["count"]
            .as_u64()
            .unwrap_or(0);
        assert!(count > 0, "no latencies for hop {hop}");
        assert!(
            report["drain"]["seconds"][hop].is_number(),
            "no drain time for {hop}"
        );
    }
    assert!(
        report["series"].as_array().unwrap().len() >= 20,
        "a point per second"
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let doc = roxmltree::Document::parse_with_options(
        &html,
        roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .expect("report.html is well-formed");
    let sections: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("section"))
        .collect();
    assert!(sections.len() >= 6, "{} sections", sections.len());
    for s in sections {
        let svgs = s
            .descendants()
            .filter(|n| n.tag_name().name() == "svg")
            .count();
        assert_eq!(svgs, 1, "section {:?}", s.attribute("id"));
    }

    // The impossible gate: its own exit code, and the gate named with what was measured.
    assert_eq!(gated.status.code(), Some(99), "{}", text(&gated));
    let gated_report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("gated").join("report.json")).unwrap())
            .unwrap();
    assert_eq!(gated_report["faults"][0]["fault"]["kind"], "kill");
    let series = gated_report["series"].as_array().unwrap();
    let last = &series[series.len().saturating_sub(3)..];
    assert!(
        last.len() == 3 && last.iter().all(|s| s["usage"]["relay"].is_object()),
        "the relay's resource series stops at its kill: {:?}",
        last.iter().map(|s| &s["usage"]).collect::<Vec<_>>()
    );
    let err = String::from_utf8_lossy(&gated.stderr);
    assert!(
        err.contains("FAIL freshness_p99: measured") && err.contains("limit <= 1.0 ms"),
        "{err}"
    );
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(root().join("target/sluice-runs").join(&stack)).unwrap();
}
