//! The engine operations the tool calls that are not yet in the engine's public API
//! (`Db::ingest`, `Db::checkpoint`, `Db::compact_range` per `shared/API.md`), in one place so
//! the rest of the tool compiles and is tested while the engine lands them.
//!
//! TEMPORARY: each returns [`siltdb::Error::InvalidArgument`] until the engine exposes it; then
//! the bodies become the one-line calls shown in their docs.

use siltdb::Db;
use std::path::{Path, PathBuf};

fn not_yet(what: &str) -> siltdb::Error {
    siltdb::Error::InvalidArgument(format!("{what} is not available in this siltdb build yet"))
}

/// `db.ingest(files, &IngestOptions::default())`: all files atomically.
pub fn ingest(db: &Db, files: &[PathBuf]) -> siltdb::Result<()> {
    let _ = (db, files);
    Err(not_yet("Db::ingest"))
}

/// `db.checkpoint(dir)`.
pub fn checkpoint(db: &Db, dir: &Path) -> siltdb::Result<()> {
    let _ = (db, dir);
    Err(not_yet("Db::checkpoint"))
}

/// `db.compact_range(None::<&[u8]>, None::<&[u8]>)`.
pub fn compact_all(db: &Db) -> siltdb::Result<()> {
    let _ = db;
    Err(not_yet("Db::compact_range"))
}
