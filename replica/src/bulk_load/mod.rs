//! # Bulk load
//!
//! Loading SST files built outside the cluster (by `sst-ingest build`) into a table's
//! partitions, the way Pegasus does it (`shared/reference/pegasus-replica.md`, "Bulk load"),
//! without the three failures that crashed or hung Pegasus clusters
//! (`shared/reference/seed-scenarios.md`, S1–S3).
//!
//! | file | concept |
//! |---|---|
//! | [`status`] | the nine statuses, events, and the pure [`status::transition`] function |
//! | [`state`] | the per-partition state persisted atomically (`bulk_load_state.json`) |
//! | [`metadata`] | `bulk_load_metadata.json` and file-name validation (re-exported from `siltdb_client::bulk_load_metadata`, the format's one owner) |
//! | [`provider`] | where files come from: local directory, fault-injecting test provider |
//! | [`download`] | the node's download slots and one owned, cancellable thread per session |
//! | [`target`] | the engine side ([`target::IngestTarget`]) and the user-write ingestion gate |
//! | [`partition`] | one partition's driver: start, poll, pause, restart, cancel, clear, ingest |
//! | [`controller`] | the meta server's role for a table: drives every partition to the end |
//! | [`metrics`] | counts, bytes, maxima |
//! | [`apply`] | what every replica does when the ingest control write applies |
//! | [`replica_target`] | [`replica_target::ReplicaGroupTarget`]: the seam on a real replica group |
//!
//! ## Ingestion through the mutation log
//! The driver talks to the engine side through [`target::IngestTarget`]. On a real partition
//! that is [`replica_target::ReplicaGroupTarget`]: the primary proposes an ingest control
//! mutation ([`crate::mutation::IngestCommand`]) with the load's ballot through
//! `Replica::write_control` (no user write throttling, no ingestion gate), every replica stages
//! and ingests the files when the entry applies ([`apply`]), the target waits until every
//! replica applied it, and afterwards every replica checkpoints and purges its log so that
//! later learners learn the data from a checkpoint. [`target::DirectDbTarget`] ingests straight
//! into one `siltdb::Db`, for single-engine tests.

pub mod apply;
pub mod controller;
pub mod download;
/// The bulk-load metadata format; one definition, in the client crate, shared with `sst-ingest`.
pub use siltdb_client::bulk_load_metadata as metadata;
pub mod metrics;
pub mod partition;
pub mod provider;
pub mod replica_target;
pub mod state;
pub mod status;
pub mod target;

pub use controller::{BulkLoadController, ControllerConfig, TableProgress};
pub use partition::{PartitionBulkLoad, PartitionConfig, PartitionProgress};
pub use status::{transition, BulkLoadEvent, BulkLoadStatus, TransitionRejected};

use crate::types::Ballot;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in bulk load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkLoadError {
    /// File-system error on a local path.
    #[error("I/O error on {path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error text.
        message: String,
    },
    /// The persisted state cannot be read back.
    #[error("bulk-load state {path} is corrupt: {reason}")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The event is not allowed in the current status.
    #[error(transparent)]
    Rejected(#[from] TransitionRejected),
    /// Every download slot of the node is taken: retry later.
    #[error("busy: {0}")]
    Busy(String),
    /// The request's ballot is not the partition's.
    #[error("stale {request}: the partition is at {current}")]
    StaleBallot {
        /// The ballot of the request.
        request: Ballot,
        /// The partition's ballot.
        current: Ballot,
    },
    /// Retryable provider problem (metadata temporarily unavailable).
    #[error("transient: {0}")]
    Transient(String),
    /// The load failed; the text names the file or step.
    #[error("bulk load failed: {0}")]
    Failed(String),
    /// A bound ran out.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl BulkLoadError {
    /// An [`BulkLoadError::Io`] for `path`.
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        BulkLoadError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
