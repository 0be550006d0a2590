use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt as _, StreamExt as _};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use tokio::sync::{Semaphore, mpsc};

use crate::acks::{AckTracker, Settlement};
use crate::assemble::{Assembler, Batch, Limits};
use crate::forward::{Backoff, send_until_accepted};
use crate::{Metrics, MetricsSnapshot, RelayConfig, RelayError};

/// Runs the relay until `shutdown` resolves.
///
/// A lost or refused broker connection (a broker restart, a network fault) is logged, counted
/// and reconnected after a backoff (200 ms doubling to 5 s); whatever the broker had delivered
/// and the relay had not acknowledged is delivered again, so a reconnect may duplicate, never
/// lose. On shutdown it stops taking deliveries, sends what it buffered, waits up to
/// `shutdown_grace` for in-flight requests, acks what SQS accepted and closes the channel: the
/// broker requeues every delivery that was not acknowledged, so nothing is lost.
pub async fn run(
    config: RelayConfig,
    sqs: aws_sdk_sqs::Client,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<MetricsSnapshot, RelayError> {
    if config.queues.is_empty() {
        return Err(RelayError::Config("no queues to consume".into()));
    }
    if config.pack == 0 || config.max_in_flight == 0 || config.prefetch == 0 {
        return Err(RelayError::Config(
            "pack, max_in_flight and prefetch must be at least 1".into(),
        ));
    }
    tokio::pin!(shutdown);
    let backoff = Backoff {
        first: std::time::Duration::from_millis(200),
        max: std::time::Duration::from_secs(5),
    };
    let mut attempt = 0u32;
    loop {
        let started = std::time::Instant::now();
        let error = match session(&config, &sqs, &metrics, shutdown.as_mut()).await {
            Ok(()) => break,
            Err(e @ RelayError::Config(_)) => return Err(e),
            Err(e) => e,
        };
        // A session that ran a while was a working connection: start the backoff over.
        if started.elapsed() > std::time::Duration::from_secs(10) {
            attempt = 0;
        }
        let delay = backoff.delay(attempt);
        attempt += 1;
        Metrics::add(&metrics.reconnects, 1);
        tracing::warn!(error = %error, retry_in = ?delay, "no broker connection; reconnecting (unacknowledged deliveries come again)");
        tokio::select! {
            () = shutdown.as_mut() => break,
            () = tokio::time::sleep(delay) => {}
        }
    }
    let snapshot = metrics.snapshot();
    tracing::info!(
        received = snapshot.received,
        forwarded = snapshot.forwarded,
        dead_lettered = snapshot.dead_lettered,
        acked = snapshot.acked,
        reconnects = snapshot.reconnects,
        "relay stopped"
    );
    Ok(snapshot)
}

/// One broker connection: consumes until `shutdown` resolves (`Ok`) or the connection fails.
async fn session<F: Future<Output = ()>>(
    config: &RelayConfig,
    sqs: &aws_sdk_sqs::Client,
    metrics: &Arc<Metrics>,
    mut shutdown: std::pin::Pin<&mut F>,
) -> Result<(), RelayError> {
    let connection =
        lapin::Connection::connect(&config.amqp_url, lapin::ConnectionProperties::default())
            .await
            .map_err(|source| RelayError::Connect {
                url: runtime::redact_url(&config.amqp_url),
                source,
            })?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumers = Vec::new();
    for queue in &config.queues {
        let tag = format!("sluice-relay-{}-{queue}", std::process::id());
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| RelayError::Consume {
                queue: queue.clone(),
                source,
            })?;
        consumers.push(consumer);
    }
    tracing::info!(queues = ?config.queues, prefetch = config.prefetch, pack = config.pack, "relay consuming");
    let mut deliveries = futures::stream::select_all(consumers);

    let mut tracker = AckTracker::default();
    let permits = Arc::new(Semaphore::new(config.max_in_flight));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Vec<u64>>();
    let mut intake = Intake {
        channel: channel.clone(),
        assembler: Assembler::new(Limits::sqs(config.pack)),
        linger: config.linger,
        linger_deadline: None,
        metrics: metrics.clone(),
        sender: Sender {
            sqs: sqs.clone(),
            queue_url: Arc::from(config.sqs_queue_url.as_str()),
            metrics: metrics.clone(),
            permits: permits.clone(),
            done: done_tx,
        },
    };
    let outcome: Result<(), RelayError> = loop {
        tokio::select! {
            biased;
            () = shutdown.as_mut() => break Ok(()),
            Some(tags) = done_rx.recv() => {
                if let Err(e) = settle(&intake.channel, &mut tracker, &metrics, tags, Settlement::Forwarded).await {
                    break Err(e);
                }
            }
            () = sleep_until(intake.linger_deadline) => {
                intake.linger_deadline = None;
                if let Some(batch) = intake.assembler.flush() {
                    intake.sender.dispatch(batch).await;
                }
            }
            next = deliveries.next() => {
                // Take whatever else is already buffered before going back to select!: one
                // wake-up per burst rather than per message.
                let mut next = next;
                let mut taken = 0;
                let step = loop {
                    let delivery = match next {
                        Some(Ok(d)) => d,
                        Some(Err(e)) => break Err(e.into()),
                        None => break Err(RelayError::Config("the broker cancelled the consumers".into())),
                    };
                    if let Err(e) = intake.take(delivery, &mut tracker).await {
                        break Err(e);
                    }
                    taken += 1;
                    if taken == BURST {
                        break Ok(());
                    }
                    match deliveries.next().now_or_never() {
                        Some(n) => next = n,
                        None => break Ok(()),
                    }
                };
                if let Err(e) = step {
                    break Err(e);
                }
            }
        }
    };

    // Stop intake first; what the broker pushed but we never took is requeued on close.
    drop(deliveries);
    if outcome.is_ok() {
        if let Some(batch) = intake.assembler.flush() {
            intake.sender.dispatch(batch).await;
        }
        let deadline = tokio::time::Instant::now() + config.shutdown_grace;
        while permits.available_permits() < config.max_in_flight || !done_rx.is_empty() {
            tokio::select! {
                Some(tags) = done_rx.recv() => {
                    settle(&channel, &mut tracker, metrics, tags, Settlement::Forwarded).await?;
                }
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!("shutdown grace over with sends in flight; the broker requeues their messages");
                    break;
                }
                () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {}
            }
        }
    }
    let _ = channel.close(200, "relay stopping".into()).await;
    let _ = connection.close(200, "relay stopping".into()).await;
    outcome
}

/// Deliveries taken per wake-up at most, so acks and linger are never starved.
const BURST: usize = 256;

/// Everything that handles one delivery.
struct Intake {
    channel: lapin::Channel,
    assembler: Assembler,
    linger: std::time::Duration,
    linger_deadline: Option<tokio::time::Instant>,
    metrics: Arc<Metrics>,
    sender: Sender,
}

impl Intake {
    /// Checks a delivery against the contract and packs it, or dead-letters it.
    async fn take(
        &mut self,
        delivery: lapin::message::Delivery,
        tracker: &mut AckTracker,
    ) -> Result<(), RelayError> {
        Metrics::add(&self.metrics.received, 1);
        let tag = delivery.delivery_tag;
        let ready = match events::Event::decode(&delivery.data) {
            Ok(_) => self
                .assembler
                .push(tag, published_us(&delivery), &delivery.data)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match ready {
            Ok(batches) => {
                for batch in batches {
                    self.sender.dispatch(batch).await;
                }
                if self.assembler.is_empty() {
                    self.linger_deadline = None;
                } else if self.linger_deadline.is_none() {
                    self.linger_deadline = Some(tokio::time::Instant::now() + self.linger);
                }
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(tag, %reason, bytes = delivery.data.len(), "not an event; dead-lettering");
                self.channel
                    .basic_reject(tag, BasicRejectOptions { requeue: false })
                    .await?;
                Metrics::add(&self.metrics.dead_lettered, 1);
                settle(
                    &self.channel,
                    tracker,
                    &self.metrics,
                    vec![tag],
                    Settlement::Rejected,
                )
                .await
            }
        }
    }
}

pub use runtime::latency::PUBLISHED_AT_HEADER;

/// When a delivery was published, if its publisher said (0 otherwise).
fn published_us(delivery: &lapin::message::Delivery) -> u64 {
    use lapin::types::AMQPValue;
    let value = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(PUBLISHED_AT_HEADER).cloned());
    match value {
        Some(AMQPValue::LongLongInt(v)) => v.max(0) as u64,
        Some(AMQPValue::Timestamp(v)) => v,
        Some(AMQPValue::LongUInt(v)) => u64::from(v),
        _ => 0,
    }
}

async fn settle(
    channel: &lapin::Channel,
    tracker: &mut AckTracker,
    metrics: &Metrics,
    tags: Vec<u64>,
    how: Settlement,
) -> Result<(), RelayError> {
    let mut last = None;
    for tag in tags {
        if let Some(ack) = tracker.settle(tag, how) {
            Metrics::add(&metrics.acked, ack.count);
            last = Some(ack.up_to);
        }
    }
    if let Some(up_to) = last {
        channel
            .basic_ack(up_to, BasicAckOptions { multiple: true })
            .await?;
    }
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Sender {
    sqs: aws_sdk_sqs::Client,
    queue_url: Arc<str>,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Vec<u64>>,
}

impl Sender {
    /// Starts sending a request once fewer than `max_in_flight` are under way.
    async fn dispatch(&self, batch: Batch) {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let sqs = self.sqs.clone();
        let queue_url = self.queue_url.clone();
        let metrics = self.metrics.clone();
        let done = self.done.clone();
        tokio::spawn(async move {
            send_until_accepted(
                &sqs,
                &queue_url,
                batch,
                Backoff::default(),
                &metrics,
                |tags| {
                    // The loop may be gone at shutdown; its channel close requeues these.
                    let _ = done.send(tags);
                },
            )
            .await;
            drop(permit);
        });
    }
}
