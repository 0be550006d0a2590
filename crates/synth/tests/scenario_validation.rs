//! Every kind of bad scenario is rejected with the file, the key and the reason.

use synth::{Scenario, ScenarioError};

const GOOD: &str = r#"
name = "t"
seed = 1
duration = "10s"

[rates]
cards = 1
orders = 10
manufacturing = 2
"#;

fn reject(text: &str) -> (String, String) {
    let err = Scenario::parse("scenarios/bad.toml", text).expect_err("must be rejected");
    let message = err.to_string();
    assert!(
        message.starts_with("scenarios/bad.toml: "),
        "names the file: {message}"
    );
    (err.key().expect("names a key").to_owned(), message)
}

/// GOOD with `line` added to the `[section]` (or at the top when section is empty).
fn with(section: &str, line: &str) -> String {
    if section.is_empty() {
        format!("{line}\n{GOOD}")
    } else if GOOD.contains(&format!("[{section}]")) {
        GOOD.replace(&format!("[{section}]"), &format!("[{section}]\n{line}"))
    } else {
        format!("{GOOD}\n[{section}]\n{line}\n")
    }
}

#[test]
fn the_good_one_parses_with_defaults() {
    let s = Scenario::parse("good.toml", GOOD).unwrap();
    assert_eq!(s.pipeline.batch_size, 100);
    assert_eq!(s.faults.duplicate_ratio.get(), 0.0);
    assert!(s.expect.exact_marts);
}

#[test]
fn every_shipped_scenario_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            // The fault schedules too (chaos.toml, cdc.toml), which CI runs through the
            // harness's tests rather than from the files.
            scenario
                .faults()
                .unwrap_or_else(|(key, why)| panic!("{}: {key}: {why}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 4, "smoke, steady, burst and dirty at least");
}

#[test]
fn unknown_top_level_key() {
    let (key, msg) = reject(&with("", "sed = 3"));
    assert_eq!(key, "sed");
    assert!(msg.contains("unknown field `sed`"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn unknown_nested_key() {
    let (key, msg) = reject(&with("faults", "dupe_ratio = 0.1"));
    assert_eq!(key, "faults.dupe_ratio");
    assert!(
        msg.contains("unknown field `dupe_ratio`") && msg.contains("duplicate_ratio"),
        "{msg}"
    );
}

#[test]
fn missing_required_key() {
    let (key, msg) = reject(&GOOD.replace("seed = 1\n", ""));
    assert!(msg.contains("missing field `seed`"), "{key}: {msg}");
    let (_, msg) = reject(&GOOD.replace("orders = 10\n", ""));
    assert!(msg.contains("missing field `orders`"), "{msg}");
}

#[test]
fn rate_not_positive() {
    let (key, msg) = reject(&GOOD.replace("orders = 10", "orders = 0"));
    assert_eq!(key, "rates.orders");
    assert!(msg.contains("greater than 0, got 0"), "{msg}");
    let (key, _) = reject(&GOOD.replace("cards = 1", "cards = -2.5"));
    assert_eq!(key, "rates.cards");
}

#[test]
fn wrong_type() {
    let (key, msg) = reject(&GOOD.replace("orders = 10", "orders = \"fast\""));
    assert_eq!(key, "rates.orders");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn ratio_out_of_range() {
    let (key, msg) = reject(&with("faults", "duplicate_ratio = 1.5"));
    assert_eq!(key, "faults.duplicate_ratio");
    assert!(msg.contains("within [0, 1], got 1.5"), "{msg}");
    let (key, _) = reject(&with("faults", "poison_ratio = -0.1"));
    assert_eq!(key, "faults.poison_ratio");
}

#[test]
fn bad_duration() {
    let (key, msg) = reject(&GOOD.replace("\"10s\"", "\"10 parsecs\""));
    assert_eq!(key, "duration");
    assert!(msg.contains("not a duration"), "{msg}");
    let (key, _) = reject(&GOOD.replace("\"10s\"", "\"0s\""));
    assert_eq!(key, "duration");
}

#[test]
fn no_end_to_the_stream() {
    let (key, msg) = reject(&GOOD.replace("duration = \"10s\"\n", ""));
    assert_eq!(key, "duration");
    assert!(msg.contains("max_events"), "{msg}");
    let (key, _) = reject(&with("", "max_events = 0"));
    assert_eq!(key, "max_events");
}

#[test]
fn bad_start_timestamp() {
    let (key, msg) = reject(&with("", "start = \"yesterday\""));
    assert_eq!(key, "start");
    assert!(msg.contains("RFC 3339"), "{msg}");
}

#[test]
fn lateness_needed_for_out_of_order() {
    let (key, _) = reject(&with("faults", "out_of_order_ratio = 0.2"));
    assert_eq!(key, "faults.max_lateness");
}

#[test]
fn unknown_shape_kind() {
    let (key, msg) = reject(&with("shape", "kind = \"sine\""));
    assert_eq!(key, "shape.kind");
    assert!(msg.contains("unknown variant `sine`"), "{msg}");
}

#[test]
fn burst_longer_than_its_period() {
    let (key, msg) = reject(&with(
        "shape",
        "kind = \"burst\"\nevery = \"5s\"\nlength = \"5s\"\nfactor = 3",
    ));
    assert_eq!(key, "shape.length");
    assert!(msg.contains("shorter than `every`"), "{msg}");
}

#[test]
fn ramp_without_a_length() {
    let text = with("shape", "kind = \"ramp\"\nfrom = 1\nto = 2")
        .replace("duration = \"10s\"", "max_events = 100");
    let (key, _) = reject(&text);
    assert_eq!(key, "shape.over");
    // Internally tagged tables are buffered by serde, so the path stops at the table.
    let (key, msg) = reject(&with("shape", "kind = \"ramp\"\nfrom = 0\nto = 2"));
    assert_eq!(key, "shape");
    assert!(
        msg.contains("rate factor must be greater than 0, got 0"),
        "{msg}"
    );
}

#[test]
fn bad_pipeline_knobs() {
    let (key, msg) = reject(&with("pipeline", "file_format = \"csv\""));
    assert_eq!(key, "pipeline.file_format");
    assert!(msg.contains("ndjson") && msg.contains("parquet"), "{msg}");
    let (key, _) = reject(&with("pipeline", "batch_size = 0"));
    assert_eq!(key, "pipeline.batch_size");
    let (key, _) = reject(&with("pipeline", "pack = 0"));
    assert_eq!(key, "pipeline.pack");
}

#[test]
fn not_toml_at_all() {
    let (key, msg) = reject("name = \"t\"\nrates = {\n");
    assert_eq!(key, "(file)");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn missing_file() {
    let err = Scenario::load("scenarios/does-not-exist.toml").unwrap_err();
    assert!(matches!(err, ScenarioError::Read { .. }));
    assert!(
        err.to_string().contains("scenarios/does-not-exist.toml"),
        "{err}"
    );
}

#[test]
fn load_gates_parse_and_bad_ones_are_named() {
    let text = with(
        "expect",
        "freshness_p99 = \"3s\"\nfreshness_max = \"10s\"\nmin_rate_ratio = 0.05\nmax_lost = 0\nmax_rss = { relay = \"256MiB\", pipe = \"1.5GiB\" }",
    );
    let s = Scenario::parse("good.toml", &text).unwrap();
    assert_eq!(s.expect.max_rss[&synth::Component::Relay].0, 256 << 20);
    assert_eq!(
        s.expect.max_rss[&synth::Component::Pipe].0,
        3 * (1u64 << 29)
    );
    assert_eq!(s.expect.min_rate_ratio.unwrap().get(), 0.05);

    let (key, msg) = reject(&with("expect", "max_rss = { relay = \"256 parsecs\" }"));
    assert!(key.starts_with("expect.max_rss"), "{key}");
    assert!(msg.contains("unknown unit"), "{msg}");
    let (key, msg) = reject(&with("expect", "max_rss = { router = \"1GiB\" }"));
    assert!(key.starts_with("expect.max_rss"), "{key}");
    assert!(msg.contains("relay"), "names what is allowed: {msg}");
    let (key, _) = reject(&with("expect", "min_rate_ratio = 2"));
    assert_eq!(key, "expect.min_rate_ratio");
}

#[test]
fn a_warm_up_as_long_as_the_stream_is_rejected() {
    let (key, msg) = reject(&with("load", "warm_up = \"10s\""));
    assert_eq!(key, "load.warm_up");
    assert!(msg.contains("shorter than `duration`"), "{msg}");
    let s = Scenario::parse("good.toml", GOOD).unwrap();
    assert_eq!(
        s.warm_up(),
        std::time::Duration::from_secs(2),
        "a fifth of 10 s"
    );
}

/// GOOD (10 s) with `[[chaos]]` entries appended.
fn with_chaos(entries: &str) -> String {
    format!("{GOOD}\n{entries}\n")
}

#[test]
fn a_good_schedule_parses_into_fault_windows() {
    let text = with_chaos(
        "[[chaos]]\nat = \"2s\"\nkind = \"kill\"\ntarget = \"relay\"\nduration = \"1s\"\n\
         [[chaos]]\nat = \"2s\"\nkind = \"outage\"\ntarget = \"localstack\"\nmode = \"latency\"\nlatency = \"200ms\"\nduration = \"3s\"\n\
         [[chaos]]\nat = \"6s\"\nkind = \"duplicate-notice\"\ncount = 4\n",
    );
    let s = Scenario::parse("good.toml", &text).unwrap();
    let faults = s.faults().unwrap();
    assert_eq!(faults.len(), 3);
    assert_eq!(faults[2].count, 4);
}

#[test]
fn an_unknown_fault_kind_is_named() {
    let (key, msg) = reject(&with_chaos(
        "[[chaos]]\nat = \"1s\"\nkind = \"meteor\"\nduration = \"1s\"\n",
    ));
    assert_eq!(key, "chaos[0].kind");
    assert!(
        msg.contains("unknown variant `meteor`") && msg.contains("broker-restart"),
        "{msg}"
    );
}

#[test]
fn an_unknown_target_is_named() {
    let (key, msg) = reject(&with_chaos(
        "[[chaos]]\nat = \"1s\"\nkind = \"kill\"\ntarget = \"router\"\nduration = \"1s\"\n",
    ));
    assert_eq!(key, "chaos[0].target");
    assert!(msg.contains("unknown variant `router`"), "{msg}");
}

#[test]
fn a_target_the_kind_cannot_hit_is_named_with_those_it_can() {
    let (key, msg) = reject(&with_chaos(
        "[[chaos]]\nat = \"1s\"\nkind = \"kill\"\ntarget = \"postgres\"\nduration = \"1s\"\n",
    ));
    assert_eq!(key, "chaos[0].target");
    assert!(
        msg.contains("a kill cannot hit postgres; it takes relay, batcher, pipe"),
        "{msg}"
    );
}

#[test]
fn overlapping_faults_on_one_target_are_rejected_naming_both() {
    let (key, msg) = reject(&with_chaos(
        "[[chaos]]\nat = \"1s\"\nkind = \"pause\"\ntarget = \"relay\"\nduration = \"3s\"\n\
         [[chaos]]\nat = \"2s\"\nkind = \"kill\"\ntarget = \"relay\"\nduration = \"1s\"\n",
    ));
    assert_eq!(key, "chaos[1]");
    assert!(msg.contains("overlaps chaos[0] on relay"), "{msg}");
    let (key, _) = reject(&with_chaos(
        "[[chaos]]\nat = \"1s\"\nkind = \"broker-restart\"\nduration = \"2s\"\n\
         [[chaos]]\nat = \"2s\"\nkind = \"outage\"\ntarget = \"rabbitmq\"\nmode = \"reset\"\nduration = \"1s\"\n",
    ));
    assert_eq!(
        key, "chaos[1]",
        "a restart and an outage both hold the broker"
    );
}

#[test]
fn a_fault_that_outlasts_the_stream_is_rejected() {
    let (key, msg) = reject(&with_chaos(
        "[[chaos]]\nat = \"8s\"\nkind = \"kill\"\nduration = \"3s\"\n",
    ));
    assert_eq!(key, "chaos[0].at");
    assert!(msg.contains("before the stream ends at 10.0s"), "{msg}");
    let (key, _) = reject(&with_chaos(
        "[[chaos]]\nat = \"1s\"\nkind = \"kill\"\nduration = \"1s\"\nrepeat = { every = \"4s\", times = 3 }\n",
    ));
    assert_eq!(key, "chaos[0].at", "the third repetition ends at 10 s");
}

#[test]
fn durations_modes_latencies_and_counts_are_checked_per_kind() {
    let cases = [
        (
            "[[chaos]]\nat = \"1s\"\nkind = \"kill\"\n",
            "chaos[0].duration",
            "needs a duration",
        ),
        (
            "[[chaos]]\nat = \"1s\"\nkind = \"duplicate-notice\"\ncount = 2\nduration = \"1s\"\n",
            "chaos[0].duration",
            "at an instant",
        ),
        (
            "[[chaos]]\nat = \"1s\"\nkind = \"outage\"\ntarget = \"fakesnow\"\nduration = \"1s\"\n",
            "chaos[0].mode",
            "needs a mode",
        ),
        (
            "[[chaos]]\nat = \"1s\"\nkind = \"outage\"\ntarget = \"fakesnow\"\nmode = \"latency\"\nduration = \"1s\"\n",
            "chaos[0].latency",
            "needs `latency`",
        ),
        (
            "[[chaos]]\nat = \"1s\"\nkind = \"pause\"\nmode = \"reset\"\nduration = \"1s\"\n",
            "chaos[0].mode",
            "only an outage",
        ),
        (
            "[[chaos]]\nat = \"1s\"\nkind = \"duplicate-notice\"\n",
            "chaos[0].count",
            "at least 1",
        ),
        (
            "[[chaos]]\nat = \"1s\"\nkind = \"kill\"\nduration = \"2s\"\nrepeat = { every = \"2s\", times = 2 }\n",
            "chaos[0].repeat.every",
            "would overlap",
        ),
    ];
    for (entry, want_key, want) in cases {
        let (key, msg) = reject(&with_chaos(entry));
        assert_eq!(key, want_key, "{entry}");
        assert!(msg.contains(want), "{entry}: {msg}");
    }
}

#[test]
fn a_schedule_needs_a_stream_duration() {
    let text = GOOD.replace("duration = \"10s\"", "max_events = 100");
    let (key, msg) = reject(&format!(
        "{text}\n[[chaos]]\nat = \"1s\"\nkind = \"kill\"\nduration = \"1s\"\n"
    ));
    assert_eq!(key, "duration");
    assert!(msg.contains("fault schedule needs"), "{msg}");
}

#[test]
fn revisions_are_shares_and_the_order_ones_share_the_slots() {
    let (key, msg) = reject(&with("revisions", "card_updates = 1.5"));
    assert_eq!(key, "revisions.card_updates");
    assert!(msg.contains("within [0, 1]"), "{msg}");
    let (key, msg) = reject(&with(
        "revisions",
        "order_amendments = 0.7\norder_cancellations = 0.6",
    ));
    assert_eq!(key, "revisions.order_cancellations");
    assert!(msg.contains("must not exceed 1"), "{msg}");
    let (key, _) = reject(&with("revisions", "amendments = 0.1"));
    assert_eq!(key, "revisions.amendments");
}

#[test]
fn an_oltp_workload_is_checked_before_anything_starts() {
    let s = Scenario::parse("ok.toml", &with("oltp", "transactions = 20")).unwrap();
    let oltp = s.oltp.unwrap();
    assert_eq!(
        (oltp.customers, oltp.orders, oltp.rows_per_transaction),
        (200, 100, 4)
    );
    assert_eq!(s.components().len(), 4, "the cdc runs with a workload");
    assert_eq!(
        s.with_rates_scaled(2.0).oltp.unwrap().transactions.get(),
        40.0,
        "--rate-scale scales the workload too"
    );

    let (key, msg) = reject(&with("oltp", "customers = 10"));
    assert_eq!(key, "oltp");
    assert!(msg.contains("missing field `transactions`"), "{msg}");
    let (key, _) = reject(&with("oltp", "transactions = 20\nrows_per_transaction = 0"));
    assert_eq!(key, "oltp.rows_per_transaction");
    let (key, msg) = reject(&with(
        "oltp",
        "transactions = 20\nmix = { new_customers = 0, customer_updates = 0, erasures = 0, new_orders = 0, status_changes = 0 }",
    ));
    assert_eq!(key, "oltp.mix");
    assert!(msg.contains("every weight is 0"), "{msg}");
    let (key, msg) = reject(&with("oltp", "transactions = 20\nmix = { erasures = -1 }"));
    assert_eq!(key, "oltp.mix.erasures");
    assert!(msg.contains("at least 0"), "{msg}");
    let no_duration =
        with("oltp", "transactions = 20").replace("duration = \"10s\"", "max_events = 100");
    let (key, msg) = reject(&no_duration);
    assert_eq!(key, "oltp");
    assert!(msg.contains("`duration`"), "{msg}");
}

#[test]
fn a_fault_on_the_cdc_needs_a_workload_for_it_to_capture() {
    let fault = "\n[[chaos]]\nat = \"2s\"\nkind = \"kill\"\ntarget = \"cdc\"\nduration = \"1s\"\n";
    let (key, msg) = reject(&format!("{GOOD}{fault}"));
    assert_eq!(key, "chaos[0].target");
    assert!(msg.contains("[oltp]"), "{msg}");
    let with_workload = format!("{}{fault}", with("oltp", "transactions = 5"));
    assert!(Scenario::parse("ok.toml", &with_workload).is_ok());
}

/// A scenario written out and read back is the same scenario, and so the same stream, for every
/// shipped file and for the changes the load test makes to one (rates scaled by an awkward
/// factor, a later start, a count beside the duration): publisher workers get theirs so.
#[test]
fn every_scenario_reads_back_equal_from_its_toml() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let shipped = Scenario::load(&path).unwrap();
        let mut changed = shipped.with_rates_scaled(1.0 / 3.0);
        changed.start += chrono::Duration::days(3) + chrono::Duration::microseconds(7);
        changed.max_events = Some(1234);
        for scenario in [shipped, changed] {
            let text = scenario.to_toml();
            let back = Scenario::parse(&path, &text)
                .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
            assert_eq!(back, scenario, "{}:\n{text}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 10, "{seen} scenarios");
}
