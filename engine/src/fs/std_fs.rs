//! The real filesystem: `std::fs` with positional reads and `flock`-style locks.

use super::{FileLock, FileSystem, RandomAccessFile, WritableFile};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// The operating system's filesystem.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

struct StdWritable {
    file: File,
    len: u64,
}

impl WritableFile for StdWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.len += data.len() as u64;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn len(&self) -> u64 {
        self.len
    }
}

struct StdRandom {
    file: File,
    size: u64,
}

impl RandomAccessFile for StdRandom {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.size
    }
}

#[derive(Debug)]
struct StdLock {
    _file: File,
    /// Key in [`HELD`], removed on drop.
    key: std::path::PathBuf,
}
impl FileLock for StdLock {}

impl Drop for StdLock {
    fn drop(&mut self) {
        HELD.lock().remove(&self.key);
    }
}

/// Lock files held by this process. `flock` alone is not enough in-process: a child forked by
/// another thread briefly shares the lock's file description (until its `exec` closes it), so a
/// reopen right after `close()` could fail; and a second open in this process should fail at once.
static HELD: parking_lot::Mutex<std::collections::BTreeSet<std::path::PathBuf>> =
    parking_lot::Mutex::new(std::collections::BTreeSet::new());

/// How long a lock held by a *different* open file description is retried before giving up (covers
/// the fork-to-exec window of a child process; a real second owner still fails promptly).
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

impl FileSystem for StdFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdWritable { file, len: 0 }))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new().append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(StdWritable { file, len }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(Arc::new(StdRandom { file, size }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            out.push(e?.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn file_size(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let key = std::fs::canonicalize(path)?;
        let busy = || {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is held: the database is open in another process or another Db",
                    path.display()
                ),
            )
        };
        if !HELD.lock().insert(key.clone()) {
            return Err(busy());
        }
        let deadline = std::time::Instant::now() + LOCK_RETRY;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Box::new(StdLock { _file: file, key })),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => {
                    HELD.lock().remove(&key);
                    return Err(match e {
                        std::fs::TryLockError::WouldBlock => busy(),
                        std::fs::TryLockError::Error(e) => e,
                    });
                }
            }
        }
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
