//! Hot-key detection (Pegasus' hotkey detector): per partition, a sample of the reads and writes
//! this node serves is counted in bounded memory, and the keys that take most of them are
//! reported (`silt-admin hotkeys`; the report types are `siltdb_client::hotkeys`).
//!
//! Layer: node infrastructure (the node owns one [`HotKeys`]; [`crate::dispatch`] feeds it).
//!
//! - **Sampling.** One request in [`HOTKEY_SAMPLE_EVERY`] is counted, chosen by a pseudo-random
//!   sequence (a splitmix64 of a request counter), so that periodic traffic cannot alias with
//!   the sampler. Only requests answered without error count. Counts are reported multiplied
//!   back by the rate.
//! - **Counting.** Each partition and kind has a space-saving top-k counter ([`TopK`], Metwally
//!   et al.) of [`HOTKEY_SLOTS`] slots: a key not counted yet takes the slot of the least counted
//!   key, inheriting its count as its error bound. Every key whose true count exceeds
//!   `total / HOTKEY_SLOTS` is guaranteed a slot. Keys longer than [`MAX_HOTKEY_KEY_BYTES`] are
//!   counted by their prefix.
//! - **Windows.** Counts are kept for two windows of [`HOTKEY_WINDOW`]: the current one and the
//!   one before; a report sums both, so it covers the last one to two windows and old hot keys
//!   fade out.
//!
//! Memory per partition: 2 kinds × 2 windows × [`HOTKEY_SLOTS`] keys of at most
//! [`MAX_HOTKEY_KEY_BYTES`] bytes.

use crate::proto::ClientRequest;
use parking_lot::Mutex;
use siltdb_client::hotkeys::{HotKey, HotKeyKind, PartitionHotKeys};
use siltdb_client::pegasus::{AtomicKind, PegasusRequest};
use siltdb_replica::{Gpid, WriteOp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Keys counted per partition, kind and window (the space-saving counter's slots).
pub const HOTKEY_SLOTS: usize = 32;
/// One request in this many is counted.
pub const HOTKEY_SAMPLE_EVERY: u64 = 4;
/// Longest key prefix counted.
pub const MAX_HOTKEY_KEY_BYTES: usize = 256;
/// Length of one counting window.
pub const HOTKEY_WINDOW: Duration = Duration::from_secs(60);
/// Most keys of one sampled multi-key write counted.
pub const MAX_HOTKEY_KEYS_PER_REQUEST: usize = 16;

/// A space-saving top-k counter of at most `capacity` keys.
#[derive(Debug, Clone)]
pub struct TopK {
    capacity: usize,
    /// key → (count, error bound).
    slots: HashMap<Vec<u8>, (u64, u64)>,
    total: u64,
}

impl TopK {
    /// An empty counter of `capacity` slots (at least 1).
    pub fn new(capacity: usize) -> TopK {
        TopK {
            capacity: capacity.max(1),
            slots: HashMap::with_capacity(capacity.max(1)),
            total: 0,
        }
    }

    /// Counts one occurrence of `key` (its first [`MAX_HOTKEY_KEY_BYTES`] bytes).
    pub fn add(&mut self, key: &[u8]) {
        let key = &key[..key.len().min(MAX_HOTKEY_KEY_BYTES)];
        self.total = self.total.saturating_add(1);
        if let Some(slot) = self.slots.get_mut(key) {
            slot.0 = slot.0.saturating_add(1);
            return;
        }
        if self.slots.len() < self.capacity {
            self.slots.insert(key.to_vec(), (1, 0));
            return;
        }
        // Full: the least counted key gives its slot up; the newcomer inherits its count.
        let Some((victim, (min, _))) = self
            .slots
            .iter()
            .min_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(a.0)))
            .map(|(k, v)| (k.clone(), *v))
        else {
            return;
        };
        self.slots.remove(&victim);
        self.slots
            .insert(key.to_vec(), (min.saturating_add(1), min));
    }

    /// Occurrences counted (all keys).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The counted keys with (count, error), most counted first (ties by key).
    pub fn top(&self) -> Vec<(Vec<u8>, u64, u64)> {
        let mut v: Vec<_> = self
            .slots
            .iter()
            .map(|(k, (c, e))| (k.clone(), *c, *e))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    }
}

/// The two windows of one partition and kind.
#[derive(Debug)]
struct Windows {
    started: Instant,
    current: TopK,
    previous: Option<TopK>,
}

impl Windows {
    fn new(now: Instant) -> Windows {
        Windows {
            started: now,
            current: TopK::new(HOTKEY_SLOTS),
            previous: None,
        }
    }

    fn rotate(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.started);
        if age < HOTKEY_WINDOW {
            return;
        }
        let done = std::mem::replace(&mut self.current, TopK::new(HOTKEY_SLOTS));
        // Two windows or more without a sample: nothing recent to keep.
        self.previous = (age < HOTKEY_WINDOW * 2).then_some(done);
        self.started = now;
    }

    fn report(&self, partition: u32, kind: HotKeyKind) -> PartitionHotKeys {
        let mut keys: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
        let mut total = 0u64;
        for w in std::iter::once(&self.current).chain(self.previous.as_ref()) {
            total = total.saturating_add(w.total());
            for (k, c, e) in w.top() {
                let slot = keys.entry(k).or_default();
                slot.0 = slot.0.saturating_add(c);
                slot.1 = slot.1.saturating_add(e);
            }
        }
        let scale = |n: u64| n.saturating_mul(HOTKEY_SAMPLE_EVERY);
        let mut keys: Vec<HotKey> = keys
            .into_iter()
            .map(|(key, (c, e))| HotKey {
                key,
                count: scale(c),
                error: scale(e),
            })
            .collect();
        keys.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        keys.truncate(HOTKEY_SLOTS);
        PartitionHotKeys {
            partition,
            kind,
            total: scale(total),
            keys,
        }
    }
}

/// A sampled request's keys, to count once it is answered.
#[derive(Debug)]
pub struct Sample {
    table: String,
    partition: u32,
    kind: HotKeyKind,
    keys: Vec<Vec<u8>>,
}

/// The hot-key counters of one node's partitions.
#[derive(Debug, Default)]
pub struct HotKeys {
    requests: AtomicU64,
    parts: Mutex<HashMap<(Gpid, HotKeyKind), Windows>>,
}

/// splitmix64: a well-mixed pseudo-random value of `n`.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The table, partition, kind and keys of a request the detector counts; `None` for others.
fn keys_of(req: &ClientRequest) -> Option<(&str, u32, HotKeyKind, Vec<Vec<u8>>)> {
    use HotKeyKind::{Read, Write};
    match req {
        ClientRequest::Get {
            table,
            partition,
            key,
        } => Some((table, *partition, Read, vec![key.clone()])),
        ClientRequest::Write {
            table,
            partition,
            ops,
        } => {
            let keys = ops
                .iter()
                .filter_map(|op| match op {
                    WriteOp::Put { key, .. } | WriteOp::Delete { key } => Some(key.clone()),
                    WriteOp::DeleteRange { .. } => None,
                })
                .take(MAX_HOTKEY_KEYS_PER_REQUEST)
                .collect();
            Some((table, *partition, Write, keys))
        }
        ClientRequest::Pegasus {
            table,
            partition,
            req,
        } => {
            let (kind, hash_key) = match req {
                PegasusRequest::MultiGet { hash_key, .. }
                | PegasusRequest::Scan { hash_key, .. }
                | PegasusRequest::SortKeyCount { hash_key } => (Read, hash_key),
                PegasusRequest::MultiSet { hash_key, .. }
                | PegasusRequest::MultiDel { hash_key, .. } => (Write, hash_key),
                PegasusRequest::Atomic(
                    AtomicKind::CheckAndMutate { hash_key, .. } | AtomicKind::Incr { hash_key, .. },
                ) => (Write, hash_key),
                PegasusRequest::ScanPartition { .. } => return None,
            };
            Some((table, *partition, kind, vec![hash_key.clone()]))
        }
        _ => None,
    }
}

impl crate::node::Node {
    /// Counts a sampled request answered without error, on the partition it named.
    pub(crate) fn count_hot_keys(&self, sample: Sample) {
        let Ok(layout) = self.table(&sample.table) else {
            return;
        };
        if sample.partition < layout.partition_count {
            self.hot_keys.record(layout.gpid(sample.partition), sample);
        }
    }

    /// This node's hot-key reports of `table` ([`ClientRequest::HotKeys`]).
    pub(crate) fn hot_key_report(
        &self,
        table: &str,
        kind: Option<HotKeyKind>,
    ) -> Result<crate::proto::ClientResponse, crate::error::ServerError> {
        let layout = self.table(table)?;
        Ok(crate::proto::ClientResponse::HotKeys(
            self.hot_keys.report(layout.app_id, kind),
        ))
    }
}

impl HotKeys {
    /// Whether this request is one of the sampled ones; when it is, its keys (copied before
    /// the request is consumed).
    pub fn sample(&self, req: &ClientRequest) -> Option<Sample> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        if !mix(n).is_multiple_of(HOTKEY_SAMPLE_EVERY) {
            return None;
        }
        let (table, partition, kind, keys) = keys_of(req)?;
        Some(Sample {
            table: table.to_string(),
            partition,
            kind,
            keys,
        })
    }

    /// Counts a sampled request of partition `gpid` (answered without error).
    pub fn record(&self, gpid: Gpid, sample: Sample) {
        let now = Instant::now();
        let mut parts = self.parts.lock();
        let w = parts
            .entry((gpid, sample.kind))
            .or_insert_with(|| Windows::new(now));
        w.rotate(now);
        for k in &sample.keys {
            w.current.add(k);
        }
    }

    /// The reports of table `app_id`'s partitions counted here (of `kind`, or both), by
    /// partition and kind.
    pub fn report(&self, app_id: u32, kind: Option<HotKeyKind>) -> Vec<PartitionHotKeys> {
        let now = Instant::now();
        let mut parts = self.parts.lock();
        let mut out: Vec<PartitionHotKeys> = parts
            .iter_mut()
            .filter(|((g, k), _)| g.app_id == app_id && kind.is_none_or(|want| want == *k))
            .map(|((g, k), w)| {
                w.rotate(now);
                w.report(g.partition_index, *k)
            })
            .filter(|r| r.total > 0)
            .collect();
        out.sort_by_key(|r| (r.partition, r.kind));
        out
    }

    /// Drops the counters of a partition this node no longer hosts.
    pub fn forget(&self, gpid: Gpid) {
        self.parts.lock().retain(|(g, _), _| *g != gpid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_finds_the_heavy_key_in_bounded_memory() {
        let mut t = TopK::new(8);
        // 10,000 distinct cold keys, and one key taking a fifth of the traffic: more than
        // total / capacity, so the counter is guaranteed to keep it.
        for i in 0..10_000u32 {
            t.add(format!("cold-{i}").as_bytes());
            if i % 4 == 0 {
                t.add(b"hot");
            }
        }
        assert_eq!(t.slots.len(), 8, "never more slots than the capacity");
        let top = t.top();
        assert_eq!(top[0].0, b"hot".to_vec(), "{:?}", &top[..2]);
        let (count, error) = (top[0].1, top[0].2);
        let truth = 10_000u64 / 4;
        // The space-saving bounds: count - error <= truth <= count.
        assert!(
            count >= truth && count - error <= truth,
            "{count} {error} {truth}"
        );
        assert_eq!(t.total(), 10_000 + truth);
    }

    #[test]
    fn exact_while_the_keys_fit_and_long_keys_count_by_prefix() {
        let mut t = TopK::new(4);
        for (k, n) in [("a", 5), ("b", 3), ("c", 1)] {
            for _ in 0..n {
                t.add(k.as_bytes());
            }
        }
        let top = t.top();
        assert_eq!(
            top,
            vec![
                (b"a".to_vec(), 5, 0),
                (b"b".to_vec(), 3, 0),
                (b"c".to_vec(), 1, 0)
            ]
        );
        let long = vec![7u8; MAX_HOTKEY_KEY_BYTES + 10];
        let mut other = long.clone();
        other[MAX_HOTKEY_KEY_BYTES + 5] = 8;
        t.add(&long);
        t.add(&other);
        let top = t.top();
        assert_eq!(top[2].0.len(), MAX_HOTKEY_KEY_BYTES);
        assert_eq!(top[2].1, 2, "same prefix, one key");
    }

    #[test]
    fn windows_rotate_and_fade() {
        let t0 = Instant::now();
        let mut w = Windows::new(t0);
        w.current.add(b"x");
        w.rotate(t0 + HOTKEY_WINDOW);
        w.current.add(b"y");
        let r = w.report(3, HotKeyKind::Read);
        assert_eq!(r.total, 2 * HOTKEY_SAMPLE_EVERY);
        assert_eq!(r.keys.len(), 2);
        // Two more windows later the old counts are gone.
        w.rotate(t0 + HOTKEY_WINDOW * 4);
        assert_eq!(w.report(3, HotKeyKind::Read).total, 0);
    }

    #[test]
    fn sampling_takes_about_one_in_n_and_only_keyed_requests() {
        let h = HotKeys::default();
        let get = ClientRequest::Get {
            table: "t".into(),
            partition: 1,
            key: b"k".to_vec(),
        };
        let n = 40_000u64;
        let taken = (0..n).filter(|_| h.sample(&get).is_some()).count() as u64;
        let want = n / HOTKEY_SAMPLE_EVERY;
        assert!(taken > want * 9 / 10 && taken < want * 11 / 10, "{taken}");
        let list = ClientRequest::ListTables;
        assert!((0..100).all(|_| h.sample(&list).is_none()));
        let g = Gpid::new(1, 1);
        for _ in 0..100 {
            if let Some(s) = h.sample(&get) {
                h.record(g, s);
            }
        }
        let r = h.report(1, Some(HotKeyKind::Read));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].keys[0].key, b"k".to_vec());
        assert!(h.report(1, Some(HotKeyKind::Write)).is_empty());
        h.forget(g);
        assert!(h.report(1, None).is_empty());
    }
}
