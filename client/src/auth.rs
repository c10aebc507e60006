//! Authentication vocabulary shared by clients and servers: roles, secrets and the handshake.
//!
//! Every connection starts with a [`Hello`] frame ([`crate::frame::FrameKind::Hello`]) carrying
//! the client's secret, or none; the server answers a [`HelloReply`] naming the role the secret
//! grants, or refuses with a reason that contains [`AUTH_FAILED`] and closes the connection.
//! A server without tokens accepts every hello (and a first frame that is no hello) with the
//! admin role. Secrets are compared in constant time ([`Secret::matches`]) and never printed
//! (their `Debug` form is redacted).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// Fewest bytes of a secret.
pub const SECRET_LEN_MIN: usize = 16;
/// Most bytes of a secret (and of a secret file read by [`Secret::from_file`]).
pub const MAX_SECRET_LEN: usize = 4096;
/// The words every refusal of a connection or request for want of credentials contains.
pub const AUTH_FAILED: &str = "authentication failed";

/// What a secret allows, in increasing order: each role may do what the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Reads: gets, scans, statistics, digests, catalog and status queries.
    ReadOnly,
    /// Reads and writes of table data.
    ReadWrite,
    /// Everything: tables, membership, bulk loads, duplication, checkpoints, Raft traffic.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::ReadOnly, Role::ReadWrite, Role::Admin];

    /// The name used in token files (`read-only`, `read-write`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
        }
    }

    /// The role named `name` (as [`Role::name`] writes it).
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a secret could not be built or read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A secret is shorter than [`SECRET_LEN_MIN`] or longer than [`MAX_SECRET_LEN`].
    #[error("token file {path} line {line}: a secret of {len} bytes (need {SECRET_LEN_MIN} to {MAX_SECRET_LEN})")]
    BadLength {
        /// The file (empty when the secret did not come from a file).
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The secret's length.
        len: usize,
    },
    /// A line is neither a secret, a `<role> <secret>` pair, blank nor a comment.
    #[error("token file {path} line {line}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A shared secret. `Debug` prints no byte of it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl Secret {
    /// A secret of [`SECRET_LEN_MIN`] to [`MAX_SECRET_LEN`] bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Secret, AuthError> {
        Self::checked(bytes.into(), Path::new(""), 1)
    }

    fn checked(bytes: Vec<u8>, path: &Path, line: usize) -> Result<Secret, AuthError> {
        if !(SECRET_LEN_MIN..=MAX_SECRET_LEN).contains(&bytes.len()) {
            return Err(AuthError::BadLength {
                path: path.to_path_buf(),
                line,
                len: bytes.len(),
            });
        }
        Ok(Secret(bytes))
    }

    /// A secret read from `path`: its whole content, surrounding whitespace trimmed.
    pub fn from_file(path: &Path) -> Result<Secret, AuthError> {
        let text = read_bounded(path)?;
        Self::checked(text.trim().as_bytes().to_vec(), path, 1)
    }

    /// Builds a secret from line `line` of `path` (token-file parsing; trims nothing).
    pub fn from_line(text: &str, path: &Path, line: usize) -> Result<Secret, AuthError> {
        Self::checked(text.as_bytes().to_vec(), path, line)
    }

    /// Constant-time comparison with `other` (the time depends on the lengths only).
    pub fn matches(&self, other: &Secret) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

/// Reads a token file of at most a few secrets' worth of bytes as UTF-8.
pub fn read_bounded(path: &Path) -> Result<String, AuthError> {
    use std::io::Read;
    let io = |source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let bound = (MAX_SECRET_LEN * 64) as u64;
    let mut bytes = Vec::new();
    f.take(bound + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > bound {
        return Err(AuthError::Malformed {
            path: path.to_path_buf(),
            line: 0,
            reason: format!("larger than {bound} bytes"),
        });
    }
    String::from_utf8(bytes).map_err(|_| AuthError::Malformed {
        path: path.to_path_buf(),
        line: 0,
        reason: "not UTF-8".into(),
    })
}

/// The first frame of a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// The client's secret; `None` for a client without one.
    pub token: Option<Secret>,
}

/// The server's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HelloReply {
    /// The connection may send requests allowed to `role`.
    Accepted {
        /// The role the secret grants.
        role: Role,
    },
    /// Refused (the reason contains [`AUTH_FAILED`]); the server closes the connection.
    Refused {
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_named() {
        assert!(Role::ReadOnly < Role::ReadWrite && Role::ReadWrite < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.name()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn secrets_are_bounded_compared_and_redacted() {
        assert!(matches!(
            Secret::new(b"short".to_vec()),
            Err(AuthError::BadLength { len: 5, .. })
        ));
        let a = Secret::new(b"0123456789abcdef".to_vec()).unwrap();
        let b = Secret::new(b"0123456789abcdeF".to_vec()).unwrap();
        let c = Secret::new(b"0123456789abcdef0".to_vec()).unwrap();
        assert!(a.matches(&a.clone()));
        assert!(!a.matches(&b));
        assert!(!a.matches(&c));
        let shown = format!("{a:?}");
        assert!(!shown.contains("0123"), "{shown}");
    }

    #[test]
    fn secret_file_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, "  s3cret-s3cret-s3cret\n").unwrap();
        let s = Secret::from_file(&p).unwrap();
        assert!(s.matches(&Secret::new(b"s3cret-s3cret-s3cret".to_vec()).unwrap()));
        std::fs::write(&p, "tiny\n").unwrap();
        let e = Secret::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains(&p.display().to_string()) && e.contains("line 1"),
            "{e}"
        );
    }
}
