//! The relay against a real RabbitMQ and a real SQS (LocalStack) from a scratch native stack.
//! Each test declares its own queues, so tests share the stack without sharing state.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use events::wire::{self, PACKING_ATTRIBUTE, Packing};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use relay::{Metrics, RelayConfig};
use stack::scratch::ScratchStack;

struct Fixture {
    stack: Arc<ScratchStack>,
    sqs: aws_sdk_sqs::Client,
    channel: lapin::Channel,
    _connection: lapin::Connection,
    queue: String,
    dead_letter_queue: String,
    sqs_url: String,
}

impl Fixture {
    async fn new() -> Self {
        let stack = ScratchStack::shared().await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let connection = lapin::Connection::connect(
            &stack.state.rabbitmq.amqp_url,
            lapin::ConnectionProperties::default(),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let (queue, dlx, dead_letter_queue) = (
            format!("t-{id}"),
            format!("t-{id}.dlx"),
            format!("t-{id}.dead"),
        );
        channel
            .exchange_declare(
                dlx.as_str().into(),
                lapin::ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_declare(
                dead_letter_queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                dead_letter_queue.as_str().into(),
                dlx.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        // A quorum queue dead-lettering to the test's own exchange, like infra's queues.
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dlx.as_str().into()),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await
            .unwrap();
        let sdk = runtime::aws::sdk_config(&stack.state.aws).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let sqs_url = sqs
            .create_queue()
            .queue_name(format!("relay-{id}"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Self {
            stack,
            sqs,
            channel,
            _connection: connection,
            queue,
            dead_letter_queue,
            sqs_url,
        }
    }

    fn config(&self) -> RelayConfig {
        RelayConfig {
            amqp_url: self.stack.state.rabbitmq.amqp_url.clone(),
            queues: vec![self.queue.clone()],
            sqs_queue_url: self.sqs_url.clone(),
            linger: Duration::from_millis(5),
            ..RelayConfig::defaults()
        }
    }

    /// Publishes bodies straight to the test queue, confirmed.
    async fn publish(&self, bodies: &[Vec<u8>]) {
        let mut confirms = Vec::new();
        for body in bodies {
            confirms.push(
                self.channel
                    .basic_publish(
                        "".into(),
                        self.queue.as_str().into(),
                        BasicPublishOptions::default(),
                        body,
                        lapin::BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .unwrap(),
            );
        }
        for c in confirms {
            assert!(c.await.unwrap().is_ack());
        }
    }

    /// Ready messages in a queue (unacknowledged ones are not counted).
    async fn ready(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Receives from SQS (deleting) until `want` distinct events arrived; returns all event ids
    /// received, duplicates included.
    async fn drain_sqs(&self, want: &HashSet<String>, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut ids = Vec::new();
        let mut distinct = HashSet::new();
        while !want.is_subset(&distinct) {
            assert!(
                Instant::now() < deadline,
                "only {} of {} events reached SQS in {timeout:?}",
                want.intersection(&distinct).count(),
                want.len()
            );
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.sqs_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_attribute_names(PACKING_ATTRIBUTE)
                .send()
                .await
                .unwrap();
            let mut entries = Vec::new();
            for (i, m) in out.messages().iter().enumerate() {
                let packing = m
                    .message_attributes()
                    .and_then(|a| a.get(PACKING_ATTRIBUTE))
                    .and_then(|v| v.string_value())
                    .map(|v| Packing::parse(v).expect("a known packing"))
                    // A plain message is one envelope (production's shape).
                    .unwrap_or(Packing::Envelope);
                for e in wire::decode_text(m.body().unwrap(), packing).unwrap() {
                    distinct.insert(e.event_id().to_owned());
                    ids.push(e.event_id().to_owned());
                }
                entries.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap())
                        .build()
                        .unwrap(),
                );
            }
            // One call per receive, not one per message: thousands of single deletes kept
            // LocalStack busy for most of this test when other stacks shared the cores.
            if !entries.is_empty() {
                let deleted = self
                    .sqs
                    .delete_message_batch()
                    .queue_url(&self.sqs_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .unwrap();
                assert!(deleted.failed().is_empty(), "{:?}", deleted.failed());
            }
        }
        ids
    }

    async fn sqs_depth(&self) -> u64 {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.sqs_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        attrs.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
            .parse()
            .unwrap()
    }
}

/// A relay process that a failing test does not leave running (std's `Child` is not killed on
/// drop).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn events(n: usize, seed: u64) -> Vec<events::Event> {
    let scenario = synth::Scenario::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/steady.toml"
    ))
    .unwrap();
    synth::Generator::new(&scenario, Some(seed))
        .first_events()
        .take(n)
        .collect()
}

fn ids(events: &[events::Event]) -> HashSet<String> {
    events.iter().map(|e| e.event_id().to_owned()).collect()
}

/// Runs the relay in this process until the returned sender is dropped or fired.
fn spawn_relay(
    config: RelayConfig,
    sqs: aws_sdk_sqs::Client,
) -> (
    Arc<Metrics>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<relay::MetricsSnapshot, relay::RelayError>>,
) {
    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(relay::run(config, sqs, metrics.clone(), async move {
        let _ = stopped.await;
    }));
    (metrics, stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_reaches_sqs_and_is_acked() {
    for pack in [1usize, 50] {
        let f = Fixture::new().await;
        let input = events(1000, 11 + pack as u64);
        f.publish(&input.iter().map(|e| e.encode()).collect::<Vec<_>>())
            .await;
        let (metrics, stop, handle) =
            spawn_relay(RelayConfig { pack, ..f.config() }, f.sqs.clone());
        let received = f.drain_sqs(&ids(&input), Duration::from_secs(60)).await;
        stop.send(()).unwrap();
        let snapshot = handle.await.unwrap().unwrap();
        assert_eq!(
            received.len(),
            input.len(),
            "pack {pack}: exactly once when nothing fails"
        );
        assert_eq!(snapshot.forwarded, 1000);
        assert_eq!(snapshot.acked, 1000, "pack {pack}: every delivery acked");
        // Linger may send a partly packed message; packing still cuts messages by far.
        let min = 1000u64.div_ceil(pack as u64);
        assert!(
            (min..=min * 2).contains(&snapshot.sqs_messages),
            "pack {pack}: {} SQS messages for 1000 events",
            snapshot.sqs_messages
        );
        assert_eq!(metrics.snapshot(), snapshot);
        // The channel is closed: anything unacked would be back in the queue now.
        assert_eq!(
            f.ready(&f.queue).await,
            0,
            "pack {pack}: queue empty after shutdown"
        );
        assert_eq!(f.sqs_depth().await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_body_is_dead_lettered_and_counted() {
    let f = Fixture::new().await;
    let input = events(40, 5);
    let mut bodies: Vec<Vec<u8>> = input.iter().map(|e| e.encode()).collect();
    bodies.insert(7, b"\xff\xfe not a protobuf envelope".to_vec());
    bodies.insert(30, Vec::new());
    f.publish(&bodies).await;
    let (_metrics, stop, handle) = spawn_relay(f.config(), f.sqs.clone());
    f.drain_sqs(&ids(&input), Duration::from_secs(60)).await;
    // The rejects are settled as they arrive; give the broker a moment to route them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.ready(&f.dead_letter_queue).await < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(()).unwrap();
    let snapshot = handle.await.unwrap().unwrap();
    assert_eq!(snapshot.dead_lettered, 2);
    assert_eq!(snapshot.forwarded, 40);
    assert_eq!(snapshot.acked, 40);
    assert_eq!(
        f.ready(&f.dead_letter_queue).await,
        2,
        "both poison bodies dead-lettered"
    );
    assert_eq!(f.ready(&f.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_stream_and_restarted_loses_nothing() {
    let f = Fixture::new().await;
    let input = events(4000, 99);
    f.publish(&input.iter().map(|e| e.encode()).collect::<Vec<_>>())
        .await;
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["--amqp-url", &f.stack.state.rabbitmq.amqp_url])
            .args(["--sqs-queue-url", &f.sqs_url])
            .args(["--queues", &f.queue])
            .args([
                "--aws-endpoint-url",
                f.stack.state.aws.endpoint_url.as_deref().unwrap(),
            ])
            .args(["--prefetch", "300"])
            .env("RUST_LOG", "warn")
            .spawn()
            .map(KillOnDrop)
            .unwrap()
    };
    let mut first = spawn();
    // Kill it once part of the stream is in SQS, with deliveries in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while f.sqs_depth().await < 500 {
        assert!(Instant::now() < deadline, "the relay forwarded nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let remaining = f.ready(&f.queue).await;
    assert!(
        remaining > 0,
        "killed before it finished: the rest waits in RabbitMQ"
    );
    let mut second = spawn();
    let received = f.drain_sqs(&ids(&input), Duration::from_secs(90)).await;
    unsafe { libc::kill(second.0.id() as i32, libc::SIGTERM) };
    let status = second.0.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");
    assert!(
        received.len() >= input.len(),
        "duplicates allowed, losses not"
    );
    assert_eq!(
        f.ready(&f.queue).await,
        0,
        "the restarted relay acked everything"
    );
}

/// The scaling metric: the source queues' ready depth as embedded-metric lines, counted by the
/// broker, not by the relay (nothing consumes the queue here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_metric_reports_the_source_queues_depth() {
    let f = Fixture::new().await;
    let input = events(7, 3);
    f.publish(&input.iter().map(|e| e.encode()).collect::<Vec<_>>())
        .await;
    let mut out: Vec<u8> = Vec::new();
    let queues = vec![f.queue.clone()];
    relay::backlog::publish(
        &f.stack.state.rabbitmq.amqp_url,
        &queues,
        "test-stack",
        Duration::from_millis(100),
        &mut out,
        tokio::time::sleep(Duration::from_millis(350)),
    )
    .await;
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "a line per interval: {lines:?}");
    for line in &lines {
        assert_eq!(line["SourceBacklog"], 7, "{line}");
        assert_eq!(line["Stack"], "test-stack");
    }
}
