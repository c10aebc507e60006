//! The engine's maintenance operations the tool calls (`Db::ingest`, `Db::checkpoint`,
//! `Db::compact_range` per `shared/API.md`), in one place so the rest of the tool compiled and
//! was tested while the engine landed them.
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

/// Compacts the whole key range.
pub fn compact_all(db: &Db) -> siltdb::Result<()> {
    db.compact_range(None::<&[u8]>, None::<&[u8]>)
}
