//! The engine side of a partition, as bulk load needs it: [`IngestTarget`].
//!
//! On a replica group, ingestion is a *replicated control write*:
//! [`super::replica_target::ReplicaGroupTarget`] implements this trait by proposing it through
//! the mutation log with the ballot; every replica ingests its own staged copy of the files when
//! the entry applies, and checkpoints afterwards (ingestion cannot be replayed from the log once
//! the files are gone, so later learners learn from a checkpoint). [`DirectDbTarget`] implements
//! it directly on one [`siltdb::Db`], for tests of the driver alone.
//!
//! Ingestion is a control request: it never passes user write throttling (seed S3). User writes
//! pass the [`IngestionGate`] instead, which refuses them (and counts them) while an ingestion is
//! under way; [`IngestingGuard`] sets the gate only once ingestion really starts and clears it on
//! every path, including panics and early returns.

use super::metadata::FileEntry;
use super::metrics::BulkLoadMetrics;
use crate::types::Ballot;
use siltdb::{CancelToken, Db, IngestOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One ingestion attempt, as handed to an [`IngestTarget`].
#[derive(Debug, Clone, Copy)]
pub struct IngestRequest<'a> {
    /// The ballot the bulk-load session was started under; a target at another ballot refuses.
    pub ballot: Ballot,
    /// Identity of the load (stable across retries, rollbacks and restarts of the same load).
    pub load_id: u64,
    /// The directory holding the verified files.
    pub dir: &'a Path,
    /// The files' metadata (name, size, checksum), in key order.
    pub entries: &'a [FileEntry],
    /// The verified local files (`dir` joined with each entry's name), in key order.
    pub files: &'a [PathBuf],
    /// The attempt must finish, or fail with a retryable error, by then.
    pub deadline: Instant,
    /// Cancels the attempt (force-cancel).
    pub cancel: &'a CancelToken,
}

/// Why an [`IngestTarget`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Busy or stalled: retry with backoff.
    #[error("retryable: {0}")]
    Retryable(String),
    /// The partition's ballot moved on; the session is stale.
    #[error("stale {request}: the partition is at {current}")]
    StaleBallot {
        /// The ballot of the request.
        request: Ballot,
        /// The partition's ballot.
        current: Ballot,
    },
    /// The request was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Permanent failure (bad file, I/O, closed engine).
    #[error("{0}")]
    Fatal(String),
}

impl From<siltdb::Error> for TargetError {
    fn from(e: siltdb::Error) -> Self {
        if e.is_retryable() {
            TargetError::Retryable(e.to_string())
        } else if matches!(e, siltdb::Error::Cancelled(_)) {
            TargetError::Cancelled
        } else {
            TargetError::Fatal(e.to_string())
        }
    }
}

/// The partition's engine side, as bulk load sees it.
pub trait IngestTarget: Send + Sync {
    /// The partition's current ballot.
    fn ballot(&self) -> Ballot;
    /// Ingests `request.files` atomically (all or nothing). Must not pass user write
    /// throttling. Returns [`TargetError::Retryable`] for "busy", within `request.deadline`.
    fn ingest(&self, request: &IngestRequest<'_>) -> Result<(), TargetError>;
    /// Makes a checkpoint after a successful ingestion (later learners learn from it).
    fn checkpoint(&self) -> Result<(), TargetError>;
    /// True while the partition accepts user writes at all (role, health).
    fn is_serving_writes(&self) -> bool;
}

/// Refuses user writes while an ingestion is under way, and counts the refusals.
#[derive(Debug)]
pub struct IngestionGate {
    ingesting: AtomicBool,
    refused: AtomicU64,
    metrics: Arc<BulkLoadMetrics>,
}

/// A user write refused by the [`IngestionGate`]; retry after the ingestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("busy: bulk-load ingestion in progress, retry later")]
pub struct WriteRefused;

impl IngestionGate {
    /// An open gate reporting to `metrics`.
    pub fn new(metrics: Arc<BulkLoadMetrics>) -> Arc<Self> {
        Arc::new(IngestionGate {
            ingesting: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            metrics,
        })
    }

    /// Admission check for one user write (the write path calls this before throttling).
    pub fn admit_user_write(&self) -> Result<(), WriteRefused> {
        if self.ingesting.load(Ordering::Acquire) {
            self.refused.fetch_add(1, Ordering::AcqRel);
            self.metrics.user_write_refused();
            return Err(WriteRefused);
        }
        Ok(())
    }

    /// True while an ingestion is under way.
    pub fn is_ingesting(&self) -> bool {
        self.ingesting.load(Ordering::Acquire)
    }

    /// User writes refused by this gate so far.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Acquire)
    }
}

/// Sets the gate's "ingesting" flag for its lifetime; `Drop` clears it on every path.
#[derive(Debug)]
pub struct IngestingGuard {
    gate: Arc<IngestionGate>,
}

impl IngestingGuard {
    /// Marks ingestion as under way. Call right before the first engine call, never earlier
    /// (seed S3: a flag set before a wait that can fail is a flag that stays set).
    pub fn enter(gate: &Arc<IngestionGate>) -> Self {
        let was = gate.ingesting.swap(true, Ordering::AcqRel);
        assert!(!was, "two ingestions under way on one partition");
        gate.metrics.ingesting_add();
        IngestingGuard { gate: gate.clone() }
    }
}

impl Drop for IngestingGuard {
    fn drop(&mut self) {
        self.gate.ingesting.store(false, Ordering::Release);
        self.gate.metrics.ingesting_sub();
    }
}

/// [`IngestTarget`] straight onto a [`Db`]: one engine, no log. For tests of the driver.
pub struct DirectDbTarget {
    db: Arc<Db>,
    ballot: AtomicU64,
    checkpoint_root: PathBuf,
    checkpoints: AtomicU64,
    gate: Arc<IngestionGate>,
    /// Hard-link instead of copy. Default `false`: files stay until the load is cleaned up, so
    /// an ingestion interrupted by a crash can be repeated from the same files.
    pub move_files: bool,
}

impl std::fmt::Debug for DirectDbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectDbTarget")
            .field("db", &self.db.path())
            .field("ballot", &self.ballot())
            .finish()
    }
}

impl DirectDbTarget {
    /// A target over `db`, writing checkpoints under `checkpoint_root/checkpoint.<n>`, with user
    /// writes passing `gate`.
    pub fn new(
        db: Arc<Db>,
        ballot: Ballot,
        checkpoint_root: impl Into<PathBuf>,
        gate: Arc<IngestionGate>,
    ) -> Self {
        DirectDbTarget {
            db,
            ballot: AtomicU64::new(ballot.0),
            checkpoint_root: checkpoint_root.into(),
            checkpoints: AtomicU64::new(0),
            gate,
            move_files: false,
        }
    }

    /// Moves the partition to a new ballot (role change, restart).
    pub fn set_ballot(&self, ballot: Ballot) {
        self.ballot.store(ballot.0, Ordering::Release);
    }

    /// The engine.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// A user write: the ingestion gate first (then, in the replica, throttling).
    pub fn user_put(&self, key: &[u8], value: &[u8]) -> Result<(), TargetError> {
        self.gate
            .admit_user_write()
            .map_err(|e| TargetError::Retryable(e.to_string()))?;
        self.db.put(key, value).map_err(TargetError::from)
    }

    /// The newest checkpoint directory made by [`IngestTarget::checkpoint`], if any.
    pub fn last_checkpoint(&self) -> Option<PathBuf> {
        match self.checkpoints.load(Ordering::Acquire) {
            0 => None,
            n => Some(checkpoint_dir(&self.checkpoint_root, n)),
        }
    }
}

fn checkpoint_dir(root: &Path, n: u64) -> PathBuf {
    root.join(format!("checkpoint.{n}"))
}

impl IngestTarget for DirectDbTarget {
    fn ballot(&self) -> Ballot {
        Ballot(self.ballot.load(Ordering::Acquire))
    }

    fn ingest(&self, request: &IngestRequest<'_>) -> Result<(), TargetError> {
        let current = self.ballot();
        if request.ballot != current {
            return Err(TargetError::StaleBallot {
                request: request.ballot,
                current,
            });
        }
        let timeout = request
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let opts = IngestOptions {
            move_files: self.move_files,
            timeout,
            cancel: Some(request.cancel.clone()),
            ..IngestOptions::default()
        };
        self.db.ingest(request.files, &opts)?;
        Ok(())
    }

    fn checkpoint(&self) -> Result<(), TargetError> {
        let n = self.checkpoints.load(Ordering::Acquire) + 1;
        let dir = checkpoint_dir(&self.checkpoint_root, n);
        siltdb::fs::create_dir_durable(&siltdb::fs::StdFs, &self.checkpoint_root)
            .map_err(|e| TargetError::Fatal(format!("{}: {e}", self.checkpoint_root.display())))?;
        self.db.checkpoint(&dir)?;
        self.checkpoints.store(n, Ordering::Release);
        Ok(())
    }

    fn is_serving_writes(&self) -> bool {
        !self.gate.is_ingesting()
    }
}
