//! Runs one compaction: merge the inputs, drop what no reader can see, write output files split
//! at the target size and at grandparent-overlap limits, and install the result in one edit.

use super::picker;
use super::{Compaction, FilterDecision};
use crate::db::DbInner;
use crate::iter::level::LevelIter;
use crate::iter::merge::MergingIterator;
use crate::iter::BoxedIter;
use crate::key::{self, RangeTombstone, ValueKind};
use crate::manifest::edit::{NewFile, VersionEdit};
use crate::manifest::version::FileMeta;
use crate::range_del::{stripe, Fragments};
use crate::sst::{ReadFlags, TableBuildOptions, TableBuilder};
use crate::{filename, Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Grandparent overlap (in target file sizes) after which an output file is cut.
const MAX_GRANDPARENT_OVERLAP_FILES: u64 = 10;
/// Bytes between rate-limiter requests.
const RATE_LIMIT_CHUNK: u64 = 256 << 10;

/// Runs `c`, always releasing its claim.
pub(crate) fn run(inner: &DbInner, c: Compaction) -> Result<()> {
    let r = run_claimed(inner, &c);
    let mut st = inner.state.lock();
    picker::release(&mut st.picker, &c);
    r
}

fn run_claimed(inner: &DbInner, c: &Compaction) -> Result<()> {
    // A file is moved without rewriting only when the output level compresses as its level
    // does; otherwise it is rewritten so that `compression_per_level` holds below.
    let same_compression = inner.opts().compression_for_level(c.level)
        == inner.opts().compression_for_level(c.output_level);
    if c.trivial_move && same_compression {
        let f = &c.inputs[0];
        let edit = VersionEdit {
            deleted: vec![(c.level, f.number())],
            added: vec![(c.output_level, f.f.clone())],
            ..Default::default()
        };
        inner.versions.log_and_apply(edit)?;
        inner.stats.trivial_moves.fetch_add(1, Ordering::Relaxed);
        inner.stats.compactions.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let outputs = merge(inner, c)?;
    let mut edit = VersionEdit::default();
    for f in &c.inputs {
        edit.deleted.push((c.level, f.number()));
    }
    for f in &c.next_inputs {
        edit.deleted.push((c.output_level, f.number()));
    }
    let written: u64 = outputs.iter().map(|f| f.size).sum();
    for f in outputs {
        edit.added.push((c.output_level, f));
    }
    // On failure the outputs are kept: a failed sync may still have left the edit in the
    // manifest (deleting them would make the database unopenable); the next open deletes
    // tables no manifest lists.
    inner.versions.log_and_apply(edit)?;
    let s = &inner.stats;
    s.compactions.fetch_add(1, Ordering::Relaxed);
    s.compaction_read_bytes
        .fetch_add(c.input_bytes(), Ordering::Relaxed);
    s.compaction_write_bytes
        .fetch_add(written, Ordering::Relaxed);
    Ok(())
}

struct Outputs<'a> {
    inner: &'a DbInner,
    c: &'a Compaction,
    builder: Option<(u64, TableBuilder)>,
    lower: Option<Vec<u8>>,
    last_user_key: Vec<u8>,
    files: Vec<NewFile>,
    tombstones: Vec<RangeTombstone>,
    gp_index: usize,
    gp_overlap: u64,
    seen_key: bool,
    limited: u64,
}

impl Outputs<'_> {
    fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        let uk = key::user_key(ikey);
        let new_key = self.builder.is_none() || uk != self.last_user_key.as_slice();
        // Grandparent overlap since the current output began.
        while let Some(g) = self.c.grandparents.get(self.gp_index) {
            if key::cmp_internal(ikey, &g.f.largest) != std::cmp::Ordering::Greater {
                break;
            }
            if self.seen_key {
                self.gp_overlap += g.f.size;
            }
            self.gp_index += 1;
        }
        self.seen_key = true;
        let target = self.inner.opts().target_file_size_bytes;
        if new_key {
            if let Some((_, b)) = &self.builder {
                if b.estimated_size() >= target
                    || self.gp_overlap > MAX_GRANDPARENT_OVERLAP_FILES.saturating_mul(target)
                {
                    self.finish_current(Some(uk.to_vec()))?;
                }
            }
        }
        if self.builder.is_none() {
            self.open()?;
        }
        if let Some((_, b)) = self.builder.as_mut() {
            b.add(ikey, value)?;
            let size = b.estimated_size();
            if size >= self.limited + RATE_LIMIT_CHUNK {
                self.inner.rate_limiter.request(size - self.limited);
                self.limited = size;
            }
        }
        if new_key {
            self.last_user_key.clear();
            self.last_user_key.extend_from_slice(uk);
        }
        Ok(())
    }

    fn open(&mut self) -> Result<()> {
        let number = self.inner.versions.new_file_number();
        let path = filename::table_path(&self.inner.path, number);
        let file = self
            .inner
            .opts()
            .fs
            .create(&path)
            .map_err(|e| Error::io(&path, e))?;
        let b = TableBuilder::new(
            file,
            path,
            TableBuildOptions::for_level(&self.inner.opts(), self.c.output_level, "compaction"),
        );
        self.builder = Some((number, b));
        self.gp_overlap = 0;
        self.limited = 0;
        Ok(())
    }

    /// Finishes the current output; its tombstones are clipped to `[lower, upper)`.
    fn finish_current(&mut self, upper: Option<Vec<u8>>) -> Result<()> {
        let Some((number, mut b)) = self.builder.take() else {
            return Ok(());
        };
        for t in &self.tombstones {
            let start = match &self.lower {
                Some(l) if l > &t.start => l.clone(),
                _ => t.start.clone(),
            };
            let end = match &upper {
                Some(u) if u < &t.end => u.clone(),
                _ => t.end.clone(),
            };
            if start < end {
                b.add_range_tombstone(RangeTombstone {
                    start,
                    end,
                    seq: t.seq,
                });
            }
        }
        let info = b.finish()?;
        // Charge the bytes not yet charged (outputs smaller than a chunk were never limited).
        self.inner
            .rate_limiter
            .request(info.file_size.saturating_sub(self.limited));
        self.limited = 0;
        self.files.push(NewFile::from_table(number, info));
        self.lower = upper;
        Ok(())
    }

    fn cleanup(&mut self) {
        if let Some((n, _)) = self.builder.take() {
            let _ = self
                .inner
                .opts()
                .fs
                .remove(&filename::table_path(&self.inner.path, n));
        }
        for f in &self.files {
            let _ = self
                .inner
                .opts()
                .fs
                .remove(&filename::table_path(&self.inner.path, f.number));
        }
    }
}

fn input_iter(inner: &DbInner, c: &Compaction) -> Result<(BoxedIter, Vec<RangeTombstone>)> {
    let flags = ReadFlags {
        verify_checksums: true,
        fill_cache: false,
    };
    let mut children: Vec<BoxedIter> = Vec::new();
    let mut tombs = Vec::new();
    let mut add_tombs = |f: &Arc<FileMeta>| -> Result<()> {
        if f.f.num_range_tombstones > 0 {
            tombs.extend(inner.tables.get(f)?.range_tombstones().iter().cloned());
        }
        Ok(())
    };
    for f in c.all_inputs() {
        add_tombs(f)?;
    }
    if c.level == 0 {
        for f in &c.inputs {
            children.push(Box::new(inner.tables.get(f)?.iter(flags)));
        }
    } else {
        children.push(Box::new(LevelIter::new(
            c.inputs.clone(),
            Arc::clone(&inner.tables),
            flags,
        )));
    }
    if !c.next_inputs.is_empty() {
        children.push(Box::new(LevelIter::new(
            c.next_inputs.clone(),
            Arc::clone(&inner.tables),
            flags,
        )));
    }
    Ok((Box::new(MergingIterator::new(children)), tombs))
}

/// Merges the inputs into new files (not yet installed).
fn merge(inner: &DbInner, c: &Compaction) -> Result<Vec<NewFile>> {
    let (mut it, tombs) = input_iter(inner, c)?;
    let snapshots = inner.snapshots.seqnos();
    let oldest_visible = snapshots
        .first()
        .copied()
        .unwrap_or_else(|| inner.last_seq.load(Ordering::Acquire));
    let frags = Fragments::build_striped(&tombs, &snapshots);
    let kept_tombs: Vec<RangeTombstone> = tombs
        .into_iter()
        .filter(|t| !(c.bottommost && t.seq <= oldest_visible))
        .collect();
    let mut out = Outputs {
        inner,
        c,
        builder: None,
        lower: None,
        last_user_key: Vec::new(),
        files: Vec::new(),
        tombstones: kept_tombs,
        gp_index: 0,
        gp_overlap: 0,
        seen_key: false,
        limited: 0,
    };
    let filter = inner.opts().compaction_filter.clone();
    let r = (|| -> Result<()> {
        let mut cur_key: Vec<u8> = Vec::new();
        let mut prev_stripe: Option<usize> = None;
        let mut buf = Vec::new();
        it.seek_to_first();
        while it.valid() {
            if inner.is_closing() {
                return Err(Error::Closed("compaction interrupted by close".into()));
            }
            let ikey = it.key();
            let Some((uk, seq, kind)) = key::parse(ikey) else {
                return Err(Error::corruption(
                    "<compaction input>",
                    0,
                    "malformed internal key",
                ));
            };
            if uk != cur_key.as_slice() || prev_stripe.is_none() {
                cur_key.clear();
                cur_key.extend_from_slice(uk);
                prev_stripe = None;
            }
            let s = stripe(&snapshots, seq);
            let hidden = prev_stripe == Some(s);
            prev_stripe = Some(s);
            if hidden {
                it.next();
                continue;
            }
            // Covered by a range tombstone with no snapshot in between: no reader can see it.
            // (A tombstone in the same stripe may be dropped below, so the entry must go too.)
            if frags.covered_in_stripe(uk, seq) {
                it.next();
                continue;
            }
            if kind == ValueKind::Delete && c.bottommost && seq <= oldest_visible {
                it.next();
                continue;
            }
            let latest = s == snapshots.len();
            match (&filter, kind) {
                (Some(f), ValueKind::Put) if latest => {
                    match f.filter(c.output_level, uk, it.value()) {
                        FilterDecision::Keep => out.add(ikey, it.value())?,
                        FilterDecision::Remove => {
                            if !c.bottommost {
                                buf.clear();
                                key::append_internal_key(
                                    &mut buf,
                                    uk,
                                    seq,
                                    ValueKind::Delete as u8,
                                );
                                out.add(&buf, &[])?;
                            }
                        }
                        FilterDecision::ChangeValue(v) => out.add(ikey, &v)?,
                    }
                }
                _ => out.add(ikey, it.value())?,
            }
            it.next();
        }
        it.status()?;
        if out.builder.is_none() && out.files.is_empty() && !out.tombstones.is_empty() {
            out.open()?;
        }
        out.finish_current(None)
    })();
    match r {
        Ok(()) => Ok(std::mem::take(&mut out.files)),
        Err(e) => {
            out.cleanup();
            Err(e)
        }
    }
}
