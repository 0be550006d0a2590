//! The backfill against a real PostgreSQL (scratch stack, a database of the test's own) and a
//! fakesnow of its own with infra/snowflake applied.

use backfill::snapshot::SnapshotConfig;
use snowflake::Value;
use stack::scratch::ScratchStack;
use testkit::Fakesnow;

/// A database of the test's own on the scratch stack's PostgreSQL, with the history schema.
struct Database {
    admin: tokio_postgres::Client,
    name: String,
    url: String,
}

impl Database {
    async fn new(stack: &ScratchStack) -> Self {
        let (admin, conn) =
            tokio_postgres::connect(&stack.state.postgres.url, tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (base, _) = stack.state.postgres.url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        stack::apply_postgres_schema(&url).await.unwrap();
        Self { admin, name, url }
    }

    async fn connect(&self) -> tokio_postgres::Client {
        let (pg, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        pg
    }

    async fn drop(self) {
        self.admin
            .batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

fn smoke_history() -> Vec<events::Event> {
    let scenario = synth::Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/smoke.toml"
    ))
    .unwrap();
    synth::Generator::new(&scenario, Some(7))
        .history()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_adds_no_rows_and_counts_match_the_history() {
    let stack = ScratchStack::shared().await;
    let db = Database::new(&stack).await;
    let mut pg = db.connect().await;

    let fakesnow = Fakesnow::start();
    let mut sf_config = snowflake::Config::fakesnow(&fakesnow.base_url()).unwrap();
    stack::apply_snowflake_ddl(sf_config.clone(), false)
        .await
        .unwrap();
    sf_config.database = Some("SLUICE".into());
    let sf = snowflake::Client::connect(sf_config).await.unwrap();

    let history = smoke_history();
    assert_eq!(history.len(), 500);
    // Chunks smaller than the history, so several PUT + COPY rounds run.
    let config = SnapshotConfig {
        chunk_rows: 128,
        snapshot_id: "test-1".into(),
    };

    for run in 1..=2 {
        let report = backfill::history::load(&mut pg, history.iter().cloned())
            .await
            .unwrap();
        assert_eq!(report.offered, 500);
        assert_eq!(
            report.inserted,
            if run == 1 { 500 } else { 0 },
            "run {run}: history rows"
        );
        let snapshot = backfill::snapshot::copy(&pg, &sf, &config).await.unwrap();
        assert_eq!((snapshot.read, snapshot.chunks), (500, 4));
        assert_eq!(
            snapshot.inserted,
            if run == 1 { 500 } else { 0 },
            "run {run}: RAW rows"
        );
    }

    let pg_rows: i64 = pg
        .query_one("SELECT count(*) FROM history.events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pg_rows, 500);
    let raw = sf
        .query("SELECT COUNT(*), COUNT(DISTINCT EVENT:event_id::string) FROM SLUICE.RAW.EVENTS_BACKFILL", &[])
        .await
        .unwrap()
        .rows()
        .await
        .unwrap();
    assert_eq!(raw[0], [Value::Int(500), Value::Int(500)]);
    // What landed is the canonical JSON of exactly the history's events.
    let loaded = sf
        .query("SELECT TO_JSON(EVENT) FROM SLUICE.RAW.EVENTS_BACKFILL", &[])
        .await
        .unwrap()
        .rows()
        .await
        .unwrap();
    let mut got: Vec<events::Event> = loaded
        .into_iter()
        .map(|row| match &row[0] {
            Value::Text(json) => events::Event::from_canonical_json(json).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    let mut want = history;
    got.sort_by(|a, b| a.event_id().cmp(b.event_id()));
    want.sort_by(|a, b| a.event_id().cmp(b.event_id()));
    assert_eq!(got, want);
    drop(pg);
    db.drop().await;
}

/// The binary reads NDJSON from a file or stdin; a bad line fails the command with the file
/// and line named, and writes none of the lines before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_loads_ndjson_all_or_nothing() {
    let stack = ScratchStack::shared().await;
    let db = Database::new(&stack).await;
    let pg = db.connect().await;
    let count = || async {
        let n: i64 = pg
            .query_one("SELECT count(*) FROM history.events", &[])
            .await
            .unwrap()
            .get(0);
        n
    };
    let history = smoke_history();
    let ndjson: String = history
        .iter()
        .map(|e| e.to_canonical_json() + "\n")
        .collect();
    let backfill = |args: &[&str], stdin: &str| {
        use std::io::Write as _;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_backfill"))
            .args(["--postgres-url", &db.url, "history"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };

    let bad = std::env::temp_dir().join(format!("history-{}.ndjson", db.name));
    let lines: Vec<&str> = ndjson.lines().collect();
    std::fs::write(
        &bad,
        format!("{}\n{}\nnot json\n{}\n", lines[0], lines[1], lines[2]),
    )
    .unwrap();
    let out = backfill(&["--input", bad.to_str().unwrap()], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bad line fails the command");
    assert!(
        stderr.contains(bad.to_str().unwrap()) && stderr.contains("line 3"),
        "names the file and the line: {stderr}"
    );
    assert_eq!(
        count().await,
        0,
        "the two good lines before it are not written"
    );
    let _ = std::fs::remove_file(&bad);

    let out = backfill(&["--input", "-"], &ndjson);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count().await, 500);
    drop(pg);
    db.drop().await;
}
