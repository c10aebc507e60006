//! The tool's error type and how each kind maps to an exit code.

use crate::input::{InputError, InputErrorKind};
use std::path::{Path, PathBuf};

/// Success.
pub const EXIT_OK: u8 = 0;
/// A key was not found (`db get`), or verification found a bad file.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Bad command line or bad input data (parse errors, duplicates with `--fail-on-duplicate`).
pub const EXIT_USAGE: u8 = 2;
/// The database engine reported an error (corruption, busy, stalled, closed, ...).
pub const EXIT_ENGINE: u8 = 3;
/// A file system operation failed.
pub const EXIT_IO: u8 = 4;

/// The exit-code table printed at the end of `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  not found (db get) or verification failed (verify, ingest)
  2  usage error or bad input data (the message names file:line:column)
  3  database error (corruption, busy, stalled, closed)
  4  I/O error (the message names the path)";

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The command line is inconsistent (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An input file is malformed or unreadable (exit 2, or 4 for read errors).
    #[error("{0}")]
    Input(#[from] InputError),
    /// What was asked for does not exist (exit 1).
    #[error("{0}")]
    NotFound(String),
    /// Verification found problems, one line per problem (exit 1).
    #[error("verification failed:\n{}", .0.join("\n"))]
    Verification(Vec<String>),
    /// The engine failed (exit 3).
    #[error("{context}: {source}")]
    Engine {
        /// What the tool was doing.
        context: String,
        /// The engine's error.
        #[source]
        source: siltdb::Error,
    },
    /// A file system operation failed (exit 4).
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ToolError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ToolError::Usage(_) => EXIT_USAGE,
            ToolError::Input(e) if e.kind == InputErrorKind::Io => EXIT_IO,
            ToolError::Input(_) => EXIT_USAGE,
            ToolError::NotFound(_) | ToolError::Verification(_) => EXIT_NOT_FOUND,
            ToolError::Engine { .. } => EXIT_ENGINE,
            ToolError::Io { .. } => EXIT_IO,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        ToolError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// An engine error while doing `context`.
    pub fn engine(context: impl Into<String>, source: siltdb::Error) -> Self {
        ToolError::Engine {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for results of the tool.
pub type ToolResult<T> = Result<T, ToolError>;

impl From<crate::metadata::MetadataError> for ToolError {
    fn from(error: crate::metadata::MetadataError) -> Self {
        match error {
            crate::metadata::MetadataError::Io { path, source } => ToolError::Io {
                path: PathBuf::from(path),
                source,
            },
            invalid @ crate::metadata::MetadataError::Invalid { .. } => {
                ToolError::Verification(vec![invalid.to_string()])
            }
        }
    }
}
