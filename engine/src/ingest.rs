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
pub const MAX_INGEST_WAIT: Duration = Duration::from_secs(60);

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
            timeout: MAX_INGEST_WAIT,
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
    /// A RocksDB table: converted into siltdb's format when placed.
    rocksdb: bool,
    tombstones: u64,
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
        .opts()
        .fs
        .open_read(path)
        .map_err(|e| Error::io(path, e))?;
    let size = file.size();
    if crate::sst::rocksdb::is_rocksdb_table(file.as_ref()) {
        return validate_rocksdb(file, path);
    }
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
        rocksdb: false,
        tombstones: 0,
        smallest: key::user_key(&p.smallest).to_vec(),
        largest: key::user_key(&p.largest).to_vec(),
        entries,
        size,
    })
}

/// A RocksDB table is read in full (every block checksummed and decompressed, versions
/// collapsed) to learn its key range; [`convert_rocksdb`] reads it again when placing it.
fn validate_rocksdb(file: Arc<dyn crate::fs::RandomAccessFile>, path: &Path) -> Result<Checked> {
    use crate::sst::rocksdb::RocksTable;
    let t = RocksTable::open(file, path.to_path_buf())?;
    let mut entries = 0u64;
    let mut lo: Option<Vec<u8>> = None;
    let mut hi: Option<Vec<u8>> = None;
    let tombstones = crate::sst::rocksdb::convert::collapsed(&t, |k, _| {
        if lo.is_none() {
            lo = Some(k.to_vec());
        }
        hi = Some(k.to_vec());
        entries += 1;
        Ok(())
    })?;
    let mut count = 0u64;
    for r in tombstones.iter().filter(|r| r.start < r.end) {
        count += 1;
        if lo.as_ref().is_none_or(|l| r.start < *l) {
            lo = Some(r.start.clone());
        }
        if hi.as_ref().is_none_or(|h| r.end > *h) {
            hi = Some(r.end.clone());
        }
    }
    let (Some(smallest), Some(largest)) = (lo, hi) else {
        return Err(Error::InvalidArgument(format!(
            "{} holds no entries",
            path.display()
        )));
    };
    Ok(Checked {
        src: path.to_path_buf(),
        rocksdb: true,
        tombstones: count,
        smallest,
        largest,
        entries,
        size: 0,
    })
}

/// Writes the siltdb form of the RocksDB table `src` to `dst` (synced); returns its size.
fn convert_rocksdb(inner: &DbInner, src: &Path, dst: &Path) -> Result<u64> {
    use crate::sst::rocksdb::RocksTable;
    use crate::sst::{TableBuildOptions, TableBuilder};
    let file = inner
        .opts()
        .fs
        .open_read(src)
        .map_err(|e| Error::io(src, e))?;
    let t = RocksTable::open(file, src.to_path_buf())?;
    let out = inner.opts().fs.create(dst).map_err(|e| Error::io(dst, e))?;
    let mut b = TableBuilder::new(
        out,
        dst.to_path_buf(),
        TableBuildOptions::from_options(&inner.opts(), "rocksdb-ingest"),
    );
    crate::sst::rocksdb::convert::write_siltdb(&t, &mut b)?;
    Ok(b.finish()?.file_size)
}

impl Db {
    /// Ingests SST files made by [`crate::SstWriter`] or by RocksDB (block-based tables,
    /// converted to siltdb's format on the way in), atomically; see the module docs.
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
        let mut placed: Vec<(u64, &Checked, u64)> = Vec::new();
        let r = (|| -> Result<IngestInfo> {
            for c in &checked {
                check_cancel(opts, deadline)?;
                let number = inner.versions.new_file_number();
                let dst = filename::table_path(&inner.path, number);
                placed.push((number, c, c.size));
                if c.rocksdb {
                    let size = convert_rocksdb(inner, &c.src, &dst)?;
                    if let Some(last) = placed.last_mut() {
                        last.2 = size;
                    }
                } else if opts.move_files {
                    link_or_copy(inner.opts().fs.as_ref(), &c.src, &dst)?;
                } else {
                    copy_file(inner.opts().fs.as_ref(), &c.src, &dst)?;
                }
            }
            inner
                .opts()
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
                        let _ = inner.opts().fs.remove(&c.src);
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
                    for (n, _, _) in placed {
                        let _ = inner
                            .opts()
                            .fs
                            .remove(&filename::table_path(&inner.path, n));
                    }
                }
                Err(e)
            }
        }
    }

    fn commit(
        &self,
        placed: &[(u64, &Checked, u64)],
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
    fn try_commit(&self, placed: &[(u64, &Checked, u64)]) -> Result<Option<IngestInfo>> {
        let inner = &self.inner;
        let deadline = Instant::now() + Duration::from_millis(inner.opts().max_write_stall_ms);
        inner.with_write_leadership_until(deadline, |i| {
            if memtables_overlap(i, placed) {
                return Ok(None);
            }
            // One number for every ingested file (count 0: the number itself may be MAX_SEQNO).
            let seq = crate::db::first_seq(i.last_seq.load(Ordering::Acquire), 0)?;
            let mut edit = VersionEdit::default();
            let mut levels = Vec::new();
            let st = i.state.lock();
            let v = i.versions.current();
            let mut entries = 0;
            let mut bytes = 0;
            for (number, c, size) in placed {
                let lo = c.smallest.as_slice();
                let hi = c.largest.as_slice();
                let mut level = 0;
                {
                    for l in 0..NUM_LEVELS {
                        if !v.overlapping(l, Some(lo), Some(hi)).is_empty() {
                            break;
                        }
                        let claimed = st.picker.running.iter().any(|r| {
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
                bytes += *size;
                edit.added.push((
                    level,
                    NewFile {
                        number: *number,
                        size: *size,
                        smallest: key::internal_key(lo, seq, key::ValueKind::Put),
                        largest: key::internal_key(hi, seq, key::ValueKind::Put),
                        smallest_seqno: seq,
                        largest_seqno: seq,
                        global_seqno: Some(seq),
                        num_entries: c.entries,
                        num_range_tombstones: c.tombstones,
                    },
                ));
            }
            drop(st);
            edit.last_seqno = Some(seq);
            i.versions
                .log_and_apply(edit)
                .inspect_err(|e| i.set_bg_error(e))?;
            let previous = crate::db::advance_last_seq(&i.last_seq, seq);
            debug_assert_eq!(previous + 1, seq, "sequence numbers assigned twice");
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
fn memtables_overlap(inner: &DbInner, placed: &[(u64, &Checked, u64)]) -> bool {
    let sv = inner.current_sv();
    std::iter::once(&sv.mem).chain(sv.imms.iter()).any(|m| {
        placed.iter().any(|(_, c, _)| {
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
