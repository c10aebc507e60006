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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

/// The body of a background thread.
pub(crate) fn run(inner: &DbInner, role: Role) {
    loop {
        let job = {
            let mut st = inner.state.lock();
            loop {
                if st.closing {
                    return;
                }
                if st.bg_error.is_none() {
                    if !st.flush_running {
                        if let Some(m) = st.imms.front().cloned() {
                            st.flush_running = true;
                            break Job::Flush(m);
                        }
                    }
                    if !role.flush_only {
                        if let Some(c) = compaction::pick(inner, &mut st) {
                            st.compactions_running += 1;
                            break Job::Compact(c);
                        }
                    }
                }
                // Nothing to start. If nothing runs either while writes are stopped, the
                // stopped writers wait on work that nobody does: account it (tests assert it
                // stays at zero; checkpoints and manual compactions can cause short spells).
                let idle_stop = role.accounts_idle
                    && !st.flush_running
                    && st.compactions_running == 0
                    && matches!(
                        stall::evaluate(&inner.shape(&st), &inner.opts),
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
        match job {
            Job::Flush(m) => {
                let r = flush_memtable(inner, &m);
                let mut st = inner.state.lock();
                st.flush_running = false;
                if r.is_ok() {
                    if st.imms.front().is_some_and(|f| Arc::ptr_eq(f, &m)) {
                        st.imms.pop_front();
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
    let Ok(names) = inner.opts.fs.list(&inner.path) else {
        return;
    };
    for name in names {
        if let filename::FileKind::Wal(n) = filename::parse(&name) {
            if n < log_number {
                let _ = inner.opts.fs.remove(&inner.path.join(&name));
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
        .opts
        .fs
        .create(&path)
        .map_err(|e| Error::io(&path, e))?;
    let mut b = TableBuilder::new(
        file,
        path.clone(),
        TableBuildOptions::from_options(&inner.opts, "flush"),
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
            let _ = inner.opts.fs.remove(&path);
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
            Instant::now() + Duration::from_millis(self.opts.max_write_stall_ms.max(1000));
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
