//! [`SstWriter`]: builds SST files outside a database, for bulk loading with
//! [`crate::Db::ingest`].
//!
//! Keys must be added in strictly increasing order; each is written as an internal key with seqno
//! 0 (ingestion assigns the file a global seqno). The file is written to `<path>.tmp`, synced, and
//! renamed to `path` by [`SstWriter::finish`]; a writer dropped before `finish` removes the
//! temporary file.

use crate::fs::{self, FileSystem, StdFs};
use crate::key::{self, ValueKind};
use crate::sst::{TableBuildOptions, TableBuilder};
use crate::{Compression, Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Options for [`SstWriter`].
#[derive(Debug, Clone)]
pub struct SstWriterOptions {
    /// Target uncompressed data block size. Default 4096.
    pub block_size_bytes: usize,
    /// Data block compression. Default [`Compression::None`].
    pub compression: Compression,
    /// Bloom filter bits per key; 0 disables the filter. Default 10.
    pub bloom_bits_per_key: u32,
    /// Filesystem to write through. Default: the real filesystem.
    pub fs: Arc<dyn FileSystem>,
}

impl Default for SstWriterOptions {
    fn default() -> Self {
        SstWriterOptions {
            block_size_bytes: 4096,
            compression: Compression::None,
            bloom_bits_per_key: 10,
            fs: Arc::new(StdFs),
        }
    }
}

/// What [`SstWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SstInfo {
    /// The final file path.
    pub path: PathBuf,
    /// First user key in the file.
    pub smallest_key: Vec<u8>,
    /// Last user key in the file.
    pub largest_key: Vec<u8>,
    /// Entries (puts and deletes).
    pub entries: u64,
    /// File size in bytes.
    pub size_bytes: u64,
}

/// Streams sorted keys into an SST file that a database can ingest.
pub struct SstWriter {
    builder: Option<TableBuilder>,
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    tmp: PathBuf,
    first_key: Vec<u8>,
    last_key: Vec<u8>,
    ikey: Vec<u8>,
    entries: u64,
}

impl std::fmt::Debug for SstWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SstWriter")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .finish()
    }
}

impl SstWriter {
    /// Starts writing `path` (through `<path>.tmp`).
    pub fn create(path: impl AsRef<Path>, opts: &SstWriterOptions) -> Result<SstWriter> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            return Err(Error::InvalidArgument("SstWriter path is empty".into()));
        }
        let tmp = fs::tmp_path(&path);
        let file = opts.fs.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let build = TableBuildOptions {
            block_size_bytes: opts.block_size_bytes,
            bloom_bits_per_key: opts.bloom_bits_per_key,
            compression: opts.compression,
            creator: "SstWriter".to_string(),
        };
        Ok(SstWriter {
            builder: Some(TableBuilder::new(file, tmp.clone(), build)),
            fs: opts.fs.clone(),
            path,
            tmp,
            first_key: Vec::new(),
            last_key: Vec::new(),
            ikey: Vec::new(),
            entries: 0,
        })
    }

    /// Adds `key = value`. Keys must be strictly increasing.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.add(key.as_ref(), value.as_ref(), ValueKind::Put)
    }

    /// Adds a deletion of `key` (hides older versions once ingested). Keys must be strictly
    /// increasing.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<()> {
        self.add(key.as_ref(), &[], ValueKind::Delete)
    }

    fn add(&mut self, user_key: &[u8], value: &[u8], kind: ValueKind) -> Result<()> {
        if self.entries > 0 && user_key <= self.last_key.as_slice() {
            let what = if user_key == self.last_key.as_slice() {
                "duplicate key"
            } else {
                "keys out of order"
            };
            return Err(Error::InvalidArgument(format!(
                "SstWriter {}: {what}: key \"{}\" added after \"{}\" (keys must be strictly increasing)",
                self.path.display(),
                crate::sst::escape(user_key),
                crate::sst::escape(&self.last_key)
            )));
        }
        let Some(builder) = self.builder.as_mut() else {
            return Err(Error::InvalidArgument("SstWriter already finished".into()));
        };
        self.ikey.clear();
        key::append_internal_key(&mut self.ikey, user_key, 0, kind as u8);
        // Checked above: user keys strictly increase, and the key is built here.
        builder.add_next_user_key(&self.ikey, value)?;
        if self.entries == 0 {
            self.first_key.extend_from_slice(user_key);
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(user_key);
        self.entries += 1;
        Ok(())
    }

    /// Writes the rest of the file, syncs it, renames it to its final path and syncs the
    /// directory. Fails with [`Error::InvalidArgument`] if nothing was added.
    pub fn finish(mut self) -> Result<SstInfo> {
        if self.entries == 0 {
            return Err(Error::InvalidArgument(format!(
                "SstWriter {}: no entries were added",
                self.path.display()
            )));
        }
        let Some(builder) = self.builder.take() else {
            return Err(Error::InvalidArgument("SstWriter already finished".into()));
        };
        let info = builder.finish()?;
        self.fs
            .rename(&self.tmp, &self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        let dir = fs::parent_dir(&self.path);
        self.fs.sync_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(SstInfo {
            path: self.path.clone(),
            smallest_key: std::mem::take(&mut self.first_key),
            largest_key: std::mem::take(&mut self.last_key),
            entries: info.num_entries,
            size_bytes: info.file_size,
        })
    }
}

impl Drop for SstWriter {
    fn drop(&mut self) {
        // Unfinished (or failed before the rename): the temporary file is garbage.
        if self.builder.take().is_some() || self.fs.exists(&self.tmp) {
            let _ = self.fs.remove(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iter::InternalIterator;
    use crate::sst::{ReadFlags, Table};

    #[test]
    fn writes_a_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bulk.sst");
        let mut w = SstWriter::create(&path, &SstWriterOptions::default()).unwrap();
        for i in 0..1000u32 {
            let k = format!("key{i:05}");
            if i % 10 == 0 {
                w.delete(&k).unwrap();
            } else {
                w.put(&k, format!("value{i}")).unwrap();
            }
        }
        let info = w.finish().unwrap();
        assert_eq!(info.entries, 1000);
        assert_eq!(info.smallest_key, b"key00000");
        assert_eq!(info.largest_key, b"key00999");
        assert_eq!(info.size_bytes, std::fs::metadata(&path).unwrap().len());
        assert!(!fs::tmp_path(&path).exists());

        let file = StdFs.open_read(&path).unwrap();
        let t = Table::open(file, path.clone(), None, Some(77)).unwrap();
        assert_eq!(t.verify().unwrap(), 1000);
        assert_eq!(t.properties().creator, "SstWriter");
        let mut it = t.iter(ReadFlags::default());
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            assert_eq!(key::seqno(it.key()), 77);
            n += 1;
            it.next();
        }
        assert_eq!(n, 1000);
        let (k, v) = t
            .get(
                &key::seek_key(b"key00005", key::MAX_SEQNO),
                ReadFlags::default(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(k, key::internal_key(b"key00005", 77, ValueKind::Put));
        assert_eq!(v, b"value5");
    }

    #[test]
    fn rejects_unsorted_and_duplicate_keys_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sst");
        let mut w = SstWriter::create(&path, &SstWriterOptions::default()).unwrap();
        w.put(b"b\x01", b"1").unwrap();
        let e = w.put(b"a\xff", b"2").unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert!(msg.contains("a\\xff") && msg.contains("b\\x01"), "{msg}");
        let e = w.delete(b"b\x01").unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
        // The writer is still usable after a rejected key.
        w.put(b"c", b"3").unwrap();
        assert_eq!(w.finish().unwrap().entries, 2);
    }

    #[test]
    fn no_file_left_on_drop_or_empty_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sst");
        let mut w = SstWriter::create(&path, &SstWriterOptions::default()).unwrap();
        w.put(b"a", b"1").unwrap();
        assert!(fs::tmp_path(&path).exists());
        drop(w);
        assert!(!fs::tmp_path(&path).exists());
        assert!(!path.exists());

        let w = SstWriter::create(&path, &SstWriterOptions::default()).unwrap();
        assert!(matches!(w.finish(), Err(Error::InvalidArgument(_))));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
