//! Transport counters, shared by a node's outgoing connections and its Raft service.

pub use siltdb_client::proto::TransportMetricsSnapshot;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (relaxed atomics: statistics, not synchronization).
#[derive(Debug, Default)]
pub struct TransportMetrics {
    /// Raft RPCs sent (one per request frame).
    pub rpcs_sent: AtomicU64,
    /// Raft RPCs that failed locally (connect, I/O, timeout, refusal, fault hook).
    pub rpc_failures: AtomicU64,
    /// Raft RPCs dropped by the fault hook (either side).
    pub rpcs_dropped: AtomicU64,
    /// Connections (re)established.
    pub connects: AtomicU64,
    /// Raft requests served.
    pub rpcs_served: AtomicU64,
    /// Snapshots sent to completion.
    pub snapshots_sent: AtomicU64,
    /// Snapshots received and handed to openraft.
    pub snapshots_received: AtomicU64,
    /// Snapshot file bytes sent.
    pub snapshot_bytes_sent: AtomicU64,
    /// Snapshot file bytes received.
    pub snapshot_bytes_received: AtomicU64,
}

impl TransportMetrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> TransportMetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportMetricsSnapshot {
            rpcs_sent: g(&self.rpcs_sent),
            rpc_failures: g(&self.rpc_failures),
            rpcs_dropped: g(&self.rpcs_dropped),
            connects: g(&self.connects),
            rpcs_served: g(&self.rpcs_served),
            snapshots_sent: g(&self.snapshots_sent),
            snapshots_received: g(&self.snapshots_received),
            snapshot_bytes_sent: g(&self.snapshot_bytes_sent),
            snapshot_bytes_received: g(&self.snapshot_bytes_received),
        }
    }
}
