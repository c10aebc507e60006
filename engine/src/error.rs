//! The one error type of the engine.
//!
//! Every variant names what to look at: a file and offset for corruption, the path for I/O, the
//! argument for caller errors. Operating errors are `Result`s; panics are reserved for broken
//! internal invariants.

use std::path::PathBuf;

/// Result alias used throughout siltdb.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in siltdb.
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
    /// A checksum, magic number, length or format check failed.
    #[error("corruption in {file} at offset {offset}: {reason}")]
    Corruption {
        /// The file holding the bad bytes.
        file: PathBuf,
        /// Byte offset within the file where the bad record or block starts.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// The caller passed something the engine cannot accept.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The write could not proceed without waiting and `no_slowdown` was set, or a bounded wait
    /// ran out.
    #[error("write stalled: {0}")]
    Stalled(String),
    /// Retryable: the operation conflicts with work in progress.
    #[error("busy: {0}")]
    Busy(String),
    /// The database is closed, or read-only after a background error (named in the message).
    #[error("database closed: {0}")]
    Closed(String),
    /// The operation was cancelled through its cancellation token.
    #[error("cancelled: {0}")]
    Cancelled(String),
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

    /// True for errors a caller may retry as is ([`Error::Busy`], [`Error::Stalled`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Busy(_) | Error::Stalled(_))
    }

    /// True for [`Error::Corruption`].
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// A copy of this error for handing to several waiters (I/O sources are not `Clone`).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Corruption {
                file,
                offset,
                reason,
            } => Error::Corruption {
                file: file.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
            Error::Stalled(m) => Error::Stalled(m.clone()),
            Error::Busy(m) => Error::Busy(m.clone()),
            Error::Closed(m) => Error::Closed(m.clone()),
            Error::Cancelled(m) => Error::Cancelled(m.clone()),
        }
    }
}
