//! The backfill against a real PostgreSQL (scratch stack, a database of the test's own) and a
//! fakesnow of its own with infra/snowflake applied.

use backfill::snapshot::SnapshotConfig;
use snowflake::Value;
use stack::scratch::ScratchStack;
use testkit::Fakesnow;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_adds_no_rows_and_counts_match_the_history() {
    let stack = ScratchStack::shared().await;
    // A database of this test's own, with the history schema.
    let (admin, conn) = tokio_postgres::connect(&stack.state.postgres.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let db = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let (base, _) = stack.state.postgres.url.rsplit_once('/').unwrap();
    let url = format!("{base}/{db}");
    stack::apply_postgres_schema(&url).await.unwrap();
    let (mut pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);

    let fakesnow = Fakesnow::start();
    let mut sf_config = snowflake::Config::fakesnow(&fakesnow.base_url()).unwrap();
    stack::apply_snowflake_ddl(sf_config.clone(), false)
        .await
        .unwrap();
    sf_config.database = Some("SLUICE".into());
    let sf = snowflake::Client::connect(sf_config).await.unwrap();

    let scenario = synth::Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/smoke.toml"
    ))
    .unwrap();
    let history: Vec<events::Event> = synth::Generator::new(&scenario, Some(7))
        .history()
        .collect();
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
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}
