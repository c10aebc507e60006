//! The engine adapter: openraft's `RaftStateMachine` over a siltdb `Db` (mapping §5).
//!
//! Each `apply` call writes its committed entries as one engine `WriteBatch` with the WAL off,
//! tagged with the last entry's decree (engine tag = decree + 1: the engine's memtable uses tag 0
//! as "no tag", and decrees start at 0), together with the reserved keys `\0silt/applied` (the
//! full LogId) and, when it changed, `\0silt/membership`. A flush cuts at a batch boundary and
//! records the tag atomically with its SSTs, so after a crash the engine holds exactly the state
//! as of its durable decree D with the LogId and membership of D (the plog replays the rest).
//! Blank and membership entries write no user data but still advance the decree. A bulk-load
//! ingest control entry ends the batch: what came before is written, the files are ingested, and
//! the ingest's decree is written and flushed at once (`bulk_load::apply`), so the ingestion is
//! replayed only after a crash inside its own apply, from the replica's staging copy.
//!
//! Layout of the replica directory: `DB_CURRENT` names the live engine directory `db.<gen>`;
//! `checkpoint.<decree>/` are snapshots. Installing a snapshot is crash-atomic: copy into
//! `checkpoint.<d>.tmp`, fsync, rename; copy into `db.<gen+1>`, fsync; switch `DB_CURRENT`
//! atomically; then reopen. A crash before the switch reopens the old engine.

use crate::bulk_load::apply;
use crate::checkpoint::{self, CheckpointHandle, Checkpoints};
use crate::durable::DurableMark;
use crate::error::{Error, Result};
use crate::mutation::{ControlOp, IngestCommand, MutationResp, WriteOp, RESERVED_KEY_PREFIX};
use crate::raft::TypeConfig;
use crate::types::Decree;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use parking_lot::RwLock;
use siltdb::fs::FileSystem;
use siltdb::{Db, Options, WriteBatch, WriteOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Engine key holding the LogId of the last applied entry (term, node, index; 24 bytes LE).
pub const APPLIED_KEY: &[u8] = b"\0silt/applied";
/// Engine key holding the JSON `StoredMembership` as of the last membership entry applied.
pub const MEMBERSHIP_KEY: &[u8] = b"\0silt/membership";
const DB_CURRENT_FILE: &str = "DB_CURRENT";

/// The first key after every key with the reserved prefix (`\0silt/` with `/` + 1 = `0`).
const RESERVED_KEY_END: &[u8] = b"\0silt0";

/// The parts of a user range delete `[start, end)` outside the reserved bookkeeping keys
/// `[RESERVED_KEY_PREFIX, RESERVED_KEY_END)`: a user range may span them (e.g. "delete
/// everything"), but must never delete the replica's own keys.
fn user_ranges<'a>(start: &'a [u8], end: &'a [u8]) -> Vec<(&'a [u8], &'a [u8])> {
    let mut out = Vec::with_capacity(2);
    let below_end = end.min(RESERVED_KEY_PREFIX);
    if start < below_end {
        out.push((start, below_end));
    }
    let above_start = start.max(RESERVED_KEY_END);
    if above_start < end {
        out.push((above_start, end));
    }
    out
}

/// State-machine tuning.
#[derive(Debug, Clone)]
pub struct StateMachineOptions {
    /// Options for the engine (its `fs` is also used for every replica file).
    pub db: Options,
    /// Checkpoints kept by GC (at least 1). Default 2.
    pub checkpoints_keep: usize,
}

impl Default for StateMachineOptions {
    fn default() -> Self {
        Self {
            db: Options::default(),
            checkpoints_keep: 2,
        }
    }
}

/// Entries applied since the last engine write, waiting to be written as one batch.
#[derive(Default)]
struct PendingBatch {
    batch: WriteBatch,
    membership_changed: bool,
    entries: usize,
}

/// Replica batches skip the engine's WAL: the plog is the log.
fn unlogged() -> WriteOptions {
    WriteOptions {
        disable_wal: true,
        ..WriteOptions::default()
    }
}

/// The last applied LogId and the membership as of it.
type AppliedState = (Option<LogId<u64>>, StoredMembership<u64, BasicNode>);

struct Core {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    db_gen: u64,
}

struct Inner {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    opts: StateMachineOptions,
    // Held by apply, build and install: a checkpoint sees no concurrent apply (Pegasus' sync
    // checkpoint), so its durable decree is exactly the applied one.
    core: Arc<tokio::sync::Mutex<Core>>,
    db: RwLock<Arc<Db>>,
    durable: Arc<DurableMark>,
    checkpoints: Checkpoints,
    snapshot_seq: AtomicU64,
}

/// The engine adapter. Clones share state.
#[derive(Clone)]
pub struct EngineStateMachine {
    inner: Arc<Inner>,
}

/// Builds snapshots (engine checkpoints) for openraft.
pub struct CheckpointBuilder {
    inner: Arc<Inner>,
}

fn encode_log_id(id: &LogId<u64>) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&id.leader_id.term.to_le_bytes());
    b[8..16].copy_from_slice(&id.leader_id.node_id.to_le_bytes());
    b[16..].copy_from_slice(&id.index.to_le_bytes());
    b
}

fn decode_log_id(b: &[u8]) -> Option<LogId<u64>> {
    let w = |i: usize| {
        b.get(i..i + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if b.len() != 24 {
        return None;
    }
    Some(LogId::new(CommittedLeaderId::new(w(0)?, w(8)?), w(16)?))
}

/// The engine tag recording `decree` (the engine cannot make tag 0 durable).
fn decree_to_tag(decree: u64) -> Result<u64> {
    decree
        .checked_add(1)
        .ok_or_else(|| Error::InvalidArgument(format!("decree {decree} too large")))
}

/// The decree recorded by an engine tag.
fn tag_to_decree(tag: Option<u64>) -> Option<u64> {
    tag.and_then(|t| t.checked_sub(1))
}

/// The applied-index invariant: the entry at `index`, applied after `applied`, has a larger
/// index. Not necessarily the next one: after a snapshot install openraft applies from past the
/// snapshot (its storage suite applies across such gaps); never a repeat or a step back.
fn advances_applied(applied: Option<LogId<u64>>, index: u64) -> bool {
    applied.is_none_or(|a| index > a.index)
}

fn db_dir_name(gen: u64) -> String {
    format!("db.{gen}")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Closed(format!("state machine I/O task failed: {e}")))?
}

impl EngineStateMachine {
    /// Opens the engine in replica directory `dir` and recovers the durable applied state.
    pub fn open(
        dir: impl AsRef<Path>,
        opts: StateMachineOptions,
    ) -> Result<(Self, Arc<DurableMark>)> {
        let dir = dir.as_ref().to_path_buf();
        let fs = Arc::clone(&opts.db.fs);
        crate::fs_util::create_dir_durable(fs.as_ref(), &dir)?;
        let current = dir.join(DB_CURRENT_FILE);
        let db_gen = if fs.exists(&current) {
            let s =
                siltdb::fs::read_all(fs.as_ref(), &current).map_err(|e| Error::io(&current, e))?;
            let s = String::from_utf8_lossy(&s);
            s.trim()
                .strip_prefix("db.")
                .and_then(|g| g.parse().ok())
                .ok_or_else(|| Error::corruption(&current, 0, format!("bad DB_CURRENT {s:?}")))?
        } else {
            siltdb::fs::write_atomic(fs.as_ref(), &current, db_dir_name(0).as_bytes())?;
            0
        };
        remove_stale_db_dirs(fs.as_ref(), &dir, db_gen)?;
        let db_dir = dir.join(db_dir_name(db_gen));
        crate::fs_util::create_dir_durable(fs.as_ref(), &db_dir)?;
        let db = Db::open(&db_dir, opts.db.clone())?;
        let (applied, membership) = read_applied(&db)?;
        let durable_tag = tag_to_decree(db.durable_tag());
        if applied.map(|a| a.index) != durable_tag {
            return Err(Error::corruption(
                db.path(),
                0,
                format!("engine durable decree {durable_tag:?} but applied LogId {applied:?}"),
            ));
        }
        // Staged ingestions at or below the durable decree are never replayed.
        apply::remove_staging_upto(fs.as_ref(), &dir, durable_tag)?;
        let durable = Arc::new(DurableMark::new(durable_tag));
        let checkpoints = Checkpoints::open(Arc::clone(&fs), &dir, durable_tag)?;
        let inner = Inner {
            dir,
            fs,
            opts,
            core: Arc::new(tokio::sync::Mutex::new(Core {
                applied,
                membership,
                db_gen,
            })),
            db: RwLock::new(Arc::new(db)),
            durable: Arc::clone(&durable),
            checkpoints,
            snapshot_seq: AtomicU64::new(0),
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            durable,
        ))
    }

    /// The live engine (replaced by a snapshot install; hold the `Arc` only briefly).
    pub fn db(&self) -> Arc<Db> {
        Arc::clone(&self.inner.db.read())
    }

    /// Reads a user key from the engine.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if key.starts_with(RESERVED_KEY_PREFIX) {
            return Err(Error::InvalidArgument("reserved key".into()));
        }
        Ok(self.db().get(key)?)
    }

    /// The last bulk-load ingest entry applied as a recorded failure, if any (see
    /// [`apply::IngestFailure`]).
    pub fn ingest_failure(&self) -> Result<Option<apply::IngestFailure>> {
        apply::recorded_failure(&self.db())
    }

    /// The engine's durable decree.
    pub fn durable_decree(&self) -> Option<u64> {
        tag_to_decree(self.db().durable_tag())
    }

    /// The shared durable mark.
    pub fn durable_mark(&self) -> Arc<DurableMark> {
        Arc::clone(&self.inner.durable)
    }

    /// The last decree applied to the engine (ahead of openraft's metrics, which are
    /// published after the apply).
    pub async fn applied_decree(&self) -> Option<Decree> {
        self.inner
            .core
            .lock()
            .await
            .applied
            .map(|l| Decree(l.index))
    }

    /// Flushes the engine so everything applied is durable; returns the durable decree.
    pub fn flush(&self) -> Result<Option<u64>> {
        let db = self.db();
        db.flush()?;
        let d = tag_to_decree(db.durable_tag());
        self.inner.durable.advance(d);
        Ok(d)
    }

    /// The checkpoints of this replica.
    pub fn checkpoints(&self) -> &Checkpoints {
        &self.inner.checkpoints
    }

    /// Closes the engine (flushing what was applied).
    pub fn close(&self) -> Result<()> {
        self.db().close()?;
        Ok(())
    }
}

fn remove_stale_db_dirs(fs: &dyn FileSystem, dir: &Path, live_gen: u64) -> Result<()> {
    let live = db_dir_name(live_gen);
    for name in fs.list(dir).map_err(|e| Error::io(dir, e))? {
        // Staging directories of snapshot transfers a crash interrupted (`learn.<n>.tmp`).
        let stale_staging = name.starts_with("learn.") && name.ends_with(".tmp");
        if (name.starts_with("db.") && name != live) || stale_staging {
            let p = dir.join(&name);
            fs.remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

fn read_applied(db: &Db) -> Result<AppliedState> {
    let applied = match db.get(APPLIED_KEY)? {
        None => None,
        Some(b) => Some(
            decode_log_id(&b)
                .ok_or_else(|| Error::corruption(db.path(), 0, "bad \\0silt/applied value"))?,
        ),
    };
    let membership = match db.get(MEMBERSHIP_KEY)? {
        None => StoredMembership::default(),
        Some(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::corruption(db.path(), 0, format!("bad \\0silt/membership: {e}")))?,
    };
    Ok((applied, membership))
}

impl Inner {
    fn snapshot_id(&self, id: &LogId<u64>) -> String {
        let n = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        format!("{}-{}-{}", id.leader_id.term, id.index, n)
    }

    /// Checkpoint of the applied state; the caller holds the core lock (no apply runs).
    fn build(&self, core: &Core) -> Result<Snapshot<TypeConfig>> {
        let Some(applied) = core.applied else {
            // Nothing applied: an empty snapshot, never registered nor installable. openraft
            // asks for one only when the log was purged with an empty state machine, which our
            // purge rule (purge mark <= durable decree) rules out outside of its test suite.
            return Ok(Snapshot {
                meta: SnapshotMeta {
                    last_log_id: None,
                    last_membership: core.membership.clone(),
                    snapshot_id: format!(
                        "empty-{}",
                        self.snapshot_seq.fetch_add(1, Ordering::Relaxed)
                    ),
                },
                snapshot: Box::new(CheckpointHandle::unpinned(
                    self.dir.join("checkpoint.empty"),
                )),
            });
        };
        if let Some((meta, handle)) = self.checkpoints.newest() {
            if meta.last_log_id == Some(applied) {
                return Ok(Snapshot {
                    meta,
                    snapshot: Box::new(handle),
                });
            }
        }
        let dir = self.checkpoints.dir_of(applied.index);
        if self.fs.exists(&dir) {
            // Same decree, same data: a leftover of a failed registration. Rebuild it.
            self.fs
                .remove_dir_all(&dir)
                .map_err(|e| Error::io(&dir, e))?;
        }
        let db = Arc::clone(&self.db.read());
        let info = db.checkpoint(&dir)?;
        let decree = tag_to_decree(info.durable_tag);
        if decree != Some(applied.index) {
            return Err(Error::corruption(
                &dir,
                0,
                format!(
                    "checkpoint durable decree {decree:?}, applied {}",
                    applied.index
                ),
            ));
        }
        self.durable.advance(decree);
        let meta = SnapshotMeta {
            last_log_id: Some(applied),
            last_membership: core.membership.clone(),
            snapshot_id: self.snapshot_id(&applied),
        };
        checkpoint::write_meta(self.fs.as_ref(), &dir, &meta)?;
        self.checkpoints.register(applied.index, meta);
        self.checkpoints.gc(self.opts.checkpoints_keep)?;
        let (meta, handle) = self
            .checkpoints
            .newest()
            .ok_or_else(|| Error::Closed("checkpoint vanished".into()))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(handle),
        })
    }

    fn apply_batch(
        &self,
        core: &mut Core,
        entries: Vec<Entry<TypeConfig>>,
    ) -> Result<Vec<MutationResp>> {
        let mut pending = PendingBatch::default();
        let mut resps = Vec::with_capacity(entries.len());
        for e in entries {
            debug_assert!(
                advances_applied(core.applied, e.log_id.index),
                "entry {} applied after {:?}: the applied index must strictly increase",
                e.log_id.index,
                core.applied
            );
            let mut ops = 0;
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(m) => {
                    if let Some(ControlOp::Ingest(cmd)) = m.control {
                        // Everything before the ingestion is written first, at lower sequence
                        // numbers, so the ingested files shadow it as the log order says.
                        self.write_pending(core, std::mem::take(&mut pending))?;
                        let refused = self.apply_ingest(core, &cmd, e.log_id)?;
                        resps.push(MutationResp {
                            decree: e.log_id.index,
                            ops: 0,
                            atomic: None,
                            ingest_failure: refused,
                        });
                        continue;
                    }
                    if let Some(ControlOp::Atomic(op)) = m.control {
                        // Decided against everything applied before it: write that first.
                        self.write_pending(core, std::mem::take(&mut pending))?;
                        let db = Arc::clone(&self.db.read());
                        let result = op.apply(&db, &mut pending.batch)?;
                        core.applied = Some(e.log_id);
                        pending.entries += 1;
                        resps.push(MutationResp {
                            decree: e.log_id.index,
                            ops: 1,
                            atomic: Some(result),
                            ingest_failure: None,
                        });
                        continue;
                    }
                    ops = m.ops.len();
                    for op in m.ops {
                        match op {
                            WriteOp::Put { key, value } => pending.batch.put(key, value),
                            WriteOp::Delete { key } => pending.batch.delete(key),
                            WriteOp::DeleteRange { start, end } => {
                                for (a, b) in user_ranges(start.as_slice(), end.as_slice()) {
                                    pending.batch.delete_range(a, b);
                                }
                            }
                        }
                    }
                }
                EntryPayload::Membership(m) => {
                    core.membership = StoredMembership::new(Some(e.log_id), m);
                    pending.membership_changed = true;
                }
            }
            core.applied = Some(e.log_id);
            pending.entries += 1;
            resps.push(MutationResp {
                decree: e.log_id.index,
                ops,
                atomic: None,
                ingest_failure: None,
            });
        }
        self.write_pending(core, pending)?;
        Ok(resps)
    }

    /// Writes the entries gathered since the last write as one batch tagged with the last
    /// applied decree (nothing when no entry is pending).
    fn write_pending(&self, core: &Core, pending: PendingBatch) -> Result<()> {
        let PendingBatch {
            mut batch,
            membership_changed,
            entries,
        } = pending;
        let Some(applied) = core.applied.filter(|_| entries > 0) else {
            return Ok(());
        };
        batch.put(APPLIED_KEY, encode_log_id(&applied));
        if membership_changed {
            let json = serde_json::to_vec(&core.membership)
                .map_err(|e| Error::InvalidArgument(format!("membership not serializable: {e}")))?;
            batch.put(MEMBERSHIP_KEY, json);
        }
        let db = Arc::clone(&self.db.read());
        batch.set_tag(decree_to_tag(applied.index)?);
        db.write(batch, &unlogged())?;
        self.durable.advance(tag_to_decree(db.durable_tag()));
        Ok(())
    }

    /// The ingest control write (`bulk_load::apply`): stage, ingest (unless this load is
    /// already recorded), record the decree and the load — or, when the entry cannot take
    /// effect, the failure — flush, drop the staging copy. Returns the refusal, if any.
    fn apply_ingest(
        &self,
        core: &mut Core,
        cmd: &IngestCommand,
        log_id: LogId<u64>,
    ) -> Result<Option<apply::Refusal>> {
        let db = Arc::clone(&self.db.read());
        let fs = self.fs.as_ref();
        let outcome = if apply::already_ingested(&db, cmd.load_id)? {
            Ok(())
        } else {
            let staging = apply::staging_dir(&self.dir, log_id.index);
            apply::stage_and_ingest(fs, &db, cmd, &staging)?
        };
        let mut batch = WriteBatch::new();
        match &outcome {
            Ok(()) => batch.put(apply::INGESTED_KEY, cmd.load_id.to_le_bytes()),
            Err(reason) => {
                tracing::warn!(
                    decree = log_id.index,
                    load_id = cmd.load_id,
                    %reason,
                    "bulk-load ingest entry applied as a recorded failure"
                );
                let failure = apply::IngestFailure {
                    load_id: cmd.load_id,
                    decree: log_id.index,
                    reason: reason.clone(),
                };
                let json = serde_json::to_vec(&failure).map_err(|e| {
                    Error::InvalidArgument(format!("ingest failure not serializable: {e}"))
                })?;
                batch.put(apply::FAILED_KEY, json);
            }
        }
        batch.put(APPLIED_KEY, encode_log_id(&log_id));
        batch.set_tag(decree_to_tag(log_id.index)?);
        db.write(batch, &unlogged())?;
        core.applied = Some(log_id);
        // The ingestion cannot be replayed once its source is gone: make its decree durable
        // now, so that only a crash inside this function replays it (from the staging copy).
        db.flush()?;
        let durable = tag_to_decree(db.durable_tag());
        self.durable.advance(durable);
        apply::remove_staging_upto(fs, &self.dir, durable)?;
        Ok(outcome.err())
    }

    fn install(
        &self,
        core: &mut Core,
        meta: &SnapshotMeta<u64, BasicNode>,
        src: &Path,
    ) -> Result<()> {
        let id = meta
            .last_log_id
            .ok_or_else(|| Error::InvalidArgument("snapshot without a last log id".into()))?;
        let fs = self.fs.as_ref();
        let final_dir = self.checkpoints.dir_of(id.index);
        if src != final_dir {
            let tmp = siltdb::fs::tmp_path(&final_dir);
            if fs.exists(&tmp) {
                fs.remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
            }
            checkpoint::copy_db_dir(fs, src, &tmp)?;
            checkpoint::write_meta(fs, &tmp, meta)?;
            let got = siltdb::checkpoint::read_checkpoint_meta_with(fs, &tmp)?;
            let got = tag_to_decree(got.durable_tag);
            if got != Some(id.index) {
                return Err(Error::corruption(
                    src,
                    0,
                    format!("snapshot at {} holds durable decree {got:?}", id.index),
                ));
            }
            if fs.exists(&final_dir) {
                fs.remove_dir_all(&final_dir)
                    .map_err(|e| Error::io(&final_dir, e))?;
            }
            fs.rename(&tmp, &final_dir)
                .map_err(|e| Error::io(&final_dir, e))?;
            fs.sync_dir(&self.dir)
                .map_err(|e| Error::io(&self.dir, e))?;
        }
        let gen = core
            .db_gen
            .checked_add(1)
            .ok_or_else(|| Error::InvalidArgument("db generation overflow".into()))?;
        let new_dir = self.dir.join(db_dir_name(gen));
        if fs.exists(&new_dir) {
            fs.remove_dir_all(&new_dir)
                .map_err(|e| Error::io(&new_dir, e))?;
        }
        checkpoint::copy_db_dir(fs, &final_dir, &new_dir)?;
        fs.sync_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?;
        // The switch: from here on a crash reopens the installed state.
        siltdb::fs::write_atomic(
            fs,
            &self.dir.join(DB_CURRENT_FILE),
            db_dir_name(gen).as_bytes(),
        )?;
        let new_db = Db::open(&new_dir, self.opts.db.clone())?;
        let old = std::mem::replace(&mut *self.db.write(), Arc::new(new_db));
        let old_dir = old.path().to_path_buf();
        // The old engine's unflushed state is obsolete; closing flushes it into a dead directory.
        let _ = old.close();
        drop(old);
        fs.remove_dir_all(&old_dir)
            .map_err(|e| Error::io(&old_dir, e))?;
        core.db_gen = gen;
        core.applied = Some(id);
        core.membership = meta.last_membership.clone();
        self.checkpoints.register(id.index, meta.clone());
        self.durable.advance(Some(id.index));
        self.checkpoints.remove_older_than(id.index)?;
        apply::remove_staging_upto(fs, &self.dir, Some(id.index))?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for CheckpointBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let inner = Arc::clone(&self.inner);
        let core = Arc::clone(&inner.core).lock_owned().await;
        blocking(move || inner.build(&core))
            .await
            .map_err(|e| openraft::StorageIOError::write_snapshot(None, &e).into())
    }
}

impl RaftStateMachine<TypeConfig> for EngineStateMachine {
    type SnapshotBuilder = CheckpointBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let core = self.inner.core.lock().await;
        Ok((core.applied, core.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MutationResp>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let inner = Arc::clone(&self.inner);
        let mut core = Arc::clone(&inner.core).lock_owned().await;
        blocking(move || inner.apply_batch(&mut core, entries))
            .await
            .map_err(|e| e.to_storage_write())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        CheckpointBuilder {
            inner: Arc::clone(&self.inner),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<CheckpointHandle>, StorageError<u64>> {
        let n = self.inner.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .inner
            .dir
            .join(format!("{}{n}.tmp", checkpoint::STAGING_PREFIX));
        Ok(Box::new(CheckpointHandle::staging(
            dir,
            Arc::clone(&self.inner.fs),
        )))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<CheckpointHandle>,
    ) -> Result<(), StorageError<u64>> {
        let inner = Arc::clone(&self.inner);
        let mut core = Arc::clone(&inner.core).lock_owned().await;
        let meta2 = meta.clone();
        blocking(move || {
            let r = inner.install(&mut core, &meta2, &snapshot.dir);
            drop(snapshot);
            r
        })
        .await
        .map_err(|e| openraft::StorageIOError::write_snapshot(None, &e).into())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self
            .inner
            .checkpoints
            .newest()
            .map(|(meta, handle)| Snapshot {
                meta,
                snapshot: Box::new(handle),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_applied_index_strictly_increases() {
        let at = |index| LogId::new(CommittedLeaderId::new(1, 0), index);
        assert!(advances_applied(None, 0));
        assert!(advances_applied(None, 7));
        assert!(advances_applied(Some(at(4)), 5));
        assert!(
            advances_applied(Some(at(4)), 9),
            "a gap after a snapshot is allowed"
        );
        assert!(!advances_applied(Some(at(4)), 4), "a repeat");
        assert!(!advances_applied(Some(at(4)), 3), "a step back");
        assert!(!advances_applied(Some(at(u64::MAX)), 0), "no wrap-around");
    }

    #[test]
    fn user_range_deletes_never_cover_the_reserved_keys() {
        let all: &[u8] = &[0xff; 4];
        assert_eq!(
            user_ranges(b"", all),
            vec![(&b""[..], RESERVED_KEY_PREFIX), (RESERVED_KEY_END, all)]
        );
        assert_eq!(user_ranges(b"a", b"z"), vec![(&b"a"[..], &b"z"[..])]);
        assert_eq!(user_ranges(b"", b"\0a"), vec![(&b""[..], &b"\0a"[..])]);
        // Entirely inside the reserved range: nothing.
        assert!(user_ranges(b"\0silt/a", b"\0silt/z").is_empty());
        // Starting inside, ending after: only the part after.
        assert_eq!(
            user_ranges(b"\0silt/a", b"b"),
            vec![(RESERVED_KEY_END, &b"b"[..])]
        );
        // Empty or inverted ranges stay empty.
        assert!(user_ranges(b"b", b"a").is_empty());
        for (a, b) in user_ranges(b"", all) {
            assert!(!(a..b).contains(&&b"\0silt/applied"[..]));
            assert!(!(a..b).contains(&MEMBERSHIP_KEY));
        }
    }
}
