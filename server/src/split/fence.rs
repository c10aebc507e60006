//! A node's pending splits: the durable write fence of a table being split, and the gate that
//! lets a fence wait out the writes already admitted.
//!
//! A pending split is the file `<data dir>/splits/<table>.json` (JSON [`SplitRecord`]),
//! written before the fence takes effect and removed once the node stores the layout the split
//! produces (or the split is aborted). While it exists the node refuses every write to the
//! table with a retryable `Unavailable`, also after a restart, so no replica of a parent can
//! accept a write the copy to its child would miss.

use crate::error::ServerError;
use crate::layout::TableLayout;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Version of the pending-split file.
pub const SPLIT_FORMAT_VERSION: u32 = 1;
/// Directory of the pending-split files, under the data directory.
pub const SPLITS_DIR: &str = "splits";

/// The content of a pending-split file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRecord {
    /// [`SPLIT_FORMAT_VERSION`].
    pub format_version: u32,
    /// The epoch of the layout being split.
    pub from_epoch: u64,
    /// The layout the split produces (twice the partitions, epoch `from_epoch + 1`).
    pub next: TableLayout,
}

/// A write admitted past the fences: the fence of a split waits until it is dropped.
pub struct WriteTicket {
    _guard: tokio::sync::OwnedRwLockReadGuard<()>,
}

/// The pending splits of one node.
pub struct Splits {
    dir: PathBuf,
    pending: RwLock<HashMap<String, SplitRecord>>,
    gates: Mutex<HashMap<String, Arc<tokio::sync::RwLock<()>>>>,
    /// Serializes the splits this node coordinates.
    pub(crate) driver: tokio::sync::Mutex<()>,
}

fn internal(e: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(e.to_string())
}

/// The retryable refusal of a table being split.
pub fn splitting(table: &str) -> ServerError {
    ServerError::Unavailable(format!("table {table} is splitting; retry shortly"))
}

impl Splits {
    /// Loads the pending splits under `data_dir`. A record the node's stored layout already
    /// reached (the node crashed between storing the new layout and removing the file), or of
    /// a table the node does not store, is removed.
    pub fn open(data_dir: &Path, layouts: &[TableLayout]) -> crate::error::Result<Splits> {
        let dir = data_dir.join(SPLITS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| crate::error::Error::io(&dir, e))?;
        let mut pending = HashMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|e| crate::error::Error::io(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| crate::error::Error::io(&dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(|e| crate::error::Error::io(&path, e))?;
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|e| crate::error::Error::io(&path, e))?;
            let rec: SplitRecord = serde_json::from_slice(&bytes)
                .map_err(|e| crate::error::Error::Corrupt(format!("{}: {e}", path.display())))?;
            if rec.format_version != SPLIT_FORMAT_VERSION {
                return Err(crate::error::Error::Corrupt(format!(
                    "{}: split format version {}",
                    path.display(),
                    rec.format_version
                )));
            }
            let live = layouts
                .iter()
                .any(|l| l.name == rec.next.name && l.epoch == rec.from_epoch);
            if !live {
                tracing::info!(table = %rec.next.name, "split record left by a finished split removed");
                std::fs::remove_file(&path).map_err(|e| crate::error::Error::io(&path, e))?;
                continue;
            }
            tracing::warn!(table = %rec.next.name, to = rec.next.partition_count,
                "split pending: the table's writes stay fenced until the split finishes");
            pending.insert(rec.next.name.clone(), rec);
        }
        Ok(Splits {
            dir,
            pending: RwLock::new(pending),
            gates: Mutex::default(),
            driver: tokio::sync::Mutex::new(()),
        })
    }

    /// The layout of `table`'s pending split.
    pub fn pending(&self, table: &str) -> Option<TableLayout> {
        self.pending.read().get(table).map(|r| r.next.clone())
    }

    /// Every pending split's layout.
    pub fn all_pending(&self) -> Vec<TableLayout> {
        self.pending
            .read()
            .values()
            .map(|r| r.next.clone())
            .collect()
    }

    fn gate(&self, table: &str) -> Arc<tokio::sync::RwLock<()>> {
        Arc::clone(self.gates.lock().entry(table.to_string()).or_default())
    }

    /// Admits a write to `table`, refused while a split of it is pending. The fence waits for
    /// the returned ticket to drop.
    pub async fn admit_write(&self, table: &str) -> Result<WriteTicket, ServerError> {
        let guard = self.gate(table).read_owned().await;
        if self.pending.read().contains_key(table) {
            return Err(splitting(table));
        }
        Ok(WriteTicket { _guard: guard })
    }

    /// Fences `table` for the split to `next` from `from_epoch`: stored durably first, then in
    /// force, then every write admitted before has finished (bounded by `drain`).
    pub async fn fence(
        &self,
        from_epoch: u64,
        next: &TableLayout,
        drain: Duration,
    ) -> Result<(), ServerError> {
        let rec = SplitRecord {
            format_version: SPLIT_FORMAT_VERSION,
            from_epoch,
            next: next.clone(),
        };
        if self.pending.read().get(&next.name) != Some(&rec) {
            let path = self.path(&next.name);
            let bytes = serde_json::to_vec_pretty(&rec).map_err(internal)?;
            tokio::task::spawn_blocking(move || write_durably(&path, &bytes))
                .await
                .map_err(internal)?
                .map_err(internal)?;
            self.pending.write().insert(next.name.clone(), rec);
        }
        let gate = self.gate(&next.name);
        let drained = tokio::time::timeout(drain, gate.write_owned()).await;
        match drained {
            Ok(_drained) => Ok(()),
            Err(_) => Err(ServerError::Timeout(format!(
                "writes to {} still in flight after {drain:?}",
                next.name
            ))),
        }
    }

    /// Lifts the fence of `table` (the split finished on this node, or was aborted).
    pub async fn lift(&self, table: &str) -> Result<(), ServerError> {
        let path = self.path(table);
        tokio::task::spawn_blocking(move || remove_durably(&path))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        self.pending.write().remove(table);
        Ok(())
    }

    fn path(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.json"))
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically and durably ([`siltdb::fs::write_atomic`]: temp file
/// `<path>.tmp`, fsync, rename, directory fsync).
fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    siltdb::fs::write_atomic(&siltdb::fs::StdFs, path, bytes).map_err(std::io::Error::other)
}

fn remove_durably(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::NodeInfo;

    fn layout() -> TableLayout {
        let nodes = vec![NodeInfo {
            id: 1,
            addr: "127.0.0.1:1".into(),
        }];
        TableLayout::new("t", 1, 2, 1, nodes)
    }

    #[tokio::test]
    async fn a_fence_refuses_writes_survives_a_restart_and_lifts() {
        let dir = tempfile::tempdir().unwrap();
        let old = layout();
        let next = old.split_successor().unwrap();
        let s = Splits::open(dir.path(), std::slice::from_ref(&old)).unwrap();
        let ticket = s.admit_write("t").await.unwrap();
        // The fence waits for the admitted write.
        let fence = s.fence(old.epoch, &next, Duration::from_millis(100)).await;
        assert!(matches!(fence, Err(ServerError::Timeout(_))), "{fence:?}");
        drop(ticket);
        s.fence(old.epoch, &next, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(
            s.admit_write("t").await,
            Err(ServerError::Unavailable(_))
        ));
        assert!(s.admit_write("other").await.is_ok());
        drop(s);
        // Restart: still fenced.
        let s = Splits::open(dir.path(), std::slice::from_ref(&old)).unwrap();
        assert_eq!(s.pending("t"), Some(next.clone()));
        assert!(s.admit_write("t").await.is_err());
        s.lift("t").await.unwrap();
        assert!(s.admit_write("t").await.is_ok());
        drop(s);
        let s = Splits::open(dir.path(), std::slice::from_ref(&old)).unwrap();
        assert!(s.pending("t").is_none());
        // A record the stored layout already reached is dropped at open.
        s.fence(old.epoch, &next, Duration::from_secs(5))
            .await
            .unwrap();
        drop(s);
        let s = Splits::open(dir.path(), std::slice::from_ref(&next)).unwrap();
        assert!(s.pending("t").is_none());
        assert!(!dir.path().join(SPLITS_DIR).join("t.json").exists());
    }
}
