//! Counters of one duplication.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated by the duplicator thread.
#[derive(Debug, Default)]
pub struct DuplicationMetrics {
    confirmed_mutations: AtomicU64,
    shipped_bytes: AtomicU64,
    requests: AtomicU64,
    failed_requests: AtomicU64,
    files_skipped: AtomicU64,
    bytes_skipped: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Mutations the follower acknowledged.
    pub confirmed_mutations: u64,
    /// Bytes of user writes in acknowledged mutations.
    pub shipped_bytes: u64,
    /// Ship requests sent (successful or not).
    pub requests: u64,
    /// Ship requests that failed.
    pub failed_requests: u64,
    /// Unreadable plog ranges skipped in fail mode SKIP.
    pub files_skipped: u64,
    /// Bytes known to be skipped with them (0 when the size is unknown).
    pub bytes_skipped: u64,
}

impl DuplicationMetrics {
    pub(crate) fn shipped(&self, mutations: u64, bytes: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.confirmed_mutations
            .fetch_add(mutations, Ordering::Relaxed);
        self.shipped_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.failed_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn skipped(&self, bytes: u64) {
        self.files_skipped.fetch_add(1, Ordering::Relaxed);
        self.bytes_skipped.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            confirmed_mutations: self.confirmed_mutations.load(Ordering::Relaxed),
            shipped_bytes: self.shipped_bytes.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            failed_requests: self.failed_requests.load(Ordering::Relaxed),
            files_skipped: self.files_skipped.load(Ordering::Relaxed),
            bytes_skipped: self.bytes_skipped.load(Ordering::Relaxed),
        }
    }
}
