//! The filesystem abstraction every engine I/O call goes through.
//!
//! Production uses [`StdFs`]; tests wrap it in [`FaultFs`], which can fail the Nth call of a kind
//! with EIO/ENOSPC and simulate power loss by dropping every byte and directory entry that was not
//! covered by a successful sync.
//!
//! Durability model the engine assumes (and `FaultFs` enforces strictly):
//! - bytes appended to a file survive a power loss only once `WritableFile::sync` returned Ok;
//! - a new directory entry (create, rename target, hard link) survives only once
//!   `FileSystem::sync_dir` of its directory returned Ok.

mod fault;
mod std_fs;

pub use fault::{FaultFs, FaultKind, IoOp};
pub use std_fs::StdFs;

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file open for appending.
pub trait WritableFile: Send + Sync {
    /// Appends `data`. The bytes reach the OS (survive a process kill) when this returns.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes every appended byte durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Bytes written so far.
    fn len(&self) -> u64;
    /// True when nothing has been written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A file open for positional reads.
pub trait RandomAccessFile: Send + Sync {
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// File size in bytes when opened.
    fn size(&self) -> u64;
}

/// A held advisory lock; released on drop.
pub trait FileLock: Send + Sync + Debug {}

/// Every file operation the engine performs.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates (or truncates) a file for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Opens a file for positional reads.
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Creates a hard link `to` pointing at `from`.
    fn link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries in a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// True if the path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Size of a file in bytes.
    fn file_size(&self, path: &Path) -> io::Result<u64>;
    /// Takes an exclusive lock on `path` (created if missing); fails if another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
    /// Makes directory entries in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// Reads a whole file through `fs`.
pub fn read_all(fs: &dyn FileSystem, path: &Path) -> io::Result<Vec<u8>> {
    let f = fs.open_read(path)?;
    let size = usize::try_from(f.size())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
    let mut buf = vec![0u8; size];
    f.read_at(0, &mut buf)?;
    Ok(buf)
}

/// Writes `data` to `path` durably and atomically: temp file, sync, rename, sync dir.
pub fn write_atomic(fs: &dyn FileSystem, path: &Path, data: &[u8]) -> crate::Result<()> {
    let tmp = tmp_path(path);
    let mut f = fs.create(&tmp).map_err(|e| crate::Error::io(&tmp, e))?;
    f.append(data).map_err(|e| crate::Error::io(&tmp, e))?;
    f.sync().map_err(|e| crate::Error::io(&tmp, e))?;
    drop(f);
    fs.rename(&tmp, path)
        .map_err(|e| crate::Error::io(path, e))?;
    let dir = parent_dir(path);
    fs.sync_dir(&dir).map_err(|e| crate::Error::io(&dir, e))
}

/// Creates `dir` and any missing ancestors durably: each new directory's entry is made durable
/// by fsyncing its parent (a new entry survives power loss only once its parent is synced).
/// An existing `dir` is left as is.
pub fn create_dir_durable(fs: &dyn FileSystem, dir: &Path) -> crate::Result<()> {
    let mut missing = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p {
        if d.as_os_str().is_empty() || fs.exists(d) {
            break;
        }
        missing.push(d);
        p = d.parent();
    }
    fs.create_dir_all(dir)
        .map_err(|e| crate::Error::io(dir, e))?;
    // Outermost first, so each synced parent already holds durable entries above it.
    for d in missing.into_iter().rev() {
        let parent = parent_dir(d);
        fs.sync_dir(&parent)
            .map_err(|e| crate::Error::io(&parent, e))?;
    }
    Ok(())
}

/// `path` with `.tmp` appended to its file name.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// The directory holding `path` (`.` when it has none).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
