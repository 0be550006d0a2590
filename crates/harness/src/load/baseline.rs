//! What the services sustain alone, measured on the same stack in the same run, so a pipeline
//! figure is read as a ratio to what this machine's broker and queue can do at all:
//!
//! - broker only: the scenario's bodies published unpaced with confirms into the `events`
//!   exchange while a plain consumer (prefetch 1000, multiple acks) drains the source queues;
//! - SQS only: event-sized plain messages (the relay's shape at one event per message) sent in
//!   batches of 10 (8 calls in flight, as the relay) to a queue of its own while 4 receivers
//!   receive them with the batcher's attributes and delete them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
use futures::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use synth::{Generator, Scenario};

use crate::rig::publish::{Pacing, PublishConfig, PublishError, publish};
use crate::rig::queues::SOURCE_QUEUES;

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("broker baseline: {0}")]
    Publish(#[from] PublishError),
    #[error("broker baseline, consuming: {0}")]
    Consume(#[source] lapin::Error),
    #[error("SQS baseline ({what}): {reason}")]
    Sqs { what: &'static str, reason: String },
    #[error("{what} baseline did not finish within {timeout:?} ({done} of {wanted})")]
    Timeout {
        what: &'static str,
        timeout: Duration,
        done: u64,
        wanted: u64,
    },
}

/// One service's throughput on its own.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    /// Events (messages) through, end to end of the service.
    pub events: u64,
    pub seconds: f64,
    pub events_per_s: f64,
}

impl Baseline {
    fn new(events: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Self {
            events,
            seconds,
            events_per_s: events as f64 / seconds,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baselines {
    pub broker: Baseline,
    pub sqs: Baseline,
}

const TIMEOUT: Duration = Duration::from_secs(300);

/// Publishes `n` bodies of `scenario` (seeded apart from the run's own events) unpaced while a
/// plain consumer takes them off the source queues; the rate is `n` over the time until the
/// consumer has them all.
pub async fn broker_only(
    amqp_url: &str,
    scenario: &Scenario,
    seed: u64,
    n: u64,
) -> Result<Baseline, BaselineError> {
    let mut scenario = scenario.clone();
    scenario.max_events = Some(n);
    scenario.duration = None;
    scenario.faults = Default::default();
    let conn = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default())
        .await
        .map_err(BaselineError::Consume)?;
    let channel = conn
        .create_channel()
        .await
        .map_err(BaselineError::Consume)?;
    channel
        .basic_qos(1000, BasicQosOptions::default())
        .await
        .map_err(BaselineError::Consume)?;
    let mut consumers = Vec::new();
    for queue in SOURCE_QUEUES {
        consumers.push(
            channel
                .basic_consume(
                    queue.into(),
                    format!("sluice-baseline-{queue}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(BaselineError::Consume)?,
        );
    }
    let mut all = futures::stream::select_all(consumers);
    let consume = async {
        let (mut got, mut max_tag, mut acked) = (0u64, 0u64, 0u64);
        while got < n {
            let Some(delivery) = all.next().await else {
                break;
            };
            let delivery = delivery.map_err(BaselineError::Consume)?;
            got += 1;
            // Three consumers' streams interleave, so tags arrive out of order: ack the highest
            // seen, never one at or below an earlier multiple-ack.
            max_tag = max_tag.max(delivery.delivery_tag);
            if (got % 500 == 0 || got == n) && max_tag > acked {
                channel
                    .basic_ack(max_tag, BasicAckOptions { multiple: true })
                    .await
                    .map_err(BaselineError::Consume)?;
                acked = max_tag;
            }
        }
        Ok::<u64, BaselineError>(got)
    };
    let mut config = PublishConfig::new(amqp_url);
    config.pacing = Pacing::Unpaced;
    config.stamp_publish_time = false;
    let started = Instant::now();
    let mut generator = Generator::new(&scenario, Some(seed));
    let stream = generator.stream();
    let outcome = tokio::time::timeout(
        TIMEOUT,
        futures::future::try_join(
            async {
                publish(&config, stream, |_| {})
                    .await
                    .map_err(BaselineError::from)
            },
            consume,
        ),
    )
    .await;
    let elapsed = started.elapsed();
    drop(all);
    let _ = conn.close(200, "baseline done".into()).await;
    match outcome {
        Ok(Ok((_, got))) if got >= n => Ok(Baseline::new(n, elapsed)),
        Ok(Ok((_, got))) => Err(BaselineError::Timeout {
            what: "broker",
            timeout: TIMEOUT,
            done: got,
            wanted: n,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(BaselineError::Timeout {
            what: "broker",
            timeout: TIMEOUT,
            done: 0,
            wanted: n,
        }),
    }
}

fn sqs_err<E: std::error::Error + 'static>(
    what: &'static str,
) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E>) -> BaselineError {
    move |e| BaselineError::Sqs {
        what,
        reason: aws_sdk_sqs::error::DisplayErrorContext(e).to_string(),
    }
}

/// Sends `n` messages of `body_len` bytes to a queue of its own while 4 receivers receive and
/// delete them; the rate is `n` over the time until the last is deleted. The queue is removed.
pub async fn sqs_only(
    sqs: &aws_sdk_sqs::Client,
    n: u64,
    body_len: usize,
) -> Result<Baseline, BaselineError> {
    let name = format!("sluice-baseline-{}", std::process::id());
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .map_err(sqs_err("creating its queue"))?
        .queue_url
        .unwrap_or_default();
    let result = sqs_only_on(sqs, &url, n, body_len).await;
    let _ = sqs.delete_queue().queue_url(&url).send().await;
    result
}

async fn sqs_only_on(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    n: u64,
    body_len: usize,
) -> Result<Baseline, BaselineError> {
    let body: String = "e".repeat(body_len.max(1));
    let deleted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    // When the last message was deleted, microseconds after the start (the receivers still in
    // a long poll at that moment must not count).
    let finished_us = Arc::new(AtomicU64::new(0));
    let send = futures::stream::iter(0..n.div_ceil(10))
        .map(|batch| {
            let entries: Vec<_> = (0..10u64.min(n - batch * 10))
                .map(|i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&body)
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            sqs.send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
        })
        .buffer_unordered(8)
        .map(|r| r.map(drop).map_err(sqs_err("sending")))
        .collect::<Vec<_>>();
    let receive = futures::future::join_all((0..4).map(|_| {
        let deleted = deleted.clone();
        let finished_us = finished_us.clone();
        async move {
            while deleted.load(Relaxed) < n {
                // The batcher's receive: the same attributes asked for.
                let out = sqs
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .message_attribute_names(events::wire::PACKING_ATTRIBUTE)
                    .message_system_attribute_names(
                        aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp,
                    )
                    .send()
                    .await
                    .map_err(sqs_err("receiving"))?;
                let entries: Vec<_> = out
                    .messages()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, m)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle()?)
                            .build()
                            .ok()
                    })
                    .collect();
                if entries.is_empty() {
                    continue;
                }
                let done = sqs
                    .delete_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(sqs_err("deleting"))?;
                let n_done = done.successful().len() as u64;
                if deleted.fetch_add(n_done, Relaxed) + n_done >= n {
                    finished_us.store(started.elapsed().as_micros() as u64, Relaxed);
                }
            }
            Ok::<(), BaselineError>(())
        }
    }));
    let outcome = tokio::time::timeout(TIMEOUT, futures::future::join(send, receive)).await;
    let elapsed = Duration::from_micros(finished_us.load(Relaxed));
    let Ok((sent, received)) = outcome else {
        return Err(BaselineError::Timeout {
            what: "SQS",
            timeout: TIMEOUT,
            done: deleted.load(Relaxed),
            wanted: n,
        });
    };
    for r in sent.into_iter().chain(received) {
        r?;
    }
    Ok(Baseline::new(n, elapsed))
}
