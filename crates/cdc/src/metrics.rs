//! Counters the cdc component reports: in logs, in `--metrics-file`, and to the harness.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use runtime::latency::{EncodedHistogram, LatencyRecorder};

#[derive(Debug, Default)]
pub struct Metrics {
    pub snapshot_rows: AtomicU64,
    pub changes: AtomicU64,
    pub transactions: AtomicU64,
    pub confirmed_changes: AtomicU64,
    pub confirmed_transactions: AtomicU64,
    pub acked_lsn: AtomicU64,
    pub truncates_skipped: AtomicU64,
    pub restarts: AtomicU64,
    pub heartbeats: AtomicU64,
    /// Per change: from its commit to the broker confirming it.
    pub commit_to_confirm: LatencyRecorder,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    /// Rows published by initial snapshots (op r).
    pub snapshot_rows: u64,
    /// Row changes published from the stream (op c, u, d), re-sends after a restart included.
    pub changes: u64,
    /// Committed transactions read from the stream.
    pub transactions: u64,
    /// Row changes and transactions the broker confirmed.
    pub confirmed_changes: u64,
    pub confirmed_transactions: u64,
    /// The last LSN acknowledged to the slot (a transaction's commit end).
    pub acked_lsn: u64,
    /// TRUNCATEs of published tables, not propagated (Debezium's default too).
    pub truncates_skipped: u64,
    /// Sessions started again after a failure (each resumes at the slot's confirmed LSN).
    pub restarts: u64,
    /// Heartbeats read back from the stream and acknowledged in order (see
    /// `CdcConfig::heartbeat`).
    #[serde(default)]
    pub heartbeats: u64,
    /// Microseconds from commit to broker confirm, per streamed change.
    #[serde(default)]
    pub commit_to_confirm_us: EncodedHistogram,
}

impl MetricsSnapshot {
    /// These counters on top of an earlier process's (the component restarted in between).
    pub fn plus(&self, earlier: &Self) -> Self {
        Self {
            snapshot_rows: self.snapshot_rows + earlier.snapshot_rows,
            changes: self.changes + earlier.changes,
            transactions: self.transactions + earlier.transactions,
            confirmed_changes: self.confirmed_changes + earlier.confirmed_changes,
            confirmed_transactions: self.confirmed_transactions + earlier.confirmed_transactions,
            acked_lsn: self.acked_lsn.max(earlier.acked_lsn),
            truncates_skipped: self.truncates_skipped + earlier.truncates_skipped,
            restarts: self.restarts + earlier.restarts,
            heartbeats: self.heartbeats + earlier.heartbeats,
            commit_to_confirm_us: self
                .commit_to_confirm_us
                .plus(&earlier.commit_to_confirm_us),
        }
    }
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            snapshot_rows: self.snapshot_rows.load(Relaxed),
            changes: self.changes.load(Relaxed),
            transactions: self.transactions.load(Relaxed),
            confirmed_changes: self.confirmed_changes.load(Relaxed),
            confirmed_transactions: self.confirmed_transactions.load(Relaxed),
            acked_lsn: self.acked_lsn.load(Relaxed),
            truncates_skipped: self.truncates_skipped.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            heartbeats: self.heartbeats.load(Relaxed),
            commit_to_confirm_us: self.commit_to_confirm.encoded(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
