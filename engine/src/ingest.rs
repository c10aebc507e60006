//! Ingesting external SST files (made by [`crate::SstWriter`]) atomically.
//!
//! `Db::ingest(paths, opts)`:
//! 1. **Validate every file first**, outside any lock: footer, checksum of every block, key
//!    order, keys written at seqno 0 (SstWriter output), no overlap between the given files
//!    (with `verify_blocks = false`, only the footer, index, properties and the first and last
//!    data blocks).
//! 2. **Place** each file into the database directory under a new number: hard link when
//!    `move_files`, otherwise a copy; sync the files and the directory.
//! 3. **Commit** as the write leader: if a memtable holds keys in an ingested range, freeze it
//!    and wait (bounded) for its flush (`allow_blocking_flush`); take one new sequence number
//!    (newer than every write) as the files' *global seqno*; put each file at the lowest level
//!    where it overlaps nothing in that level or above (and no running compaction's output);
//!    log all files in one manifest edit: all or nothing.
//! 4. Re-evaluate compaction (ingestions stacking in L0 must never leave writers stopped with
//!    nothing scheduled — Pebble #320).
//!
//! Ingestion never passes the user write stall gate (it does not wait for L0 or pending bytes to
//! fall), so it cannot deadlock with a stalled engine (RocksDB #5007, S3); waiting for write
//! leadership and for a needed flush is bounded by the deadline, after which it returns the
//! retryable `Error::Busy`. Writes whose keys do not overlap the ingested files are only held for
//! the commit step (a manifest append), not for validation or copying.

use crate::checkpoint::{copy_file, link_or_copy};
use crate::db::{Db, DbInner};
use crate::filename;
use crate::iter::InternalIterator;
use crate::key::{self, SeqNo};
use crate::manifest::edit::{NewFile, VersionEdit};
use crate::manifest::NUM_LEVELS;
use crate::sst::Table;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default bound on an ingestion's waits.
pub const INGEST_WAIT_MAX: Duration = Duration::from_secs(60);

/// A cancellation flag shared between an ingestion and whoever may cancel it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Cancels every operation holding this token.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Options for [`Db::ingest`].
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Hard-link the files into the database and remove the originals on success (instead of
    /// copying). Default `false`.
    pub move_files: bool,
    /// Allow freezing and flushing a memtable that overlaps the files. Default `true`; when
    /// `false` such an ingestion fails with `Error::InvalidArgument`.
    pub allow_blocking_flush: bool,
    /// Cancels the ingestion (checked between steps). Default: none.
    pub cancel: Option<CancelToken>,
    /// Bound on every wait of the ingestion; past it, `Error::Busy`. Default 60 s.
    pub timeout: Duration,
    /// Read every block of every file before ingesting (checksums, key order, counts).
    /// Default `true`. With `false`, only the footer, index, properties and the first and last
    /// data blocks are read and checked (RocksDB's default, `verify_checksums_before_ingest =
    /// false`): for files this process just wrote with [`crate::SstWriter`], where the full
    /// pass re-reads what was just checksummed. Damage elsewhere in such a file is then found
    /// when its blocks are read (reads, compaction), as `Error::Corruption`.
    pub verify_blocks: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            move_files: false,
            allow_blocking_flush: true,
            cancel: None,
            timeout: INGEST_WAIT_MAX,
            verify_blocks: true,
        }
    }
}

/// What an ingestion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestInfo {
    /// Files ingested.
    pub files: usize,
    /// Entries in them.
    pub entries: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// The global sequence number assigned to every key of the files.
    pub seqno: SeqNo,
    /// The level each file was placed at, in input order.
    pub levels: Vec<usize>,
}

struct Checked {
    src: PathBuf,
    smallest: Vec<u8>,
    largest: Vec<u8>,
    entries: u64,
    size: u64,
}

fn check_cancel(opts: &IngestOptions, deadline: Instant) -> Result<()> {
    if opts.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
        return Err(Error::Cancelled("ingestion cancelled".into()));
    }
    if Instant::now() >= deadline {
        return Err(Error::Busy(format!(
            "ingestion did not finish within {:?}",
            opts.timeout
        )));
    }
    Ok(())
}

fn validate(inner: &DbInner, path: &Path, verify_blocks: bool) -> Result<Checked> {
    let file = inner
        .opts
        .fs
        .open_read(path)
        .map_err(|e| Error::io(path, e))?;
    let size = file.size();
    let t = Table::open(file, path.to_path_buf(), None, None)?;
    let entries = if verify_blocks {
        t.verify()?
    } else {
        t.verify_bounds()?
    };
    let p = t.properties();
    if p.largest_seqno != 0 || !t.range_tombstones().is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{} was not written by SstWriter (it has sequence numbers or range tombstones)",
            path.display()
        )));
    }
    if entries == 0 {
        return Err(Error::InvalidArgument(format!(
            "{} holds no entries",
            path.display()
        )));
    }
    Ok(Checked {
        src: path.to_path_buf(),
        smallest: key::user_key(&p.smallest).to_vec(),
        largest: key::user_key(&p.largest).to_vec(),
        entries,
        size,
    })
}

impl Db {
    /// Ingests SST files made by [`crate::SstWriter`], atomically; see the module docs.
    pub fn ingest<P: AsRef<Path>>(&self, paths: &[P], opts: &IngestOptions) -> Result<IngestInfo> {
        let inner = &self.inner;
        inner.check_writable()?;
        let deadline = Instant::now() + opts.timeout;
        if paths.is_empty() {
            return Err(Error::InvalidArgument("no files to ingest".into()));
        }
        let mut checked = Vec::with_capacity(paths.len());
        for p in paths {
            check_cancel(opts, deadline)?;
            checked.push(validate(inner, p.as_ref(), opts.verify_blocks)?);
        }
        let mut order: Vec<usize> = (0..checked.len()).collect();
        order.sort_by(|a, b| checked[*a].smallest.cmp(&checked[*b].smallest));
        for w in order.windows(2) {
            let (a, b) = (&checked[w[0]], &checked[w[1]]);
            if b.smallest <= a.largest {
                return Err(Error::InvalidArgument(format!(
                    "ingested files overlap: {} and {}",
                    a.src.display(),
                    b.src.display()
                )));
            }
        }
        // Place copies (or links) under new numbers; undo on any failure.
        let mut placed: Vec<(u64, &Checked)> = Vec::new();
        let r = (|| -> Result<IngestInfo> {
            for c in &checked {
                check_cancel(opts, deadline)?;
                let number = inner.versions.new_file_number();
                let dst = filename::table_path(&inner.path, number);
                placed.push((number, c));
                if opts.move_files {
                    link_or_copy(inner.opts.fs.as_ref(), &c.src, &dst)?;
                } else {
                    copy_file(inner.opts.fs.as_ref(), &c.src, &dst)?;
                }
            }
            inner
                .opts
                .fs
                .sync_dir(&inner.path)
                .map_err(|e| Error::io(&inner.path, e))?;
            check_cancel(opts, deadline)?;
            self.commit(&placed, opts, deadline)
        })();
        match r {
            Ok(info) => {
                if opts.move_files {
                    for c in &checked {
                        let _ = inner.opts.fs.remove(&c.src);
                    }
                }
                inner.bg_cv.notify_all();
                inner.shape_cv.notify_all();
                Ok(info)
            }
            Err(e) => {
                // After a failed manifest write (a background error) the edit may still be in
                // the manifest: keep the files; the next open deletes tables no manifest lists.
                if inner.state.lock().bg_error.is_none() {
                    for (n, _) in placed {
                        let _ = inner.opts.fs.remove(&filename::table_path(&inner.path, n));
                    }
                }
                Err(e)
            }
        }
    }

    fn commit(
        &self,
        placed: &[(u64, &Checked)],
        opts: &IngestOptions,
        deadline: Instant,
    ) -> Result<IngestInfo> {
        let inner = &self.inner;
        // The ingested files get a newer seqno than every write, but reads search memtables
        // before SSTs: no memtable may hold keys in an ingested range at commit. Flush until
        // none does (bounded by the deadline; writers to other ranges are not held).
        loop {
            check_cancel(opts, deadline)?;
            if memtables_overlap(inner, placed) {
                if !opts.allow_blocking_flush {
                    return Err(Error::InvalidArgument(
                        "a memtable overlaps the ingested files and allow_blocking_flush is false"
                            .into(),
                    ));
                }
                inner.with_write_leadership_until(deadline, |i| {
                    i.make_room(true, false, std::time::Instant::now())
                        .map(drop)
                })?;
                let target = inner.state.lock().frozen_count;
                inner.wait_flushed_until(target, deadline)?;
                continue;
            }
            if let Some(info) = self.try_commit(placed)? {
                return Ok(info);
            }
        }
    }

    /// Commits as the write leader, or returns `None` if a write slipped into an ingested range
    /// since the last check (the caller flushes and retries).
    fn try_commit(&self, placed: &[(u64, &Checked)]) -> Result<Option<IngestInfo>> {
        let inner = &self.inner;
        let deadline = Instant::now() + Duration::from_millis(inner.opts.max_write_stall_ms);
        inner.with_write_leadership_until(deadline, |i| {
            if memtables_overlap(i, placed) {
                return Ok(None);
            }
            let seq = i
                .last_seq
                .load(Ordering::Acquire)
                .checked_add(1)
                .filter(|s| *s <= key::MAX_SEQNO)
                .ok_or_else(|| Error::InvalidArgument("sequence numbers exhausted".into()))?;
            let mut edit = VersionEdit::default();
            let mut levels = Vec::new();
            let st = i.state.lock();
            let v = i.versions.current();
            let mut entries = 0;
            let mut bytes = 0;
            for (number, c) in placed {
                let lo = c.smallest.as_slice();
                let hi = c.largest.as_slice();
                let mut level = 0;
                {
                    for l in 0..NUM_LEVELS {
                        if !v.overlapping(l, Some(lo), Some(hi)).is_empty() {
                            break;
                        }
                        let claimed = st.running.iter().any(|r| {
                            r.output_level == l && r.lo.as_slice() <= hi && lo <= r.hi.as_slice()
                        });
                        if claimed {
                            break;
                        }
                        // Files of this same ingestion already placed at `l` do not overlap.
                        level = l;
                    }
                }
                levels.push(level);
                entries += c.entries;
                bytes += c.size;
                edit.added.push((
                    level,
                    NewFile {
                        number: *number,
                        size: c.size,
                        smallest: key::internal_key(lo, seq, key::ValueKind::Put),
                        largest: key::internal_key(hi, seq, key::ValueKind::Put),
                        smallest_seqno: seq,
                        largest_seqno: seq,
                        global_seqno: Some(seq),
                        num_entries: c.entries,
                        num_range_tombstones: 0,
                    },
                ));
            }
            drop(st);
            edit.last_seqno = Some(seq);
            i.versions
                .log_and_apply(edit)
                .inspect_err(|e| i.set_bg_error(e))?;
            i.last_seq.store(seq, Ordering::Release);
            let st = i.state.lock();
            i.install_sv(&st);
            Ok(Some(IngestInfo {
                files: placed.len(),
                entries,
                bytes,
                seqno: seq,
                levels,
            }))
        })
    }
}

/// True if any memtable holds a key or range tombstone within an ingested file's range.
fn memtables_overlap(inner: &DbInner, placed: &[(u64, &Checked)]) -> bool {
    let sv = inner.current_sv();
    std::iter::once(&sv.mem).chain(sv.imms.iter()).any(|m| {
        placed.iter().any(|(_, c)| {
            let mut it = m.iter();
            it.seek(&key::seek_key(&c.smallest, key::MAX_SEQNO));
            let point = it.valid() && key::user_key(it.key()) <= c.largest.as_slice();
            let range = m.range_tombstones().iter().any(|t| {
                t.start.as_slice() <= c.largest.as_slice()
                    && c.smallest.as_slice() < t.end.as_slice()
            });
            point || range
        })
    })
}
