//! Rust client vs. the Python connector on the same fakesnow server, in one run:
//! `cargo bench -p snowflake --bench fakesnow`.
//!
//! Work: SELECT of 100k rows x 5 columns (read into typed values), and PUT + COPY INTO of 100k
//! canonical JSON events (from the smoke scenario's generator) into a VARIANT table. Each side
//! runs `ROUNDS` times after a warm-up; the best time is reported. The goal is that the Rust
//! client is never the bottleneck: at least the Python connector's rate on both.

use std::process::Command;
use std::time::Instant;

use snowflake::{Client, Config, PutOptions, Value};

const ROUNDS: usize = 3;
const SELECT: &str = "SELECT SEQ4() AS ID, (SEQ4() * 1.25)::NUMBER(14,2) AS PRICE, 'card-' || SEQ4() AS NAME,
    DATEADD(second, SEQ4(), '2026-01-01 00:00:00'::TIMESTAMP_NTZ) AS AT, OBJECT_CONSTRUCT('n', SEQ4()) AS V
    FROM TABLE(GENERATOR(ROWCOUNT => 100000))";

fn events_ndjson() -> Vec<u8> {
    let mut scenario = synth::Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/steady.toml"
    ))
    .unwrap();
    scenario.duration = None;
    scenario.max_events = Some(100_000);
    scenario.history.events = 0;
    let mut out = Vec::new();
    synth::output::write(
        &mut synth::Generator::new(&scenario, None),
        synth::output::Format::Ndjson,
        synth::output::Part::Stream,
        &mut out,
    )
    .unwrap();
    out
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this with no such flag: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    let server = testkit::Fakesnow::start();
    let setup = Client::connect(Config::fakesnow(&server.base_url()).unwrap())
        .await
        .unwrap();
    for sql in [
        "CREATE DATABASE IF NOT EXISTS BENCH",
        "USE DATABASE BENCH",
        "CREATE SCHEMA IF NOT EXISTS RAW",
    ] {
        setup.query(sql, &[]).await.unwrap();
    }
    let mut config = Config::fakesnow(&server.base_url()).unwrap();
    config.database = Some("BENCH".into());
    config.schema = Some("RAW".into());
    let client = Client::connect(config).await.unwrap();

    let ndjson = events_ndjson();
    let (mut select_best, mut load_best) = (f64::MAX, f64::MAX);
    for round in 0..=rounds {
        let t = Instant::now();
        let mut result = client.query(SELECT, &[]).await.unwrap();
        let mut rows = 0;
        while let Some(batch) = result.next_batch().await.unwrap() {
            for r in 0..batch.num_rows() {
                let row: Vec<Value> = batch.row(r).unwrap();
                assert_eq!(row.len(), 5);
                rows += 1;
            }
        }
        assert_eq!(rows, 100_000);
        let select = t.elapsed().as_secs_f64();

        client
            .query(
                &format!("CREATE OR REPLACE TABLE rs_events_{round} (event VARIANT)"),
                &[],
            )
            .await
            .unwrap();
        client
            .query(&format!("CREATE OR REPLACE STAGE rs_stage_{round}"), &[])
            .await
            .unwrap();
        let t = Instant::now();
        client
            .put_bytes(
                &format!("@rs_stage_{round}"),
                "events.ndjson",
                ndjson.clone(),
                PutOptions::default(),
            )
            .await
            .unwrap();
        client
            .query(
                &format!(
                    "COPY INTO rs_events_{round} FROM @rs_stage_{round} FILE_FORMAT = (TYPE = JSON)"
                ),
                &[],
            )
            .await
            .unwrap();
        let n = client
            .query(&format!("SELECT COUNT(*) FROM rs_events_{round}"), &[])
            .await
            .unwrap()
            .rows()
            .await
            .unwrap();
        let load = t.elapsed().as_secs_f64();
        assert_eq!(n[0][0], Value::Int(100_000));
        if round > 0 || quick {
            select_best = select_best.min(select);
            load_best = load_best.min(load);
        }
    }

    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.ndjson");
    std::fs::write(&file, &ndjson).unwrap();
    let select_file = dir.join("select.sql");
    std::fs::write(&select_file, SELECT).unwrap();
    let venv = pytools::ensure(&pytools::ToolSet::warehouse(&pytools::infra_python_dir())).unwrap();
    let out = Command::new(venv.python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/compare.py"))
        .args([
            server.port().to_string(),
            file.display().to_string(),
            rounds.to_string(),
            select_file.display().to_string(),
        ])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "python side failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (py_select, py_load) = (
        py["select_s"].as_f64().unwrap(),
        py["load_s"].as_f64().unwrap(),
    );

    println!(
        "best of {rounds} round(s), fakesnow on 127.0.0.1, {} bytes of NDJSON",
        ndjson.len()
    );
    println!(
        "{:<34} {:>14} {:>14} {:>8}",
        "work", "rust rows/s", "python rows/s", "ratio"
    );
    for (name, rust, python) in [
        ("SELECT 100k rows x 5 columns", select_best, py_select),
        ("PUT + COPY 100k JSON events", load_best, py_load),
    ] {
        println!(
            "{name:<34} {:>14.0} {:>14.0} {:>7.2}x",
            100_000.0 / rust,
            100_000.0 / python,
            python / rust
        );
    }
}
