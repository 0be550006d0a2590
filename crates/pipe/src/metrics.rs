use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use runtime::latency::{EncodedHistogram, LatencyRecorder};

#[derive(Debug, Default)]
pub struct Metrics {
    pub notifications: AtomicU64,
    pub test_events: AtomicU64,
    pub files_loaded: AtomicU64,
    pub rows_loaded: AtomicU64,
    pub files_skipped: AtomicU64,
    pub files_failed: AtomicU64,
    pub bad_notifications: AtomicU64,
    pub loads: AtomicU64,
    /// Per loaded row: from its object's creation (the notice's `eventTime`) to visible in RAW.
    pub object_to_visible: LatencyRecorder,
    /// Per loaded row: from its object's creation to the pipe holding its notice (SNS, the
    /// notify queue and the poll).
    pub object_to_notice: LatencyRecorder,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// Load transactions (each loads one or more files).
    pub loads: u64,
    /// Microseconds from an object's creation to its rows being visible in RAW, per row.
    #[serde(default)]
    pub object_to_visible_us: EncodedHistogram,
    /// Microseconds from an object's creation to the pipe receiving its notice, per row.
    #[serde(default)]
    pub object_to_notice_us: EncodedHistogram,
}

impl MetricsSnapshot {
    /// These counters on top of an earlier process's (the component restarted in between).
    pub fn plus(&self, earlier: &Self) -> Self {
        Self {
            notifications: self.notifications + earlier.notifications,
            test_events: self.test_events + earlier.test_events,
            files_loaded: self.files_loaded + earlier.files_loaded,
            rows_loaded: self.rows_loaded + earlier.rows_loaded,
            files_skipped: self.files_skipped + earlier.files_skipped,
            files_failed: self.files_failed + earlier.files_failed,
            bad_notifications: self.bad_notifications + earlier.bad_notifications,
            loads: self.loads + earlier.loads,
            object_to_visible_us: self
                .object_to_visible_us
                .plus(&earlier.object_to_visible_us),
            object_to_notice_us: self.object_to_notice_us.plus(&earlier.object_to_notice_us),
        }
    }
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
            loads: self.loads.load(Relaxed),
            object_to_visible_us: self.object_to_visible.encoded(),
            object_to_notice_us: self.object_to_notice.encoded(),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
