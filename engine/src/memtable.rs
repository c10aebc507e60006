//! The memtable: a concurrent skiplist of internal keys, plus the range tombstones written to it.
//!
//! Writers insert under the write-queue leadership (one at a time); readers search and iterate
//! without locks. A memtable is frozen (made immutable) when it reaches `memtable_size_bytes` and
//! is then flushed to an L0 SST by a background thread.

use crate::iter::InternalIterator;
use crate::key::{self, RangeTombstone, SeqNo, ValueKind};
use crate::skiplist::{Cursor, KeyOrder, SkipList};
use crate::Result;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

/// Per-entry bookkeeping estimate (node header, average tower of next pointers, trailer).
const ENTRY_OVERHEAD_BYTES: usize = 40;

/// What a point lookup found in one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// A value written at this seqno.
    Value(SeqNo, Vec<u8>),
    /// A point tombstone at this seqno.
    Deleted(SeqNo),
}

/// Internal-key order for the memtable's skiplist.
struct InternalOrder;

impl KeyOrder for InternalOrder {
    #[inline]
    fn cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        key::cmp_internal(a, b)
    }
}

/// A memtable and the WAL that holds its data.
pub(crate) struct MemTable {
    map: SkipList<InternalOrder>,
    range_dels: RwLock<Vec<RangeTombstone>>,
    size_bytes: AtomicUsize,
    /// Bytes of this memtable charged to a shared write-buffer budget so far.
    charged: AtomicUsize,
    /// Largest write tag applied, plus one (0 = none).
    max_tag: AtomicU64,
    /// Number of the WAL file holding this memtable's writes.
    pub(crate) log_number: u64,
}

impl std::fmt::Debug for MemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemTable")
            .field("entries", &self.map.len())
            .field("size_bytes", &self.size_bytes())
            .field("log_number", &self.log_number)
            .finish()
    }
}

impl MemTable {
    pub(crate) fn new(log_number: u64) -> Self {
        MemTable {
            map: SkipList::new(),
            range_dels: RwLock::new(Vec::new()),
            size_bytes: AtomicUsize::new(0),
            charged: AtomicUsize::new(0),
            max_tag: AtomicU64::new(0),
            log_number,
        }
    }

    /// Adds one entry. Callers serialize inserts (the write-queue leader).
    pub(crate) fn add(&self, seq: SeqNo, kind: ValueKind, user_key: &[u8], value: &[u8]) {
        match kind {
            ValueKind::RangeDelete if user_key >= value => {} // empty range: nothing to delete
            ValueKind::RangeDelete => {
                self.range_dels.write().push(RangeTombstone {
                    start: user_key.to_vec(),
                    end: value.to_vec(),
                    seq,
                });
            }
            _ => {
                self.map.insert_composed(
                    |k| key::append_internal_key(k, user_key, seq, kind as u8),
                    value,
                );
            }
        }
        self.size_bytes.fetch_add(
            user_key.len() + value.len() + ENTRY_OVERHEAD_BYTES,
            AtomicOrdering::Relaxed,
        );
    }

    /// Records that writes carrying `tag` are in this memtable.
    pub(crate) fn note_tag(&self, tag: u64) {
        // Stored as tag + 1 so that 0 means "no tag" and tag 0 is representable.
        self.max_tag
            .fetch_max(tag.saturating_add(1), AtomicOrdering::Relaxed);
    }

    /// The largest tag applied, if any.
    pub(crate) fn max_tag(&self) -> Option<u64> {
        self.max_tag.load(AtomicOrdering::Relaxed).checked_sub(1)
    }

    /// Approximate memory used.
    pub(crate) fn size_bytes(&self) -> usize {
        self.size_bytes.load(AtomicOrdering::Relaxed)
    }

    /// Growth since the last call (what to charge to a write-buffer budget now).
    pub(crate) fn charge_delta(&self) -> usize {
        let now = self.size_bytes();
        now.saturating_sub(self.charged.swap(now, AtomicOrdering::Relaxed))
    }

    /// Bytes charged so far.
    pub(crate) fn charged(&self) -> usize {
        self.charged.load(AtomicOrdering::Relaxed)
    }

    /// Bytes charged so far, resetting the charge (the memtable is released).
    pub(crate) fn take_charged(&self) -> usize {
        self.charged.swap(0, AtomicOrdering::Relaxed)
    }

    /// True when nothing was written, not even a tag.
    pub(crate) fn is_empty(&self) -> bool {
        !self.has_data() && self.max_tag().is_none()
    }

    /// True when it holds entries or range tombstones (a memtable holding only a tag has none,
    /// but flushing it still makes the tag durable).
    pub(crate) fn has_data(&self) -> bool {
        !self.map.is_empty() || !self.range_dels.read().is_empty()
    }

    /// Newest point entry for `user_key` visible at `seq`.
    #[cfg(test)]
    pub(crate) fn get(&self, user_key: &[u8], seq: SeqNo) -> Option<Found> {
        self.get_at(&key::seek_key(user_key, seq))
    }

    /// Newest point entry for the user key of `lookup` (a [`key::seek_key`]) visible at its seqno.
    pub(crate) fn get_at(&self, lookup: &[u8]) -> Option<Found> {
        let user_key = key::user_key(lookup);
        let c = self.map.seek(lookup);
        // SAFETY: `self.map` is alive for the whole call.
        let (k, v) = unsafe { (c.key(), c.value()) };
        let (uk, s, kind) = key::parse(k)?;
        if uk != user_key {
            return None;
        }
        match kind {
            ValueKind::Put => Some(Found::Value(s, v.to_vec())),
            _ => Some(Found::Deleted(s)),
        }
    }

    /// Range tombstones written to this memtable.
    pub(crate) fn range_tombstones(&self) -> Vec<RangeTombstone> {
        self.range_dels.read().clone()
    }

    /// Largest seqno `<= read_seq` of a tombstone here covering `user_key` (0 = none).
    pub(crate) fn max_covering_tombstone(&self, user_key: &[u8], read_seq: SeqNo) -> SeqNo {
        self.range_dels
            .read()
            .iter()
            .filter(|t| {
                t.seq <= read_seq && t.start.as_slice() <= user_key && user_key < t.end.as_slice()
            })
            .map(|t| t.seq)
            .max()
            .unwrap_or(0)
    }

    /// A cursor over the point entries.
    pub(crate) fn iter(self: &Arc<Self>) -> MemIter {
        MemIter {
            cur: Cursor::NONE,
            mem: Arc::clone(self),
        }
    }
}

/// A cursor over a memtable. Holds the memtable alive.
pub(crate) struct MemIter {
    cur: Cursor,
    mem: Arc<MemTable>,
}

impl InternalIterator for MemIter {
    fn valid(&self) -> bool {
        self.cur.valid()
    }
    fn seek_to_first(&mut self) {
        self.cur = self.mem.map.first();
    }
    fn seek_to_last(&mut self) {
        self.cur = self.mem.map.last();
    }
    fn seek(&mut self, target: &[u8]) {
        self.cur = self.mem.map.seek(target);
    }
    fn seek_for_prev(&mut self, target: &[u8]) {
        self.cur = self.mem.map.seek_for_prev(target);
    }
    fn next(&mut self) {
        self.cur = self.mem.map.next(self.cur);
    }
    fn prev(&mut self) {
        self.cur = self.mem.map.prev(self.cur);
    }
    fn key(&self) -> &[u8] {
        // SAFETY: `self.mem` keeps the skiplist `cur` points into alive for as long as `self`.
        unsafe { self.cur.key() }
    }
    fn value(&self) -> &[u8] {
        // SAFETY: as for `key`.
        unsafe { self.cur.value() }
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_sees_newest_visible_version() {
        let m = MemTable::new(1);
        m.add(1, ValueKind::Put, b"k", b"v1");
        m.add(2, ValueKind::Put, b"k", b"v2");
        m.add(3, ValueKind::Delete, b"k", b"");
        assert_eq!(m.get(b"k", 1), Some(Found::Value(1, b"v1".to_vec())));
        assert_eq!(m.get(b"k", 2), Some(Found::Value(2, b"v2".to_vec())));
        assert_eq!(m.get(b"k", 9), Some(Found::Deleted(3)));
        assert_eq!(m.get(b"j", 9), None);
        assert_eq!(m.get(b"k", 0), None);
    }

    #[test]
    fn iterator_outlives_other_handles_and_moves_both_ways() {
        let m = Arc::new(MemTable::new(1));
        for i in 0..100u32 {
            m.add(
                u64::from(i) + 1,
                ValueKind::Put,
                format!("k{i:03}").as_bytes(),
                b"v",
            );
        }
        let mut it = m.iter();
        drop(m); // the iterator keeps the memtable alive
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        assert_eq!(n, 100);
        it.seek_to_last();
        assert_eq!(key::user_key(it.key()), b"k099");
        it.prev();
        assert_eq!(key::user_key(it.key()), b"k098");
        it.seek(&key::seek_key(b"k050", u64::MAX >> 8));
        assert_eq!(key::user_key(it.key()), b"k050");
        it.seek_for_prev(&key::seek_key(b"k0505", 1));
        assert_eq!(key::user_key(it.key()), b"k050");
    }

    #[test]
    fn range_tombstones_cover_by_seq() {
        let m = MemTable::new(1);
        m.add(5, ValueKind::RangeDelete, b"a", b"m");
        assert_eq!(m.max_covering_tombstone(b"c", 10), 5);
        assert_eq!(m.max_covering_tombstone(b"c", 4), 0);
        assert_eq!(m.max_covering_tombstone(b"m", 10), 0);
    }
}
