//! The private mutation log (plog): openraft's `RaftLogStorage` (mapping §4, §7).
//!
//! Entries live in segment files ([`segment`]) framed as in [`format`](mod@format); the vote, committed id
//! and purge mark live in the meta file ([`meta`]). Readers (cloned into replication tasks)
//! share, behind an `Arc`, an index of the entries above the purge mark and a bounded cache of
//! the newest ones ([`cache`]); older entries are read back from their segments, checksummed.
//!
//! Purge has two marks. `purge()` hides entries at once (openraft's Suite requires it), but the
//! mark on disk — and physical segment deletion — only advances to what the engine holds durably
//! ([`DurableMark`]): a follower's purge after a snapshot arrives before the snapshot is installed
//! (mapping §7 (b)), and a crash in between must reopen the old log with the old engine.

pub mod cache;
pub mod format;
pub mod meta;
pub mod segment;

use crate::durable::DurableMark;
use crate::error::{Error, Result};
use crate::raft::TypeConfig;
use cache::{CacheLimits, EntryCache, EntryLoc, Planned};
use meta::PlogMeta;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, StorageError, Vote};
use parking_lot::{Mutex, RwLock};
use segment::Segments;
use siltdb::fs::FileSystem;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The first decree plog GC must keep, set by whoever still reads the log after openraft is
/// done with it (duplication: the smallest `confirmed + 1` of its live duplications). `None`
/// (the default) adds no constraint. A purge above it is cut down to it, in memory and on disk.
#[derive(Debug)]
pub struct RetainFrom(AtomicU64);

impl Default for RetainFrom {
    fn default() -> Self {
        // u64::MAX encodes "no constraint" inside the atomic only; the API speaks `Option`.
        Self(AtomicU64::new(u64::MAX))
    }
}

impl RetainFrom {
    /// Keeps every decree `>= keep_from`; `None` lifts the constraint.
    pub fn set(&self, keep_from: Option<crate::types::Decree>) {
        self.0
            .store(keep_from.map_or(u64::MAX, |d| d.0), Ordering::SeqCst);
    }

    /// The first decree GC must keep, if any.
    pub fn get(&self) -> Option<crate::types::Decree> {
        let v = self.0.load(Ordering::SeqCst);
        (v != u64::MAX).then_some(crate::types::Decree(v))
    }
}

/// Plog tuning.
#[derive(Debug, Clone)]
pub struct PlogOptions {
    /// A segment rolls over once it holds this many bytes. Default 32 MiB.
    pub segment_size_max_bytes: u64,
    /// Longest an append waits for the engine to make a snapshot install durable before it
    /// writes past a purge that is not on disk yet. Default 60 s.
    pub purge_wait_max: Duration,
    /// Bounds of the in-memory entry cache; older entries are read from the segments.
    /// Default [`cache::MAX_PLOG_CACHE_ENTRIES`] entries, [`cache::MAX_PLOG_CACHE_BYTES`] bytes.
    pub cache: CacheLimits,
}

impl Default for PlogOptions {
    fn default() -> Self {
        Self {
            segment_size_max_bytes: 32 << 20,
            purge_wait_max: Duration::from_secs(60),
            cache: CacheLimits::default(),
        }
    }
}

/// What readers share: the entries above the (in-memory) purge mark.
#[derive(Debug, Default)]
struct Shared {
    /// Entries by decree: where each sits on disk, the newest also in memory. openraft keeps
    /// them contiguous; the storage Suite also appends with gaps and overwrites.
    entries: EntryCache,
    purged: Option<LogId<u64>>,
    committed: Option<LogId<u64>>,
    vote: Option<Vote<u64>>,
}

impl Shared {
    fn last_log_id(&self) -> Option<LogId<u64>> {
        self.entries.last_log_id().or(self.purged)
    }
}

/// The writer's side: files, what the meta file says, and a purge not yet on disk.
struct Disk {
    segments: Segments,
    meta_on_disk: PlogMeta,
    purge_pending: Option<LogId<u64>>,
    /// The furthest purge openraft asked for. A purge cut short by the retain floor is re-run
    /// from it by [`Plog::retry_purge`] once the floor moved.
    purge_wanted: Option<LogId<u64>>,
    /// Largest decree alive in the files (including purged ones not yet removed).
    disk_last: Option<u64>,
}

/// Counters for tests and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlogStats {
    /// Segment files on disk.
    pub segments: usize,
    /// Purge mark in the meta file.
    pub purged_on_disk: Option<LogId<u64>>,
    /// Purge mark seen by readers.
    pub purged: Option<LogId<u64>>,
    /// Newest entry (or the purge mark when empty).
    pub last_log_id: Option<LogId<u64>>,
    /// Whether open cut a torn tail.
    pub torn_tail_cut: bool,
    /// Live entries (above the in-memory purge mark), in memory or on disk only.
    pub entries: usize,
    /// Entries held in memory (never above [`CacheLimits::entries_max`]).
    pub cached_entries: usize,
    /// Framed record bytes held in memory (never above [`CacheLimits::bytes_max`]).
    pub cached_bytes: u64,
    /// Approximate memory of the index of live entries ([`cache::INDEX_ENTRY_BYTES`] each).
    pub index_bytes: u64,
}

/// The mutation log of one replica. Clones share state; hand exactly one to openraft and keep
/// others only to inspect ([`Plog::stats`]) or to run [`Plog::gc`].
#[derive(Clone)]
pub struct Plog {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    opts: PlogOptions,
    shared: Arc<RwLock<Shared>>,
    // Only the single writer (openraft's `&mut self` calls, or gc) takes this lock, and it holds
    // it across file I/O on purpose: it is the writer's serialization, never a reader's.
    disk: Arc<Mutex<Disk>>,
    durable: Arc<DurableMark>,
    retain: Arc<RetainFrom>,
    torn_tail_cut: bool,
    lost: Option<segment::Lost>,
}

impl Debug for Plog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plog").field("dir", &self.dir).finish()
    }
}

/// A reader of the plog, cloned into openraft's replication tasks.
#[derive(Clone)]
pub struct PlogReader {
    shared: Arc<RwLock<Shared>>,
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
}

impl Plog {
    /// Opens (creating if needed) the plog in `dir`. `durable` is the engine's durable decree.
    /// Any damaged segment fails the open.
    pub fn open(
        dir: impl AsRef<Path>,
        fs: Arc<dyn FileSystem>,
        opts: PlogOptions,
        durable: Arc<DurableMark>,
    ) -> Result<Plog> {
        Self::open_with_checkpoint(dir, fs, opts, durable, None)
    }

    /// Like [`Plog::open`], for a replica whose newest checkpoint is at `checkpoint`: a damaged
    /// segment holding only decrees that both the engine (durable) and that checkpoint cover
    /// costs recovery nothing, so the log restarts after it instead of failing
    /// ([`Plog::lost`] reports it; see [`segment::Segments::open`]). openraft requires the
    /// log's purge mark to stay at or below its snapshot, hence the checkpoint bound.
    pub fn open_with_checkpoint(
        dir: impl AsRef<Path>,
        fs: Arc<dyn FileSystem>,
        opts: PlogOptions,
        durable: Arc<DurableMark>,
        checkpoint: Option<u64>,
    ) -> Result<Plog> {
        let dir = dir.as_ref().to_path_buf();
        crate::fs_util::create_dir_durable(fs.as_ref(), &dir)?;
        let meta = meta::read(fs.as_ref(), &dir)?;
        let (segments, loaded) = Segments::open(
            Arc::clone(&fs),
            &dir,
            opts.segment_size_max_bytes,
            meta.purged.as_ref(),
            std::cmp::min(durable.get(), checkpoint),
            opts.cache,
        )?;
        let entries = loaded.entries;
        // Damaged segments the engine made redundant: the log restarts after them, as if
        // purged there (persisted below, which also removes the files).
        let lost = loaded.lost;
        let purged = std::cmp::max(meta.purged, lost.as_ref().map(|l| l.upto));
        let last = entries.last_log_id().or(purged);
        let disk_last = last.map(|l| l.index);
        // A committed id is only usable if it names an entry we hold; lower is always safe.
        let committed =
            std::cmp::max(meta.committed, loaded.committed).filter(|c| Some(*c) <= last);
        let shared = Shared {
            entries,
            purged,
            committed,
            vote: meta.vote,
        };
        let plog = Plog {
            dir,
            fs,
            opts,
            shared: Arc::new(RwLock::new(shared)),
            disk: Arc::new(Mutex::new(Disk {
                segments,
                meta_on_disk: meta,
                purge_pending: lost.as_ref().map(|l| l.upto),
                purge_wanted: None,
                disk_last,
            })),
            durable,
            retain: Arc::default(),
            torn_tail_cut: loaded.torn_tail_cut,
            lost,
        };
        plog.gc()?;
        Ok(plog)
    }

    /// Damaged segments skipped at open, when the engine already held all they contained
    /// (see [`segment::Segments::open`]). Decrees up to `upto` are unreadable.
    pub fn lost(&self) -> Option<&segment::Lost> {
        self.lost.as_ref()
    }

    /// The plog directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The GC floor shared by every clone (see [`RetainFrom`]).
    pub fn retain(&self) -> &Arc<RetainFrom> {
        &self.retain
    }

    /// Counters for tests and metrics.
    pub fn stats(&self) -> PlogStats {
        let disk = self.disk.lock();
        let shared = self.shared.read();
        PlogStats {
            segments: disk.segments.count(),
            purged_on_disk: disk.meta_on_disk.purged,
            purged: shared.purged,
            last_log_id: shared.last_log_id(),
            torn_tail_cut: self.torn_tail_cut,
            entries: shared.entries.len(),
            cached_entries: shared.entries.cached_entries(),
            cached_bytes: shared.entries.cached_bytes(),
            index_bytes: shared.entries.len() as u64 * cache::INDEX_ENTRY_BYTES,
        }
    }

    /// Persists a pending purge mark and deletes segments, as far as the engine's durable
    /// decree allows. Cheap when there is nothing to do; call after engine flushes.
    pub fn gc(&self) -> Result<()> {
        let mut disk = self.disk.lock();
        self.persist_purge(&mut disk, false)
    }

    /// Re-runs the furthest purge openraft asked for, as far as the retain floor allows now
    /// (openraft asks once per mark; a purge the floor cut short would otherwise wait for the
    /// next snapshot), then persists what the engine's durable decree allows. The replica's
    /// maintenance task calls it every round.
    pub fn retry_purge(&self) -> Result<()> {
        let wanted = self.disk.lock().purge_wanted;
        if let Some(w) = wanted {
            self.do_purge(w)?;
        }
        self.gc()
    }

    fn persist_purge(&self, disk: &mut Disk, wait: bool) -> Result<()> {
        let Some(pending) = disk.purge_pending else {
            return Ok(());
        };
        let durable_ok = self.durable.get() >= Some(pending.index);
        if !durable_ok {
            if !wait {
                return Ok(());
            }
            if !self
                .durable
                .wait_for(pending.index, self.opts.purge_wait_max)
            {
                return Err(Error::Raft(format!(
                    "plog purge to {pending} waited {:?} for the engine to make it durable \
                     (durable decree {:?})",
                    self.opts.purge_wait_max,
                    self.durable.get()
                )));
            }
        }
        let mut m = disk.meta_on_disk.clone();
        m.purged = Some(pending);
        m.vote = self.shared.read().vote;
        m.committed = self.shared.read().committed;
        meta::write(self.fs.as_ref(), &self.dir, &m)?;
        disk.meta_on_disk = m;
        disk.purge_pending = None;
        disk.segments.remove_upto(pending.index)?;
        Ok(())
    }

    fn do_append(&self, entries: Vec<Entry<TypeConfig>>) -> Result<()> {
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            return Ok(());
        };
        let mut disk = self.disk.lock();
        // Writing past a purge that is not on disk yet (a follower installing a snapshot) would
        // leave a hole in the files after a crash: wait until the engine holds the snapshot.
        let hole = first > disk.disk_last.map_or(0, |l| l.saturating_add(1));
        if hole {
            self.persist_purge(&mut disk, true)?;
        }
        let committed = self.shared.read().committed;
        let ts = now_ms();
        let mut buf = Vec::new();
        let mut max_decree = first;
        // Each entry's (offset within `buf`, framed length).
        let mut frames = Vec::with_capacity(entries.len());
        for e in &entries {
            max_decree = max_decree.max(e.log_id.index);
            let at = buf.len();
            format::encode_record(&mut buf, e, committed.as_ref(), ts);
            frames.push((at as u64, (buf.len() - at) as u32));
        }
        let (seq, base) = disk.segments.append(&buf, Some(max_decree))?;
        disk.disk_last = disk.disk_last.max(Some(max_decree));
        let mut s = self.shared.write();
        for (e, (at, len)) in entries.into_iter().zip(frames) {
            let loc = EntryLoc {
                log_id: e.log_id,
                seq,
                offset: base + at,
                len,
            };
            s.entries.insert(e, loc);
        }
        Ok(())
    }

    fn do_truncate(&self, log_id: LogId<u64>) -> Result<()> {
        let mut disk = self.disk.lock();
        disk.segments.truncate(log_id.index)?;
        disk.disk_last = disk.disk_last.min(log_id.index.checked_sub(1));
        self.shared.write().entries.remove_from(log_id.index);
        Ok(())
    }

    fn do_purge(&self, log_id: LogId<u64>) -> Result<()> {
        let mut disk = self.disk.lock();
        disk.purge_wanted = disk.purge_wanted.max(Some(log_id));
        let log_id = {
            let mut s = self.shared.write();
            // A reader outside openraft (duplication) still needs what is at or above the
            // floor: purge only below it. openraft tolerates a log that keeps more.
            let log_id = match self.retain.get() {
                Some(keep) if log_id.index >= keep.0 => {
                    let below = keep.0.checked_sub(1).and_then(|i| s.entries.log_id(i));
                    match below {
                        Some(id) => id,
                        None => return Ok(()),
                    }
                }
                _ => log_id,
            };
            if s.purged >= Some(log_id) {
                return Ok(());
            }
            s.entries.remove_upto(log_id.index);
            s.purged = Some(log_id);
            log_id
        };
        disk.purge_pending = Some(log_id);
        self.persist_purge(&mut disk, false)
    }

    fn do_save_vote(&self, vote: &Vote<u64>) -> Result<()> {
        let mut disk = self.disk.lock();
        let mut m = disk.meta_on_disk.clone();
        m.vote = Some(*vote);
        m.committed = self.shared.read().committed;
        meta::write(self.fs.as_ref(), &self.dir, &m)?;
        disk.meta_on_disk = m;
        self.shared.write().vote = Some(*vote);
        Ok(())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs plog I/O on a blocking thread so fsyncs never stall the async workers that carry
/// heartbeats.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Closed(format!("plog I/O task failed: {e}")))?
}

/// How many times a read re-plans when a segment it located was removed under it (a purge
/// ran in between); each retry sees the purge, so one is normally enough.
const MAX_READ_REPLAN: usize = 3;

type Range = (Bound<u64>, Bound<u64>);

/// `range` as owned bounds; `None` when it is empty by construction.
fn bounds<RB: RangeBounds<u64>>(range: &RB) -> Option<Range> {
    let start = match range.start_bound() {
        Bound::Included(&x) => Bound::Included(x),
        Bound::Excluded(&x) => Bound::Excluded(x),
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match range.end_bound() {
        Bound::Included(&x) => Bound::Included(x),
        Bound::Excluded(&x) => Bound::Excluded(x),
        Bound::Unbounded => Bound::Unbounded,
    };
    if let (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) =
        (start, end)
    {
        if a > b {
            return None;
        }
    }
    Some((start, end))
}

/// Reads `range`: from memory when the cache holds all of it, else on a blocking thread that
/// reads the rest from the segments.
async fn read_log<RB: RangeBounds<u64>>(
    shared: &Arc<RwLock<Shared>>,
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    range: RB,
) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
    let Some(range) = bounds(&range) else {
        return Ok(Vec::new());
    };
    let plan = shared.read().entries.plan(range);
    if plan.iter().all(|p| matches!(p, Planned::Cached(_))) {
        return Ok(plan
            .into_iter()
            .filter_map(|p| match p {
                Planned::Cached(e) => Some(e),
                Planned::OnDisk(_) => None,
            })
            .collect());
    }
    let (shared, fs, dir) = (Arc::clone(shared), Arc::clone(fs), dir.to_path_buf());
    blocking(move || read_from_disk(&shared, fs.as_ref(), &dir, range, plan))
        .await
        .map_err(|e| e.to_storage_read())
}

/// Resolves `plan`; when a segment it located was removed meanwhile (a purge ran), plans again
/// under the lock, which no longer lists the purged entries.
fn read_from_disk(
    shared: &RwLock<Shared>,
    fs: &dyn FileSystem,
    dir: &Path,
    range: Range,
    mut plan: Vec<Planned>,
) -> Result<Vec<Entry<TypeConfig>>> {
    let mut attempt = 0;
    loop {
        match segment::resolve(fs, dir, plan) {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempt < MAX_READ_REPLAN =>
            {
                attempt += 1;
                plan = shared.read().entries.plan(range);
            }
            r => return r,
        }
    }
}

impl RaftLogReader<TypeConfig> for PlogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        read_log(&self.shared, &self.fs, &self.dir, range).await
    }
}

impl RaftLogReader<TypeConfig> for Plog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        read_log(&self.shared, &self.fs, &self.dir, range).await
    }
}

impl RaftLogStorage<TypeConfig> for Plog {
    type LogReader = PlogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let s = self.shared.read();
        Ok(LogState {
            last_purged_log_id: s.purged,
            last_log_id: s.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        PlogReader {
            shared: Arc::clone(&self.shared),
            fs: Arc::clone(&self.fs),
            dir: self.dir.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let me = self.clone();
        let vote = *vote;
        blocking(move || me.do_save_vote(&vote))
            .await
            .map_err(|e| openraft::StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.shared.read().vote)
    }

    async fn save_committed(&mut self, c: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        // Not fsynced: piggybacked on the next record or meta write (a lower committed id
        // after a crash only means less is re-applied at startup).
        self.shared.write().committed = c;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.shared.read().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let me = self.clone();
        match blocking(move || me.do_append(entries)).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(openraft::StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let me = self.clone();
        blocking(move || me.do_truncate(log_id))
            .await
            .map_err(|e| e.to_storage_write())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let me = self.clone();
        blocking(move || me.do_purge(log_id))
            .await
            .map_err(|e| e.to_storage_write())
    }
}
