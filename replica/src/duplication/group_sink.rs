//! A follower that is another replica group: [`GroupSink`] writes into an in-process group
//! (its own `Router` and `Gpid`, 1 to 3 [`Replica`]s) through its primary.
//!
//! **Threads.** The duplicator calls a sink from its own thread, and the replica API is async:
//! every call blocks on a tokio runtime handle (as `ReplicaSource` does), bounded by
//! [`GroupSinkOptions::write_timeout`] per follower write and by
//! [`GroupSinkOptions::leader_wait_max`] for finding a primary. Never call a `GroupSink` from
//! one of that runtime's worker threads (use `spawn_blocking` or `block_in_place`).
//!
//! **Writes.** Follower writes go through [`Replica::write_control`]: they are not user
//! traffic, so user write throttling does not hold them back. They carry no ballot: ballots are
//! per group, and the source's mean nothing to the follower. A follower that is not the
//! primary, an election, a stopped replica or a timeout is [`SinkError::Unavailable`] once the
//! bounds are spent, and the duplicator retries.
//!
//! **Why re-shipping is harmless.** A write that timed out may still commit later. Raft orders
//! it before every write that succeeds after it: the same primary appends in call order, and a
//! later primary's log holds every committed entry of earlier terms before its own entries,
//! while an entry of an earlier term can never commit behind an entry of a later one. So when
//! a re-ship of `[a, b]` succeeds, any earlier attempt at a prefix of it is applied before it
//! or never; and every op is a blind write (put, delete, range delete), so applying a prefix
//! and then the whole batch leaves what applying the batch once leaves.
//!
//! **Batches.** [`DuplicationSink::ship`] merges consecutive mutations into one follower
//! mutation (applied atomically, in order) up to [`GroupSinkOptions::mutation_ops_max`] ops
//! and [`GroupSinkOptions::mutation_bytes_max`] bytes; a source mutation is never split. A
//! failure after some merged mutations succeeded acknowledges that prefix.
//!
//! **Checkpoints.** [`DuplicationSink::apply_checkpoint`] replaces the follower table's user
//! keys with the checkpoint's. The source's checkpoint directory is never opened in place
//! (opening an engine writes a manifest): it is copied into this sink's scratch directory and
//! the copy is opened. Then, on the follower: a barrier write (every earlier write, even one
//! that timed out, is applied once it returns, or never will be), a range delete of every user
//! key up to the largest one on the replica that took the barrier (the follower's state machine
//! keeps its own `\0silt/` keys out of a user range delete), and the checkpoint's user keys as
//! puts in bounded mutations. The scratch copy is removed afterwards on every path (and a
//! leftover of a crash at the next call).
//!
//! Control mutations (bulk-load ingestion) are refused: see the module docs of
//! [`crate::duplication`].

use super::replay::{
    checkpoint_context, clear_mutation, merge_batch, stream_user_keys, CheckpointCopy,
};
use super::sink::{refuse_control, DuplicationSink, SinkError, SinkResult};
use crate::error::Error;
use crate::mutation::Mutation;
use crate::replica::Replica;
use crate::types::{Decree, Gpid};
use parking_lot::{Mutex, RwLock};
use siltdb::{Db, Options};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a call looks again for the follower's primary while it has none.
const LEADER_POLL: Duration = Duration::from_millis(20);

/// Name of the scratch copy of a checkpoint inside [`GroupSinkOptions::scratch_dir`].
const SCRATCH_NAME: &str = "checkpoint.copy";

/// [`GroupSink`] tuning.
#[derive(Debug, Clone)]
pub struct GroupSinkOptions {
    /// A directory owned by this sink alone, for the scratch copy of a checkpoint being applied.
    pub scratch_dir: PathBuf,
    /// Engine options to open the scratch copy with (its `fs` does the copy too). Default
    /// `Options::default()`.
    pub scratch_db: Options,
    /// Bound on one follower write: proposed, committed, applied on the primary. Default 5 s.
    pub write_timeout: Duration,
    /// How long one follower write keeps looking for the primary (elections, a primary that
    /// moved) before the call reports unavailable. Default 3 s.
    pub leader_wait_max: Duration,
    /// Most ops in one follower mutation (a larger source mutation goes alone). Default 1024.
    pub mutation_ops_max: usize,
    /// Most key and value bytes in one follower mutation (a larger source mutation goes
    /// alone). Default 1 MiB.
    pub mutation_bytes_max: u64,
}

impl GroupSinkOptions {
    /// Defaults, with scratch copies in `scratch_dir`.
    pub fn new(scratch_dir: impl Into<PathBuf>) -> Self {
        Self {
            scratch_dir: scratch_dir.into(),
            scratch_db: Options::default(),
            write_timeout: Duration::from_secs(5),
            leader_wait_max: Duration::from_secs(3),
            mutation_ops_max: 1024,
            mutation_bytes_max: 1 << 20,
        }
    }
}

/// What a [`GroupSink`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupSinkStats {
    /// Follower writes applied by the follower's primary.
    pub writes: u64,
    /// Times a write found no primary, or a replica that was not (or no longer) the primary,
    /// and looked again.
    pub retries: u64,
    /// Follower writes that timed out.
    pub timeouts: u64,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    retries: AtomicU64,
    timeouts: AtomicU64,
}

/// A duplication follower that is an in-process replica group.
pub struct GroupSink {
    gpid: Gpid,
    rt: tokio::runtime::Handle,
    opts: GroupSinkOptions,
    replicas: RwLock<BTreeMap<u64, Arc<Replica>>>,
    // Serializes checkpoint applies: each replaces the whole table and owns the one scratch
    // copy. Held across the copy and the writes on purpose; ships never take it.
    applying: Mutex<()>,
    counters: Counters,
}

impl GroupSink {
    /// A sink into the group of partition `gpid`, driving its async API on `rt`. Add the
    /// group's replicas with [`GroupSink::set_replica`].
    pub fn new(gpid: Gpid, rt: tokio::runtime::Handle, opts: GroupSinkOptions) -> Self {
        Self {
            gpid,
            rt,
            opts,
            replicas: RwLock::default(),
            applying: Mutex::new(()),
            counters: Counters::default(),
        }
    }

    /// The follower's partition.
    pub fn gpid(&self) -> Gpid {
        self.gpid
    }

    /// Adds `replica`, or replaces the handle of the same node (after a restart); returns the
    /// handle replaced. Refuses a replica of another partition.
    pub fn set_replica(&self, replica: Arc<Replica>) -> crate::Result<Option<Arc<Replica>>> {
        if replica.gpid() != self.gpid {
            return Err(Error::InvalidArgument(format!(
                "replica of {} in the follower group of {}",
                replica.gpid(),
                self.gpid
            )));
        }
        Ok(self.replicas.write().insert(replica.id(), replica))
    }

    /// The counters now.
    pub fn stats(&self) -> GroupSinkStats {
        GroupSinkStats {
            writes: self.counters.writes.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            timeouts: self.counters.timeouts.load(Ordering::Relaxed),
        }
    }

    /// Forgets node `id` (before stopping it); returns its handle. A call in flight may still
    /// hold a clone until it returns, within its bounds.
    pub fn remove_replica(&self, id: u64) -> Option<Arc<Replica>> {
        self.replicas.write().remove(&id)
    }

    /// The replicas the sink knows, by node id.
    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.read().values().cloned().collect()
    }

    /// The follower's primary as the known replicas see it now: one that believes it leads
    /// (the highest ballot if several do), else the one the others name.
    pub fn leader(&self) -> Option<Arc<Replica>> {
        let replicas = self.replicas.read();
        let leading = replicas
            .values()
            .filter(|r| r.leader() == Some(r.id()))
            .max_by_key(|r| r.ballot());
        if let Some(r) = leading {
            return Some(Arc::clone(r));
        }
        replicas
            .values()
            .filter_map(|r| r.leader())
            .find_map(|id| replicas.get(&id).cloned())
    }

    /// Waits until `deadline` for a primary.
    fn wait_leader(&self, deadline: Instant) -> SinkResult<Arc<Replica>> {
        loop {
            if let Some(r) = self.leader() {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                return Err(SinkError::Unavailable(format!(
                    "follower group {}: no primary",
                    self.gpid
                )));
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(LEADER_POLL);
        }
    }

    /// Writes `m` through the follower's primary, retrying a moved primary or an election
    /// within `leader_wait_max`; returns the replica that applied it.
    fn write(&self, m: &Mutation) -> SinkResult<Arc<Replica>> {
        let deadline = Instant::now() + self.opts.leader_wait_max;
        loop {
            let r = self.wait_leader(deadline)?;
            let timeout = self.opts.write_timeout;
            let call = r.write_control(m.clone());
            let res = self
                .rt
                .block_on(async move { tokio::time::timeout(timeout, call).await });
            let why = match res {
                Ok(Ok(_)) => {
                    self.counters.writes.fetch_add(1, Ordering::Relaxed);
                    return Ok(r);
                }
                Err(_) => {
                    self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                    // It may still commit; see the module docs for why that is harmless.
                    return Err(SinkError::Unavailable(format!(
                        "follower group {}: write timed out after {timeout:?} on node {}",
                        self.gpid,
                        r.id()
                    )));
                }
                Ok(Err(e @ (Error::InvalidArgument(_) | Error::StaleBallot { .. }))) => {
                    return Err(SinkError::Rejected(format!(
                        "follower group {}: {e}",
                        self.gpid
                    )));
                }
                Ok(Err(e)) => e,
            };
            if Instant::now() >= deadline {
                return Err(SinkError::Unavailable(format!(
                    "follower group {}: node {}: {why}",
                    self.gpid,
                    r.id()
                )));
            }
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(LEADER_POLL);
        }
    }

    /// Deletes every user key of the follower (see the module docs).
    fn clear_follower(&self) -> SinkResult<()> {
        // The barrier: once it commits, every write proposed before it (by this sink or an
        // earlier one, even one that timed out) is ordered before it or never commits (module
        // docs), and `r` applied it, so the largest key read below covers them all.
        let r = self.write(&Mutation::new())?;
        let db = r.state_machine().db();
        match clear_mutation(&db)? {
            Some(m) => self.write(&m).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Puts every user key of `db` on the follower, in bounded mutations.
    fn stream(&self, db: &Db) -> SinkResult<()> {
        stream_user_keys(
            db,
            self.opts.mutation_ops_max,
            self.opts.mutation_bytes_max,
            |m| self.write(m).map(|_| ()),
        )
    }

    /// Splits `batch` into follower mutations within the bounds: (last decree, merged).
    fn merge(&self, batch: &[(Decree, Mutation)]) -> Vec<(Decree, Mutation)> {
        merge_batch(
            batch,
            self.opts.mutation_ops_max,
            self.opts.mutation_bytes_max,
        )
    }
}

impl DuplicationSink for GroupSink {
    fn hello(&self) -> SinkResult<()> {
        self.wait_leader(Instant::now() + self.opts.leader_wait_max)
            .map(|_| ())
    }

    fn apply_checkpoint(&self, dir: &Path, decree: Decree) -> SinkResult<()> {
        let _one = self.applying.lock();
        let scratch_dir = self.opts.scratch_dir.join(SCRATCH_NAME);
        // Open the copy before touching the follower: a bad checkpoint leaves it as it was.
        let scratch = CheckpointCopy::open(dir, scratch_dir, &self.opts.scratch_db)
            .map_err(|e| checkpoint_context(e, decree))?;
        let db = scratch.db()?;
        self.clear_follower()
            .map_err(|e| checkpoint_context(e, decree))?;
        self.stream(db).map_err(|e| checkpoint_context(e, decree))?;
        scratch.remove()
    }

    fn ship(&self, batch: &[(Decree, Mutation)]) -> SinkResult<Decree> {
        refuse_control(batch)?;
        let mut acked: Option<Decree> = None;
        for (last, m) in self.merge(batch) {
            // Blank and membership entries of the source arrive empty: nothing to write.
            if !m.ops.is_empty() {
                if let Err(e) = self.write(&m) {
                    return acked.ok_or(e);
                }
            }
            acked = Some(last);
        }
        acked.ok_or_else(|| SinkError::Unavailable("empty batch".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(ops_max: usize, bytes_max: u64) -> (tokio::runtime::Runtime, GroupSink) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut opts = GroupSinkOptions::new("/nonexistent-scratch");
        opts.mutation_ops_max = ops_max;
        opts.mutation_bytes_max = bytes_max;
        let s = GroupSink::new(Gpid::new(2, 0), rt.handle().clone(), opts);
        (rt, s)
    }

    fn puts(d: u64, n: usize) -> (Decree, Mutation) {
        let mut m = Mutation::new();
        for i in 0..n {
            m.put(format!("k{d}-{i}"), "v");
        }
        (Decree(d), m)
    }

    #[test]
    fn merge_respects_the_bounds_and_never_splits_a_mutation() {
        let (_rt, s) = sink(4, 1 << 20);
        let batch = vec![
            puts(1, 1),
            puts(2, 2),
            (Decree(3), Mutation::new()),
            puts(4, 2),
            puts(5, 9),
            puts(6, 1),
        ];
        let merged = s.merge(&batch);
        let shape: Vec<(u64, usize)> = merged.iter().map(|(d, m)| (d.0, m.ops.len())).collect();
        assert_eq!(shape, vec![(3, 3), (4, 2), (5, 9), (6, 1)]);
        // Ops keep their decree order.
        let flat: Vec<_> = merged.iter().flat_map(|(_, m)| m.ops.clone()).collect();
        let want: Vec<_> = batch.iter().flat_map(|(_, m)| m.ops.clone()).collect();
        assert_eq!(flat, want);

        let (_rt, s) = sink(1000, 8);
        let shape: Vec<u64> = s
            .merge(&[puts(1, 1), puts(2, 1), puts(3, 1)])
            .iter()
            .map(|(d, _)| d.0)
            .collect();
        // Each put is "k<d>-0" + "v" = 5 bytes: two do not fit in 8.
        assert_eq!(shape, vec![1, 2, 3]);
    }

    #[test]
    fn no_replica_is_unavailable_within_the_bound() {
        let (_rt, mut s) = sink(4, 1 << 20);
        s.opts.leader_wait_max = Duration::from_millis(50);
        let t = Instant::now();
        let e = s.ship(&[puts(1, 1)]).unwrap_err();
        assert!(
            matches!(e, SinkError::Unavailable(ref m) if m.contains("no primary")),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(s.hello().is_err());
        // An all-empty batch needs no follower write.
        assert_eq!(s.ship(&[(Decree(7), Mutation::new())]), Ok(Decree(7)));
    }
}
