//! A partition's persisted bulk-load state: `bulk_load_state.json` in the replica directory,
//! written atomically (temp file, fsync, rename, directory fsync) so that a restart finds the
//! old state or the new one, never half of either.

use super::metadata::BulkLoadMetadata;
use super::status::BulkLoadStatus;
use super::BulkLoadError;
use serde::{Deserialize, Serialize};
use siltdb::fs::{FileSystem, StdFs};
use std::path::Path;

/// File name of the persisted state inside the replica directory.
pub const STATE_FILE_NAME: &str = "bulk_load_state.json";
/// Version of the state document.
pub const STATE_FORMAT_VERSION: u32 = 1;
/// Largest state document read back.
const MAX_STATE_BYTES: u64 = 128 << 20;

/// Identity of one download session: a ballot and an attempt counter within the partition. A
/// result carrying another id is stale and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionId {
    /// The partition's ballot when the session started.
    pub ballot: u64,
    /// Increases with every start, restart and resume of the partition.
    pub attempt: u64,
}

/// Everything a restart needs to resume or fail cleanly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Always [`STATE_FORMAT_VERSION`].
    pub format_version: u32,
    /// Current status.
    pub status: BulkLoadStatus,
    /// The last session started.
    pub session: SessionId,
    /// Identity of the current load, chosen at random by `start` and kept through pause,
    /// restart, rollback and process restarts: the replicas record it with the ingestion, so
    /// ingesting the same load again is a no-op. 0 in states written before it existed.
    #[serde(default)]
    pub load_id: u64,
    /// The validated metadata of the current load.
    pub metadata: Option<BulkLoadMetadata>,
    /// Why the load failed (names the file).
    pub error: Option<String>,
    /// The files of an ingestion that failed after it may have been proposed are kept: a
    /// replica that has not applied the ingest entry yet copies them when it does. Cleared
    /// (and the files removed) by [`clear`](super::PartitionBulkLoad::clear) once every
    /// replica caught up.
    #[serde(default)]
    pub files_kept: bool,
}

impl Default for PartitionState {
    fn default() -> Self {
        PartitionState {
            format_version: STATE_FORMAT_VERSION,
            status: BulkLoadStatus::Invalid,
            session: SessionId {
                ballot: 0,
                attempt: 0,
            },
            load_id: 0,
            metadata: None,
            error: None,
            files_kept: false,
        }
    }
}

impl PartitionState {
    /// Reads `dir/bulk_load_state.json`; a missing file is the default (INVALID) state.
    pub fn load(dir: &Path) -> Result<Self, BulkLoadError> {
        let path = dir.join(STATE_FILE_NAME);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(BulkLoadError::io(&path, e)),
        };
        let corrupt = |reason: String| BulkLoadError::Corrupt {
            path: path.clone(),
            reason,
        };
        if text.len() as u64 > MAX_STATE_BYTES {
            return Err(corrupt(format!("larger than {MAX_STATE_BYTES} bytes")));
        }
        let state: PartitionState =
            serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if state.format_version != STATE_FORMAT_VERSION {
            return Err(corrupt(format!(
                "format_version {} (expected {STATE_FORMAT_VERSION})",
                state.format_version
            )));
        }
        Ok(state)
    }

    /// Writes `dir/bulk_load_state.json` atomically and durably.
    pub fn save(&self, dir: &Path) -> Result<(), BulkLoadError> {
        self.save_with(&StdFs, dir)
    }

    /// [`PartitionState::save`] through `fs`: a new `dir` is created durably (each new entry's
    /// parent fsynced), then the file is written to a temp file, fsynced, renamed and the
    /// directory fsynced.
    pub fn save_with(&self, fs: &dyn FileSystem, dir: &Path) -> Result<(), BulkLoadError> {
        create_dir_durable(fs, dir)?;
        let path = dir.join(STATE_FILE_NAME);
        let text = serde_json::to_vec_pretty(self).map_err(|e| BulkLoadError::Corrupt {
            path: path.clone(),
            reason: format!("cannot serialize: {e}"),
        })?;
        siltdb::fs::write_atomic(fs, &path, &text).map_err(|e| match e {
            siltdb::Error::Io { path, source } => BulkLoadError::io(&path, source),
            other => BulkLoadError::Io {
                path: path.clone(),
                message: other.to_string(),
            },
        })
    }
}

/// Creates `dir` and missing ancestors through `fs`, fsyncing each new entry's parent, so the
/// directory survives a power loss once anything in it is durable.
pub fn create_dir_durable(fs: &dyn FileSystem, dir: &Path) -> Result<(), BulkLoadError> {
    crate::fs_util::create_dir_durable(fs, dir).map_err(|e| match e {
        crate::Error::Io { path, source } => BulkLoadError::io(&path, source),
        other => BulkLoadError::Io {
            path: dir.to_path_buf(),
            message: other.to_string(),
        },
    })
}

/// fsync of a directory, so that a rename or removal in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), BulkLoadError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BulkLoadError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_loss_after_the_first_save_keeps_the_state() {
        let root = tempfile::tempdir().unwrap();
        // Neither the bulk-load root nor the partition's directory exists yet.
        let dir = root.path().join("bulk_load").join("1.2");
        let fs = siltdb::fs::FaultFs::new();
        let state = PartitionState {
            status: BulkLoadStatus::Downloading,
            load_id: 42,
            ..PartitionState::default()
        };
        state.save_with(&fs, &dir).unwrap();
        fs.power_loss();
        assert_eq!(PartitionState::load(&dir).unwrap(), state);
    }
}
