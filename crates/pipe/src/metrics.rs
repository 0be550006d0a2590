use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub notifications: AtomicU64,
    pub test_events: AtomicU64,
    pub files_loaded: AtomicU64,
    pub rows_loaded: AtomicU64,
    pub files_skipped: AtomicU64,
    pub files_failed: AtomicU64,
    pub bad_notifications: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    /// Queue messages read.
    pub notifications: u64,
    /// `s3:TestEvent` messages skipped.
    pub test_events: u64,
    pub files_loaded: u64,
    pub rows_loaded: u64,
    /// Notices for a key and ETag already in the load history.
    pub files_skipped: u64,
    /// Files that could not be loaded (recorded in RAW.LOAD_HISTORY with the error).
    pub files_failed: u64,
    /// Messages that are not S3 notifications (deleted, logged).
    pub bad_notifications: u64,
}

impl Metrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            notifications: self.notifications.load(Relaxed),
            test_events: self.test_events.load(Relaxed),
            files_loaded: self.files_loaded.load(Relaxed),
            rows_loaded: self.rows_loaded.load(Relaxed),
            files_skipped: self.files_skipped.load(Relaxed),
            files_failed: self.files_failed.load(Relaxed),
            bad_notifications: self.bad_notifications.load(Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
