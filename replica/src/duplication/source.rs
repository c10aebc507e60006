//! What a duplication reads from: the [`DuplicationSource`] trait and [`ReplicaSource`], its
//! implementation over a running [`Replica`].
//!
//! The duplicator runs on its own thread; the replica's API is async, so [`ReplicaSource`]
//! blocks on a tokio runtime handle (never from inside that runtime's worker threads).

use crate::checkpoint::CheckpointHandle;
use crate::error::{Error, Result};
use crate::mutation::Mutation;
use crate::plog::RetainFrom;
use crate::replica::Replica;
use crate::types::Decree;
use openraft::storage::RaftLogReader;
use openraft::EntryPayload;
use std::sync::Arc;

/// What one read of the plog returned.
#[derive(Debug)]
pub enum ReadOutcome {
    /// Committed mutations from the requested decree on, contiguous (non-user entries are
    /// empty mutations so the decrees stay contiguous).
    Mutations(Vec<(Decree, Mutation)>),
    /// The requested decree is not readable: the next readable decree, if any, and the bytes
    /// known to be lost (0 when unknown).
    Gap {
        /// First decree readable after the gap.
        next: Option<Decree>,
        /// Bytes skipped over, when known.
        bytes: u64,
    },
}

/// The source side of a duplication.
pub trait DuplicationSource: Send + Sync {
    /// The last applied (committed) decree.
    fn applied(&self) -> Option<Decree>;

    /// A checkpoint at decree `>= min`, pinned while the handle lives: the newest one if it is
    /// recent enough, else a new one (writing an empty mutation first when nothing was applied
    /// up to `min`, as for an empty table).
    fn checkpoint(&self, min: Decree) -> Result<(Decree, CheckpointHandle)>;

    /// Reads committed mutations in `[from, to]`.
    fn read(&self, from: Decree, to: Decree) -> Result<ReadOutcome>;

    /// The plog GC floor duplication maintains.
    fn retain(&self) -> Arc<RetainFrom>;
}

/// A [`DuplicationSource`] over a replica (the primary of its group).
pub struct ReplicaSource {
    replica: Arc<Replica>,
    rt: tokio::runtime::Handle,
}

impl ReplicaSource {
    /// A source reading `replica`, driving its async API on `rt`.
    pub fn new(replica: Arc<Replica>, rt: tokio::runtime::Handle) -> Self {
        Self { replica, rt }
    }

    fn newest(&self) -> Option<(Decree, CheckpointHandle)> {
        let (meta, handle) = self.replica.state_machine().checkpoints().newest()?;
        let decree = meta.last_log_id.map(|l| Decree(l.index))?;
        Some((decree, handle))
    }
}

impl DuplicationSource for ReplicaSource {
    fn applied(&self) -> Option<Decree> {
        self.replica.applied()
    }

    fn checkpoint(&self, min: Decree) -> Result<(Decree, CheckpointHandle)> {
        if let Some((d, h)) = self.newest().filter(|(d, _)| *d >= min) {
            return Ok((d, h));
        }
        if self.applied() < Some(min) {
            // An empty table has nothing to checkpoint at `min`: make a decree to hold.
            self.rt
                .block_on(self.replica.write_control(Mutation::new()))?;
        }
        self.rt.block_on(self.replica.checkpoint())?;
        match self.newest() {
            Some((d, h)) if d >= min => Ok((d, h)),
            got => Err(Error::Raft(format!(
                "checkpoint at {:?} is below the minimum checkpoint {min}",
                got.map(|(d, _)| d)
            ))),
        }
    }

    fn read(&self, from: Decree, to: Decree) -> Result<ReadOutcome> {
        let mut plog = self.replica.plog().clone();
        // Purged (or skipped as damaged at open): one gap up to the purge mark, whatever the
        // batch size, with the damaged files' bytes when that is why.
        if let Some(p) = plog.stats().purged.filter(|p| from.0 <= p.index) {
            let bytes = plog
                .lost()
                .filter(|l| from.0 <= l.upto.index)
                .map_or(0, |l| l.bytes);
            return Ok(ReadOutcome::Gap {
                next: p.index.checked_add(1).map(Decree),
                bytes,
            });
        }
        let entries = self
            .rt
            .block_on(plog.try_get_log_entries(from.0..=to.0))
            .map_err(|e| Error::Raft(format!("plog read [{from}, {to}]: {e}")))?;
        let first = entries.first().map(|e| Decree(e.log_id.index));
        if first != Some(from) {
            return Ok(ReadOutcome::Gap {
                next: first,
                bytes: 0,
            });
        }
        let mut out: Vec<(Decree, Mutation)> = Vec::with_capacity(entries.len());
        for e in entries {
            let d = Decree(e.log_id.index);
            if let Some((prev, _)) = out.last() {
                if prev.next() != Some(d) {
                    // A hole inside the range: ship what is contiguous, the rest comes later.
                    break;
                }
            }
            let m = match e.payload {
                EntryPayload::Normal(m) => m,
                EntryPayload::Blank | EntryPayload::Membership(_) => Mutation::new(),
            };
            out.push((d, m));
        }
        Ok(ReadOutcome::Mutations(out))
    }

    fn retain(&self) -> Arc<RetainFrom> {
        Arc::clone(self.replica.plog().retain())
    }
}
