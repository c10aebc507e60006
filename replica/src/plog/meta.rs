//! The plog meta file `plog/meta`: vote, committed and purge mark, written atomically
//! (temp file, fsync, rename, directory fsync) as JSON.

use crate::error::{Error, Result};
use openraft::{LogId, Vote};
use serde::{Deserialize, Serialize};
use siltdb::fs::FileSystem;
use std::path::{Path, PathBuf};

/// The meta file name inside the plog directory.
pub const META_FILE: &str = "meta";
/// Meta format version.
pub const META_VERSION: u32 = 1;

/// What the meta file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlogMeta {
    /// Format version.
    pub format_version: u32,
    /// The last vote saved (term = ballot, voted-for node, committed flag).
    pub vote: Option<Vote<u64>>,
    /// The committed log id known when the meta was written.
    pub committed: Option<LogId<u64>>,
    /// Every entry up to this id is purged; never above the engine's durable decree.
    pub purged: Option<LogId<u64>>,
}

fn meta_path(dir: &Path) -> PathBuf {
    dir.join(META_FILE)
}

/// Reads the meta file; a missing file is an empty meta.
pub fn read(fs: &dyn FileSystem, dir: &Path) -> Result<PlogMeta> {
    let path = meta_path(dir);
    if !fs.exists(&path) {
        return Ok(PlogMeta {
            format_version: META_VERSION,
            ..PlogMeta::default()
        });
    }
    let bytes = siltdb::fs::read_all(fs, &path).map_err(|e| Error::io(&path, e))?;
    let meta: PlogMeta = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corruption(&path, 0, format!("bad plog meta JSON: {e}")))?;
    if meta.format_version != META_VERSION {
        return Err(Error::corruption(
            &path,
            0,
            format!("unknown plog meta version {}", meta.format_version),
        ));
    }
    Ok(meta)
}

/// Writes the meta file durably and atomically.
pub fn write(fs: &dyn FileSystem, dir: &Path, meta: &PlogMeta) -> Result<()> {
    let bytes = serde_json::to_vec(meta)
        .map_err(|e| Error::InvalidArgument(format!("plog meta not serializable: {e}")))?;
    siltdb::fs::write_atomic(fs, &meta_path(dir), &bytes)?;
    Ok(())
}
