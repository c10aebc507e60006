//! A bounded cache of open SST readers, keyed by file number.

use crate::filename;
use crate::fs::FileSystem;
use crate::manifest::version::FileMeta;
use crate::sst::{BlockCache, Table};
use crate::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;

/// Open table handles (footer, index, filter in memory), at most `capacity` of them.
pub(crate) struct TableCache {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    tables: quick_cache::sync::Cache<u64, Arc<Table>>,
    pub(crate) block_cache: Option<Arc<BlockCache>>,
}

impl TableCache {
    pub(crate) fn new(
        dir: PathBuf,
        fs: Arc<dyn FileSystem>,
        capacity: usize,
        block_cache: Option<Arc<BlockCache>>,
    ) -> Self {
        TableCache {
            dir,
            fs,
            tables: quick_cache::sync::Cache::new(capacity.max(16)),
            block_cache,
        }
    }

    /// The reader for `f`, opening the file if it is not cached.
    pub(crate) fn get(&self, f: &FileMeta) -> Result<Arc<Table>> {
        if let Some(t) = self.tables.get(&f.number()) {
            return Ok(t);
        }
        let path = filename::table_path(&self.dir, f.number());
        let file = self.fs.open_read(&path).map_err(|e| Error::io(&path, e))?;
        let t = Table::open(file, path, self.block_cache.clone(), f.f.global_seqno)?;
        self.tables.insert(f.number(), Arc::clone(&t));
        Ok(t)
    }

    /// Forgets a deleted file.
    pub(crate) fn evict(&self, number: u64) {
        self.tables.remove(&number);
    }
}
