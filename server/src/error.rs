//! The server crate's error type; the error a server sends back to clients ([`ServerError`])
//! lives in the client crate.

pub use siltdb_client::ServerError;
use std::path::PathBuf;

/// Result alias of the server crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a server or client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on a path.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A stored file is unreadable.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// Bad configuration or request.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An error of a local replica.
    #[error("replica: {0}")]
    Replica(#[from] siltdb_replica::Error),
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

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<siltdb_client::Error> for Error {
    /// The same variant (the messages are the same in both crates).
    fn from(e: siltdb_client::Error) -> Self {
        use siltdb_client::Error as C;
        match e {
            C::InvalidArgument(m) => Error::InvalidArgument(m),
            C::Server(s) => Error::Server(s),
            C::Deadline { deadline_ms, last } => Error::Deadline { deadline_ms, last },
            C::Transport(m) => Error::Transport(m),
            C::Internal(m) => Error::Internal(m),
            // `siltdb_client::Error` is non-exhaustive: a later variant keeps its message.
            other => Error::Internal(other.to_string()),
        }
    }
}
