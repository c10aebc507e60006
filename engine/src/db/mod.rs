//! The database: open, write, read, iterate, flush, close.
//!
//! Concurrency layout:
//! - `state` (the DB mutex) guards the memtable list, background flags and the background error.
//!   It is held only for bookkeeping, never across I/O or a wait without a bound.
//! - `queue` orders writers; the writer at its front is the leader and the only thread that
//!   appends to the WAL or inserts into the memtable (group commit, see `write.rs`).
//! - `sv` holds the current [`SuperVersion`] (memtables + version); readers clone the `Arc` and
//!   search without locks.
//! - Background threads (flush, compaction) are owned by the `Db` and joined on close/drop.

mod background;
mod open;
mod properties;
mod read;
mod write;
pub(crate) use write::{advance_last_seq, first_seq};

use crate::key::SeqNo;
use crate::manifest::version::Version;
use crate::manifest::version_set::VersionSet;
use crate::memtable::MemTable;
use crate::snapshot::{Snapshot, SnapshotList};
use crate::stall::StallStats;
use crate::table_cache::TableCache;
use crate::wal::LogWriter;
use crate::{Error, Options, Result};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub(crate) use background::JobPool;
pub use properties::Stats;
pub use read::DbIterator;

/// The memtables and version a reader sees, pinned together.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    pub(crate) mem: Arc<MemTable>,
    /// Immutable memtables, newest first.
    pub(crate) imms: Vec<Arc<MemTable>>,
    pub(crate) version: Arc<Version>,
}

/// State guarded by the DB mutex.
pub(crate) struct DbState {
    pub(crate) mem: Arc<MemTable>,
    /// Immutable memtables waiting for flush, oldest first.
    pub(crate) imms: VecDeque<Arc<MemTable>>,
    pub(crate) bg_error: Option<Error>,
    pub(crate) flush_running: bool,
    pub(crate) compactions_running: usize,
    pub(crate) closing: bool,
    /// Count of memtables flushed since open (flush waiters compare against it).
    pub(crate) flushed_count: u64,
    /// Count of memtables frozen since open.
    pub(crate) frozen_count: u64,
    pub(crate) stall: StallStats,
    /// True once a write skipped the WAL: close must flush to keep it.
    pub(crate) unlogged_writes: bool,
    /// The compaction picker's claims and pointers.
    pub(crate) picker: crate::compaction::picker::PickerState,
}

/// The shared core of a [`Db`].
pub(crate) struct DbInner {
    pub(crate) path: PathBuf,
    /// The options now: those fixed at open plus what [`Db::set_options`] changed since.
    pub(crate) options: RwLock<Arc<Options>>,
    /// Resources shared with other databases (fixed at open).
    pub(crate) resources: Option<Arc<crate::SharedResources>>,
    pub(crate) state: Mutex<DbState>,
    /// Signalled when background work may be needed or has finished.
    pub(crate) bg_cv: BgSignal,
    /// Signalled whenever the LSM shape changes (stalled writers and flush waiters wait on it).
    pub(crate) shape_cv: Condvar,
    pub(crate) queue: Mutex<VecDeque<Arc<write::Writer>>>,
    pub(crate) queue_cv: Condvar,
    pub(crate) wal: Mutex<Option<LogWriter>>,
    pub(crate) versions: VersionSet,
    pub(crate) sv: RwLock<Arc<SuperVersion>>,
    pub(crate) snapshots: Arc<SnapshotList>,
    pub(crate) tables: Arc<TableCache>,
    pub(crate) last_seq: AtomicU64,
    /// True while the write leader waits in `make_room` for a flush slot (queued `no_slowdown`
    /// writers then give up instead of waiting behind it).
    pub(crate) leader_stalled: AtomicBool,
    pub(crate) closed: AtomicBool,
    pub(crate) lock: Mutex<Option<Box<dyn crate::fs::FileLock>>>,
    pub(crate) stats: background::Counters,
    pub(crate) rate_limiter: Arc<crate::compaction::rate_limit::RateLimiter>,
    /// Set when the shared write-buffer budget asks this database to freeze its memtable.
    pub(crate) flush_requested: AtomicBool,
    /// A file scheduled by read-triggered compaction (taken after `state` when both are held).
    pub(crate) read_triggered: Mutex<Option<crate::compaction::read_trigger::ReadTriggered>>,
}

/// Wakes background work: the database's own threads and, when it shares a pool
/// ([`crate::SharedResources`]), the pool's.
pub(crate) struct BgSignal {
    cv: Condvar,
    pool: Option<Arc<JobPool>>,
}

impl BgSignal {
    pub(crate) fn new(pool: Option<Arc<JobPool>>) -> Self {
        BgSignal {
            cv: Condvar::new(),
            pool,
        }
    }

    /// Wakes every background thread that may have work.
    pub(crate) fn notify_all(&self) {
        self.cv.notify_all();
        if let Some(p) = &self.pool {
            p.notify();
        }
    }

    /// Waits (bounded) for a notification.
    pub(crate) fn wait_for<T>(&self, guard: &mut parking_lot::MutexGuard<'_, T>, d: Duration) {
        let _ = self.cv.wait_for(guard, d);
    }
}

/// An open database. `Send + Sync`: share it between threads with `Arc<Db>` (or `&Db`).
pub struct Db {
    pub(crate) inner: Arc<DbInner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Db {
    /// Opens (or creates, per `opts`) the database in directory `path`.
    pub fn open(path: impl AsRef<std::path::Path>, opts: Options) -> Result<Db> {
        let inner = open::open(path.as_ref(), opts)?;
        let inner = Arc::new(inner);
        let mut threads = Vec::new();
        if let Some(r) = &inner.resources {
            r.pool.register(&inner);
            return Ok(Db {
                inner,
                threads: Mutex::new(threads),
            });
        }
        for (i, role) in background::roles(inner.opts().max_background_jobs)
            .into_iter()
            .enumerate()
        {
            let me = Arc::clone(&inner);
            let kind = if role.flush_only { "flush" } else { "bg" };
            let h = std::thread::Builder::new()
                .name(format!("silt-{kind}-{i}"))
                .spawn(move || background::run(&me, role))
                .map_err(|e| Error::io(&inner.path, e))?;
            threads.push(h);
        }
        inner.bg_cv.notify_all();
        Ok(Db {
            inner,
            threads: Mutex::new(threads),
        })
    }

    /// The directory this database lives in.
    pub fn path(&self) -> &std::path::Path {
        &self.inner.path
    }

    /// Makes every acknowledged write durable, stops background work and joins its threads.
    /// Later calls on this handle return [`Error::Closed`]. After a background error (read-only
    /// mode) nothing more can be made durable: the threads are still stopped, and the result is
    /// an [`Error::Closed`] naming the background error.
    pub fn close(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let r = self.inner.persist_for_close();
        self.shutdown();
        r
    }

    fn shutdown(&self) {
        self.inner.closed.store(true, Ordering::Release);
        {
            let mut st = self.inner.state.lock();
            st.closing = true;
        }
        self.inner.bg_cv.notify_all();
        self.inner.shape_cv.notify_all();
        self.inner.queue_cv.notify_all();
        let threads: Vec<_> = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
        if let Some(r) = &self.inner.resources {
            self.inner.leave_shared_resources(r);
        }
        self.inner.purge_obsolete_files();
        *self.inner.wal.lock() = None;
        *self.inner.lock.lock() = None;
    }

    /// Takes a snapshot of the current state. Released when dropped (and all clones).
    pub fn snapshot(&self) -> Snapshot {
        let seq = self.inner.last_seq.load(Ordering::Acquire);
        self.inner.snapshots.acquire(seq)
    }

    /// The sequence number of the newest write.
    pub fn latest_seqno(&self) -> SeqNo {
        self.inner.last_seq.load(Ordering::Acquire)
    }

    /// The largest write tag whose data is durable in SST files (survives reopen without WAL).
    pub fn durable_tag(&self) -> Option<u64> {
        self.inner.versions.durable_tag()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if !self.inner.closed.load(Ordering::Acquire) {
            let _ = self.inner.persist_for_close();
            self.shutdown();
        }
    }
}

impl DbInner {
    /// Errors if the database no longer accepts writes.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("the database was closed".into()));
        }
        let st = self.state.lock();
        if let Some(e) = &st.bg_error {
            return Err(Error::Closed(format!(
                "read-only after a background error: {e}"
            )));
        }
        if st.closing {
            return Err(Error::Closed("the database is closing".into()));
        }
        Ok(())
    }

    /// True once close has begun (long background work checks it to stop early).
    pub(crate) fn is_closing(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.state.lock().closing
    }

    /// The background error as an `Error::Closed`, if there is one.
    pub(crate) fn check_bg_error(&self, st: &DbState) -> Result<()> {
        match &st.bg_error {
            Some(e) => Err(Error::Closed(format!(
                "read-only after a background error: {e}"
            ))),
            None => Ok(()),
        }
    }

    /// Records a background error: the database turns read-only and every waiter wakes.
    pub(crate) fn set_bg_error(&self, e: &Error) {
        {
            let mut st = self.state.lock();
            if st.bg_error.is_none() {
                st.bg_error = Some(e.duplicate());
            }
        }
        self.shape_cv.notify_all();
        self.bg_cv.notify_all();
        self.queue_cv.notify_all();
    }

    /// The options in force now (cheap: an `Arc` clone under a read lock).
    pub(crate) fn opts(&self) -> Arc<Options> {
        Arc::clone(&self.options.read())
    }

    /// The shared write-buffer budget, if this database uses one.
    pub(crate) fn write_buffer(&self) -> Option<&crate::resources::WriteBufferManager> {
        self.resources.as_ref().map(|r| &r.write_buffer)
    }

    /// Bytes in the active memtable (read without the DB mutex).
    pub(crate) fn active_memtable_bytes(&self) -> usize {
        self.sv.read().mem.size_bytes()
    }

    /// Asks this database to freeze its active memtable (the write-buffer budget is hit and
    /// it holds the largest one).
    pub(crate) fn request_freeze(&self) {
        if !self.flush_requested.swap(true, Ordering::AcqRel) {
            self.bg_cv.notify_all();
        }
    }

    /// Takes a freeze request if no writer is queued to honour it (a pool thread then freezes
    /// the memtable of an idle database).
    pub(crate) fn take_idle_freeze_request(&self) -> bool {
        self.flush_requested.load(Ordering::Acquire)
            && self.queue.lock().is_empty()
            && !self.is_closing()
            && self.flush_requested.swap(false, Ordering::AcqRel)
    }

    /// Close with a shared pool: waits until no pool job of this database runs (a job in
    /// flight finishes; no new one starts once `closing` is set), then leaves the pool and
    /// releases this database's memtable charges.
    fn leave_shared_resources(&self, r: &crate::SharedResources) {
        let mut st = self.state.lock();
        while st.flush_running || st.compactions_running > 0 {
            self.shape_cv.wait_for(&mut st, Duration::from_millis(50));
        }
        r.pool.deregister(self);
        r.write_buffer.release_mutable(st.mem.take_charged());
        for m in &st.imms {
            r.write_buffer.release(m.take_charged());
        }
    }

    /// Publishes a new super version from the state (call with the DB mutex held).
    pub(crate) fn install_sv(&self, st: &DbState) {
        let sv = SuperVersion {
            mem: Arc::clone(&st.mem),
            imms: st.imms.iter().rev().cloned().collect(),
            version: self.versions.current(),
        };
        *self.sv.write() = Arc::new(sv);
    }

    /// Deletes files that no version references any more.
    pub(crate) fn purge_obsolete_files(&self) {
        let dead: Vec<u64> = std::mem::take(&mut *self.versions.graveyard.dead.lock());
        if dead.is_empty() {
            return;
        }
        let live: std::collections::HashSet<u64> = self
            .versions
            .current()
            .all_files()
            .map(|(_, f)| f.number())
            .collect();
        for n in dead {
            if live.contains(&n) {
                continue;
            }
            self.tables.evict(n);
            let p = crate::filename::table_path(&self.path, n);
            let _ = self.opts().fs.remove(&p);
        }
    }
}
