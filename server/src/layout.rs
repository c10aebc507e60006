//! The stored layouts of one server (`<data dir>/tables/<name>.json`, replaced atomically).
//! The layout types and the partition function live in the client crate
//! ([`siltdb_client::layout`]) and are re-exported here.
//!
//! Layer: node infrastructure (below the node; depends on the client crate and the engine's
//! file system only).

use crate::error::{Error, Result};
use siltdb::fs::{FileSystem, StdFs};
pub use siltdb_client::layout::{
    partition_of, NodeInfo, TableLayout, LAYOUT_FORMAT_VERSION, MAX_PARTITIONS,
    MAX_TABLE_NAME_BYTES,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The stored layouts of one server, written through the engine's [`FileSystem`] (so tests
/// can simulate power loss with `siltdb::fs::FaultFs`). Cloning gives another handle on the
/// same directory (for [`tokio::task::spawn_blocking`]).
#[derive(Clone)]
pub struct LayoutStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
}

impl LayoutStore {
    /// The store in `<data_dir>/tables` on the real filesystem, created if missing.
    pub fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with_fs(Arc::new(StdFs), data_dir)
    }

    /// The store in `<data_dir>/tables` through `fs`, created if missing. A new directory is
    /// durable (its parent fsynced) before the first layout is stored in it: a power loss
    /// after the first create-table must not lose the directory and every layout in it.
    pub fn open_with_fs(fs: Arc<dyn FileSystem>, data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("tables");
        siltdb_replica::fs_util::create_dir_durable(fs.as_ref(), &dir)?;
        Ok(Self { fs, dir })
    }

    /// Every stored layout.
    pub fn load_all(&self) -> Result<Vec<TableLayout>> {
        let mut out = Vec::new();
        let names = self
            .fs
            .list(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))?;
        for name in names {
            let path = self.dir.join(&name);
            if name.ends_with(".tmp") {
                self.fs.remove(&path).map_err(|e| Error::io(&path, e))?;
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let bytes =
                siltdb::fs::read_all(self.fs.as_ref(), &path).map_err(|e| Error::io(&path, e))?;
            let layout: TableLayout = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
            layout.validate()?;
            out.push(layout);
        }
        out.sort_by_key(|l| l.app_id);
        Ok(out)
    }

    /// Stores `layout` durably (temp file, fsync, rename, directory fsync).
    pub fn store(&self, layout: &TableLayout) -> Result<()> {
        let path = self.dir.join(format!("{}.json", layout.name));
        let tmp = self.dir.join(format!("{}.json.tmp", layout.name));
        let bytes = serde_json::to_vec_pretty(layout)
            .map_err(|e| Error::Internal(format!("layout not serializable: {e}")))?;
        let mut f = self.fs.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.append(&bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        self.fs
            .rename(&tmp, &path)
            .map_err(|e| Error::io(&path, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io(&self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: u64) -> Vec<NodeInfo> {
        (1..=n)
            .map(|id| NodeInfo {
                id,
                addr: format!("127.0.0.1:{}", 7000 + id),
            })
            .collect()
    }

    #[test]
    fn store_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = LayoutStore::open(dir.path()).unwrap();
        let l = TableLayout::new("t1", 3, 8, 3, nodes(3));
        s.store(&l).unwrap();
        std::fs::write(dir.path().join("tables/x.json.tmp"), b"junk").unwrap();
        assert_eq!(s.load_all().unwrap(), vec![l]);
        assert!(!dir.path().join("tables/x.json.tmp").exists());
    }

    #[test]
    fn power_loss_after_the_first_create_table_keeps_the_layout() {
        let root = tempfile::tempdir().unwrap();
        // A fresh server: neither the data directory nor `tables` exists yet.
        let data = root.path().join("data");
        let fs = siltdb::fs::FaultFs::new();
        let shared: Arc<dyn FileSystem> = Arc::new(fs.clone());
        crate::node::create_data_dir(shared.as_ref(), &data).unwrap();
        let s = LayoutStore::open_with_fs(Arc::clone(&shared), &data).unwrap();
        let l = TableLayout::new("t1", 3, 8, 3, nodes(3));
        s.store(&l).unwrap();
        drop(s);
        fs.power_loss();
        let s = LayoutStore::open_with_fs(shared, &data).unwrap();
        assert_eq!(s.load_all().unwrap(), vec![l]);
    }
}
