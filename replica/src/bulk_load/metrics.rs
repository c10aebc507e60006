//! Bulk-load metrics for one node: gauges of what runs now, counters of outcomes, maxima of
//! durations. Plain atomics so that download tasks can update them without any lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The node's bulk-load counters; share one `Arc<BulkLoadMetrics>` across partitions.
#[derive(Debug, Default)]
pub struct BulkLoadMetrics {
    downloading: AtomicU64,
    ingesting: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    downloaded_bytes: AtomicU64,
    downloaded_files: AtomicU64,
    download_duration_ms_max: AtomicU64,
    ingest_duration_ms_max: AtomicU64,
    user_writes_refused: AtomicU64,
    stale_results_dropped: AtomicU64,
    busy_rejections: AtomicU64,
    ingest_retries: AtomicU64,
}

/// A point-in-time copy of [`BulkLoadMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Download sessions running now (each holds one of the node's download slots).
    pub downloading: u64,
    /// Ingestions under way now.
    pub ingesting: u64,
    /// Partition loads that reached SUCCEED.
    pub succeeded: u64,
    /// Partition loads that reached FAILED.
    pub failed: u64,
    /// Bytes written to verified files.
    pub downloaded_bytes: u64,
    /// Files downloaded and verified.
    pub downloaded_files: u64,
    /// Longest download session.
    pub download_duration_ms_max: u64,
    /// Longest ingestion (with its retries and checkpoint).
    pub ingest_duration_ms_max: u64,
    /// User writes refused because an ingestion was under way.
    pub user_writes_refused: u64,
    /// Results that arrived for a session that is no longer current, and were dropped.
    pub stale_results_dropped: u64,
    /// Download starts refused because the node's download slots were all taken.
    pub busy_rejections: u64,
    /// Ingestion attempts retried after a retryable ("busy") engine error.
    pub ingest_retries: u64,
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl BulkLoadMetrics {
    /// A copy of every value.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Acquire);
        MetricsSnapshot {
            downloading: get(&self.downloading),
            ingesting: get(&self.ingesting),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            downloaded_bytes: get(&self.downloaded_bytes),
            downloaded_files: get(&self.downloaded_files),
            download_duration_ms_max: get(&self.download_duration_ms_max),
            ingest_duration_ms_max: get(&self.ingest_duration_ms_max),
            user_writes_refused: get(&self.user_writes_refused),
            stale_results_dropped: get(&self.stale_results_dropped),
            busy_rejections: get(&self.busy_rejections),
            ingest_retries: get(&self.ingest_retries),
        }
    }

    pub(crate) fn downloading_add(&self) {
        self.downloading.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn downloading_sub(&self) {
        // Pair assertion with `downloading_add`: a slot is released once.
        let previous = self.downloading.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous > 0, "downloading gauge underflow");
    }
    pub(crate) fn ingesting_add(&self) {
        self.ingesting.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn ingesting_sub(&self) {
        let previous = self.ingesting.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous > 0, "ingesting gauge underflow");
    }
    pub(crate) fn succeeded_inc(&self) {
        self.succeeded.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn failed_inc(&self) {
        self.failed.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn file_downloaded(&self, bytes: u64) {
        self.downloaded_bytes.fetch_add(bytes, Ordering::AcqRel);
        self.downloaded_files.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn download_finished(&self, took: Duration) {
        self.download_duration_ms_max
            .fetch_max(duration_ms(took), Ordering::AcqRel);
    }
    pub(crate) fn ingest_finished(&self, took: Duration) {
        self.ingest_duration_ms_max
            .fetch_max(duration_ms(took), Ordering::AcqRel);
    }
    pub(crate) fn user_write_refused(&self) {
        self.user_writes_refused.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn stale_result_dropped(&self) {
        self.stale_results_dropped.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn busy_rejected(&self) {
        self.busy_rejections.fetch_add(1, Ordering::AcqRel);
    }
    pub(crate) fn ingest_retried(&self) {
        self.ingest_retries.fetch_add(1, Ordering::AcqRel);
    }
}
