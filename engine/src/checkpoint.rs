//! Checkpoints: an openable copy of the database at one point, built from hard links.
//!
//! `Db::checkpoint(dir)`:
//! 1. flushes the memtables (as the write leader; the flush never waits for the stall it
//!    relieves, and the wait for it is bounded), so the checkpoint needs no WAL;
//! 2. pins the current version (its files cannot be deleted while pinned) and reads the counters
//!    (last seqno, durable tag) under the same manifest lock;
//! 3. builds `<dir>.tmp-<pid>-<n>`: every SST hard-linked (copied when linking fails, e.g.
//!    across filesystems), a fresh `MANIFEST-000001` describing exactly those files, `CURRENT`;
//!    syncs every file and the directory;
//! 4. renames the temp directory to `dir` and syncs the parent. A crash leaves either no `dir`
//!    or a complete one; an error removes the temp directory.
//!
//! Layout for callers that keep many checkpoints (the replica layer): any directory holding a
//! `CURRENT` file is a database; [`list`] finds them under a parent, [`read_checkpoint_meta`]
//! reads one's seqno and durable tag from its manifest without opening (or locking) it, and
//! [`remove`] deletes one.

use crate::db::Db;
use crate::filename;
use crate::fs::{self, FileSystem, StdFs};
use crate::manifest::edit::VersionEdit;
use crate::manifest::version_set;
use crate::wal::LogWriter;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What a checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// Every write with a seqno `<=` this is in the checkpoint, and nothing newer.
    pub seqno: u64,
    /// The durable tag (e.g. decree) of the data in the checkpoint.
    pub durable_tag: Option<u64>,
    /// Number of SST files.
    pub files: usize,
    /// Total bytes of the SST files.
    pub bytes: u64,
}

/// A checkpoint's (or any database's) metadata, read from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointMeta {
    /// The last sequence number recorded.
    pub seqno: u64,
    /// The durable tag recorded.
    pub durable_tag: Option<u64>,
    /// Number of SST files.
    pub files: usize,
    /// Total bytes of the SST files.
    pub bytes: u64,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Db {
    /// Creates a checkpoint in `dir` (which must not exist): a database that `Db::open` opens on
    /// its own. Safe under load and write stalls; see the module docs for the steps.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<CheckpointInfo> {
        let dir = dir.as_ref();
        let inner = &self.inner;
        let fs = Arc::clone(&inner.opts().fs);
        let fsys = fs.as_ref();
        if dir.as_os_str().is_empty() {
            return Err(Error::InvalidArgument("empty checkpoint path".into()));
        }
        if fsys.exists(dir) {
            return Err(Error::InvalidArgument(format!(
                "checkpoint directory {} already exists",
                dir.display()
            )));
        }
        inner.check_writable()?;
        inner.flush_and_wait()?;
        let (version, counters) = inner.versions.current_with_counters();
        let parent = fs::parent_dir(dir);
        // A parent created here must itself survive power loss, or the checkpoint renamed into
        // it would vanish with it.
        fs::create_dir_durable(fsys, &parent)?;
        let tmp = PathBuf::from(format!(
            "{}.tmp-{}-{}",
            dir.display(),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let r = (|| -> Result<CheckpointInfo> {
            fsys.create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let mut edit = VersionEdit::default();
            let mut bytes = 0u64;
            let mut max_number = 1;
            let mut seqno = 0u64;
            for (level, f) in version.all_files() {
                let src = filename::table_path(&inner.path, f.number());
                let dst = filename::table_path(&tmp, f.number());
                link_or_copy(fsys, &src, &dst)?;
                bytes += f.f.size;
                max_number = max_number.max(f.number());
                seqno = seqno.max(f.f.largest_seqno);
                edit.added.push((level, f.f.clone()));
            }
            edit.log_number = Some(0);
            edit.next_file_number = Some(max_number + 2);
            edit.last_seqno = Some(seqno);
            edit.durable_tag = counters.durable_tag;
            write_manifest(fsys, &tmp, max_number + 1, &edit)?;
            fsys.sync_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
            fsys.rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
            fsys.sync_dir(&parent).map_err(|e| Error::io(&parent, e))?;
            Ok(CheckpointInfo {
                dir: dir.to_path_buf(),
                seqno,
                durable_tag: counters.durable_tag,
                files: edit.added.len(),
                bytes,
            })
        })();
        if r.is_err() {
            let _ = fsys.remove_dir_all(&tmp);
        }
        drop(version);
        r
    }
}

/// Hard-links `src` to `dst`, copying when linking is impossible (another filesystem).
pub(crate) fn link_or_copy(fsys: &dyn FileSystem, src: &Path, dst: &Path) -> Result<()> {
    match fsys.link(src, dst) {
        Ok(()) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::EXDEV)
                || e.kind() == std::io::ErrorKind::Unsupported =>
        {
            copy_file(fsys, src, dst)
        }
        Err(e) => Err(Error::io(dst, e)),
    }
}

/// Copies a file through `fsys` in chunks and syncs the copy.
pub(crate) fn copy_file(fsys: &dyn FileSystem, src: &Path, dst: &Path) -> Result<()> {
    const CHUNK: u64 = 1 << 20;
    let input = fsys.open_read(src).map_err(|e| Error::io(src, e))?;
    let mut out = fsys.create(dst).map_err(|e| Error::io(dst, e))?;
    let size = input.size();
    let mut buf = vec![0u8; CHUNK.min(size) as usize];
    let mut off = 0u64;
    while off < size {
        let n = CHUNK.min(size - off) as usize;
        input
            .read_at(off, &mut buf[..n])
            .map_err(|e| Error::io(src, e))?;
        out.append(&buf[..n]).map_err(|e| Error::io(dst, e))?;
        off += n as u64;
    }
    out.sync().map_err(|e| Error::io(dst, e))
}

fn write_manifest(
    fsys: &dyn FileSystem,
    dir: &Path,
    number: u64,
    edit: &VersionEdit,
) -> Result<()> {
    let path = filename::manifest_path(dir, number);
    let file = fsys.create(&path).map_err(|e| Error::io(&path, e))?;
    let mut w = LogWriter::new(file, path);
    w.add_record(&edit.encode())?;
    w.sync()?;
    fs::write_atomic(
        fsys,
        &filename::current_path(dir),
        format!("{}\n", filename::manifest_name(number)).as_bytes(),
    )
}

/// Reads a checkpoint's (or any closed or open database's) seqno and durable tag from its
/// manifest, without opening or locking it.
pub fn read_checkpoint_meta(dir: impl AsRef<Path>) -> Result<CheckpointMeta> {
    read_checkpoint_meta_with(&StdFs, dir.as_ref())
}

/// [`read_checkpoint_meta`] through a given filesystem.
pub fn read_checkpoint_meta_with(fsys: &dyn FileSystem, dir: &Path) -> Result<CheckpointMeta> {
    let rec = version_set::replay(fsys, dir, None)?;
    let files = rec.version.all_files().count();
    let bytes = rec.version.all_files().map(|(_, f)| f.f.size).sum();
    Ok(CheckpointMeta {
        seqno: rec.counters.last_seqno,
        durable_tag: rec.counters.durable_tag,
        files,
        bytes,
    })
}

/// Checkpoints (directories holding a `CURRENT` file) directly under `parent`, sorted by name.
pub fn list(parent: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let parent = parent.as_ref();
    let names = StdFs.list(parent).map_err(|e| Error::io(parent, e))?;
    Ok(names
        .into_iter()
        .filter(|n| !n.contains(".tmp-"))
        .map(|n| parent.join(n))
        .filter(|p| filename::current_path(p).is_file())
        .collect())
}

/// Removes a checkpoint directory (it must not be open).
pub fn remove(dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    if !filename::current_path(dir).is_file() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a checkpoint (no CURRENT file)",
            dir.display()
        )));
    }
    StdFs.remove_dir_all(dir).map_err(|e| Error::io(dir, e))
}

#[allow(dead_code)]
fn _assert_send_sync(_: Arc<Db>) {}
