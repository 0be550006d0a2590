//! The pipe against real S3/SQS (LocalStack, scratch stack) and a fakesnow of its own with
//! infra/snowflake applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipe::{Loader, Metrics};
use rawfiles::notice::{ObjectNotice, s3_event_json};
use snowflake::Value;
use stack::scratch::ScratchStack;
use testkit::Fakesnow;

struct Fixture {
    _stack: Arc<ScratchStack>,
    _fakesnow: Fakesnow,
    sf: snowflake::Client,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    bucket: String,
    queue_url: String,
    prefix: String,
}

impl Fixture {
    async fn new() -> Self {
        let stack = ScratchStack::shared().await;
        let fakesnow = Fakesnow::start();
        let mut config = snowflake::Config::fakesnow(&fakesnow.base_url()).unwrap();
        stack::apply_snowflake_ddl(config.clone(), false)
            .await
            .unwrap();
        config.database = Some("SLUICE".into());
        let sf = snowflake::Client::connect(config).await.unwrap();
        let sdk = runtime::aws::sdk_config(&stack.state.aws).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("pipe-{id}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let s3 = rawfiles::s3_client(&sdk);
        Self {
            bucket: stack.output("BucketName").to_owned(),
            _stack: stack,
            _fakesnow: fakesnow,
            sf,
            sqs,
            s3,
            queue_url,
            prefix: format!("t-{id}"),
        }
    }

    async fn put(&self, name: &str, ndjson: &str) -> ObjectNotice {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(ndjson.as_bytes()).unwrap();
        let body = gz.finish().unwrap();
        let key = format!(
            "{}/source=orders/year=2026/month=03/day=01/{name}.ndjson.gz",
            self.prefix
        );
        let size = body.len() as u64;
        let out = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(body.into())
            .send()
            .await
            .unwrap();
        ObjectNotice {
            bucket: self.bucket.clone(),
            key,
            size,
            etag: out.e_tag().unwrap().trim_matches('"').to_owned(),
            event_time: None,
        }
    }

    async fn notify(&self, body: String) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// Runs the pipe until `done` holds for its counters (or 60 s pass).
    async fn run_until(
        &self,
        done: impl Fn(&pipe::MetricsSnapshot) -> bool,
    ) -> pipe::MetricsSnapshot {
        let loader = Loader::new(
            snowflake::Client::connect(self.sf.config().clone())
                .await
                .unwrap(),
            self.s3.clone(),
        )
        .await
        .unwrap();
        let metrics = Metrics::default();
        let deadline = Instant::now() + Duration::from_secs(60);
        let stop = async {
            while !done(&metrics.snapshot()) {
                assert!(
                    Instant::now() < deadline,
                    "pipe stuck at {:?}",
                    metrics.snapshot()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let config = pipe::poller::PollerConfig::new(self.queue_url.clone());
        let snapshot = pipe::poller::run(&config, &self.sqs, &loader, &metrics, stop)
            .await
            .unwrap();
        loader.close().await;
        snapshot
    }

    async fn rows(&self, sql: &str, key: &str) -> Vec<Vec<Value>> {
        self.sf
            .query(sql, &[key.into()])
            .await
            .unwrap()
            .rows()
            .await
            .unwrap()
    }
}

fn ndjson(n: usize, seed: u64) -> String {
    let scenario = synth::Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/smoke.toml"
    ))
    .unwrap();
    synth::Generator::new(&scenario, Some(seed))
        .history()
        .take(n)
        .map(|e| e.to_canonical_json() + "\n")
        .collect()
}

fn sns_wrapped(s3_event: String) -> String {
    serde_json::json!({"Type": "Notification", "MessageId": "m", "TopicArn": "arn:t", "Message": s3_event})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_notified_twice_and_delivered_twice_is_loaded_once() {
    let f = Fixture::new().await;
    let notice = f.put("a", &ndjson(25, 1)).await;
    let event = s3_event_json(&notice, chrono::Utc::now());
    f.notify(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#.into())
        .await;
    f.notify(sns_wrapped(event.clone())).await; // through SNS
    f.notify(event.clone()).await; // a second, raw notice of the same object
    let first = f.run_until(|m| m.notifications >= 3).await;
    assert_eq!(first.test_events, 1);
    assert_eq!(
        (first.files_loaded, first.rows_loaded, first.files_skipped),
        (1, 25, 1)
    );
    // A redelivered message, after the pipe restarted.
    f.notify(sns_wrapped(event)).await;
    let again = f.run_until(|m| m.notifications >= 1).await;
    assert_eq!((again.files_loaded, again.files_skipped), (0, 1));

    let key = notice.key.as_str();
    let loaded = f.rows("SELECT COUNT(*), COUNT(DISTINCT EVENT:event_id::string) FROM SLUICE.RAW.EVENTS_STREAM WHERE FILE_NAME = ?", key).await;
    assert_eq!(loaded[0], [Value::Int(25), Value::Int(25)]);
    let history = f
        .rows(
            "SELECT STATUS, ROWS_LOADED, ETAG FROM SLUICE.RAW.LOAD_HISTORY WHERE OBJECT_KEY = ?",
            key,
        )
        .await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0][0], Value::Text("LOADED".into()));
    assert_eq!(history[0][2], Value::Text(notice.etag.clone()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_file_is_recorded_and_does_not_block_the_next() {
    let f = Fixture::new().await;
    let good = ndjson(3, 2);
    let bad = f
        .put("bad", &format!("{}{{\"event_id\": oops\n", good))
        .await;
    let next = f.put("next", &ndjson(10, 3)).await;
    f.notify(s3_event_json(&bad, chrono::Utc::now())).await;
    f.notify(s3_event_json(&next, chrono::Utc::now())).await;
    let snapshot = f.run_until(|m| m.notifications >= 2).await;
    assert_eq!(
        (
            snapshot.files_failed,
            snapshot.files_loaded,
            snapshot.rows_loaded
        ),
        (1, 1, 10)
    );

    let history = f
        .rows(
            "SELECT STATUS, ERROR FROM SLUICE.RAW.LOAD_HISTORY WHERE OBJECT_KEY = ?",
            &bad.key,
        )
        .await;
    assert_eq!(history[0][0], Value::Text("LOAD_FAILED".into()));
    let Value::Text(error) = &history[0][1] else {
        panic!("{history:?}")
    };
    assert!(
        error.contains(&bad.key) && error.contains("line 4: malformed JSON"),
        "{error}"
    );
    let rows = f
        .rows(
            "SELECT COUNT(*) FROM SLUICE.RAW.EVENTS_STREAM WHERE FILE_NAME = ?",
            &bad.key,
        )
        .await;
    assert_eq!(rows[0][0], Value::Int(0), "nothing of a bad file is loaded");
    let rows = f
        .rows(
            "SELECT COUNT(*) FROM SLUICE.RAW.EVENTS_STREAM WHERE FILE_NAME = ?",
            &next.key,
        )
        .await;
    assert_eq!(rows[0][0], Value::Int(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_files_share_loads_and_keep_their_names_and_history() {
    let f = Fixture::new().await;
    let mut notices = Vec::new();
    for i in 0..60 {
        notices.push(f.put(&format!("small-{i}"), &ndjson(2, 100 + i)).await);
    }
    // Two notices per message for some, one for others, and one file notified twice.
    for pair in notices.chunks(2) {
        let records: Vec<serde_json::Value> = pair
            .iter()
            .map(|n| {
                serde_json::from_str::<serde_json::Value>(&s3_event_json(n, chrono::Utc::now()))
                    .unwrap()["Records"][0]
                    .clone()
            })
            .collect();
        f.notify(serde_json::json!({ "Records": records }).to_string())
            .await;
    }
    f.notify(s3_event_json(&notices[7], chrono::Utc::now()))
        .await;
    let m = f
        .run_until(|m| m.files_loaded + m.files_skipped >= 61)
        .await;
    assert_eq!(
        (m.files_loaded, m.rows_loaded, m.files_skipped),
        (60, 120, 1)
    );
    assert!(
        m.loads < 60,
        "{} loads for 60 small files: they must share loads",
        m.loads
    );
    for notice in [&notices[0], &notices[7], &notices[59]] {
        let rows = f
            .rows(
                "SELECT COUNT(*) FROM SLUICE.RAW.EVENTS_STREAM WHERE FILE_NAME = ?",
                &notice.key,
            )
            .await;
        assert_eq!(rows[0][0], Value::Int(2), "{} keeps its rows", notice.key);
        let history = f
            .rows(
                "SELECT COUNT(*) FROM SLUICE.RAW.LOAD_HISTORY WHERE OBJECT_KEY = ? AND STATUS = 'LOADED'",
                &notice.key,
            )
            .await;
        assert_eq!(history[0][0], Value::Int(1), "loaded once: {}", notice.key);
    }
}

/// A load whose connection broke mid-transaction leaves the transaction open on the session (its
/// ROLLBACK was lost too). The next load must end it rather than fail on BEGIN or commit the
/// half-done load with its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_a_broken_load_left_open_is_rolled_back_by_the_next() {
    let f = Fixture::new().await;
    let session = snowflake::Client::connect(f.sf.config().clone())
        .await
        .unwrap();
    let loader = Loader::new(session.clone(), f.s3.clone()).await.unwrap();
    let orphan = format!("{}/orphan.ndjson.gz", f.prefix);
    session.execute("BEGIN", &[]).await.unwrap();
    session
        .execute(
            "INSERT INTO SLUICE.RAW.EVENTS_STREAM (FILE_NAME, LOADED_AT, EVENT) \
             SELECT ?, CURRENT_TIMESTAMP, PARSE_JSON('{}')",
            &[orphan.as_str().into()],
        )
        .await
        .unwrap();

    let notice = f.put("after-a-broken-load", &ndjson(5, 7)).await;
    let outcome = loader.load(&notice, &Metrics::default()).await;
    assert_eq!(outcome.unwrap(), pipe::LoadOutcome::Loaded { rows: 5 });
    loader.close().await;

    let count = "SELECT COUNT(*) FROM SLUICE.RAW.EVENTS_STREAM WHERE FILE_NAME = ?";
    assert_eq!(f.rows(count, &notice.key).await[0][0], Value::Int(5));
    assert_eq!(
        f.rows(count, &orphan).await[0][0],
        Value::Int(0),
        "the open transaction's rows were rolled back, not committed with the load"
    );
}
