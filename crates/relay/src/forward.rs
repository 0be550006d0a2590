//! One SendMessageBatch request, retried entry by entry until SQS has accepted all of it.

use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use events::wire::{PACKING_ATTRIBUTE, Packing};

use crate::assemble::{Batch, Entry};
use crate::metrics::Metrics;

/// Backoff between attempts: doubles from `first` up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        self.first
            .saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
            .min(self.max)
    }
}

/// One entry. A single envelope goes as a plain message, as production's producers send it
/// (readers take a missing `sluice-packing` attribute as one envelope); only packed batches
/// carry the attribute, which the queue otherwise hashes and stores for every message.
fn request_entry(entry: &Entry) -> SendMessageBatchRequestEntry {
    let mut builder = SendMessageBatchRequestEntry::builder()
        .id(&entry.id)
        .message_body(&entry.body);
    if entry.packing != Packing::Envelope {
        builder = builder.message_attributes(
            PACKING_ATTRIBUTE,
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(entry.packing.as_str())
                .build()
                .expect("data type is set"),
        );
    }
    builder.build().expect("id and body are set")
}

/// Sends `batch` until every entry is accepted; calls `accepted` with each accepted entry's
/// delivery tags as soon as SQS confirms it, and records each event's hop latency (publish to
/// accepted). Never gives up: a relay that cannot reach SQS must not ack, and shutdown bounds
/// how long this runs.
pub async fn send_until_accepted(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: Batch,
    backoff: Backoff,
    metrics: &Metrics,
    mut accepted: impl FnMut(Vec<u64>),
) {
    let mut pending = batch.entries;
    let mut attempt = 0u32;
    while !pending.is_empty() {
        let request: Vec<_> = pending.iter().map(request_entry).collect();
        Metrics::add(&metrics.sqs_calls, 1);
        match sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(request))
            .send()
            .await
        {
            Ok(output) => {
                let now = runtime::latency::unix_micros();
                let ok: std::collections::HashSet<&str> =
                    output.successful().iter().map(|s| s.id()).collect();
                let mut retry = Vec::new();
                for entry in pending {
                    if ok.contains(entry.id.as_str()) {
                        Metrics::add(&metrics.sqs_messages, 1);
                        Metrics::add(&metrics.forwarded, entry.tags.len() as u64);
                        for published in entry.published_us.iter().filter(|p| **p > 0) {
                            metrics
                                .publish_to_sqs
                                .record(now.saturating_sub(*published));
                        }
                        accepted(entry.tags);
                    } else {
                        retry.push(entry);
                    }
                }
                for failed in output.failed() {
                    tracing::warn!(
                        id = failed.id(),
                        code = failed.code(),
                        message = failed.message().unwrap_or(""),
                        sender_fault = failed.sender_fault(),
                        "SQS refused an entry; retrying"
                    );
                }
                Metrics::add(&metrics.sqs_retried_entries, retry.len() as u64);
                pending = retry;
            }
            Err(e) => {
                tracing::warn!(
                    error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
                    entries = pending.len(),
                    "SendMessageBatch failed; retrying"
                );
                Metrics::add(&metrics.sqs_retried_entries, pending.len() as u64);
            }
        }
        if !pending.is_empty() {
            tokio::time::sleep(backoff.delay(attempt)).await;
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::from_millis(50));
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(3), Duration::from_millis(400));
        assert_eq!(b.delay(30), Duration::from_secs(5));
    }
}
