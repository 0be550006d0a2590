//! The event-source mapping: receive from SQS, fill a batch up to `batch_size` records or
//! `batch_window` after its first record, invoke the handler, delete exactly the records it did
//! not report as failures. Failed records become visible again after the queue's visibility
//! timeout; after `maxReceiveCount` receives the queue's redrive moves them to its DLQ.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use events::wire::PACKING_ATTRIBUTE;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::group::GroupCommit;
use crate::handler::{BatchResponse, Handler, Record};
use crate::metrics::Metrics;
use crate::sink::Sink;
use crate::{BatcherConfig, BatcherError, MetricsSnapshot};

/// What a filled batch is handed to: the handler in this process, or a function elsewhere (a
/// Lambda runtime the harness hosts). The poller deletes exactly the records the answer does not
/// list as failed; `Err` stops the poller with nothing of that batch deleted.
pub trait Invoke: Send + Sync + 'static {
    fn invoke(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<BatchResponse, BatcherError>> + Send;
}

impl<S: Sink + 'static> Invoke for Handler<S> {
    async fn invoke(&self, records: Vec<Record>) -> Result<BatchResponse, BatcherError> {
        self.handle(&records).await
    }
}

/// Refuses a batch window the queue's visibility timeout cannot cover: records received at the
/// start of a batch would become visible to other receivers while it fills, and be written
/// twice. A queue that cannot be asked now (an outage) is not a reason to stop polling it.
async fn check_visibility_timeout(
    sqs: &aws_sdk_sqs::Client,
    config: &BatcherConfig,
) -> Result<(), BatcherError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let asked = sqs
        .get_queue_attributes()
        .queue_url(&config.queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await;
    let seconds = match asked {
        Ok(out) => out
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout).cloned())
            .and_then(|v| v.parse::<u64>().ok()),
        Err(e) => {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot read the queue's visibility timeout; polling without checking the batch window against it");
            None
        }
    };
    match seconds {
        Some(s) => window_fits(config.batch_window, Duration::from_secs(s))
            .map_err(|why| BatcherError::Config(format!("{}: {why}", config.queue_url))),
        None => Ok(()),
    }
}

/// A batch is handled within its window plus a put and a publish: the window may take at most
/// half the visibility timeout (an event-source mapping keeps a wider margin still).
fn window_fits(batch_window: Duration, visibility_timeout: Duration) -> Result<(), String> {
    if batch_window * 2 > visibility_timeout {
        return Err(format!(
            "--batch-window {} is more than half the queue's visibility timeout ({} s): records \
             would become visible to other receivers while their batch fills and be written \
             twice; shorten the window, or create the stack with a longer timeout \
             (`cargo xtask up --ingest-visibility-timeout`, the template's \
             IngestVisibilityTimeout)",
            humantime::format_duration(batch_window),
            visibility_timeout.as_secs()
        ));
    }
    Ok(())
}

/// DeleteMessageBatch calls in flight, for all invocations together.
const DELETES_IN_FLIGHT: usize = 8;

struct Received {
    record: Record,
    receipt_handle: String,
}

/// Polls until `shutdown` resolves (then handles what it holds and returns) or an invocation
/// fails (an injected crash: returns the error, deleting nothing of that batch). The poller
/// counts its receives and deletes in `metrics`; the handler counts the rest.
pub async fn run<I: Invoke>(
    config: BatcherConfig,
    sqs: aws_sdk_sqs::Client,
    handler: Arc<I>,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<MetricsSnapshot, BatcherError> {
    if config.batch_size == 0 || config.receivers == 0 || config.concurrency == 0 {
        return Err(BatcherError::Config(
            "batch_size, receivers and concurrency must be at least 1".into(),
        ));
    }
    check_visibility_timeout(&sqs, &config).await?;
    let (tx, mut rx) = mpsc::channel::<Received>(config.batch_size.max(10) * 2);
    let mut receivers = JoinSet::new();
    for _ in 0..config.receivers {
        receivers.spawn(receive_loop(
            sqs.clone(),
            config.queue_url.clone(),
            tx.clone(),
            receive_pause(config.batch_window),
            metrics.clone(),
        ));
    }
    drop(tx);
    tracing::info!(queue = %config.queue_url, batch_size = config.batch_size, batch_window = ?config.batch_window, "batcher polling");

    let deletes = GroupCommit::spawn(10, DELETES_IN_FLIGHT, {
        let (sqs, queue_url) = (sqs.clone(), config.queue_url.clone());
        move |receipts| delete_batch(sqs.clone(), queue_url.clone(), receipts)
    });
    let permits = Arc::new(Semaphore::new(config.concurrency));
    let mut invocations: JoinSet<Result<(), BatcherError>> = JoinSet::new();
    let mut batch: Vec<Received> = Vec::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            Some(done) = invocations.join_next() => {
                if let Err(e) = done.expect("an invocation panicked") {
                    break Err(e);
                }
            }
            () = sleep_until(deadline) => {
                deadline = None;
                let full = std::mem::take(&mut batch);
                invoke(&mut invocations, &permits, &deletes, &handler, &metrics, full).await;
            }
            received = rx.recv() => {
                let Some(received) = received else {
                    break Err(BatcherError::Config("every SQS receiver stopped".into()));
                };
                if batch.is_empty() {
                    deadline = Some(tokio::time::Instant::now() + config.batch_window);
                }
                batch.push(received);
                if batch.len() >= config.batch_size {
                    deadline = None;
                    let full = std::mem::take(&mut batch);
                    invoke(&mut invocations, &permits, &deletes, &handler, &metrics, full).await;
                }
            }
        }
    };
    receivers.abort_all();
    if outcome.is_ok() {
        // What was already received is handled, not left to time out invisible.
        while let Ok(received) = rx.try_recv() {
            batch.push(received);
        }
        if !batch.is_empty() {
            invoke(
                &mut invocations,
                &permits,
                &deletes,
                &handler,
                &metrics,
                batch,
            )
            .await;
        }
    }
    let mut first_error = outcome.err();
    while let Some(done) = invocations.join_next().await {
        if let Err(e) = done.expect("an invocation panicked") {
            first_error.get_or_insert(e);
        }
    }
    let snapshot = metrics.snapshot();
    tracing::info!(
        records = snapshot.records_in,
        events_written = snapshot.events_written,
        objects = snapshot.objects_written,
        deleted = snapshot.deleted_records,
        "batcher stopped"
    );
    match first_error {
        Some(e) => Err(e),
        None => Ok(snapshot),
    }
}

async fn invoke<I: Invoke>(
    invocations: &mut JoinSet<Result<(), BatcherError>>,
    permits: &Arc<Semaphore>,
    deletes: &GroupCommit<String>,
    handler: &Arc<I>,
    metrics: &Arc<Metrics>,
    batch: Vec<Received>,
) {
    if batch.is_empty() {
        return;
    }
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    let (deletes, handler, metrics) = (deletes.clone(), handler.clone(), metrics.clone());
    invocations.spawn(async move {
        let _permit = permit;
        let records: Vec<Record> = batch.iter().map(|r| r.record.clone()).collect();
        let response = handler.invoke(records).await?;
        let failed: std::collections::HashSet<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<&Received> = batch
            .iter()
            .filter(|r| !failed.contains(r.record.message_id.as_str()))
            .collect();
        delete(&deletes, &done, &metrics).await;
        Ok(())
    });
}

/// Deletes processed records, sharing DeleteMessageBatch calls with the other invocations in
/// flight. A failed delete is logged, not retried forever: the record comes back after its
/// visibility timeout and is written again (a duplicate, never a loss).
async fn delete(deletes: &GroupCommit<String>, done: &[&Received], metrics: &Metrics) {
    let outcomes = futures::future::join_all(
        done.iter()
            .map(|r| deletes.submit(r.receipt_handle.clone())),
    )
    .await;
    let deleted = outcomes.iter().filter(|o| o.is_ok()).count();
    Metrics::add(&metrics.deleted_records, deleted as u64);
    if let Some(Err(reason)) = outcomes.iter().find(|o| o.is_err()) {
        tracing::warn!(
            failed = outcomes.len() - deleted,
            reason = %reason,
            "SQS delete refused; those records come back after the visibility timeout"
        );
    }
}

/// One DeleteMessageBatch; each receipt's outcome, in order.
async fn delete_batch(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    receipts: Vec<String>,
) -> Vec<Result<(), String>> {
    let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
        .iter()
        .enumerate()
        .map(|(i, receipt)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .expect("id and receipt handle are set")
        })
        .collect();
    let answer = sqs
        .delete_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map(|out| {
            out.failed()
                .iter()
                .map(|f| crate::group::refused(f.id(), f.code(), f.message()))
                .collect()
        })
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string());
    crate::group::outcomes(receipts.len(), answer)
}

/// How long a receiver waits after a receive that did not fill (fewer than 10 messages): a
/// trickle then arrives in fuller receives, costing the queue fewer calls per message, and the
/// batch window (which this stays well inside) hides the wait.
fn receive_pause(batch_window: Duration) -> Duration {
    (batch_window / 10).clamp(Duration::from_millis(5), Duration::from_millis(100))
}

async fn receive_loop(
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    tx: mpsc::Sender<Received>,
    pause: Duration,
    metrics: Arc<Metrics>,
) {
    let mut failures = 0u32;
    loop {
        Metrics::add(&metrics.receive_calls, 1);
        let result = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names(PACKING_ATTRIBUTE)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .send()
            .await;
        match result {
            Ok(out) => {
                failures = 0;
                let messages = out.messages.unwrap_or_default();
                let full = messages.len() >= 10;
                for message in messages {
                    if let Some(received) = to_received(message)
                        && tx.send(received).await.is_err()
                    {
                        return;
                    }
                }
                if !full {
                    tokio::time::sleep(pause).await;
                }
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), queue = %queue_url, "ReceiveMessage failed");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(failures.min(50)))).await;
            }
        }
    }
}

fn to_received(message: Message) -> Option<Received> {
    let sent_at_ms = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|v| v.parse().ok());
    let packing = message
        .message_attributes()
        .and_then(|a| a.get(PACKING_ATTRIBUTE))
        .and_then(|v| v.string_value())
        .map(str::to_owned);
    Some(Received {
        record: Record {
            message_id: message.message_id?,
            body: message.body.unwrap_or_default(),
            packing,
            sent_at_ms,
        },
        receipt_handle: message.receipt_handle?,
    })
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::window_fits;
    use std::time::Duration;

    #[test]
    fn a_window_longer_than_half_the_visibility_timeout_is_refused() {
        let s = Duration::from_secs;
        assert!(window_fits(Duration::from_millis(500), s(5)).is_ok());
        assert!(window_fits(Duration::from_millis(2500), s(5)).is_ok());
        let refused = window_fits(s(3), s(5)).unwrap_err();
        assert!(
            refused.contains("--batch-window 3s") && refused.contains("(5 s)"),
            "{refused}"
        );
        assert!(refused.contains("--ingest-visibility-timeout"), "{refused}");
    }
}
