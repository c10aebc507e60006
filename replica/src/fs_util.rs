//! Durable directory creation: a new directory entry survives power loss only once its parent
//! directory is fsynced (the engine's `FileSystem` durability model).

use crate::error::{Error, Result};
use siltdb::fs::FileSystem;
use std::path::Path;

/// Creates `dir` and any missing ancestors, fsyncing each new entry's parent.
pub fn create_dir_durable(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p {
        if d.as_os_str().is_empty() || fs.exists(d) {
            break;
        }
        missing.push(d);
        p = d.parent();
    }
    fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for d in missing.into_iter().rev() {
        let parent = siltdb::fs::parent_dir(d);
        fs.sync_dir(&parent).map_err(|e| Error::io(&parent, e))?;
    }
    Ok(())
}
