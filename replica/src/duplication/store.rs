//! The persisted record of one duplication: `<replica dir>/duplication/dup.<id>.json`, written
//! atomically (temp file, fsync, rename, directory fsync) through the engine's `FileSystem`.
//!
//! Every value that may be absent is an `Option` (seed S5: Pegasus kept "-1" and asserted it was
//! positive on restart). [`DuplicationRecord::min_checkpoint_decree`] re-derives a safe value
//! instead of asserting one.

use super::status::Status;
use crate::error::{Error, Result};
use crate::types::Decree;
use serde::{Deserialize, Serialize};
use siltdb::fs::FileSystem;
pub use siltdb_client::duplication::FailMode;
use std::path::{Path, PathBuf};

/// Version of the record format; bumped on incompatible changes.
pub const RECORD_VERSION: u32 = 1;
const PREFIX: &str = "dup.";
const SUFFIX: &str = ".json";

/// One duplication as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicationRecord {
    /// Format version ([`RECORD_VERSION`]).
    pub format_version: u32,
    /// The duplication id (unique per replica).
    pub id: u64,
    /// The follower's name, resolved to a sink at open.
    pub remote: String,
    /// Persisted status.
    pub status: Status,
    /// Behaviour on unreadable plog ranges.
    pub fail_mode: FailMode,
    /// The checkpoint the follower copies (set when PREPARE made it).
    pub checkpoint_decree: Option<Decree>,
    /// The last decree the follower acknowledged.
    pub confirmed_decree: Option<Decree>,
    /// The last error, visible to the operator; cleared on progress.
    pub last_error: Option<String>,
}

impl DuplicationRecord {
    /// A new record in INIT.
    pub fn new(id: u64, remote: impl Into<String>, fail_mode: FailMode) -> Self {
        Self {
            format_version: RECORD_VERSION,
            id,
            remote: remote.into(),
            status: Status::Init,
            fail_mode,
            checkpoint_decree: None,
            confirmed_decree: None,
            last_error: None,
        }
    }

    /// The smallest checkpoint decree PREPARE accepts: the persisted checkpoint decree when
    /// there is one, else re-derived as at least `applied` and at least 1 (never asserted).
    pub fn min_checkpoint_decree(&self, applied: Option<Decree>) -> Decree {
        let derived = applied.unwrap_or(Decree(1)).max(Decree(1));
        match self.checkpoint_decree {
            Some(d) => d.max(Decree(1)),
            None => derived,
        }
    }

    /// The first decree this duplication may still read from the plog (`None`: none needed).
    pub fn keep_from(&self, applied: Option<Decree>) -> Option<Decree> {
        if !self.status.is_live() {
            return None;
        }
        match self.confirmed_decree {
            Some(c) => c.next(),
            None => self.min_checkpoint_decree(applied).next(),
        }
    }
}

/// The directory of duplication records under a replica directory.
pub fn dir_of(replica_dir: &Path) -> PathBuf {
    replica_dir.join("duplication")
}

fn path_of(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{id}{SUFFIX}"))
}

/// Writes `rec` durably and atomically into `dir`.
pub fn save(fs: &dyn FileSystem, dir: &Path, rec: &DuplicationRecord) -> Result<()> {
    crate::fs_util::create_dir_durable(fs, dir)?;
    let bytes = serde_json::to_vec_pretty(rec)
        .map_err(|e| Error::InvalidArgument(format!("duplication record: {e}")))?;
    siltdb::fs::write_atomic(fs, &path_of(dir, rec.id), &bytes)?;
    Ok(())
}

/// Deletes the record of `id` (after REMOVED is handled), fsyncing the directory.
pub fn delete(fs: &dyn FileSystem, dir: &Path, id: u64) -> Result<()> {
    let p = path_of(dir, id);
    if fs.exists(&p) {
        fs.remove(&p).map_err(|e| Error::io(&p, e))?;
        fs.sync_dir(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Loads every record in `dir` (none when it does not exist), sorted by id.
pub fn load_all(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<DuplicationRecord>> {
    if !fs.exists(dir) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in fs.list(dir).map_err(|e| Error::io(dir, e))? {
        if !(name.starts_with(PREFIX) && name.ends_with(SUFFIX)) {
            continue;
        }
        let p = dir.join(&name);
        let bytes = siltdb::fs::read_all(fs, &p).map_err(|e| Error::io(&p, e))?;
        let rec: DuplicationRecord = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corruption(&p, 0, format!("bad duplication record: {e}")))?;
        if rec.format_version != RECORD_VERSION {
            return Err(Error::corruption(
                &p,
                0,
                format!("unknown duplication record version {}", rec.format_version),
            ));
        }
        out.push(rec);
    }
    out.sort_by_key(|r| r.id);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use siltdb::fs::StdFs;

    #[test]
    fn min_checkpoint_decree_is_rederived_never_below_one() {
        let mut r = DuplicationRecord::new(1, "f", FailMode::Slow);
        assert_eq!(r.min_checkpoint_decree(None), Decree(1));
        assert_eq!(r.min_checkpoint_decree(Some(Decree(0))), Decree(1));
        assert_eq!(r.min_checkpoint_decree(Some(Decree(9))), Decree(9));
        r.checkpoint_decree = Some(Decree(4));
        assert_eq!(r.min_checkpoint_decree(Some(Decree(9))), Decree(4));
        r.confirmed_decree = Some(Decree(6));
        assert_eq!(r.keep_from(None), Some(Decree(7)));
        r.status = Status::Removed;
        assert_eq!(r.keep_from(None), None);
    }

    #[test]
    fn save_load_roundtrip_and_delete() {
        let t = tempfile::tempdir().unwrap();
        let fs = StdFs;
        let dir = dir_of(t.path());
        assert!(load_all(&fs, &dir).unwrap().is_empty());
        let mut a = DuplicationRecord::new(2, "b", FailMode::Skip);
        a.last_error = Some("auth".into());
        let b = DuplicationRecord::new(1, "a", FailMode::Slow);
        save(&fs, &dir, &a).unwrap();
        save(&fs, &dir, &b).unwrap();
        assert_eq!(load_all(&fs, &dir).unwrap(), vec![b.clone(), a.clone()]);
        delete(&fs, &dir, 2).unwrap();
        assert_eq!(load_all(&fs, &dir).unwrap(), vec![b]);
    }
}
