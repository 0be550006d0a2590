use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use runtime::latency::{EncodedHistogram, LatencyRecorder};

#[derive(Debug, Default)]
pub struct Metrics {
    pub records_in: AtomicU64,
    pub events_in: AtomicU64,
    pub poison_records: AtomicU64,
    pub failed_records: AtomicU64,
    pub objects_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub events_written: AtomicU64,
    pub notices_published: AtomicU64,
    pub deleted_records: AtomicU64,
    pub invocations: AtomicU64,
    pub receive_calls: AtomicU64,
    /// Per event: from SQS accepting its message to its object being written.
    pub sqs_to_object: LatencyRecorder,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    /// SQS messages handed to the handler.
    pub records_in: u64,
    /// Events decoded from them.
    pub events_in: u64,
    /// Messages that are not events (left for the queue's redrive to its DLQ).
    pub poison_records: u64,
    /// Messages reported as batch item failures (poison included).
    pub failed_records: u64,
    pub objects_written: u64,
    pub bytes_written: u64,
    pub events_written: u64,
    pub notices_published: u64,
    /// SQS messages deleted after their events were written and announced.
    pub deleted_records: u64,
    pub invocations: u64,
    /// ReceiveMessage calls made.
    #[serde(default)]
    pub receive_calls: u64,
    /// Microseconds from SQS accepting a message (`SentTimestamp`) to its events' object being
    /// written, per event (includes the batch window).
    #[serde(default)]
    pub sqs_to_object_us: EncodedHistogram,
}

impl MetricsSnapshot {
    /// These counters on top of an earlier process's (the component restarted in between).
    pub fn plus(&self, earlier: &Self) -> Self {
        Self {
            records_in: self.records_in + earlier.records_in,
            events_in: self.events_in + earlier.events_in,
            poison_records: self.poison_records + earlier.poison_records,
            failed_records: self.failed_records + earlier.failed_records,
            objects_written: self.objects_written + earlier.objects_written,
            bytes_written: self.bytes_written + earlier.bytes_written,
            events_written: self.events_written + earlier.events_written,
            notices_published: self.notices_published + earlier.notices_published,
            deleted_records: self.deleted_records + earlier.deleted_records,
            invocations: self.invocations + earlier.invocations,
            receive_calls: self.receive_calls + earlier.receive_calls,
            sqs_to_object_us: self.sqs_to_object_us.plus(&earlier.sqs_to_object_us),
        }
    }
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            records_in: self.records_in.load(Relaxed),
            events_in: self.events_in.load(Relaxed),
            poison_records: self.poison_records.load(Relaxed),
            failed_records: self.failed_records.load(Relaxed),
            objects_written: self.objects_written.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            events_written: self.events_written.load(Relaxed),
            notices_published: self.notices_published.load(Relaxed),
            deleted_records: self.deleted_records.load(Relaxed),
            invocations: self.invocations.load(Relaxed),
            receive_calls: self.receive_calls.load(Relaxed),
            sqs_to_object_us: self.sqs_to_object.encoded(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
