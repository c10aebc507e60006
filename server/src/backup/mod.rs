//! Cold backup and restore of a table (Pegasus' cold backup).
//!
//! - [`session`]: the server side. A partition's leader passes a read barrier, checkpoints,
//!   and stages the checkpoint in its own data directory; the client reads the staged files in
//!   bounded chunks. The server never writes to a path a request names.
//! - [`job`]: taking a backup and retention, in the admin client: every partition's
//!   checkpoint streamed into a [`target::BackupTarget`] with a crc32c per file, the
//!   [`manifest`] written last (atomically), so a backup exists only once complete.
//! - [`restore`]: a backup verified in scratch space (sizes, checksums, engines) before a new
//!   table is created, then written into it and checked against each partition's digest.
//! - [`target`]: where backups are kept ([`target::BackupTarget`];
//!   [`target::LocalDirTarget`] for a local or mounted directory, [`s3::S3Target`] for an
//!   S3-compatible object store, `s3://bucket/prefix`).
//!
//! Layout of a backup root (docs/format.md, "Cold backup"):
//! `<root>/backup-<unix ms, 16 digits>/<partition>/<checkpoint file>` and
//! `<root>/backup-<…>/BACKUP_MANIFEST` (in S3 the same keys under the prefix).

pub mod admin;
pub mod job;
pub mod manifest;
pub mod restore;
pub mod s3;
pub mod session;
pub mod target;

pub use job::{apply_retention, complete_backups, run_backup};
pub use manifest::BackupManifest;
pub use restore::{fill_table, locate, verify_backup, VerifiedBackup};
pub use s3::S3Target;
pub use session::BackupSessions;
pub use target::{BackupLocation, BackupTarget, LocalDirTarget};
