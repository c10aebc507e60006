//! Background threads: flush immutable memtables, run compactions, delete obsolete files.
//!
//! Every background thread loops: under the DB mutex it picks the most urgent job (a flush comes
//! before any compaction), runs it without the mutex, then re-evaluates. Every change to the LSM
//! shape notifies `shape_cv` (stalled writers) and `bg_cv` (other background threads), so a
//! stalled writer always waits on work that is scheduled (Pebble #320).

use super::DbInner;
use crate::compaction;
use crate::iter::InternalIterator;
use crate::manifest::edit::{NewFile, VersionEdit};
use crate::memtable::MemTable;
use crate::sst::{TableBuildOptions, TableBuilder};
use crate::stall;
use crate::{filename, Error, Result};
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Idle wait between checks for work.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// Background work counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) flushes: AtomicU64,
    pub(crate) flush_bytes: AtomicU64,
    pub(crate) compactions: AtomicU64,
    pub(crate) compaction_read_bytes: AtomicU64,
    pub(crate) compaction_write_bytes: AtomicU64,
    pub(crate) trivial_moves: AtomicU64,
    pub(crate) user_bytes: AtomicU64,
}

enum Job {
    Flush(Arc<MemTable>),
    Compact(compaction::Compaction),
}

/// What a background thread may do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Role {
    /// Only flushes: a flush never waits for a thread that a long compaction occupies (the
    /// memtable-limit stop would last as long as that compaction).
    pub(crate) flush_only: bool,
    /// This thread accounts `idle_stop_micros` (exactly one thread does).
    pub(crate) accounts_idle: bool,
}

/// The roles of the background threads: one dedicated flush thread, so a flush never waits
/// for a thread that a long compaction occupies, plus `max_background_jobs` (at least one)
/// threads that run compactions and also flushes when one is waiting.
pub(crate) fn roles(max_background_jobs: usize) -> Vec<Role> {
    let flush = std::iter::once(Role {
        flush_only: true,
        accounts_idle: false,
    });
    let compact = (0..max_background_jobs.max(1)).map(|i| Role {
        flush_only: false,
        accounts_idle: i == 0,
    });
    flush.chain(compact).collect()
}

/// Which kind of job a scan looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Flush,
    Compact,
}

/// Claims the job of kind `pass` that `inner` needs most, if any (under the DB mutex).
fn try_pick(inner: &DbInner, st: &mut super::DbState, pass: Pass) -> Option<Job> {
    if st.closing || st.bg_error.is_some() {
        return None;
    }
    match pass {
        Pass::Flush => {
            if st.flush_running {
                return None;
            }
            let m = st.imms.front().cloned()?;
            st.flush_running = true;
            Some(Job::Flush(m))
        }
        Pass::Compact => {
            let c = compaction::pick(inner, st)?;
            st.compactions_running += 1;
            Some(Job::Compact(c))
        }
    }
}

/// Runs a claimed job without the DB mutex, then publishes its result and wakes waiters.
fn execute(inner: &DbInner, job: Job) {
    match job {
        Job::Flush(m) => {
            let r = flush_memtable(inner, &m);
            let mut st = inner.state.lock();
            st.flush_running = false;
            if r.is_ok() {
                if st.imms.front().is_some_and(|f| Arc::ptr_eq(f, &m)) {
                    st.imms.pop_front();
                    if let Some(w) = inner.write_buffer() {
                        w.release(m.take_charged());
                    }
                }
                st.flushed_count += 1;
                inner.install_sv(&st);
            }
            drop(st);
            if let Err(e) = r {
                inner.set_bg_error(&e);
            }
        }
        Job::Compact(c) => {
            let r = compaction::run(inner, c);
            let mut st = inner.state.lock();
            st.compactions_running -= 1;
            inner.install_sv(&st);
            drop(st);
            if let Err(e) = r {
                inner.set_bg_error(&e);
            }
        }
    }
    inner.purge_obsolete_files();
    inner.shape_cv.notify_all();
    inner.bg_cv.notify_all();
}

/// The body of a database's own background thread (when it has no shared pool).
pub(crate) fn run(inner: &DbInner, role: Role) {
    loop {
        let job = {
            let mut st = inner.state.lock();
            loop {
                if st.closing {
                    return;
                }
                if let Some(j) = try_pick(inner, &mut st, Pass::Flush) {
                    break j;
                }
                if !role.flush_only {
                    if let Some(j) = try_pick(inner, &mut st, Pass::Compact) {
                        break j;
                    }
                }
                if inner.versions.graveyard.has_dead() {
                    // Files whose last reader let go after the last job: delete them now, not
                    // at the next flush or compaction (which a read-only spell never brings).
                    parking_lot::MutexGuard::unlocked(&mut st, || inner.purge_obsolete_files());
                    continue;
                }
                // Nothing to start. If nothing runs either while writes are stopped, the
                // stopped writers wait on work that nobody does: account it (tests assert it
                // stays at zero; checkpoints and manual compactions can cause short spells).
                let idle_stop = role.accounts_idle
                    && !st.flush_running
                    && st.compactions_running == 0
                    && matches!(
                        stall::evaluate(&inner.shape(&st), &inner.opts()),
                        stall::StallState::Stop(_)
                    );
                let started = idle_stop.then(Instant::now);
                inner.bg_cv.wait_for(&mut st, IDLE_WAIT);
                if let Some(t) = started {
                    st.stall.idle_stop_micros = st
                        .stall
                        .idle_stop_micros
                        .saturating_add(stall::micros_since(t));
                }
            }
        };
        execute(inner, job);
    }
}

/// Longest a pool thread waits for leadership to freeze an idle database's memtable that the
/// write-buffer budget asked to flush (a busy database's own writers freeze it instead).
const FREEZE_WAIT: Duration = Duration::from_millis(100);

/// A pool of background threads serving every database registered with it
/// ([`crate::SharedResources`]). Each thread scans the databases round-robin, flushes first.
pub(crate) struct JobPool {
    state: Mutex<PoolState>,
    cv: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
    thread_count: usize,
}

struct PoolState {
    dbs: Vec<Weak<DbInner>>,
    /// Bumped by every notification, so a scan that found nothing never sleeps through one.
    generation: u64,
    /// Where the next scan starts (fairness between databases).
    next: usize,
    shutdown: bool,
}

impl JobPool {
    /// Starts `jobs` (at least one) general threads and one flush-only thread.
    pub(crate) fn start(jobs: usize) -> std::io::Result<Arc<JobPool>> {
        let roles = roles(jobs);
        let pool = Arc::new(JobPool {
            state: Mutex::new(PoolState {
                dbs: Vec::new(),
                generation: 0,
                next: 0,
                shutdown: false,
            }),
            cv: Condvar::new(),
            threads: Mutex::new(Vec::new()),
            thread_count: roles.len(),
        });
        for (i, role) in roles.into_iter().enumerate() {
            let me = Arc::clone(&pool);
            let kind = if role.flush_only { "flush" } else { "bg" };
            let spawned = std::thread::Builder::new()
                .name(format!("silt-pool-{kind}-{i}"))
                .spawn(move || me.run(role));
            match spawned {
                Ok(h) => pool.threads.lock().push(h),
                Err(e) => {
                    pool.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(pool)
    }

    pub(crate) fn thread_count(&self) -> usize {
        self.thread_count
    }

    /// The databases registered and still open.
    pub(crate) fn databases(&self) -> Vec<Arc<DbInner>> {
        self.state
            .lock()
            .dbs
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    pub(crate) fn register(&self, db: &Arc<DbInner>) {
        {
            let mut s = self.state.lock();
            s.dbs.retain(|d| d.strong_count() > 0);
            s.dbs.push(Arc::downgrade(db));
        }
        self.notify();
    }

    pub(crate) fn deregister(&self, db: &DbInner) {
        self.state
            .lock()
            .dbs
            .retain(|d| d.strong_count() > 0 && !std::ptr::eq(d.as_ptr(), db));
    }

    /// Some database may have work: every idle thread rescans.
    pub(crate) fn notify(&self) {
        self.state.lock().generation += 1;
        self.cv.notify_all();
    }

    /// Stops and joins the threads (except the calling one, if it is a pool thread: it exits
    /// by itself when it sees `shutdown`).
    pub(crate) fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.cv.notify_all();
        let me = std::thread::current().id();
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }

    fn run(&self, role: Role) {
        loop {
            let (generation, dbs) = {
                let mut s = self.state.lock();
                if s.shutdown {
                    return;
                }
                s.dbs.retain(|d| d.strong_count() > 0);
                s.next = s.next.wrapping_add(1);
                let n = s.dbs.len().max(1);
                let start = s.next % n;
                let dbs: Vec<Arc<DbInner>> = s.dbs[start..]
                    .iter()
                    .chain(&s.dbs[..start])
                    .filter_map(Weak::upgrade)
                    .collect();
                (s.generation, dbs)
            };
            let ran = self.run_one(&dbs, role);
            drop(dbs);
            if !ran {
                let mut s = self.state.lock();
                if !s.shutdown && s.generation == generation {
                    self.cv.wait_for(&mut s, IDLE_WAIT);
                }
            }
        }
    }

    /// Runs the most urgent job of any database: a requested freeze or a flush anywhere comes
    /// before any compaction. False when there was none.
    fn run_one(&self, dbs: &[Arc<DbInner>], role: Role) -> bool {
        for db in dbs {
            if db.take_idle_freeze_request() {
                let deadline = Instant::now() + FREEZE_WAIT;
                let _ = db.with_write_leadership_until(deadline, |inner| {
                    inner.make_room(true, false, deadline).map(drop)
                });
                return true;
            }
        }
        let passes: &[Pass] = if role.flush_only {
            &[Pass::Flush]
        } else {
            &[Pass::Flush, Pass::Compact]
        };
        for &pass in passes {
            for db in dbs {
                let job = try_pick(db, &mut db.state.lock(), pass);
                if let Some(job) = job {
                    execute(db, job);
                    return true;
                }
            }
        }
        // Files whose last reader let go after the last job (see `run`).
        if let Some(db) = dbs.iter().find(|d| d.versions.graveyard.has_dead()) {
            db.purge_obsolete_files();
            return true;
        }
        false
    }
}

/// Writes `mem` to a new L0 table and logs it; the memtable's WAL becomes obsolete.
fn flush_memtable(inner: &DbInner, mem: &Arc<MemTable>) -> Result<()> {
    let started = Instant::now();
    let added = write_level0_table(inner, mem)?;
    let log_number = {
        let st = inner.state.lock();
        st.imms.get(1).map_or(st.mem.log_number, |m| m.log_number)
    };
    let mut edit = VersionEdit {
        log_number: Some(log_number),
        last_seqno: Some(inner.last_seq.load(Ordering::Acquire)),
        durable_tag: mem.max_tag(),
        ..Default::default()
    };
    if let Some(f) = added {
        inner.stats.flush_bytes.fetch_add(f.size, Ordering::Relaxed);
        edit.added.push((0, f));
    }
    // On failure the table is kept: a failed sync may still have left the edit in the manifest
    // (deleting the table would make the database unopenable); the next open deletes tables no
    // manifest lists.
    inner.versions.log_and_apply(edit)?;
    inner.stats.flushes.fetch_add(1, Ordering::Relaxed);
    delete_old_wals(inner, log_number);
    tracing_flush(inner, started);
    Ok(())
}

fn tracing_flush(_inner: &DbInner, _started: Instant) {}

/// Removes WAL files older than `log_number` (their memtables are in SSTs now).
pub(crate) fn delete_old_wals(inner: &DbInner, log_number: u64) {
    let Ok(names) = inner.opts().fs.list(&inner.path) else {
        return;
    };
    for name in names {
        if let filename::FileKind::Wal(n) = filename::parse(&name) {
            if n < log_number {
                let _ = inner.opts().fs.remove(&inner.path.join(&name));
            }
        }
    }
}

/// Builds an SST from a memtable; `None` when it holds nothing.
pub(crate) fn write_level0_table(inner: &DbInner, mem: &Arc<MemTable>) -> Result<Option<NewFile>> {
    if !mem.has_data() {
        return Ok(None);
    }
    let number = inner.versions.new_file_number();
    let path = filename::table_path(&inner.path, number);
    let file = inner
        .opts()
        .fs
        .create(&path)
        .map_err(|e| Error::io(&path, e))?;
    let mut b = TableBuilder::new(
        file,
        path.clone(),
        TableBuildOptions::from_options(&inner.opts(), "flush"),
    );
    // Versions hidden by a newer version of the same key with no snapshot in between can never
    // be read: leave them out (compaction applies the same rule to everything else).
    let snapshots = inner.snapshots.seqnos();
    let stripe = |seq: u64| snapshots.partition_point(|s| *s < seq);
    let r = (|| {
        let mut it = mem.iter();
        it.seek_to_first();
        let mut prev: Option<(Vec<u8>, usize)> = None;
        while it.valid() {
            let (uk, seq) = (crate::key::user_key(it.key()), crate::key::seqno(it.key()));
            let s = stripe(seq);
            let hidden = prev
                .as_ref()
                .is_some_and(|(k, ps)| k.as_slice() == uk && *ps == s);
            if !hidden {
                b.add(it.key(), it.value())?;
            }
            match prev.as_mut() {
                Some((k, ps)) if k.as_slice() == uk => *ps = s,
                _ => prev = Some((uk.to_vec(), s)),
            }
            it.next();
        }
        for t in mem.range_tombstones() {
            b.add_range_tombstone(t);
        }
        b.finish()
    })();
    let info = match r {
        Ok(i) => i,
        Err(e) => {
            let _ = inner.opts().fs.remove(&path);
            return Err(e);
        }
    };
    Ok(Some(NewFile::from_table(number, info)))
}

impl DbInner {
    /// Freezes the active memtable (as the write leader, never waiting on the stall that this
    /// flush relieves) and waits, bounded, until every memtable frozen so far is flushed.
    pub(crate) fn flush_and_wait(&self) -> Result<()> {
        self.with_write_leadership(|inner| {
            inner
                .make_room(true, false, std::time::Instant::now())
                .map(drop)
        })?;
        let target = self.state.lock().frozen_count;
        self.wait_flushed(target)
    }

    /// Waits until `flushed_count >= target`, a background error, close, or the stall bound.
    pub(crate) fn wait_flushed(&self, target: u64) -> Result<()> {
        let deadline =
            Instant::now() + Duration::from_millis(self.opts().max_write_stall_ms.max(1000));
        self.wait_flushed_until(target, deadline)
    }

    /// [`DbInner::wait_flushed`] with an explicit deadline (then `Error::Busy`).
    pub(crate) fn wait_flushed_until(&self, target: u64, deadline: Instant) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.flushed_count >= target {
                return Ok(());
            }
            if let Some(e) = &st.bg_error {
                return Err(Error::Closed(format!("flush failed: {e}")));
            }
            if st.closing {
                return Err(Error::Closed("the database is closing".into()));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Busy(
                    "flush did not finish before the deadline".into(),
                ));
            }
            self.bg_cv.notify_all();
            self.shape_cv
                .wait_for(&mut st, Duration::from_millis(50).min(deadline - now));
        }
    }
}
