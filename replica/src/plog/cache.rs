//! The plog's in-memory view of its entries: an index of where every live entry sits in the
//! segment files, and a bounded cache of the newest entries themselves.
//!
//! The segments hold every entry above the purge mark, so memory only needs to hold what is
//! read often: the tail openraft applies and replicates to followers that keep up. Older
//! entries (a lagging follower, duplication held back by its retain floor) are read back from
//! their segment through the index ([`super::segment::read_entries`]). The cache holds at most
//! [`CacheLimits::entries_max`] entries and [`CacheLimits::bytes_max`] bytes (counted as the
//! framed record size on disk), evicting the oldest decree first; an entry larger than the whole
//! byte cap is never cached.
//!
//! The index itself costs [`INDEX_ENTRY_BYTES`] per live entry (a few dozen bytes, whatever the
//! payload size), reported separately in [`super::PlogStats`].

use crate::raft::TypeConfig;
use openraft::{Entry, LogId};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Default cap on the bytes of entries the plog keeps in memory (framed record bytes).
pub const MAX_PLOG_CACHE_BYTES: u64 = 64 << 20;
/// Default cap on the number of entries the plog keeps in memory.
pub const MAX_PLOG_CACHE_ENTRIES: usize = 64 * 1024;
/// Approximate memory of one index slot ([`EntryLoc`] plus its map key), for stats.
pub const INDEX_ENTRY_BYTES: u64 = (std::mem::size_of::<EntryLoc>() + 8) as u64;

/// Where one entry's record sits in the segment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLoc {
    /// The entry's log id (the index answers `last_log_id` and purge-floor lookups).
    pub log_id: LogId<u64>,
    /// Sequence number of the segment holding the record.
    pub seq: u64,
    /// Byte offset of the record's frame within the segment.
    pub offset: u64,
    /// Framed length of the record.
    pub len: u32,
}

/// The bounds of the entry cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most entries held in memory.
    pub entries_max: usize,
    /// Most framed record bytes held in memory.
    pub bytes_max: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            entries_max: MAX_PLOG_CACHE_ENTRIES,
            bytes_max: MAX_PLOG_CACHE_BYTES,
        }
    }
}

/// One element of a read plan: an entry already in memory, or where to read it.
#[derive(Debug)]
pub enum Planned {
    /// Cloned from the cache.
    Cached(Entry<TypeConfig>),
    /// To be read from its segment.
    OnDisk(EntryLoc),
}

/// Index of every live entry plus the bounded cache of the newest ones.
#[derive(Debug, Default)]
pub struct EntryCache {
    limits: CacheLimits,
    index: BTreeMap<u64, EntryLoc>,
    cached: BTreeMap<u64, Entry<TypeConfig>>,
    cached_bytes: u64,
}

impl EntryCache {
    /// An empty cache bounded by `limits`.
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Records `entry` at `loc` (replacing any entry at the same decree) and caches it,
    /// evicting the oldest cached entries past the limits.
    pub fn insert(&mut self, entry: Entry<TypeConfig>, loc: EntryLoc) {
        let decree = loc.log_id.index;
        self.uncache(decree);
        self.index.insert(decree, loc);
        if u64::from(loc.len) <= self.limits.bytes_max && self.limits.entries_max > 0 {
            self.cached.insert(decree, entry);
            self.cached_bytes += u64::from(loc.len);
        }
        self.evict();
    }

    fn evict(&mut self) {
        while self.cached.len() > self.limits.entries_max
            || self.cached_bytes > self.limits.bytes_max
        {
            let Some((&oldest, _)) = self.cached.iter().next() else {
                break;
            };
            self.uncache(oldest);
        }
        debug_assert!(self.cached_bytes <= self.limits.bytes_max);
    }

    fn uncache(&mut self, decree: u64) {
        if self.cached.remove(&decree).is_some() {
            let len = self.index.get(&decree).map_or(0, |l| u64::from(l.len));
            self.cached_bytes -= len;
        }
    }

    /// Drops every entry with decree `>= from` (a truncation).
    pub fn remove_from(&mut self, from: u64) {
        let gone = self.index.split_off(&from);
        for d in gone.keys() {
            if self.cached.remove(d).is_some() {
                self.cached_bytes -= gone.get(d).map_or(0, |l| u64::from(l.len));
            }
        }
    }

    /// Drops every entry with decree `<= upto` (a purge).
    pub fn remove_upto(&mut self, upto: u64) {
        let keep = self.index.split_off(&upto.saturating_add(1));
        let gone = std::mem::replace(&mut self.index, keep);
        for d in gone.keys() {
            if self.cached.remove(d).is_some() {
                self.cached_bytes -= gone.get(d).map_or(0, |l| u64::from(l.len));
            }
        }
    }

    /// The log id of the newest entry.
    pub fn last_log_id(&self) -> Option<LogId<u64>> {
        self.index.values().next_back().map(|l| l.log_id)
    }

    /// The log id of the entry at `decree`, if live.
    pub fn log_id(&self, decree: u64) -> Option<LogId<u64>> {
        self.index.get(&decree).map(|l| l.log_id)
    }

    /// What a read of `range` needs, in decree order: cached entries cloned, the rest located.
    pub fn plan(&self, range: (Bound<u64>, Bound<u64>)) -> Vec<Planned> {
        self.index
            .range(range)
            .map(|(d, loc)| match self.cached.get(d) {
                Some(e) => Planned::Cached(e.clone()),
                None => Planned::OnDisk(*loc),
            })
            .collect()
    }

    /// Live entries (in memory or not).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Entries held in memory.
    pub fn cached_entries(&self) -> usize {
        self.cached.len()
    }

    /// Framed record bytes of the entries held in memory (never above the byte limit).
    pub fn cached_bytes(&self) -> u64 {
        self.cached_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn put(c: &mut EntryCache, d: u64, len: u32) {
        let log_id = LogId::new(CommittedLeaderId::new(1, 1), d);
        let e = Entry {
            log_id,
            payload: EntryPayload::Blank,
        };
        let loc = EntryLoc {
            log_id,
            seq: 0,
            offset: d * 100,
            len,
        };
        c.insert(e, loc);
    }

    fn on_disk(c: &EntryCache) -> Vec<u64> {
        c.plan((Bound::Unbounded, Bound::Unbounded))
            .iter()
            .filter_map(|p| match p {
                Planned::OnDisk(l) => Some(l.log_id.index),
                Planned::Cached(_) => None,
            })
            .collect()
    }

    #[test]
    fn evicts_oldest_within_both_limits_and_accounts_bytes() {
        let mut c = EntryCache::new(CacheLimits {
            entries_max: 3,
            bytes_max: 250,
        });
        for d in 0..5 {
            put(&mut c, d, 100);
        }
        // Bytes bind first: two 100-byte entries fit in 250.
        assert_eq!(c.cached_entries(), 2);
        assert_eq!(c.cached_bytes(), 200);
        assert_eq!(on_disk(&c), vec![0, 1, 2]);
        // Too large to cache at all.
        put(&mut c, 5, 300);
        assert_eq!(on_disk(&c), vec![0, 1, 2, 5]);
        assert_eq!(c.cached_bytes(), 200);
        // Overwrite (after truncation) keeps the accounting exact.
        c.remove_from(4);
        assert_eq!(c.cached_bytes(), 100);
        put(&mut c, 4, 50);
        assert_eq!(c.cached_bytes(), 150);
        c.remove_upto(3);
        assert_eq!(c.len(), 1);
        assert_eq!(c.cached_bytes(), 50);
        assert_eq!(c.last_log_id().map(|l| l.index), Some(4));
    }
}
