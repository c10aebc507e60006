//! The receiving side of a snapshot transfer: staging directories fed chunk by chunk.
//!
//! A `SnapshotBegin` opens a session for its partition (replacing any older one; at most
//! [`MAX_SNAPSHOT_SESSIONS`] live at once), with a staging directory from openraft's
//! `begin_receiving_snapshot`. Chunks must arrive in order (offset = bytes received so far,
//! checked arithmetic, never past the announced size); a file end carries the crc32c of the
//! whole file, compared with the crc of what was written. `SnapshotInstall` requires every file
//! complete, fsyncs, and hands the directory to `install_full_snapshot`. The staging directory
//! is removed afterwards whatever the outcome (the state machine copied what it installs).

use super::message::{Refusal, SnapshotFile};
use super::network::MAX_SNAPSHOT_FILES;
use crate::checkpoint::CheckpointHandle;
use crate::raft::TypeConfig;
use crate::types::Gpid;
use openraft::{BasicNode, Raft, Snapshot, SnapshotMeta, Vote};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most snapshot transfers a node receives at once.
pub const MAX_SNAPSHOT_SESSIONS: usize = 8;
/// A session idle longer than this may be evicted by a new one.
pub const MAX_SNAPSHOT_SESSION_IDLE: Duration = Duration::from_secs(60);
/// Longest file name accepted in a snapshot.
pub const MAX_SNAPSHOT_FILE_NAME_BYTES: usize = 255;

struct Session {
    snapshot_id: String,
    vote: Vote<u64>,
    meta: SnapshotMeta<u64, BasicNode>,
    files: Vec<SnapshotFile>,
    received: Vec<u64>,
    crcs: Vec<u32>,
    ended: Vec<bool>,
    handle: Option<Box<CheckpointHandle>>,
    dir: PathBuf,
    last_active: Instant,
}

/// Live snapshot sessions of one node, one per partition.
#[derive(Default)]
pub struct SnapshotReceiver {
    sessions: Mutex<HashMap<Gpid, Arc<tokio::sync::Mutex<Session>>>>,
}

fn refuse(msg: impl Into<String>) -> Refusal {
    Refusal::Snapshot(msg.into())
}

/// True for a plain file name: one path component, no separators, not `.`/`..`.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SNAPSHOT_FILE_NAME_BYTES
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
}

fn validate_files(files: &[SnapshotFile]) -> Result<(), Refusal> {
    if files.len() > MAX_SNAPSHOT_FILES {
        return Err(refuse(format!("{} files", files.len())));
    }
    let mut names = std::collections::HashSet::new();
    for f in files {
        if !valid_file_name(&f.name) {
            return Err(refuse(format!("bad file name {:?}", f.name)));
        }
        if !names.insert(f.name.as_str()) {
            return Err(refuse(format!("duplicate file {:?}", f.name)));
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| refuse(format!("I/O task: {e}")))?
        .map_err(|e| refuse(format!("I/O: {e}")))
}

async fn remove_dir(dir: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || {
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing snapshot staging dir");
            }
        }
    })
    .await;
}

impl SnapshotReceiver {
    /// Number of live sessions.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().len()
    }

    fn session(&self, gpid: Gpid) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        self.sessions.lock().get(&gpid).cloned()
    }

    /// Opens a session for `gpid`, replacing an older one.
    pub async fn begin(
        &self,
        gpid: Gpid,
        raft: &Raft<TypeConfig>,
        vote: Vote<u64>,
        meta: SnapshotMeta<u64, BasicNode>,
        files: Vec<SnapshotFile>,
    ) -> Result<(), Refusal> {
        validate_files(&files)?;
        let old = self.sessions.lock().remove(&gpid);
        if let Some(old) = old {
            let dir = old.lock().await.dir.clone();
            remove_dir(dir).await;
        }
        self.evict_idle().await;
        if self.sessions() >= MAX_SNAPSHOT_SESSIONS {
            return Err(Refusal::Busy);
        }
        let handle = raft
            .begin_receiving_snapshot()
            .await
            .map_err(|e| refuse(format!("begin_receiving_snapshot: {e}")))?;
        let dir = handle.dir.clone();
        let d = dir.clone();
        blocking(move || {
            if d.exists() {
                std::fs::remove_dir_all(&d)?;
            }
            // Durable: the received files are fsynced into it, and must not lose their directory.
            siltdb::fs::create_dir_durable(&siltdb::fs::StdFs, &d).map_err(std::io::Error::other)
        })
        .await?;
        let n = files.len();
        let session = Session {
            snapshot_id: meta.snapshot_id.clone(),
            vote,
            meta,
            files,
            received: vec![0; n],
            crcs: vec![0; n],
            ended: vec![false; n],
            handle: Some(handle),
            dir,
            last_active: Instant::now(),
        };
        self.sessions
            .lock()
            .insert(gpid, Arc::new(tokio::sync::Mutex::new(session)));
        Ok(())
    }

    async fn evict_idle(&self) {
        let idle: Vec<(Gpid, Arc<tokio::sync::Mutex<Session>>)> = {
            let map = self.sessions.lock();
            map.iter().map(|(g, s)| (*g, Arc::clone(s))).collect()
        };
        for (gpid, s) in idle {
            let Ok(guard) = s.try_lock() else { continue };
            if guard.last_active.elapsed() > MAX_SNAPSHOT_SESSION_IDLE {
                let dir = guard.dir.clone();
                drop(guard);
                self.sessions.lock().remove(&gpid);
                remove_dir(dir).await;
            }
        }
    }

    async fn locked(
        &self,
        gpid: Gpid,
        snapshot_id: &str,
    ) -> Result<tokio::sync::OwnedMutexGuard<Session>, Refusal> {
        let s = self
            .session(gpid)
            .ok_or_else(|| refuse(format!("no transfer open for {gpid}")))?;
        let guard = s.lock_owned().await;
        if guard.snapshot_id != snapshot_id {
            return Err(refuse(format!(
                "transfer {snapshot_id:?} is not the open one ({:?})",
                guard.snapshot_id
            )));
        }
        Ok(guard)
    }

    /// Writes one chunk; returns the bytes written.
    pub async fn chunk(
        &self,
        gpid: Gpid,
        snapshot_id: &str,
        file: u32,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<u64, Refusal> {
        let mut s = self.locked(gpid, snapshot_id).await?;
        let i = file as usize;
        let (Some(info), Some(&received), Some(&ended)) =
            (s.files.get(i), s.received.get(i), s.ended.get(i))
        else {
            return Err(refuse(format!("file index {file} out of range")));
        };
        if ended || offset != received {
            return Err(refuse(format!(
                "{}: chunk at {offset}, expected {received} (ended: {ended})",
                info.name
            )));
        }
        let len = data.len() as u64;
        let end = received
            .checked_add(len)
            .filter(|e| *e <= info.size_bytes)
            .ok_or_else(|| refuse(format!("{}: chunk past the announced size", info.name)))?;
        let path = s.dir.join(&info.name);
        let crc = s.crcs[i];
        let new_crc = blocking(move || {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            if f.metadata()?.len() != offset {
                return Err(std::io::Error::other("staging file length mismatch"));
            }
            f.write_all(&data)?;
            Ok(crc32c::crc32c_append(crc, &data))
        })
        .await?;
        s.crcs[i] = new_crc;
        s.received[i] = end;
        s.last_active = Instant::now();
        Ok(len)
    }

    /// Ends one file: size and crc32c must match; the file is fsynced.
    pub async fn file_end(
        &self,
        gpid: Gpid,
        snapshot_id: &str,
        file: u32,
        crc32c: u32,
    ) -> Result<(), Refusal> {
        let mut s = self.locked(gpid, snapshot_id).await?;
        let i = file as usize;
        let (Some(info), Some(&received)) = (s.files.get(i), s.received.get(i)) else {
            return Err(refuse(format!("file index {file} out of range")));
        };
        if received != info.size_bytes {
            return Err(refuse(format!(
                "{}: {received} of {} bytes",
                info.name, info.size_bytes
            )));
        }
        if s.crcs[i] != crc32c {
            return Err(refuse(format!("{}: checksum mismatch", info.name)));
        }
        let path = s.dir.join(&info.name);
        blocking(move || {
            // An empty file got no chunk: create it here.
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.sync_all()
        })
        .await?;
        s.ended[i] = true;
        s.last_active = Instant::now();
        Ok(())
    }

    /// Installs a complete transfer through `raft`, then removes the staging directory.
    pub async fn install(
        &self,
        gpid: Gpid,
        raft: &Raft<TypeConfig>,
        snapshot_id: &str,
    ) -> Result<openraft::raft::SnapshotResponse<u64>, InstallError> {
        let mut s = self
            .locked(gpid, snapshot_id)
            .await
            .map_err(InstallError::Refused)?;
        self.sessions.lock().remove(&gpid);
        let result = self.install_locked(&mut s, raft).await;
        remove_dir(s.dir.clone()).await;
        result
    }

    async fn install_locked(
        &self,
        s: &mut Session,
        raft: &Raft<TypeConfig>,
    ) -> Result<openraft::raft::SnapshotResponse<u64>, InstallError> {
        if let Some(pos) = s.ended.iter().position(|e| !e) {
            return Err(InstallError::Refused(refuse(format!(
                "file {} not complete",
                s.files[pos].name
            ))));
        }
        let dir = s.dir.clone();
        blocking(move || sync_dir(&dir))
            .await
            .map_err(InstallError::Refused)?;
        let mut handle = s
            .handle
            .take()
            .ok_or_else(|| InstallError::Refused(refuse("transfer already installed")))?;
        handle.meta = Some(s.meta.clone());
        let snapshot = Snapshot {
            meta: s.meta.clone(),
            snapshot: handle,
        };
        raft.install_full_snapshot(s.vote, snapshot)
            .await
            .map_err(InstallError::Fatal)
    }
}

/// Why an install did not happen.
#[derive(Debug)]
pub enum InstallError {
    /// The transfer was incomplete or inconsistent.
    Refused(Refusal),
    /// The Raft failed.
    Fatal(openraft::error::Fatal<u64>),
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_single_components() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\\b",
            "a\0b",
            &"x".repeat(256),
        ] {
            assert!(!valid_file_name(bad), "{bad:?}");
        }
        for good in [
            "000012.sst",
            "MANIFEST-000003",
            "CURRENT",
            "SNAPSHOT_META",
            "..a",
        ] {
            assert!(valid_file_name(good), "{good:?}");
        }
        let dup = vec![
            SnapshotFile {
                name: "a".into(),
                size_bytes: 1,
            },
            SnapshotFile {
                name: "a".into(),
                size_bytes: 2,
            },
        ];
        assert!(validate_files(&dup).is_err());
    }
}
