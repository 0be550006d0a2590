//! Counters the relay reports: in logs, in `--metrics-file`, and to the harness.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use runtime::latency::{EncodedHistogram, LatencyRecorder};

#[derive(Debug, Default)]
pub struct Metrics {
    pub received: AtomicU64,
    pub forwarded: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub sqs_messages: AtomicU64,
    pub sqs_calls: AtomicU64,
    pub sqs_retried_entries: AtomicU64,
    pub acked: AtomicU64,
    pub reconnects: AtomicU64,
    /// Per event: from its publish (the `sluice-published-at` header) to SQS accepting it.
    pub publish_to_sqs: LatencyRecorder,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    /// AMQP deliveries received.
    pub received: u64,
    /// Events SQS accepted.
    pub forwarded: u64,
    /// Deliveries rejected to the dead-letter exchange (bodies that are not events).
    pub dead_lettered: u64,
    pub sqs_messages: u64,
    pub sqs_calls: u64,
    /// Entries SQS refused once and the relay sent again.
    pub sqs_retried_entries: u64,
    /// Deliveries acknowledged to RabbitMQ.
    pub acked: u64,
    /// Broker connections lost (or refused) and made again.
    #[serde(default)]
    pub reconnects: u64,
    /// Microseconds from publish to SQS accepted, per event that carried its publish time.
    #[serde(default)]
    pub publish_to_sqs_us: EncodedHistogram,
}

impl MetricsSnapshot {
    /// These counters on top of an earlier process's (the component restarted in between).
    pub fn plus(&self, earlier: &Self) -> Self {
        Self {
            received: self.received + earlier.received,
            forwarded: self.forwarded + earlier.forwarded,
            dead_lettered: self.dead_lettered + earlier.dead_lettered,
            sqs_messages: self.sqs_messages + earlier.sqs_messages,
            sqs_calls: self.sqs_calls + earlier.sqs_calls,
            sqs_retried_entries: self.sqs_retried_entries + earlier.sqs_retried_entries,
            acked: self.acked + earlier.acked,
            reconnects: self.reconnects + earlier.reconnects,
            publish_to_sqs_us: self.publish_to_sqs_us.plus(&earlier.publish_to_sqs_us),
        }
    }
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            received: self.received.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            sqs_messages: self.sqs_messages.load(Relaxed),
            sqs_calls: self.sqs_calls.load(Relaxed),
            sqs_retried_entries: self.sqs_retried_entries.load(Relaxed),
            acked: self.acked.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            publish_to_sqs_us: self.publish_to_sqs.encoded(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
