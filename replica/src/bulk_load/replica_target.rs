//! [`IngestTarget`] for a real replica group: [`ReplicaGroupTarget`].
//!
//! Ingestion is a replicated control write. The primary proposes an ingest
//! [`ControlOp`] with the load's ballot through [`Replica::write_control`] (fenced by ballot,
//! never throttled, never refused by the ingestion gate); when the entry applies, **every**
//! replica stages and ingests the files itself (`super::apply`). The target then waits, within
//! the attempt's deadline, until every replica of the group has applied that decree — only
//! then may the bulk-load driver remove the downloaded files the replicas copy from. A replica
//! that has not caught up in time makes the attempt retryable; the retry proposes the same
//! load again, which every replica that already ingested it applies as a no-op.
//!
//! After the ingestion, [`IngestTarget::checkpoint`] checkpoints every replica and purges its
//! log up to the checkpoint: the ingest entry cannot be replayed once the downloaded files are
//! gone, so a replica that falls behind, or a learner that joins later, must learn from a
//! checkpoint that already holds the data — never from the ingest entry.
//!
//! The trait is synchronous (the driver runs on plain threads); the target drives the async
//! replicas through a tokio runtime handle, so it must not be called from a runtime thread.

use super::target::{IngestRequest, IngestTarget, IngestionGate, TargetError};
use crate::error::Error;
use crate::mutation::{ControlOp, IngestCommand, IngestFile, Mutation};
use crate::replica::Replica;
use crate::types::Ballot;
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The ingest control mutation of one ingestion attempt: an [`IngestCommand`] naming the
/// attempt's directory (made absolute, so replicas in other processes on the same machine find
/// it), its files with size and CRC-32C, and the load id, fenced by the attempt's ballot.
/// Every [`IngestTarget`] that proposes through a replica's `write_control` builds it here,
/// in process or over the network.
pub fn ingest_mutation(request: &IngestRequest<'_>) -> Result<Mutation, TargetError> {
    let dir = std::path::absolute(request.dir)
        .map_err(|e| TargetError::Fatal(format!("{}: {e}", request.dir.display())))?;
    let source_dir = dir
        .to_str()
        .ok_or_else(|| TargetError::Fatal(format!("{} is not UTF-8", dir.display())))?
        .to_string();
    let files = request
        .entries
        .iter()
        .map(|f| IngestFile {
            name: f.name.clone(),
            size: f.size,
            crc32c: f.crc32c,
        })
        .collect();
    let cmd = IngestCommand {
        load_id: request.load_id,
        source_dir,
        files,
    };
    let m = Mutation::control(Some(request.ballot), ControlOp::Ingest(cmd));
    m.validate()
        .map_err(|e| TargetError::Fatal(e.to_string()))?;
    Ok(m)
}

/// The replicas of one partition, as the bulk-load driver's engine side.
pub struct ReplicaGroupTarget {
    replicas: RwLock<Vec<Arc<Replica>>>,
    runtime: tokio::runtime::Handle,
    gate: Arc<IngestionGate>,
}

impl std::fmt::Debug for ReplicaGroupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<u64> = self.replicas.read().iter().map(|r| r.id()).collect();
        f.debug_struct("ReplicaGroupTarget")
            .field("replicas", &ids)
            .finish()
    }
}

impl ReplicaGroupTarget {
    /// A target over `replicas` (every member of the group), driven on `runtime`, whose user
    /// writes pass `gate` (the same gate the replicas were opened with).
    pub fn new(
        replicas: Vec<Arc<Replica>>,
        runtime: tokio::runtime::Handle,
        gate: Arc<IngestionGate>,
    ) -> Self {
        ReplicaGroupTarget {
            replicas: RwLock::new(replicas),
            runtime,
            gate,
        }
    }

    /// Replaces the group (a replica restarted or was replaced).
    pub fn set_replicas(&self, replicas: Vec<Arc<Replica>>) {
        *self.replicas.write() = replicas;
    }

    /// The group's replicas.
    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.read().clone()
    }

    /// The replica that believes it is primary, at the highest ballot.
    fn primary(&self) -> Option<Arc<Replica>> {
        self.replicas
            .read()
            .iter()
            .filter(|r| r.leader() == Some(r.id()))
            .max_by_key(|r| r.ballot())
            .cloned()
    }

    /// Proposes on the primary; returns the decree the ingestion applied at.
    fn propose(
        &self,
        primary: &Replica,
        m: Mutation,
        remaining: Duration,
    ) -> Result<u64, TargetError> {
        // The timer must be created inside the runtime.
        let write = async { tokio::time::timeout(remaining, primary.write_control(m)).await };
        match self.runtime.block_on(write) {
            // Applied as a recorded failure (issue #25): retrying the same files cannot help.
            Ok(Ok(resp)) => match resp.ingest_failure {
                Some(reason) => Err(TargetError::Fatal(format!(
                    "ingestion at decree {} refused on primary {}: {reason}",
                    resp.decree,
                    primary.id()
                ))),
                None => Ok(resp.decree),
            },
            Ok(Err(Error::StaleBallot { request, current })) => {
                Err(TargetError::StaleBallot { request, current })
            }
            // Leadership moving, elections, a primary stopping: the next attempt finds out.
            Ok(Err(e @ (Error::NotLeader { .. } | Error::Raft(_) | Error::Closed(_)))) => Err(
                TargetError::Retryable(format!("ingest write on primary {}: {e}", primary.id())),
            ),
            Ok(Err(e)) => Err(TargetError::Fatal(format!(
                "ingest write on primary {}: {e}",
                primary.id()
            ))),
            Err(_) => Err(TargetError::Retryable(format!(
                "ingest write not applied on primary {} within {remaining:?}",
                primary.id()
            ))),
        }
    }

    /// Waits until every replica applied `decree`, by `deadline`.
    fn wait_group_applied(&self, decree: u64, deadline: Instant) -> Result<(), TargetError> {
        for replica in self.replicas() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let waiter = replica
                .raft()
                .wait(Some(remaining.max(Duration::from_millis(1))));
            let wait = waiter.applied_index_at_least(Some(decree), "bulk-load ingestion");
            if let Err(e) = self.runtime.block_on(wait) {
                return Err(TargetError::Retryable(format!(
                    "replica {} has not applied the ingestion at decree {decree}: {e}",
                    replica.id()
                )));
            }
        }
        Ok(())
    }
}

impl ReplicaGroupTarget {
    /// Fails when a replica applied the ingestion at `decree` as a recorded failure (a replica
    /// that could not read the files the primary ingested): the load must not report success.
    fn check_group_ingested(&self, load_id: u64, decree: u64) -> Result<(), TargetError> {
        for replica in self.replicas() {
            let id = replica.id();
            let failure = replica
                .state_machine()
                .ingest_failure()
                .map_err(|e| TargetError::Fatal(format!("replica {id}: {e}")))?;
            if let Some(f) = failure.filter(|f| f.load_id == load_id && f.decree == decree) {
                return Err(TargetError::Fatal(format!(
                    "ingestion at decree {decree} refused on replica {id}: {}",
                    f.reason
                )));
            }
        }
        Ok(())
    }
}

impl IngestTarget for ReplicaGroupTarget {
    fn ballot(&self) -> Ballot {
        match self.primary() {
            Some(primary) => primary.ballot(),
            None => self
                .replicas
                .read()
                .iter()
                .map(|r| r.ballot())
                .max()
                .unwrap_or(Ballot(0)),
        }
    }

    fn ingest(&self, request: &IngestRequest<'_>) -> Result<(), TargetError> {
        let primary = self
            .primary()
            .ok_or_else(|| TargetError::Retryable("the group has no primary".into()))?;
        let current = primary.ballot();
        if request.ballot != current {
            return Err(TargetError::StaleBallot {
                request: request.ballot,
                current,
            });
        }
        if request.cancel.is_cancelled() {
            return Err(TargetError::Cancelled);
        }
        let m = ingest_mutation(request)?;
        let remaining = request.deadline.saturating_duration_since(Instant::now());
        let decree = self.propose(&primary, m, remaining.max(Duration::from_millis(1)))?;
        self.wait_group_applied(decree, request.deadline)?;
        self.check_group_ingested(request.load_id, decree)
    }

    fn checkpoint(&self) -> Result<(), TargetError> {
        for replica in self.replicas() {
            let id = replica.id();
            let fatal = |e: Error| TargetError::Fatal(format!("replica {id}: {e}"));
            self.runtime.block_on(replica.checkpoint()).map_err(fatal)?;
            self.runtime.block_on(replica.purge_log()).map_err(fatal)?;
        }
        Ok(())
    }

    fn is_serving_writes(&self) -> bool {
        self.primary().is_some() && !self.gate.is_ingesting()
    }
}
