//! The write path: stall gate, group commit, WAL append, memtable insert, memtable switch.

use super::{Db, DbInner};
use crate::key::ValueKind;
use crate::memtable::MemTable;
use crate::stall::{self, micros_since, StallCause, StallState};
use crate::wal::LogWriter;
use crate::write_batch::{BatchOp, WriteBatch};
use crate::{filename, Error, Result, WriteOptions};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest group a leader builds (bytes of batch data).
const MAX_GROUP_BYTES: usize = 1 << 20;
/// Longest single wait on a condition variable before re-checking every exit condition.
const WAIT_SLICE: Duration = Duration::from_millis(50);
/// Wait slice of a writer stopped by the shared write-buffer budget (no signal reaches it).
const BUDGET_POLL_SLICE: Duration = Duration::from_millis(5);
/// Wait slice of a queued `no_slowdown` writer (it re-checks the stall this often).
const NO_SLOWDOWN_SLICE: Duration = Duration::from_millis(1);
/// Longest single slowdown delay.
const MAX_DELAY: Duration = Duration::from_millis(100);
/// A deadline when `max_write_stall_ms` is too large to add to the clock (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(1 << 30);

/// A queued writer (or a barrier: `batch == None` runs alone with write leadership).
pub(crate) struct Writer {
    batch: Mutex<Option<WriteBatch>>,
    sync: bool,
    disable_wal: bool,
    /// Never wait in a stall: not even behind a leader that waits for a flush slot.
    no_slowdown: bool,
    barrier: bool,
    /// When this writer gives up waiting (queue, stall, memtable switch): a write returns
    /// `Error::Stalled` at `max_write_stall_ms` after it arrived, a barrier `Error::Busy`.
    deadline: Instant,
    /// Set (under the queue lock) when a leader took this writer into its group.
    grouped: AtomicBool,
    done: Mutex<Option<Result<()>>>,
}

impl Db {
    /// Sets `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(b, &WriteOptions::default())
    }

    /// Deletes `key`.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(b, &WriteOptions::default())
    }

    /// Deletes every key in `[start, end)` (end exclusive), in O(1) writes.
    pub fn delete_range(&self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.delete_range(start, end);
        self.write(b, &WriteOptions::default())
    }

    /// Applies `batch` atomically.
    pub fn write(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<()> {
        self.inner.write(batch, opts)
    }
}

impl DbInner {
    pub(crate) fn write(&self, batch: WriteBatch, opts: &WriteOptions) -> Result<()> {
        if batch.is_empty() && batch.tag().is_none() {
            return self.check_writable();
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed("the database was closed".into()));
        }
        batch.check_entry_sizes()?;
        // One bound for every wait of this write: the stall gate, the queue and the memtable
        // switch together never exceed `max_write_stall_ms`.
        let deadline = self.stall_deadline(Instant::now());
        // Checks the background error and closing under the DB mutex, like `check_writable`.
        self.stall_gate(opts.no_slowdown, batch.approximate_size(), deadline)?;
        let w = Arc::new(Writer {
            batch: Mutex::new(Some(batch)),
            sync: opts.sync,
            disable_wal: opts.disable_wal,
            no_slowdown: opts.no_slowdown,
            barrier: false,
            deadline,
            grouped: AtomicBool::new(false),
            done: Mutex::new(None),
        });
        self.run_queued(w, |inner, group| inner.commit_group(group))
    }

    /// `max_write_stall_ms` after `now` (far in the future if that overflows).
    fn stall_deadline(&self, now: Instant) -> Instant {
        let bound = Duration::from_millis(self.opts().max_write_stall_ms);
        now.checked_add(bound)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now)
    }

    /// Runs `f` as the only writer (waits for leadership like a write). Used by flush,
    /// ingestion and checkpoints to switch memtables without racing writers. Never called by a
    /// thread that already leads the queue.
    pub(crate) fn with_write_leadership<R>(
        &self,
        f: impl FnOnce(&DbInner) -> Result<R>,
    ) -> Result<R> {
        let deadline =
            Instant::now() + Duration::from_millis(self.opts().max_write_stall_ms.max(1000));
        self.with_write_leadership_until(deadline, f)
    }

    /// [`DbInner::with_write_leadership`] that gives up with `Error::Busy` at `deadline` if
    /// leadership was not granted by then.
    pub(crate) fn with_write_leadership_until<R>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&DbInner) -> Result<R>,
    ) -> Result<R> {
        let w = Arc::new(Writer {
            batch: Mutex::new(None),
            sync: false,
            disable_wal: false,
            no_slowdown: false,
            barrier: true,
            deadline,
            grouped: AtomicBool::new(false),
            done: Mutex::new(None),
        });
        let mut out = None;
        let mut f = Some(f);
        self.run_queued(w, |inner, _group| {
            let f = f
                .take()
                .ok_or_else(|| Error::Closed("barrier ran twice".into()))?;
            out = Some(f(inner)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Closed("write leadership was never granted".into()))
    }

    fn run_queued(
        &self,
        w: Arc<Writer>,
        lead: impl FnOnce(&DbInner, &[Arc<Writer>]) -> Result<()>,
    ) -> Result<()> {
        let mut q = self.queue.lock();
        q.push_back(Arc::clone(&w));
        loop {
            if let Some(r) = w.done.lock().take() {
                return r;
            }
            if q.front().is_some_and(|f| Arc::ptr_eq(f, &w)) {
                break;
            }
            let ungrouped = !w.grouped.load(Ordering::Acquire);
            let now = Instant::now();
            if ungrouped && now >= w.deadline {
                // Not the leader (checked above) and in no group: leave the queue.
                q.retain(|x| !Arc::ptr_eq(x, &w));
                drop(q);
                self.queue_cv.notify_all();
                if w.barrier {
                    return Err(Error::Busy("timed out waiting for the write queue".into()));
                }
                self.state.lock().stall.rejected += 1;
                return Err(Error::Stalled(format!(
                    "the write waited in the write queue for longer than max_write_stall_ms = {}",
                    self.opts().max_write_stall_ms
                )));
            }
            if ungrouped && w.no_slowdown && self.leader_stalled.load(Ordering::Acquire) {
                // The leader ahead waits for a flush slot: a no_slowdown write does not wait.
                q.retain(|x| !Arc::ptr_eq(x, &w));
                drop(q);
                self.queue_cv.notify_all();
                self.state.lock().stall.rejected += 1;
                return Err(Error::Stalled(
                    "the write queue is stalled on the memtable limit and no_slowdown is set"
                        .into(),
                ));
            }
            let slice = if w.no_slowdown {
                NO_SLOWDOWN_SLICE
            } else {
                WAIT_SLICE
            };
            // A grouped writer waits for its leader, whose own waits are bounded.
            let slice = if ungrouped {
                slice.min(w.deadline - now)
            } else {
                slice
            };
            self.queue_cv.wait_for(&mut q, slice);
        }
        // Leader: take a group of compatible writers from the front.
        let mut group = vec![Arc::clone(&w)];
        if !w.barrier {
            let mut bytes = w.batch.lock().as_ref().map_or(0, |b| b.approximate_size());
            for other in q.iter().skip(1) {
                if other.barrier
                    || other.disable_wal != w.disable_wal
                    || other.no_slowdown != w.no_slowdown
                {
                    break;
                }
                let size = other
                    .batch
                    .lock()
                    .as_ref()
                    .map_or(0, |b| b.approximate_size());
                if bytes + size > MAX_GROUP_BYTES {
                    break;
                }
                bytes += size;
                other.grouped.store(true, Ordering::Release);
                group.push(Arc::clone(other));
            }
        }
        drop(q);
        let result = lead(self, &group);
        let mut q = self.queue.lock();
        for (i, member) in group.iter().enumerate() {
            let front = q.pop_front();
            debug_assert!(front.is_some_and(|f| Arc::ptr_eq(&f, member)));
            if i > 0 {
                *member.done.lock() = Some(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e.duplicate()),
                });
            }
        }
        drop(q);
        self.queue_cv.notify_all();
        result
    }

    /// Appends the group's batches to the WAL and inserts them into the memtable.
    fn commit_group(&self, group: &[Arc<Writer>]) -> Result<()> {
        let mem = self.make_room(false, group[0].no_slowdown, group[0].deadline)?;
        let mut merged: Option<WriteBatch> = None;
        let mut sync = false;
        for w in group {
            sync |= w.sync;
            let b = w.batch.lock().take();
            if let Some(b) = b {
                match merged.as_mut() {
                    None => merged = Some(b),
                    Some(m) => m.append(&b),
                }
            }
        }
        let Some(mut batch) = merged else {
            return Ok(());
        };
        let disable_wal = group[0].disable_wal;
        let count = batch.len() as u64;
        let first = first_seq(self.last_seq.load(Ordering::Acquire), count)?;
        let tag = batch.tag();
        if disable_wal {
            self.state.lock().unlogged_writes = true;
        } else {
            let encoded = batch.encode(first);
            let mut wal = self.wal.lock();
            let w = wal
                .as_mut()
                .ok_or_else(|| Error::Closed("the WAL is closed".into()))?;
            let r = w
                .add_record(encoded)
                .and_then(|()| if sync { w.sync() } else { Ok(()) });
            if let Err(e) = r {
                // The WAL may now hold a partial record: nothing more may be acknowledged.
                drop(wal);
                self.set_bg_error(&e);
                return Err(e);
            }
        }
        let user_bytes = apply_to_memtable(&mem, &batch, first);
        if let Some(w) = self.write_buffer() {
            w.charge(mem.charge_delta());
        }
        if let Some(t) = tag {
            mem.note_tag(t);
        }
        if count > 0 {
            let previous = advance_last_seq(&self.last_seq, first + count - 1);
            // Only the write leader numbers batches: nobody published numbers since `first`
            // was chosen, so the batch's numbers directly follow the previous ones.
            debug_assert_eq!(previous + 1, first, "sequence numbers assigned twice");
        }
        self.stats
            .user_bytes
            .fetch_add(user_bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Freezes the active memtable when it is full (or when `force` and it is non-empty),
    /// starting a new WAL. Called only by the queue leader. A forced switch (manual flush,
    /// ingestion, checkpoint) never waits for the memtable-limit stall that its own flush would
    /// relieve; a write's switch waits, bounded, for a flush slot. Returns the active memtable
    /// (the one the leader's writes go to: only the leader switches it).
    /// A write's switch gives up with `Error::Stalled` at `deadline`.
    pub(crate) fn make_room(
        &self,
        force: bool,
        no_slowdown: bool,
        deadline: Instant,
    ) -> Result<Arc<MemTable>> {
        let mut counted = false;
        loop {
            let mut st = self.state.lock();
            if let Some(e) = &st.bg_error {
                return Err(Error::Closed(format!(
                    "read-only after a background error: {e}"
                )));
            }
            if st.closing {
                return Err(Error::Closed("the database is closing".into()));
            }
            let full = st.mem.size_bytes() >= self.opts().memtable_size_bytes
                || self.write_buffer_wants_freeze(&st.mem);
            if force {
                if st.mem.is_empty() {
                    return Ok(Arc::clone(&st.mem));
                }
            } else if !full {
                return Ok(Arc::clone(&st.mem));
            }
            if !force && stall::memtable_limit_reached(st.imms.len(), &self.opts()) {
                // Memtable-limit stop: wait for a flush to finish.
                if no_slowdown {
                    st.stall.rejected += 1;
                    return Err(Error::Stalled(
                        "memtable full, flush pending, and no_slowdown is set".into(),
                    ));
                }
                let now = Instant::now();
                if now >= deadline {
                    st.stall.rejected += 1;
                    return Err(Error::Stalled(format!(
                        "memtable full and {} immutable memtables waiting for flush for {} ms",
                        st.imms.len(),
                        self.opts().max_write_stall_ms
                    )));
                }
                if !counted {
                    st.stall.stops += 1;
                    counted = true;
                }
                self.leader_stalled.store(true, Ordering::Release);
                self.queue_cv.notify_all();
                self.bg_cv.notify_all();
                let started = Instant::now();
                self.shape_cv
                    .wait_for(&mut st, WAIT_SLICE.min(deadline - now));
                self.leader_stalled.store(false, Ordering::Release);
                st.stall
                    .add_stop(StallCause::MemtableLimit, micros_since(started));
                continue;
            }
            drop(st);
            return self.switch_memtable();
        }
    }

    /// True when the shared write-buffer budget wants `mem` (this database's active memtable,
    /// non-empty) frozen: asked by another writer, or the budget is nearly used and `mem` is
    /// the largest active memtable. When another database's is larger, that one is asked.
    fn write_buffer_wants_freeze(&self, mem: &MemTable) -> bool {
        let Some(w) = self.write_buffer() else {
            return false;
        };
        if mem.is_empty() {
            return false;
        }
        if self.flush_requested.swap(false, Ordering::AcqRel) {
            return true;
        }
        if !w.should_flush() {
            return false;
        }
        match self.resources.as_ref().and_then(|r| r.largest_memtable()) {
            Some(d)
                if !std::ptr::eq(Arc::as_ptr(&d), self)
                    && d.active_memtable_bytes() > mem.size_bytes() =>
            {
                d.request_freeze();
                false
            }
            _ => true,
        }
    }

    /// Starts a new WAL and memtable; the old memtable joins the flush queue. Returns the new
    /// memtable.
    fn switch_memtable(&self) -> Result<Arc<MemTable>> {
        let number = self.versions.new_file_number();
        let path = filename::wal_path(&self.path, number);
        let mut wal = self.wal.lock();
        // The old WAL must be durable before later writes land in a new one: otherwise a crash
        // could keep later writes and lose earlier ones (a hole in the history).
        if let Some(old) = wal.as_mut() {
            if let Err(e) = old.sync() {
                self.set_bg_error(&e);
                return Err(e);
            }
        }
        let file = match self.opts().fs.create(&path) {
            Ok(f) => f,
            Err(e) => {
                let e = Error::io(&path, e);
                self.set_bg_error(&e);
                return Err(e);
            }
        };
        if let Err(e) = self.opts().fs.sync_dir(&self.path) {
            let e = Error::io(&self.path, e);
            self.set_bg_error(&e);
            return Err(e);
        }
        *wal = Some(LogWriter::new(file, path));
        drop(wal);
        let mut st = self.state.lock();
        let fresh = Arc::new(MemTable::new(number));
        let old = std::mem::replace(&mut st.mem, Arc::clone(&fresh));
        if let Some(w) = self.write_buffer() {
            w.freeze(old.charged());
        }
        st.imms.push_back(old);
        st.frozen_count += 1;
        self.install_sv(&st);
        drop(st);
        self.bg_cv.notify_all();
        Ok(fresh)
    }

    /// Waits (bounded) while writes are stopped; delays them while slowed down.
    fn stall_gate(&self, no_slowdown: bool, bytes: usize, deadline: Instant) -> Result<()> {
        let mut st = self.state.lock();
        let mut counted = false;
        loop {
            if let Some(e) = &st.bg_error {
                return Err(Error::Closed(format!(
                    "read-only after a background error: {e}"
                )));
            }
            if st.closing {
                return Err(Error::Closed("the database is closing".into()));
            }
            let shape = self.shape(&st);
            // Last resort of the shared write-buffer budget: memtables waiting for flush hold
            // twice the budget. Other databases' flushes relieve it, and they do not signal
            // this one: poll in short slices.
            let budget_stop = self.write_buffer().is_some_and(|w| w.must_stall());
            let state = if budget_stop {
                StallState::Stop(StallCause::MemtableLimit)
            } else {
                stall::evaluate(&shape, &self.opts())
            };
            match state {
                StallState::Normal => {
                    return Ok(());
                }
                StallState::Slowdown(cause) => {
                    if no_slowdown {
                        st.stall.rejected += 1;
                        return Err(Error::Stalled(format!(
                            "writes are slowed down ({}) and no_slowdown is set",
                            cause.name()
                        )));
                    }
                    st.stall.slowdowns += 1;
                    let rate = self.opts().delayed_write_rate_bytes.max(1);
                    let delay =
                        Duration::from_micros((bytes as u64).saturating_mul(1_000_000) / rate)
                            .clamp(Duration::from_micros(100), MAX_DELAY);
                    self.bg_cv.notify_all();
                    // Ends early when the shape changes: a slowdown releases as soon as
                    // background work clears it.
                    let started = Instant::now();
                    self.shape_cv.wait_for(&mut st, delay);
                    st.stall.add_delay(micros_since(started));
                    return Ok(());
                }
                StallState::Stop(cause) => {
                    if no_slowdown {
                        st.stall.rejected += 1;
                        return Err(Error::Stalled(format!(
                            "writes are stopped ({}) and no_slowdown is set",
                            cause.name()
                        )));
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        st.stall.rejected += 1;
                        return Err(Error::Stalled(format!(
                            "writes stopped ({}) for longer than max_write_stall_ms = {}",
                            cause.name(),
                            self.opts().max_write_stall_ms
                        )));
                    }
                    if !counted {
                        st.stall.stops += 1;
                        counted = true;
                    }
                    // Make sure the work that relieves the stall is scheduled.
                    self.bg_cv.notify_all();
                    let started = Instant::now();
                    let slice = if budget_stop {
                        BUDGET_POLL_SLICE
                    } else {
                        WAIT_SLICE
                    };
                    self.shape_cv.wait_for(&mut st, slice.min(deadline - now));
                    st.stall.add_stop(cause, micros_since(started));
                }
            }
        }
    }

    /// What a write arriving now would be slowed or stopped by, from the current shape (not
    /// the last writer's experience, which stays stale until the next write).
    pub(crate) fn stall_cause_now(&self, st: &super::DbState) -> Option<&'static str> {
        match stall::evaluate(&self.shape(st), &self.opts()) {
            StallState::Normal => None,
            StallState::Slowdown(c) | StallState::Stop(c) => Some(c.name()),
        }
    }

    /// The numbers the stall conditions look at (DB mutex held).
    pub(crate) fn shape(&self, st: &super::DbState) -> stall::Shape {
        let v = self.versions.current();
        stall::Shape {
            immutable_memtables: st.imms.len(),
            active_full: st.mem.size_bytes() >= self.opts().memtable_size_bytes,
            l0_files: v.levels[0].len(),
            pending_compaction_bytes: crate::compaction::pending_bytes(&v, &self.opts()),
        }
    }

    /// Syncs the WAL, or flushes memtables holding writes that skipped it. Used by close.
    pub(crate) fn persist_for_close(&self) -> Result<()> {
        if let Some(e) = &self.state.lock().bg_error {
            // Nothing more can be made durable (a sync after a failed one proves nothing), so
            // writes acknowledged without `sync` may not be: say so instead of returning Ok.
            // Reopening recovers whatever reached the disk.
            return Err(Error::Closed(format!(
                "closed read-only after a background error ({e}): writes acknowledged without \
                 sync may not be durable"
            )));
        }
        let unlogged = self.state.lock().unlogged_writes;
        if unlogged {
            return self.flush_and_wait();
        }
        self.with_write_leadership(|inner| {
            if let Some(w) = inner.wal.lock().as_mut() {
                w.sync()?;
            }
            Ok(())
        })
    }
}

/// The first sequence number of a batch of `count` operations after `last`, the newest number
/// in use: `last + 1`, so the numbers assigned to write batches strictly increase. A batch whose
/// numbers would pass [`crate::key::MAX_SEQNO`] is refused.
pub(crate) fn first_seq(last: u64, count: u64) -> Result<u64> {
    let exhausted = || Error::InvalidArgument("sequence numbers exhausted".into());
    let first = last.checked_add(1).ok_or_else(exhausted)?;
    if first.saturating_add(count) > crate::key::MAX_SEQNO {
        return Err(exhausted());
    }
    debug_assert!(first > last);
    Ok(first)
}

/// Publishes `seq` as the newest sequence number in use (`DbInner::last_seq`) and returns the
/// one it replaces. The last sequence number never goes backwards: snapshots and reads taken at
/// it would otherwise miss acknowledged writes.
pub(crate) fn advance_last_seq(last_seq: &AtomicU64, seq: u64) -> u64 {
    let previous = last_seq.swap(seq, Ordering::AcqRel);
    debug_assert!(
        seq >= previous,
        "last sequence would go backwards: {previous} -> {seq}"
    );
    previous
}

/// Inserts a batch's operations into `mem`, numbering them from `first`; returns the user bytes
/// (keys and values) written, the denominator of write amplification.
pub(crate) fn apply_to_memtable(mem: &MemTable, batch: &WriteBatch, first: u64) -> u64 {
    let mut bytes = 0u64;
    for (seq, op) in (first..).zip(batch.ops()) {
        bytes += match op {
            BatchOp::Put(k, v) | BatchOp::DeleteRange(k, v) => k.len() + v.len(),
            BatchOp::Delete(k) => k.len(),
        } as u64;
        apply_op(mem, seq, &op);
    }
    bytes
}

/// Inserts one batch operation at `seq`.
pub(crate) fn apply_op(mem: &MemTable, seq: u64, op: &BatchOp<'_>) {
    match op {
        BatchOp::Put(k, v) => mem.add(seq, ValueKind::Put, k, v),
        BatchOp::Delete(k) => mem.add(seq, ValueKind::Delete, k, &[]),
        BatchOp::DeleteRange(s, e) => mem.add(seq, ValueKind::RangeDelete, s, e),
    }
}

#[cfg(test)]
mod seq_tests {
    use super::*;

    #[test]
    fn batch_sequence_numbers_strictly_increase_and_stop_at_the_limit() {
        let last_seq = AtomicU64::new(0);
        let mut seen = 0u64;
        for count in [1u64, 5, 1, 100, 3] {
            let first = first_seq(last_seq.load(Ordering::Acquire), count).unwrap();
            assert!(first > seen, "{first} after {seen}");
            let previous = advance_last_seq(&last_seq, first + count - 1);
            assert_eq!(previous + 1, first);
            seen = first + count - 1;
        }
        assert_eq!(last_seq.load(Ordering::Acquire), 110);
        let max = crate::key::MAX_SEQNO;
        assert_eq!(first_seq(max - 11, 10).unwrap(), max - 10);
        assert!(first_seq(max - 10, 10).is_err());
        assert!(first_seq(u64::MAX, 0).is_err());
        // Recovery may publish the same number again (nothing replayed): not backwards.
        assert_eq!(advance_last_seq(&last_seq, 110), 110);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "last sequence would go backwards")]
    fn the_last_sequence_never_goes_backwards() {
        let last_seq = AtomicU64::new(10);
        advance_last_seq(&last_seq, 9);
    }
}
