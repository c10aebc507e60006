//! The one error type of the replica layer.
//!
//! Every variant names what to look at: a file and offset for plog corruption, the path for I/O,
//! the ballots involved for fencing. openraft needs its own `StorageError`;
//! [`Error::to_storage_write`] / [`Error::to_storage_read`] convert at that boundary (any storage
//! error stops that Raft for good, mapping §12.5).

use crate::types::{Ballot, Decree};
use std::path::PathBuf;

/// Result alias used throughout siltdb-replica.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the replica layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error, with the path involved.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the failing call was about.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A checksum, magic number, length or sequence check failed in a replica file.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// The file holding the bad bytes.
        file: PathBuf,
        /// Byte offset within the file where the bad record starts.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// An error from the storage engine.
    #[error("engine: {0}")]
    Engine(#[from] siltdb::Error),
    /// The caller passed something the replica cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request carried a ballot older than the replica's (fencing).
    #[error("stale {request}: the replica is at {current}")]
    StaleBallot {
        /// The ballot the request carried.
        request: Ballot,
        /// The replica's ballot.
        current: Ballot,
    },
    /// This replica is not the primary; `leader` is the one it knows of.
    #[error("not the primary (primary is {leader:?})")]
    NotLeader {
        /// The node id of the current primary, when known.
        leader: Option<u64>,
    },
    /// Write or read throttling refused the request; retry after `delay_ms`.
    #[error("busy: throttled ({reason}), retry after {delay_ms} ms")]
    Throttled {
        /// Which rule rejected the request.
        reason: String,
        /// How long the client should wait.
        delay_ms: u64,
    },
    /// A bulk-load ingestion is under way on the partition: user writes are refused until it
    /// ends (retry later).
    #[error("busy: bulk-load ingestion in progress, retry later")]
    IngestionInProgress,
    /// A mutation the engine needs is missing from the plog.
    #[error("missing mutation: {0}")]
    MissingMutation(Decree),
    /// An error from the consensus layer.
    #[error("raft: {0}")]
    Raft(String),
    /// The replica was closed.
    #[error("replica closed: {0}")]
    Closed(String),
}

impl Error {
    /// Builds an [`Error::Io`] from an OS error and the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corruption`].
    pub fn corruption(file: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corruption {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Converts to openraft's storage error (fatal to the Raft that sees it) for a write.
    pub fn to_storage_write(&self) -> openraft::StorageError<u64> {
        openraft::StorageIOError::write(self).into()
    }

    /// Converts to openraft's storage error for a read.
    pub fn to_storage_read(&self) -> openraft::StorageError<u64> {
        openraft::StorageIOError::read(self).into()
    }
}
