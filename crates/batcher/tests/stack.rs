//! The batcher's poller and handler against real S3, SQS and SNS (LocalStack) from a scratch
//! native stack. Each test has its own queue, key prefix and topic.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use batcher::handler::{Handler, HandlerConfig};
use batcher::sink::AwsSink;
use batcher::{BatcherConfig, BatcherError, Fault, FileFormat, Metrics};
use events::wire;
use rawfiles::format as object;
use rawfiles::partition::PartitionKey;
use stack::scratch::ScratchStack;

struct Fixture {
    _stack: Arc<ScratchStack>,
    sdk: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    queue_url: String,
    bucket: String,
    topic_arn: String,
    prefix: String,
}

impl Fixture {
    async fn new() -> Self {
        let stack = ScratchStack::shared().await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let sdk = runtime::aws::sdk_config(&stack.state.aws).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("batcher-{id}"))
            // Short, so records left undeleted come back quickly.
            .attributes(QueueAttributeName::VisibilityTimeout, "2")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let topic_arn = aws_sdk_sns::Client::new(&sdk)
            .create_topic()
            .name(format!("raw-files-{id}"))
            .send()
            .await
            .unwrap()
            .topic_arn
            .unwrap();
        let s3 = rawfiles::s3_client(&sdk);
        Self {
            bucket: stack.output("BucketName").to_owned(),
            _stack: stack,
            sdk,
            sqs,
            s3,
            queue_url,
            topic_arn,
            prefix: format!("t-{id}"),
        }
    }

    fn config(&self, fault: Fault) -> BatcherConfig {
        BatcherConfig {
            queue_url: self.queue_url.clone(),
            bucket: self.bucket.clone(),
            topic_arn: self.topic_arn.clone(),
            key_prefix: self.prefix.clone(),
            batch_size: 100,
            batch_window: Duration::from_millis(300),
            fault,
            ..BatcherConfig::defaults()
        }
    }

    fn handler(&self, bucket: &str, fault: Fault, format: FileFormat) -> Arc<Handler<AwsSink>> {
        Arc::new(Handler::new(
            AwsSink::new(&self.sdk, bucket.to_owned(), self.topic_arn.clone()),
            HandlerConfig {
                format,
                key_prefix: self.prefix.clone(),
                fault,
            },
            Arc::new(Metrics::default()),
        ))
    }

    async fn send(&self, events: &[events::Event]) {
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(wire::to_text(&e.encode()))
                        .build()
                        .unwrap()
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap();
            assert!(out.failed().is_empty());
        }
    }

    /// Every event in the objects under the test's prefix, with how often it appears; checks
    /// each object's events belong to its partition.
    async fn events_in_s3(&self, format: FileFormat) -> HashMap<String, usize> {
        let mut seen = HashMap::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}/", self.prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for object in page.unwrap().contents() {
                let key = object.key().unwrap();
                let partition = PartitionKey::parse(key).expect("partitioned key");
                let body = self
                    .s3
                    .get_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .unwrap()
                    .body
                    .collect()
                    .await
                    .unwrap()
                    .into_bytes();
                for event in object::decode(format, &body).unwrap() {
                    assert_eq!(PartitionKey::of(&event), partition, "{key}");
                    *seen.entry(event.event_id().to_owned()).or_insert(0) += 1;
                }
            }
        }
        seen
    }

    /// Visible plus in-flight messages.
    async fn messages_left(&self) -> u64 {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .unwrap();
        out.attributes()
            .unwrap()
            .values()
            .map(|v| v.parse::<u64>().unwrap())
            .sum()
    }
}

fn events(n: usize, seed: u64) -> Vec<events::Event> {
    let scenario = synth::Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/dirty.toml"
    ))
    .unwrap();
    synth::Generator::new(&scenario, Some(seed))
        .first_events()
        .take(n)
        .collect()
}

async fn run_until(
    f: &Fixture,
    config: BatcherConfig,
    handler: Arc<Handler<AwsSink>>,
    done: impl Fn(&Metrics) -> bool + Send + 'static,
    timeout: Duration,
) -> Result<batcher::MetricsSnapshot, BatcherError> {
    let metrics = handler.metrics().clone();
    let deadline = Instant::now() + timeout;
    let stop = {
        let metrics = metrics.clone();
        async move {
            while !done(&metrics) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    batcher::poller::run(config, f.sqs.clone(), handler, metrics, stop).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_put_and_publish_loses_nothing() {
    let f = Fixture::new().await;
    let input = events(300, 21);
    f.send(&input).await;

    let crashing = f.handler(&f.bucket, Fault::CrashAfterPut, FileFormat::NdjsonGz);
    let err = run_until(
        &f,
        f.config(Fault::CrashAfterPut),
        crashing.clone(),
        |_| false,
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, BatcherError::InjectedCrash { .. }), "{err}");
    assert!(
        crashing.metrics().snapshot().objects_written >= 1,
        "the crash came after a put"
    );
    assert_eq!(
        crashing.metrics().snapshot().deleted_records,
        0,
        "a crash deletes nothing"
    );
    // SQS's counts are approximate for a moment after a receive; they settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.messages_left().await != 300 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        f.messages_left().await,
        300,
        "every message still on the queue"
    );

    // Restarted: the records come back after the visibility timeout and are written again.
    let restarted = f.handler(&f.bucket, Fault::None, FileFormat::NdjsonGz);
    let snapshot = run_until(
        &f,
        f.config(Fault::None),
        restarted,
        |m| m.deleted_records.load(std::sync::atomic::Ordering::Relaxed) >= 300,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(snapshot.deleted_records, 300);
    let seen = f.events_in_s3(FileFormat::NdjsonGz).await;
    let want: HashSet<String> = input.iter().map(|e| e.event_id().to_owned()).collect();
    let have: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(
        have, want,
        "every event is in S3 (a duplicate file is allowed)"
    );
    assert_eq!(f.messages_left().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_a_failed_write_are_not_deleted() {
    let f = Fixture::new().await;
    let input = events(50, 3);
    f.send(&input).await;
    let handler = f.handler(
        "no-such-bucket-for-sluice",
        Fault::None,
        FileFormat::NdjsonGz,
    );
    let snapshot = run_until(
        &f,
        f.config(Fault::None),
        handler,
        |m| m.failed_records.load(std::sync::atomic::Ordering::Relaxed) >= 50,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert!(snapshot.failed_records >= 50, "{snapshot:?}");
    assert_eq!(snapshot.deleted_records, 0);
    assert_eq!(snapshot.objects_written, 0);
    assert_eq!(f.messages_left().await, 50, "nothing deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_objects_hold_every_event_once_in_its_partition() {
    let f = Fixture::new().await;
    let input = events(400, 8);
    f.send(&input).await;
    let handler = f.handler(&f.bucket, Fault::None, FileFormat::Parquet);
    let config = BatcherConfig {
        format: FileFormat::Parquet,
        ..f.config(Fault::None)
    };
    let snapshot = run_until(
        &f,
        config,
        handler,
        |m| m.deleted_records.load(std::sync::atomic::Ordering::Relaxed) >= 400,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(snapshot.events_written, 400);
    assert_eq!(snapshot.notices_published, snapshot.objects_written);
    let seen = f.events_in_s3(FileFormat::Parquet).await;
    assert_eq!(seen.len(), 400);
    assert!(seen.values().all(|n| *n == 1));
}
