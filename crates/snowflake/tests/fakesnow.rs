//! Against a real fakesnow server, started by each test and stopped when it ends.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use snowflake::{
    Binding, Client, Compression, Config, Decimal, Error, FromValue, PutOptions, Value,
};
use testkit::Fakesnow;

async fn connect(server: &Fakesnow) -> Client {
    let client = Client::connect(Config::fakesnow(&server.base_url()).unwrap())
        .await
        .unwrap();
    for sql in [
        "CREATE DATABASE IF NOT EXISTS SLUICE",
        "USE DATABASE SLUICE",
        "CREATE SCHEMA IF NOT EXISTS RAW",
        "USE SCHEMA RAW",
    ] {
        client.query(sql, &[]).await.unwrap();
    }
    client
}

#[tokio::test]
async fn ddl_bindings_variant_paths_and_sql_errors() {
    let server = Fakesnow::start();
    let client = connect(&server).await;
    client
        .query(
            "CREATE TABLE orders (id INT, price NUMBER(10,2), ratio DOUBLE, note STRING, paid BOOLEAN, day DATE, ordered_at TIMESTAMP_NTZ, payload VARIANT)",
            &[],
        )
        .await
        .unwrap();

    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 23, 59, 55).unwrap()
        + chrono::Duration::microseconds(250_000);
    let inserted = client
        .execute(
            "INSERT INTO orders SELECT ?, ?, ?, ?, ?, ?, ?, PARSE_JSON(?)",
            &[
                Binding::Int(1),
                Binding::Text("19.99".into()),
                Binding::Float(0.25),
                Binding::Text("it's \"quoted\" ü".into()),
                Binding::Bool(true),
                Binding::Date(day),
                Binding::TimestampNtz(at.naive_utc()),
                Binding::Text(r#"{"customer":"ada","lines":[{"card":"c1","quantity":3}]}"#.into()),
            ],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    let inserted = client
        .execute(
            "INSERT INTO orders (id, note, paid) VALUES (?, ?, ?), (?, ?, ?)",
            &[
                2.into(),
                Binding::Null,
                false.into(),
                3.into(),
                "three".into(),
                Binding::Null,
            ],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 2);

    let mut result = client
        .query("SELECT * FROM orders ORDER BY id", &[])
        .await
        .unwrap();
    let names: Vec<&str> = result.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ID",
            "PRICE",
            "RATIO",
            "NOTE",
            "PAID",
            "DAY",
            "ORDERED_AT",
            "PAYLOAD"
        ]
    );
    let batch = result.next_batch().await.unwrap().unwrap();
    assert_eq!(batch.num_rows(), 3);
    assert_eq!(batch.get::<i64>(0, 0).unwrap(), 1);
    assert_eq!(batch.get::<Decimal>(0, 1).unwrap().to_string(), "19.99");
    assert_eq!(batch.get::<f64>(0, 2).unwrap(), 0.25);
    assert_eq!(batch.get::<String>(0, 3).unwrap(), "it's \"quoted\" ü");
    assert!(batch.get::<bool>(0, 4).unwrap());
    assert_eq!(batch.get::<NaiveDate>(0, 5).unwrap(), day);
    assert_eq!(
        batch.get::<chrono::NaiveDateTime>(0, 6).unwrap(),
        at.naive_utc()
    );
    assert_eq!(
        batch.get::<serde_json::Value>(0, 7).unwrap()["lines"][0]["quantity"],
        3
    );
    assert_eq!(batch.get::<Option<String>>(1, 3).unwrap(), None);
    assert_eq!(batch.value(2, 4).unwrap(), Value::Null);
    assert!(result.next_batch().await.unwrap().is_none());

    let rows = client
        .query(
            "SELECT payload:customer::string, payload:lines[0].quantity::int, payload:lines[0]:card FROM orders WHERE id = ?",
            &[1.into()],
        )
        .await
        .unwrap()
        .rows()
        .await
        .unwrap();
    assert_eq!(rows[0][0], Value::Text("ada".into()));
    assert_eq!(rows[0][1], Value::Int(3));
    assert_eq!(rows[0][2], Value::Variant(serde_json::json!("c1")));

    let err = client
        .query("SELECT * FROM no_such_table", &[])
        .await
        .unwrap_err();
    match &err {
        Error::Sql {
            code,
            sql_state,
            message,
            ..
        } => {
            assert_eq!(code, "002003");
            assert_eq!(sql_state, "42S02");
            assert!(
                message.contains("NO_SUCH_TABLE") && message.contains("does not exist"),
                "{message}"
            );
        }
        other => panic!("expected a SQL error, got {other:?}"),
    }
    assert_eq!(
        client.query("SELEC 1", &[]).await.unwrap_err().code(),
        Some("001003")
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn hundred_thousand_rows_of_every_type_stream_in_batches() {
    let server = Fakesnow::start();
    let client = connect(&server).await;
    let sql = "SELECT SEQ4() AS ID,
                      (SEQ4() * 1.25)::NUMBER(14,2) AS PRICE,
                      SEQ4() / 8.0::DOUBLE AS RATIO,
                      'card-' || SEQ4() AS NAME,
                      SEQ4() % 2 = 0 AS EVEN,
                      DATEADD(day, SEQ4() % 1000, '2020-01-01'::DATE) AS DAY,
                      DATEADD(second, SEQ4(), '2026-01-01 00:00:00'::TIMESTAMP_NTZ) AS NTZ,
                      DATEADD(second, SEQ4(), '2026-01-01 00:00:00+00:00'::TIMESTAMP_TZ) AS TZ,
                      OBJECT_CONSTRUCT('n', SEQ4(), 'tag', 'x') AS V,
                      IFF(SEQ4() % 10 = 0, NULL, SEQ4()) AS MAYBE
               FROM TABLE(GENERATOR(ROWCOUNT => 100000))";
    let started = Instant::now();
    let mut result = client.query(sql, &[]).await.unwrap();
    assert_eq!(result.total_rows(), Some(100_000));
    let base_day = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let base_at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut seen = vec![false; 100_000];
    while let Some(batch) = result.next_batch().await.unwrap() {
        for r in 0..batch.num_rows() {
            let id: i64 = batch.get(r, 0).unwrap();
            assert!(
                !std::mem::replace(&mut seen[id as usize], true),
                "id {id} twice"
            );
            assert_eq!(
                batch.get::<Decimal>(r, 1).unwrap(),
                Decimal {
                    unscaled: i128::from(id) * 125,
                    scale: 2
                }
            );
            assert_eq!(batch.get::<f64>(r, 2).unwrap(), id as f64 / 8.0);
            assert_eq!(batch.get::<String>(r, 3).unwrap(), format!("card-{id}"));
            assert_eq!(batch.get::<bool>(r, 4).unwrap(), id % 2 == 0);
            assert_eq!(
                batch.get::<NaiveDate>(r, 5).unwrap(),
                base_day + chrono::Days::new((id % 1000) as u64)
            );
            let at = base_at + chrono::Duration::seconds(id);
            assert_eq!(
                batch.get::<chrono::NaiveDateTime>(r, 6).unwrap(),
                at.naive_utc()
            );
            assert_eq!(batch.get::<chrono::DateTime<Utc>>(r, 7).unwrap(), at);
            assert_eq!(
                batch.get::<serde_json::Value>(r, 8).unwrap(),
                serde_json::json!({"n": id, "tag": "x"})
            );
            assert_eq!(
                batch.get::<Option<i64>>(r, 9).unwrap(),
                (id % 10 != 0).then_some(id)
            );
        }
    }
    assert!(seen.iter().all(|s| *s), "every id 0..100000 once");
    eprintln!(
        "100k rows x 10 columns read and checked in {:.2?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn put_and_copy_ndjson_gz_into_a_variant_table() {
    let server = Fakesnow::start();
    let client = connect(&server).await;
    client
        .query("CREATE TABLE events_raw (event VARIANT)", &[])
        .await
        .unwrap();
    client
        .query("CREATE STAGE events_stage", &[])
        .await
        .unwrap();

    let mut ndjson = String::new();
    for i in 0..1000 {
        ndjson.push_str(&serde_json::json!({"event_id": format!("e-{i}"), "source": "orders", "payload": {"quantity": i % 7}}).to_string());
        ndjson.push('\n');
    }
    let put = client
        .put_bytes(
            "@events_stage",
            "batch-0001.ndjson",
            ndjson.clone().into_bytes(),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(put.file, "batch-0001.ndjson.gz");
    assert!(put.compressed && put.bytes_uploaded < ndjson.len() as u64);

    // A file already gzipped on disk keeps its name.
    let dir = std::env::temp_dir().join(format!("sluice-put-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("batch-0002.ndjson.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut gz,
        b"{\"event_id\":\"extra\",\"source\":\"cards\",\"payload\":{}}\n",
    )
    .unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let put = client
        .put_file(
            &path,
            "@events_stage",
            PutOptions {
                compression: Compression::Auto,
                overwrite: true,
            },
        )
        .await
        .unwrap();
    assert_eq!(put.file, "batch-0002.ndjson.gz");
    std::fs::remove_dir_all(&dir).unwrap();

    client
        .query(
            "COPY INTO events_raw FROM @events_stage FILE_FORMAT = (TYPE = JSON)",
            &[],
        )
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT COUNT(*), COUNT(DISTINCT event:event_id), SUM(event:payload.quantity::int) FROM events_raw",
            &[],
        )
        .await
        .unwrap()
        .rows()
        .await
        .unwrap();
    let expected_sum: i64 = (0..1000).map(|i| i % 7).sum();
    assert_eq!(rows[0][0], Value::Int(1001));
    assert_eq!(rows[0][1], Value::Int(1001));
    assert_eq!(
        <i64 as FromValue>::from_value(rows[0][2].clone()).unwrap(),
        expected_sum
    );

    let err = client
        .put_bytes("@events_stage", "../escape", "x", PutOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test]
async fn unreachable_and_stopped_servers_fail_fast_and_clearly() {
    let port = testkit::free_port();
    let started = Instant::now();
    let mut config = Config::fakesnow(&format!("http://127.0.0.1:{port}")).unwrap();
    config.auth = snowflake::Auth::Password(snowflake::Secret::new("hunter2-very-secret"));
    let err = Client::connect(config).await.unwrap_err();
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(matches!(err, Error::Connect { attempts: 4, .. }), "{err:?}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.to_lowercase().contains("refused"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "no secrets in errors"
    );
    assert!(elapsed < Duration::from_secs(15), "bounded: {elapsed:?}");

    let mut server = Fakesnow::start();
    let pid = server.pid();
    let client = connect(&server).await;
    server.stop();
    assert!(!testkit::process_alive(pid), "fakesnow stopped");
    let started = Instant::now();
    let err = client.query("SELECT 1", &[]).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded: {:?}",
        started.elapsed()
    );
}
