//! Opening a database: lock, manifest replay, WAL replay, fresh manifest and WAL.
//!
//! Recovery replays every WAL numbered at or above the manifest's log number into memtables and
//! writes them to L0 before the database accepts writes, so a torn WAL tail is never appended to
//! and old WALs can be deleted right away.

use super::{background, DbInner, DbState, SuperVersion};
use crate::manifest::edit::VersionEdit;
use crate::manifest::version::Graveyard;
use crate::manifest::version_set::{self, Recovered, VersionSet};
use crate::memtable::MemTable;
use crate::snapshot::SnapshotList;
use crate::sst::BlockCache;
use crate::table_cache::TableCache;
use crate::wal::{read_log, LogWriter};
use crate::write_batch::DecodedBatch;
use crate::{filename, fs, Error, Options, Result};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub(super) fn validate(opts: &Options) -> Result<()> {
    let bad = |m: &str| Err(Error::InvalidArgument(m.to_string()));
    if opts.memtable_size_bytes == 0 {
        return bad("memtable_size_bytes must be > 0");
    }
    if opts.block_size_bytes == 0 {
        return bad("block_size_bytes must be > 0");
    }
    if opts.target_file_size_bytes == 0 {
        return bad("target_file_size_bytes must be > 0");
    }
    if opts.l0_stop_trigger < opts.l0_slowdown_trigger {
        return bad("l0_stop_trigger must be >= l0_slowdown_trigger");
    }
    for c in std::iter::once(&opts.compression).chain(&opts.compression_per_level) {
        if let crate::Compression::Zstd { level } = *c {
            if !(-7..=22).contains(&level) {
                return bad("zstd level must be in -7..=22 (compression, compression_per_level)");
            }
        }
    }
    Ok(())
}

pub(super) fn open(path: &Path, opts: Options) -> Result<DbInner> {
    validate(&opts)?;
    if path.as_os_str().is_empty() {
        return Err(Error::InvalidArgument("empty database path".into()));
    }
    let fsys = Arc::clone(&opts.fs);
    let exists = fsys.exists(&filename::current_path(path));
    if !exists && !opts.create_if_missing {
        return Err(Error::InvalidArgument(format!(
            "{} holds no database and create_if_missing is false",
            path.display()
        )));
    }
    if exists && opts.error_if_exists {
        return Err(Error::InvalidArgument(format!(
            "{} already holds a database and error_if_exists is true",
            path.display()
        )));
    }
    if !exists {
        let created = !fsys.exists(path);
        fsys.create_dir_all(path).map_err(|e| Error::io(path, e))?;
        if created {
            // The database directory's own entry must survive a power loss too.
            let parent = fs::parent_dir(path);
            fsys.sync_dir(&parent).map_err(|e| Error::io(&parent, e))?;
        }
    }
    let lock_path = filename::lock_path(path);
    let lock = fsys.lock(&lock_path).map_err(|e| {
        Error::io(
            &lock_path,
            std::io::Error::new(e.kind(), format!("cannot lock the database: {e}")),
        )
    })?;
    let graveyard = Arc::new(Graveyard::default());
    let rec = if exists {
        version_set::replay(fsys.as_ref(), path, Some(Arc::clone(&graveyard)))?
    } else {
        Recovered {
            version: Default::default(),
            next_file_number: 2,
            counters: Default::default(),
        }
    };
    let versions = VersionSet::new(path, Arc::clone(&fsys), rec, Arc::clone(&graveyard));
    // Fail early if a table the manifest lists is missing.
    for (_, f) in versions.current().all_files() {
        let p = filename::table_path(path, f.number());
        if !fsys.exists(&p) {
            return Err(Error::corruption(
                &p,
                0,
                format!("table {} listed in the manifest is missing", f.number()),
            ));
        }
    }
    let block_cache = match &opts.resources {
        Some(r) => r.block_cache.clone(),
        None => {
            (opts.block_cache_size_bytes > 0).then(|| BlockCache::new(opts.block_cache_size_bytes))
        }
    };
    let tables = Arc::new(TableCache::new(
        path.to_path_buf(),
        Arc::clone(&fsys),
        opts.max_open_files,
        block_cache,
    ));
    let counters = versions.counters();
    let mem = Arc::new(MemTable::new(0));
    let version = versions.current();
    let inner = DbInner {
        path: path.to_path_buf(),
        state: Mutex::new(DbState {
            mem: Arc::clone(&mem),
            imms: VecDeque::new(),
            bg_error: None,
            flush_running: false,
            compactions_running: 0,
            closing: false,
            flushed_count: 0,
            frozen_count: 0,
            stall: Default::default(),
            unlogged_writes: false,
            picker: Default::default(),
        }),
        bg_cv: super::BgSignal::new(opts.resources.as_ref().map(|r| Arc::clone(&r.pool))),
        shape_cv: Condvar::new(),
        queue: Mutex::new(VecDeque::new()),
        queue_cv: Condvar::new(),
        wal: Mutex::new(None),
        versions,
        sv: RwLock::new(Arc::new(SuperVersion {
            mem,
            imms: Vec::new(),
            version,
        })),
        snapshots: Arc::new(SnapshotList::default()),
        tables,
        last_seq: AtomicU64::new(counters.last_seqno),
        leader_stalled: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        lock: Mutex::new(Some(lock)),
        stats: Default::default(),
        read_triggered: Mutex::new(None),
        rate_limiter: match &opts.resources {
            Some(r) => Arc::clone(&r.rate_limiter),
            None => Arc::new(crate::compaction::rate_limit::RateLimiter::new(
                opts.background_write_rate_bytes,
            )),
        },
        flush_requested: AtomicBool::new(false),
        resources: opts.resources.clone(),
        options: RwLock::new(Arc::new(opts)),
    };
    recover_wals(&inner, counters.log_number)?;
    delete_stray_files(&inner);
    Ok(inner)
}

/// Replays WALs into L0 tables, then starts a fresh manifest and WAL.
fn recover_wals(inner: &DbInner, min_log: u64) -> Result<()> {
    let fs = Arc::clone(&inner.opts().fs);
    let fsys = fs.as_ref();
    let mut logs: Vec<u64> = fsys
        .list(&inner.path)
        .map_err(|e| Error::io(&inner.path, e))?
        .iter()
        .filter_map(|n| match filename::parse(n) {
            filename::FileKind::Wal(x) if x >= min_log => Some(x),
            _ => None,
        })
        .collect();
    logs.sort_unstable();
    // A WAL created by a memtable switch after the last manifest edit has a number the
    // manifest's next_file_number does not cover. Allocating it again would give the new WAL a
    // number at or below an old one: `create` would truncate it, or (below) deleting WALs older
    // than the new log number would miss it, so it would be replayed again on a later open
    // (stale writes resurrected; its torn tail then fails the open as a damaged sealed WAL).
    if let Some(&newest) = logs.last() {
        inner.versions.mark_file_number_used(newest);
    }
    let mut edit = VersionEdit::default();
    let mut last_seq = inner.last_seq.load(Ordering::Acquire);
    let mut mem = Arc::new(MemTable::new(0));
    let mut flushed_tag: Option<u64> = None;
    let last_log = logs.last().copied();
    for n in &logs {
        let p = filename::wal_path(&inner.path, *n);
        let data = fs::read_all(fsys, &p).map_err(|e| Error::io(&p, e))?;
        let log = read_log(&data);
        if let Some((off, reason)) = &log.corruption {
            if inner.opts().paranoid_checks {
                return Err(Error::corruption(&p, *off, reason.clone()));
            }
        }
        if let Some((off, reason)) = &log.torn_tail {
            // Only the newest WAL can have an unsynced tail: older ones were synced when the
            // memtable switched.
            if Some(*n) != last_log && inner.opts().paranoid_checks {
                return Err(Error::corruption(
                    &p,
                    *off,
                    format!("damaged record in a sealed WAL: {reason}"),
                ));
            }
        }
        for (off, rec) in &log.records {
            let b = DecodedBatch::decode(rec).map_err(|r| Error::corruption(&p, *off, r))?;
            for (seq, op) in (b.seq..).zip(b.ops.iter()) {
                super::write::apply_op(&mem, seq, op);
            }
            if let Some(t) = b.tag {
                mem.note_tag(t);
            }
            if b.count > 0 {
                last_seq = last_seq.max(b.seq + u64::from(b.count) - 1);
            }
            if mem.size_bytes() >= inner.opts().memtable_size_bytes {
                flush_recovered(inner, &mut mem, &mut edit, &mut flushed_tag)?;
            }
        }
    }
    flush_recovered(inner, &mut mem, &mut edit, &mut flushed_tag)?;
    super::write::advance_last_seq(&inner.last_seq, last_seq);
    // New WAL for new writes.
    let number = inner.versions.new_file_number();
    let wal_path = filename::wal_path(&inner.path, number);
    let file = fsys
        .create(&wal_path)
        .map_err(|e| Error::io(&wal_path, e))?;
    *inner.wal.lock() = Some(LogWriter::new(file, wal_path));
    fsys.sync_dir(&inner.path)
        .map_err(|e| Error::io(&inner.path, e))?;
    inner.state.lock().mem = Arc::new(MemTable::new(number));
    inner.versions.write_new_manifest()?;
    edit.log_number = Some(number);
    edit.last_seqno = Some(last_seq);
    edit.durable_tag = flushed_tag;
    inner.versions.log_and_apply(edit)?;
    let st = inner.state.lock();
    inner.install_sv(&st);
    drop(st);
    background::delete_old_wals(inner, number);
    Ok(())
}

fn flush_recovered(
    inner: &DbInner,
    mem: &mut Arc<MemTable>,
    edit: &mut VersionEdit,
    tag: &mut Option<u64>,
) -> Result<()> {
    if let Some(f) = background::write_level0_table(inner, mem)? {
        edit.added.push((0, f));
    }
    if let Some(t) = mem.max_tag() {
        *tag = Some(tag.map_or(t, |x| x.max(t)));
    }
    *mem = Arc::new(MemTable::new(0));
    Ok(())
}

/// Removes leftovers of crashes: temp files, tables no version lists, old manifests.
fn delete_stray_files(inner: &DbInner) {
    let Ok(names) = inner.opts().fs.list(&inner.path) else {
        return;
    };
    let live: std::collections::HashSet<u64> = inner
        .versions
        .current()
        .all_files()
        .map(|(_, f)| f.number())
        .collect();
    let manifest = inner.versions.manifest_number();
    for name in names {
        let remove = match filename::parse(&name) {
            filename::FileKind::Table(n) => !live.contains(&n),
            filename::FileKind::Manifest(n) => n != manifest,
            filename::FileKind::Temp => true,
            _ => false,
        };
        if remove {
            let _ = inner.opts().fs.remove(&inner.path.join(&name));
        }
    }
}
