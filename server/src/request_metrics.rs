//! Per-partition request counters and latency histograms, read by [`crate::metrics`].
//!
//! Layer: node infrastructure (recorded by [`crate::dispatch`] around every data request,
//! read by the metrics endpoint).
//!
//! Every data request (`Get`, `Scan`, `Write`, and the data model's requests) counts once
//! against its table and partition as a read or a write, with its payload bytes (values read,
//! keys and values written), its latency in a fixed-bucket histogram, and whether it was
//! throttled or failed. The series set is bounded by the partitions the node ever served.

use parking_lot::RwLock;
use siltdb_client::pegasus::{PegasusRequest, PegasusResponse};
use siltdb_client::proto::{ClientRequest, ClientResponse};
use siltdb_client::types::WriteOp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds (a `+Inf` bucket follows).
pub const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Whether a request reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Reads (point, multi-key, scans, counts).
    Read,
    /// Writes (puts, deletes, atomic operations).
    Write,
}

impl RequestKind {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            RequestKind::Read => "read",
            RequestKind::Write => "write",
        }
    }
}

/// A latency histogram with [`LATENCY_BUCKETS_SECONDS`] (non-cumulative counts inside).
#[derive(Debug, Default)]
pub struct Histogram {
    /// One count per bound, then `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A histogram read at one instant: cumulative bucket counts (the last is `+Inf`), the
/// observation count and the sum of the observations in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `cumulative[i]` = observations `<= LATENCY_BUCKETS_SECONDS[i]`; the last is every one.
    pub cumulative: Vec<u64>,
    /// Observations.
    pub count: u64,
    /// Sum of the observations, seconds.
    pub sum_seconds: f64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The histogram now.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0u64;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total = total.saturating_add(b.load(Ordering::Relaxed));
                total
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: self.count.load(Ordering::Relaxed),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// The counters of one kind of request on one partition.
#[derive(Debug, Default)]
pub struct KindCounters {
    /// Requests answered (errors included).
    pub requests: AtomicU64,
    /// Payload bytes read or written.
    pub bytes: AtomicU64,
    /// Requests answered with an error (throttling included).
    pub errors: AtomicU64,
    /// Requests refused or delayed by throttling.
    pub throttled: AtomicU64,
    /// Latency of every request.
    pub latency: Histogram,
}

/// Reads and writes of one partition.
#[derive(Debug, Default)]
pub struct PartitionRequests {
    /// Read requests.
    pub read: KindCounters,
    /// Write requests.
    pub write: KindCounters,
}

impl PartitionRequests {
    /// The counters of `kind`.
    pub fn kind(&self, kind: RequestKind) -> &KindCounters {
        match kind {
            RequestKind::Read => &self.read,
            RequestKind::Write => &self.write,
        }
    }
}

/// How one request ended, for [`RequestMetrics::record`].
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Payload bytes.
    pub bytes: u64,
    /// Answered with an error.
    pub error: bool,
    /// The error was throttling.
    pub throttled: bool,
    /// Time from decoding to answer.
    pub latency: Duration,
}

/// Every partition's request counters on this node, by (table, partition).
#[derive(Debug, Default)]
pub struct RequestMetrics {
    partitions: RwLock<HashMap<(String, u32), Arc<PartitionRequests>>>,
}

impl RequestMetrics {
    /// Counts one request of `kind` on `table`'s `partition`.
    pub fn record(&self, table: &str, partition: u32, kind: RequestKind, outcome: Outcome) {
        let p = self.partition(table, partition);
        let c = p.kind(kind);
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.bytes.fetch_add(outcome.bytes, Ordering::Relaxed);
        if outcome.error {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        if outcome.throttled {
            c.throttled.fetch_add(1, Ordering::Relaxed);
        }
        c.latency.observe(outcome.latency);
    }

    fn partition(&self, table: &str, partition: u32) -> Arc<PartitionRequests> {
        if let Some(p) = self.partitions.read().get(&(table.to_string(), partition)) {
            return Arc::clone(p);
        }
        let mut all = self.partitions.write();
        Arc::clone(all.entry((table.to_string(), partition)).or_default())
    }

    /// Every partition's counters, sorted by table and partition.
    pub fn snapshot(&self) -> Vec<((String, u32), Arc<PartitionRequests>)> {
        let mut v: Vec<_> = self
            .partitions
            .read()
            .iter()
            .map(|(k, p)| (k.clone(), Arc::clone(p)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Forgets the partitions of `table` (dropped or no longer served here).
    pub fn forget_table(&self, table: &str) {
        self.partitions.write().retain(|(t, _), _| t != table);
    }
}

/// The table, partition, kind and written payload bytes of a data request; `None` for every
/// other request.
pub fn classify(req: &ClientRequest) -> Option<(String, u32, RequestKind, u64)> {
    let len = |v: &[u8]| v.len() as u64;
    Some(match req {
        ClientRequest::Get {
            table, partition, ..
        }
        | ClientRequest::Scan {
            table, partition, ..
        } => (table.clone(), *partition, RequestKind::Read, 0),
        ClientRequest::Write {
            table,
            partition,
            ops,
        } => {
            let bytes = ops
                .iter()
                .map(|op| match op {
                    WriteOp::Put { key, value } => len(key) + len(value),
                    WriteOp::Delete { key } => len(key),
                    WriteOp::DeleteRange { start, end } => len(start) + len(end),
                })
                .sum();
            (table.clone(), *partition, RequestKind::Write, bytes)
        }
        ClientRequest::Pegasus {
            table,
            partition,
            req,
        } => {
            let (kind, bytes) = match req {
                PegasusRequest::MultiGet { .. }
                | PegasusRequest::Scan { .. }
                | PegasusRequest::SortKeyCount { .. }
                | PegasusRequest::ScanPartition { .. } => (RequestKind::Read, 0),
                PegasusRequest::MultiSet { hash_key, kvs, .. } => (
                    RequestKind::Write,
                    kvs.iter()
                        .map(|(k, v)| len(hash_key) + len(k) + len(v))
                        .sum(),
                ),
                PegasusRequest::MultiDel {
                    hash_key,
                    sort_keys,
                } => (
                    RequestKind::Write,
                    sort_keys.iter().map(|k| len(hash_key) + len(k)).sum(),
                ),
                PegasusRequest::Atomic(_) => (RequestKind::Write, 0),
            };
            (table.clone(), *partition, kind, bytes)
        }
        _ => return None,
    })
}

/// The payload bytes a data response carries (values and keys read).
pub fn bytes_read(resp: &ClientResponse) -> u64 {
    let len = |v: &[u8]| v.len() as u64;
    match resp {
        ClientResponse::Value(Some(v)) => len(v),
        ClientResponse::Rows { rows, .. } => rows.iter().map(|(k, v)| len(k) + len(v)).sum(),
        ClientResponse::Pegasus(PegasusResponse::Records { records, .. }) => records
            .iter()
            .map(|r| len(&r.hash_key) + len(&r.sort_key) + len(&r.value))
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.cumulative.len(), LATENCY_BUCKETS_SECONDS.len() + 1);
        assert_eq!(s.cumulative[0], 2, "50 µs and 100 µs are <= 0.1 ms");
        assert_eq!(s.cumulative[4], 2, "nothing else <= 2.5 ms");
        assert_eq!(s.cumulative[5], 3, "3 ms <= 5 ms");
        assert_eq!(s.cumulative[LATENCY_BUCKETS_SECONDS.len() - 1], 3);
        assert_eq!(*s.cumulative.last().unwrap(), 4, "+Inf holds everything");
        assert!((s.sum_seconds - 60.00315).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn requests_count_per_partition_and_kind() {
        let m = RequestMetrics::default();
        let ok = |bytes| Outcome {
            bytes,
            error: false,
            throttled: false,
            latency: Duration::from_millis(1),
        };
        m.record("t", 1, RequestKind::Read, ok(10));
        m.record("t", 1, RequestKind::Read, ok(5));
        m.record("t", 0, RequestKind::Write, ok(7));
        let throttled = Outcome {
            error: true,
            throttled: true,
            ..ok(0)
        };
        m.record("t", 0, RequestKind::Write, throttled);
        let s = m.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, ("t".to_string(), 0));
        let w = &s[0].1.write;
        assert_eq!(w.requests.load(Ordering::Relaxed), 2);
        assert_eq!(w.bytes.load(Ordering::Relaxed), 7);
        assert_eq!(w.errors.load(Ordering::Relaxed), 1);
        assert_eq!(w.throttled.load(Ordering::Relaxed), 1);
        let r = &s[1].1.read;
        assert_eq!(r.requests.load(Ordering::Relaxed), 2);
        assert_eq!(r.bytes.load(Ordering::Relaxed), 15);
        assert_eq!(r.latency.snapshot().count, 2);
        m.forget_table("t");
        assert!(m.snapshot().is_empty());
    }
}
