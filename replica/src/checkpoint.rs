//! Checkpoints = openraft snapshots (mapping §8): `replica_dir/checkpoint.<decree>/`, an engine
//! checkpoint plus a `SNAPSHOT_META` file (JSON `SnapshotMeta`: full LogId and membership).
//!
//! A [`CheckpointHandle`] is openraft's `SnapshotData`: the directory and a pin. While any
//! handle to a checkpoint lives (a transfer reading it), checkpoint GC keeps it. Directory copies
//! hard-link the immutable `.sst` files and copy the rest (the engine appends to its manifest on
//! open, which must never reach a file shared with a checkpoint).

use crate::error::{Error, Result};
use openraft::{BasicNode, SnapshotMeta};
use parking_lot::Mutex;
use siltdb::fs::FileSystem;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File inside a checkpoint holding its snapshot meta.
pub const SNAPSHOT_META_FILE: &str = "SNAPSHOT_META";
const CHECKPOINT_PREFIX: &str = "checkpoint.";

/// The directory name of the checkpoint at `decree`.
pub fn checkpoint_name(decree: u64) -> String {
    format!("{CHECKPOINT_PREFIX}{decree}")
}

/// The decree of a checkpoint directory name, `None` for other names.
pub fn parse_checkpoint_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(CHECKPOINT_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A snapshot's data: a checkpoint directory, pinned against GC while the handle lives.
#[derive(Debug)]
pub struct CheckpointHandle {
    /// The checkpoint directory (may be another replica's when transferred in process).
    pub dir: PathBuf,
    /// The meta, when known.
    pub meta: Option<SnapshotMeta<u64, BasicNode>>,
    _pin: Option<Pin>,
    /// Set for a receiver's staging directory: removed when the handle drops.
    staging_fs: Option<Arc<dyn FileSystem>>,
}

impl CheckpointHandle {
    /// A handle to a directory with no pin and no cleanup.
    pub fn unpinned(dir: PathBuf) -> Self {
        Self {
            dir,
            meta: None,
            _pin: None,
            staging_fs: None,
        }
    }

    /// A receiver's staging directory: whatever was written into it is removed when the handle
    /// drops — after the install copied it into place, or when the transfer was abandoned.
    /// (A crash leaves it behind; [`Checkpoints::open`] removes leftovers.)
    pub fn staging(dir: PathBuf, fs: Arc<dyn FileSystem>) -> Self {
        Self {
            dir,
            meta: None,
            _pin: None,
            staging_fs: Some(fs),
        }
    }
}

impl Drop for CheckpointHandle {
    fn drop(&mut self) {
        if let Some(fs) = &self.staging_fs {
            if fs.exists(&self.dir) {
                // Best effort: a leftover is removed at the next open.
                let _ = fs.remove_dir_all(&self.dir);
            }
        }
    }
}

/// Prefix of a receiver's staging directory (`learn.<n>.tmp`).
pub const STAGING_PREFIX: &str = "learn.";

#[derive(Debug)]
struct Pin {
    pins: Arc<Mutex<HashMap<u64, usize>>>,
    decree: u64,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut p = self.pins.lock();
        if let Some(n) = p.get_mut(&self.decree) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.remove(&self.decree);
            }
        }
    }
}

/// The checkpoints of one replica directory and their pins.
#[derive(Debug)]
pub struct Checkpoints {
    fs: Arc<dyn FileSystem>,
    parent: PathBuf,
    known: Mutex<BTreeMap<u64, SnapshotMeta<u64, BasicNode>>>,
    pins: Arc<Mutex<HashMap<u64, usize>>>,
}

impl Checkpoints {
    /// Scans `parent` for complete checkpoints. Incomplete ones (no meta file, unreadable, or a
    /// decree above `durable`, which a crash mid-install leaves) and staging directories left by
    /// a crash mid-transfer are removed.
    pub fn open(fs: Arc<dyn FileSystem>, parent: &Path, durable: Option<u64>) -> Result<Self> {
        let names = fs.list(parent).map_err(|e| Error::io(parent, e))?;
        let mut known = BTreeMap::new();
        for name in names {
            let path = parent.join(&name);
            let leftover = name.starts_with(CHECKPOINT_PREFIX) || name.starts_with(STAGING_PREFIX);
            if leftover && name.ends_with(".tmp") {
                fs.remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                continue;
            }
            let Some(decree) = parse_checkpoint_name(&name) else {
                continue;
            };
            match read_meta(fs.as_ref(), &path) {
                Ok(meta) if Some(decree) <= durable => {
                    known.insert(decree, meta);
                }
                _ => fs.remove_dir_all(&path).map_err(|e| Error::io(&path, e))?,
            }
        }
        Ok(Self {
            fs,
            parent: parent.to_path_buf(),
            known: Mutex::new(known),
            pins: Arc::default(),
        })
    }

    /// The directory of the checkpoint at `decree`.
    pub fn dir_of(&self, decree: u64) -> PathBuf {
        self.parent.join(checkpoint_name(decree))
    }

    /// Records a complete checkpoint.
    pub fn register(&self, decree: u64, meta: SnapshotMeta<u64, BasicNode>) {
        self.known.lock().insert(decree, meta);
    }

    /// The newest checkpoint, pinned.
    pub fn newest(&self) -> Option<(SnapshotMeta<u64, BasicNode>, CheckpointHandle)> {
        let (decree, meta) = {
            let k = self.known.lock();
            let (d, m) = k.iter().next_back()?;
            (*d, m.clone())
        };
        Some((meta.clone(), self.handle(decree, meta)))
    }

    fn handle(&self, decree: u64, meta: SnapshotMeta<u64, BasicNode>) -> CheckpointHandle {
        *self.pins.lock().entry(decree).or_insert(0) += 1;
        CheckpointHandle {
            dir: self.dir_of(decree),
            meta: Some(meta),
            _pin: Some(Pin {
                pins: Arc::clone(&self.pins),
                decree,
            }),
            staging_fs: None,
        }
    }

    /// Decrees of the known checkpoints, oldest first.
    pub fn decrees(&self) -> Vec<u64> {
        self.known.lock().keys().copied().collect()
    }

    /// True while a handle to checkpoint `decree` lives.
    pub fn is_pinned(&self, decree: u64) -> bool {
        self.pins.lock().contains_key(&decree)
    }

    /// Removes all but the newest `keep` checkpoints, never a pinned one. Returns the removed
    /// decrees.
    pub fn gc(&self, keep: usize) -> Result<Vec<u64>> {
        let decrees = self.decrees();
        let excess = decrees.len().saturating_sub(keep.max(1));
        let mut removed = Vec::new();
        for d in decrees.into_iter().take(excess) {
            if self.is_pinned(d) {
                continue;
            }
            let dir = self.dir_of(d);
            self.known.lock().remove(&d);
            self.fs
                .remove_dir_all(&dir)
                .map_err(|e| Error::io(&dir, e))?;
            removed.push(d);
        }
        Ok(removed)
    }

    /// Removes every unpinned checkpoint older than `decree` (after a snapshot install).
    pub fn remove_older_than(&self, decree: u64) -> Result<()> {
        for d in self.decrees() {
            if d >= decree || self.is_pinned(d) {
                continue;
            }
            let dir = self.dir_of(d);
            self.known.lock().remove(&d);
            self.fs
                .remove_dir_all(&dir)
                .map_err(|e| Error::io(&dir, e))?;
        }
        Ok(())
    }
}

/// Reads a checkpoint's `SNAPSHOT_META`.
pub fn read_meta(fs: &dyn FileSystem, dir: &Path) -> Result<SnapshotMeta<u64, BasicNode>> {
    let path = dir.join(SNAPSHOT_META_FILE);
    let bytes = siltdb::fs::read_all(fs, &path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::corruption(&path, 0, format!("bad snapshot meta: {e}")))
}

/// Writes a checkpoint's `SNAPSHOT_META` durably.
pub fn write_meta(
    fs: &dyn FileSystem,
    dir: &Path,
    meta: &SnapshotMeta<u64, BasicNode>,
) -> Result<()> {
    let bytes = serde_json::to_vec(meta)
        .map_err(|e| Error::InvalidArgument(format!("snapshot meta not serializable: {e}")))?;
    siltdb::fs::write_atomic(fs, &dir.join(SNAPSHOT_META_FILE), &bytes)?;
    Ok(())
}

/// Copies the engine files of database directory `src` into a new directory `dst`: `.sst` files
/// hard-linked (copied if linking fails), the others copied; everything fsynced. `LOCK`, temp
/// files and `SNAPSHOT_META` are skipped.
pub fn copy_db_dir(fs: &dyn FileSystem, src: &Path, dst: &Path) -> Result<()> {
    crate::fs_util::create_dir_durable(fs, dst)?;
    let names = fs.list(src).map_err(|e| Error::io(src, e))?;
    for name in names {
        if name == "LOCK" || name == SNAPSHOT_META_FILE || name.contains(".tmp") {
            continue;
        }
        let from = src.join(&name);
        let to = dst.join(&name);
        if name.ends_with(".sst") && fs.link(&from, &to).is_ok() {
            continue;
        }
        let bytes = siltdb::fs::read_all(fs, &from).map_err(|e| Error::io(&from, e))?;
        let mut f = fs.create(&to).map_err(|e| Error::io(&to, e))?;
        f.append(&bytes).map_err(|e| Error::io(&to, e))?;
        f.sync().map_err(|e| Error::io(&to, e))?;
    }
    fs.sync_dir(dst).map_err(|e| Error::io(dst, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use siltdb::fs::StdFs;

    #[test]
    fn a_copied_db_dir_survives_power_loss() {
        let tmp = tempfile::tempdir().unwrap();
        let ffs = siltdb::fs::FaultFs::new();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("MANIFEST-000001"), b"manifest").unwrap();
        std::fs::write(src.join("000002.sst"), b"table").unwrap();
        let dst = tmp.path().join("learn").join("db.1");
        copy_db_dir(&ffs, &src, &dst).unwrap();
        ffs.power_loss();
        assert_eq!(
            std::fs::read(dst.join("MANIFEST-000001")).unwrap(),
            b"manifest"
        );
        assert_eq!(std::fs::read(dst.join("000002.sst")).unwrap(), b"table");
    }

    #[test]
    fn staging_dir_is_removed_when_its_handle_drops() {
        let tmp = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
        let dir = tmp.path().join(format!("{STAGING_PREFIX}7.tmp"));
        let h = CheckpointHandle::staging(dir.clone(), Arc::clone(&fs));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("000001.sst"), b"partial").unwrap();
        drop(h);
        assert!(!dir.exists(), "abandoned staging dir left behind");
        // Never created: dropping is a no-op.
        drop(CheckpointHandle::staging(
            tmp.path().join("learn.8.tmp"),
            fs,
        ));
        // A plain handle never removes its directory.
        let kept = tmp.path().join("checkpoint.5");
        std::fs::create_dir_all(&kept).unwrap();
        drop(CheckpointHandle::unpinned(kept.clone()));
        assert!(kept.exists());
    }

    #[test]
    fn open_removes_staging_and_temp_leftovers_of_a_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let fs: Arc<dyn FileSystem> = Arc::new(StdFs);
        for name in ["learn.3.tmp", "checkpoint.9.tmp", "checkpoint.4"] {
            std::fs::create_dir_all(tmp.path().join(name)).unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("db.0")).unwrap();
        let cks = Checkpoints::open(fs, tmp.path(), Some(10)).unwrap();
        // checkpoint.4 has no SNAPSHOT_META: incomplete, removed too.
        assert!(cks.decrees().is_empty());
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["db.0".to_string()]);
    }
}
