//! Collapsing a RocksDB table to one version per key, and writing it as a siltdb table.
//!
//! An ingested file gets one global seqno, so the versions inside it must be resolved first:
//! for every user key the newest entry is kept, and dropped if a range deletion of the same file
//! with a higher sequence number covers it. Files written by `SstFileWriter` (every key at
//! seqno 0, one version per key) come out unchanged; files flushed by a RocksDB database come
//! out as their contents as of their newest write. The range deletions are kept (they delete
//! older data of the database the file is ingested into).

use super::table::{RocksKind, RocksTable};
use crate::key::{self, RangeTombstone, ValueKind};
use crate::sst::TableBuilder;
use crate::Result;

/// Calls `f(user_key, Some(value) | None for a deletion)` for the collapsed contents of `t`, in
/// key order; returns the table's range deletions.
pub fn collapsed(
    t: &RocksTable,
    mut f: impl FnMut(&[u8], Option<&[u8]>) -> Result<()>,
) -> Result<Vec<RangeTombstone>> {
    let tombstones = t.range_tombstones()?;
    let mut last: Option<Vec<u8>> = None;
    t.scan(|e| {
        if last.as_deref() == Some(e.key.as_slice()) {
            return Ok(()); // an older version of the key just handled
        }
        last = Some(e.key.clone());
        let covered = tombstones
            .iter()
            .any(|r| r.seq > e.seq && r.start.as_slice() <= e.key.as_slice() && e.key < r.end);
        if covered {
            return Ok(());
        }
        match e.kind {
            RocksKind::Value => f(&e.key, Some(&e.value)),
            RocksKind::Deletion | RocksKind::SingleDeletion => f(&e.key, None),
        }
    })?;
    Ok(tombstones)
}

/// What [`write_siltdb`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Point entries written.
    pub entries: u64,
    /// Range tombstones written.
    pub tombstones: usize,
    /// Smallest user key covered (point key or tombstone start); `None` if nothing.
    pub smallest: Option<Vec<u8>>,
    /// Largest user key covered (point key, or a tombstone's exclusive end as an upper bound).
    pub largest: Option<Vec<u8>>,
}

/// Writes the collapsed contents of `t` into `b` at seqno 0 (the ingestion assigns the global
/// seqno). The caller finishes `b`.
pub fn write_siltdb(t: &RocksTable, b: &mut TableBuilder) -> Result<Converted> {
    let mut ikey = Vec::new();
    let mut out = Converted {
        entries: 0,
        tombstones: 0,
        smallest: None,
        largest: None,
    };
    let mut first: Option<Vec<u8>> = None;
    let mut last: Option<Vec<u8>> = None;
    let tombstones = collapsed(t, |k, v| {
        ikey.clear();
        let kind = if v.is_some() {
            ValueKind::Put
        } else {
            ValueKind::Delete
        };
        key::append_internal_key(&mut ikey, k, 0, kind as u8);
        b.add(&ikey, v.unwrap_or(&[]))?;
        if first.is_none() {
            first = Some(k.to_vec());
        }
        last = Some(k.to_vec());
        out.entries += 1;
        Ok(())
    })?;
    let mut lo = first;
    let mut hi = last;
    for r in tombstones {
        if r.start >= r.end {
            continue;
        }
        if lo.as_ref().is_none_or(|l| r.start < *l) {
            lo = Some(r.start.clone());
        }
        if hi.as_ref().is_none_or(|h| r.end > *h) {
            hi = Some(r.end.clone());
        }
        out.tombstones += 1;
        b.add_range_tombstone(RangeTombstone {
            start: r.start,
            end: r.end,
            seq: 0,
        });
    }
    out.smallest = lo;
    out.largest = hi;
    Ok(out)
}
