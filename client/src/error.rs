//! The client's error type, and the error a server sends back to clients ([`ServerError`]).

use serde::{Deserialize, Serialize};

/// Result alias of the client crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a client call (the server crate's `Error` has the same
/// variants plus its own, with the same messages).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration or request.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The server answered with an error.
    #[error("server: {0}")]
    Server(#[from] ServerError),
    /// The operation did not succeed before its deadline; `last` is the last failure seen.
    #[error("deadline of {deadline_ms} ms exceeded; last error: {last}")]
    Deadline {
        /// The deadline.
        deadline_ms: u64,
        /// The last failure.
        last: String,
    },
    /// A transport failure talking to a server.
    #[error("transport: {0}")]
    Transport(String),
    /// A bug or an unexpected state.
    #[error("internal: {0}")]
    Internal(String),
}

/// An error a server returns to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ServerError {
    /// This node does not lead the partition; `leader` is the one it knows of.
    #[error("not the leader (leader: {leader:?} at {addr:?})")]
    NotLeader {
        /// The leader's node id, when known.
        leader: Option<u64>,
        /// The leader's address, when known.
        addr: Option<String>,
    },
    /// No such table on this node.
    #[error("no table {0:?}")]
    NoSuchTable(String),
    /// The node hosts no replica of the partition.
    #[error("partition {0} not hosted here")]
    NoSuchPartition(String),
    /// A key was sent to the wrong partition.
    #[error("wrong partition: {0}")]
    WrongPartition(String),
    /// The request did not complete in time; a write may or may not have been applied.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Throttled; retry after `delay_ms`.
    #[error("throttled, retry after {delay_ms} ms")]
    Throttled {
        /// The suggested delay.
        delay_ms: u64,
    },
    /// The request is malformed or not allowed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The table exists with another layout.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The partition cannot serve now (election, shutdown, Raft error).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// An unexpected server-side error.
    #[error("internal: {0}")]
    Internal(String),
    /// The connection presented no secret or a wrong one ([`crate::auth`]); the text says
    /// "authentication failed" ([`crate::auth::AUTH_FAILED`]).
    #[error("{0}")]
    Unauthenticated(String),
    /// The connection's role may not send this request ([`crate::auth::Role`]); the text says
    /// "authentication failed: permission denied".
    #[error("{0}")]
    PermissionDenied(String),
}

impl ServerError {
    /// True when another attempt (possibly on another node) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ServerError::NotLeader { .. }
                | ServerError::Timeout(_)
                | ServerError::Throttled { .. }
                | ServerError::Unavailable(_)
                | ServerError::NoSuchPartition(_)
        )
    }
}
