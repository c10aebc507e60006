//! The read path: point lookups and iterators (properties and stats are in `properties.rs`).

use super::{Db, DbInner, SuperVersion};
use crate::compaction::read_trigger;
use crate::iter::db_iter::{DbIter, IterSource};
use crate::iter::level::LevelIter;
use crate::iter::merge::MergingIterator;
use crate::iter::{BoxedIter, InternalIterator};
use crate::key::{self, RangeTombstone, SeqNo, ValueKind};
use crate::manifest::NUM_LEVELS;
use crate::memtable::Found;
use crate::range_del::Fragments;
use crate::sst::ReadFlags;
use crate::table_cache::TableCache;
use crate::{Error, ReadOptions, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The iterator returned by [`Db::iter`].
pub type DbIterator = DbIter;

impl Db {
    /// The value of `key`, if present.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.get_opt(key, &ReadOptions::default())
    }

    /// The value of `key` as of `opts.snapshot` (or the latest state).
    pub fn get_opt(&self, key: impl AsRef<[u8]>, opts: &ReadOptions) -> Result<Option<Vec<u8>>> {
        self.inner.check_open()?;
        let sv = self.inner.current_sv();
        let seq = self.inner.read_seq(opts);
        self.inner.get_in(&sv, key.as_ref(), seq, flags(opts))
    }

    /// An iterator over the keys in `[opts.lower_bound, opts.upper_bound)`, ascending
    /// (`next_back` descends), as of `opts.snapshot` or now. Creation never fails; errors come
    /// out as items.
    pub fn iter(&self, opts: &ReadOptions) -> DbIterator {
        if let Err(e) = self.inner.check_open() {
            return DbIter::failed(e);
        }
        let sv = self.inner.current_sv();
        let seq = self.inner.read_seq(opts);
        self.inner.iter_in(sv, seq, opts)
    }
}

fn flags(opts: &ReadOptions) -> ReadFlags {
    ReadFlags {
        verify_checksums: opts.verify_checksums,
        fill_cache: opts.fill_cache,
    }
}

impl DbInner {
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("the database was closed".into()));
        }
        Ok(())
    }

    pub(crate) fn current_sv(&self) -> Arc<SuperVersion> {
        Arc::clone(&self.sv.read())
    }

    fn read_seq(&self, opts: &ReadOptions) -> SeqNo {
        match &opts.snapshot {
            Some(s) => s.seqno(),
            None => self.last_seq.load(Ordering::Acquire),
        }
    }

    /// Point lookup in a pinned super version.
    pub(crate) fn get_in(
        &self,
        sv: &SuperVersion,
        user_key: &[u8],
        seq: SeqNo,
        flags: ReadFlags,
    ) -> Result<Option<Vec<u8>>> {
        let lookup = key::seek_key(user_key, seq);
        let mut tomb: SeqNo = 0;
        for m in std::iter::once(&sv.mem).chain(sv.imms.iter()) {
            tomb = tomb.max(m.max_covering_tombstone(user_key, seq));
            if let Some(found) = m.get_at(&lookup) {
                return Ok(resolve(found, tomb));
            }
        }
        let v = &sv.version;
        let mut consulted = read_trigger::Consulted::default();
        for f in &v.levels[0] {
            if !f.contains_user_key(user_key) {
                continue;
            }
            consulted.note(self, 0, f);
            let t = self.tables.get(f)?;
            tomb = tomb.max(max_cover(t.range_tombstones(), user_key, seq));
            if let Some(found) = table_get(&t, &lookup, user_key, seq, flags)? {
                return Ok(resolve(found, tomb));
            }
        }
        for level in 1..NUM_LEVELS {
            let i = v.find_file(level, &lookup);
            let Some(f) = v.levels[level].get(i) else {
                continue;
            };
            if !f.contains_user_key(user_key) {
                continue;
            }
            consulted.note(self, level, f);
            let t = self.tables.get(f)?;
            tomb = tomb.max(max_cover(t.range_tombstones(), user_key, seq));
            if let Some(found) = table_get(&t, &lookup, user_key, seq, flags)? {
                return Ok(resolve(found, tomb));
            }
        }
        Ok(None)
    }

    /// An iterator over a pinned super version.
    pub(crate) fn iter_in(&self, sv: Arc<SuperVersion>, seq: SeqNo, opts: &ReadOptions) -> DbIter {
        let lo = opts.lower_bound.as_deref();
        let hi = opts.upper_bound.as_deref();
        let mut tombs: Vec<RangeTombstone> = Vec::new();
        for m in std::iter::once(&sv.mem).chain(sv.imms.iter()) {
            tombs.extend(m.range_tombstones());
        }
        for (_, f) in sv.version.all_files() {
            if f.f.num_range_tombstones == 0 || !f.overlaps(lo, hi) {
                continue;
            }
            match self.tables.get(f) {
                Ok(t) => tombs.extend(t.range_tombstones().iter().cloned()),
                Err(e) => return DbIter::failed(e),
            }
        }
        let fragments = Fragments::build(&tombs, seq);
        self.charge_iterator(&sv.version, lo, hi);
        let source = View {
            sv,
            tables: Arc::clone(&self.tables),
            flags: flags(opts),
            lower: opts.lower_bound.clone(),
            upper: opts.upper_bound.clone(),
        };
        DbIter::new(
            Box::new(source),
            seq,
            fragments,
            opts.lower_bound.clone(),
            opts.upper_bound.clone(),
            opts.snapshot.clone(),
        )
    }
}

fn resolve(found: Found, tomb: SeqNo) -> Option<Vec<u8>> {
    match found {
        Found::Value(s, v) if s >= tomb => Some(v),
        _ => None,
    }
}

fn max_cover(ts: &[RangeTombstone], user_key: &[u8], seq: SeqNo) -> SeqNo {
    ts.iter()
        .filter(|t| t.seq <= seq && t.start.as_slice() <= user_key && user_key < t.end.as_slice())
        .map(|t| t.seq)
        .max()
        .unwrap_or(0)
}

fn table_get(
    t: &crate::sst::Table,
    lookup: &[u8],
    user_key: &[u8],
    seq: SeqNo,
    flags: ReadFlags,
) -> Result<Option<Found>> {
    let Some((k, v)) = t.get(lookup, flags)? else {
        return Ok(None);
    };
    let Some((uk, s, kind)) = key::parse(&k) else {
        return Err(Error::corruption(t.path(), 0, "malformed internal key"));
    };
    if uk != user_key || s > seq {
        // Ingested files carry one seqno for every key: newer than this read sees.
        return Ok(None);
    }
    Ok(Some(match kind {
        ValueKind::Put => Found::Value(s, v),
        _ => Found::Deleted(s),
    }))
}

/// A pinned view that builds merged iterators.
struct View {
    sv: Arc<SuperVersion>,
    tables: Arc<TableCache>,
    flags: ReadFlags,
    lower: Option<Vec<u8>>,
    upper: Option<Vec<u8>>,
}

/// An iterator that is never valid and reports an error.
struct ErrorIter(Error);

impl InternalIterator for ErrorIter {
    fn valid(&self) -> bool {
        false
    }
    fn seek_to_first(&mut self) {}
    fn seek_to_last(&mut self) {}
    fn seek(&mut self, _: &[u8]) {}
    fn seek_for_prev(&mut self, _: &[u8]) {}
    fn next(&mut self) {}
    fn prev(&mut self) {}
    fn key(&self) -> &[u8] {
        &[]
    }
    fn value(&self) -> &[u8] {
        &[]
    }
    fn status(&self) -> Result<()> {
        Err(self.0.duplicate())
    }
}

impl IterSource for View {
    fn build(&self) -> BoxedIter {
        let lo = self.lower.as_deref();
        let hi = self.upper.as_deref();
        let mut children: Vec<BoxedIter> = Vec::new();
        children.push(Box::new(self.sv.mem.iter()));
        for m in &self.sv.imms {
            children.push(Box::new(m.iter()));
        }
        for f in &self.sv.version.levels[0] {
            if !f.overlaps(lo, hi) {
                continue;
            }
            match self.tables.get(f) {
                Ok(t) => children.push(Box::new(t.iter(self.flags))),
                Err(e) => children.push(Box::new(ErrorIter(e))),
            }
        }
        for level in 1..NUM_LEVELS {
            let files = self.sv.version.overlapping(level, lo, hi);
            if !files.is_empty() {
                children.push(Box::new(LevelIter::new(
                    files,
                    Arc::clone(&self.tables),
                    self.flags,
                )));
            }
        }
        Box::new(MergingIterator::new(children))
    }
}

impl Db {
    /// Describes where `user_key` lives (every version in every memtable and file, and the range
    /// tombstones covering it). For debugging and the CLI; the format is not stable.
    #[doc(hidden)]
    pub fn debug_describe_key(&self, user_key: &[u8]) -> String {
        use std::fmt::Write as _;
        let sv = self.inner.current_sv();
        let mut out = String::new();
        let mut dump = |name: String, it: &mut dyn InternalIterator, tombs: &[RangeTombstone]| {
            it.seek(&key::seek_key(user_key, key::MAX_SEQNO));
            while it.valid() && key::user_key(it.key()) == user_key {
                let _ = writeln!(
                    out,
                    "{name}: seq {} kind {}",
                    key::seqno(it.key()),
                    key::kind_byte(it.key())
                );
                it.next();
            }
            for t in tombs {
                if t.start.as_slice() <= user_key && user_key < t.end.as_slice() {
                    let _ = writeln!(out, "{name}: range tombstone seq {}", t.seq);
                }
            }
        };
        dump("mem".into(), &mut sv.mem.iter(), &sv.mem.range_tombstones());
        for (i, m) in sv.imms.iter().enumerate() {
            dump(format!("imm{i}"), &mut m.iter(), &m.range_tombstones());
        }
        for (l, f) in sv.version.all_files() {
            if let Ok(t) = self.inner.tables.get(f) {
                let name = format!(
                    "L{l} file {} [{:?} .. {:?}] seqs {}..{}",
                    f.number(),
                    String::from_utf8_lossy(f.smallest_user()),
                    String::from_utf8_lossy(f.largest_user()),
                    f.f.smallest_seqno,
                    f.f.largest_seqno
                );
                dump(
                    name,
                    &mut t.iter(ReadFlags::default()),
                    t.range_tombstones(),
                );
            }
        }
        out
    }
}
