//! Durable directory creation: a new directory entry survives power loss only once its parent
//! directory is fsynced (the engine's `FileSystem` durability model). The work is done by the
//! engine's [`siltdb::fs::create_dir_durable`], shared by every crate; this wrapper keeps the
//! replica's error type (`Error::Io` naming the path).

use crate::error::{Error, Result};
use siltdb::fs::FileSystem;
use std::path::Path;

/// Creates `dir` and any missing ancestors, fsyncing each new entry's parent.
pub fn create_dir_durable(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    siltdb::fs::create_dir_durable(fs, dir).map_err(|e| match e {
        siltdb::Error::Io { path, source } => Error::io(path, source),
        other => Error::Engine(other),
    })
}
