//! Building blocks of a sink that replays into another replica group, in-process
//! ([`super::group_sink::GroupSink`]) or on a remote cluster (the server crate's remote sink):
//!
//! - [`merge_batch`]: consecutive source mutations merged into bounded follower mutations, a
//!   source mutation never split;
//! - [`CheckpointCopy`]: a scratch copy of a source checkpoint, opened read-side (the source's
//!   own directory is never opened in place: opening an engine writes a manifest);
//! - [`stream_user_keys`]: a checkpoint's user keys as bounded put mutations;
//! - [`clear_mutation`]: the range delete of every user key of a follower replica, to apply
//!   after a barrier write (see the `GroupSink` module docs for why the barrier is needed).

use super::sink::{SinkError, SinkResult};
use crate::checkpoint::copy_db_dir;
use crate::mutation::{Mutation, RESERVED_KEY_PREFIX};
use crate::types::Decree;
use siltdb::fs::FileSystem;
use siltdb::{Db, Options, ReadOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn unavailable(what: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError::Unavailable(format!("{what}: {e}"))
}

/// Splits `batch` into follower mutations of at most `ops_max` ops and `bytes_max` key and
/// value bytes (a larger source mutation goes alone): `(last decree merged, mutation)`, ops in
/// decree order.
pub fn merge_batch(
    batch: &[(Decree, Mutation)],
    ops_max: usize,
    bytes_max: u64,
) -> Vec<(Decree, Mutation)> {
    let mut out: Vec<(Decree, Mutation)> = Vec::new();
    let mut bytes: u64 = 0;
    for (d, m) in batch {
        let size = m.size_bytes();
        let fits = out.last().is_some_and(|(_, cur)| {
            cur.ops.len().saturating_add(m.ops.len()) <= ops_max
                && bytes.saturating_add(size) <= bytes_max
        });
        match out.last_mut() {
            Some((last, cur)) if fits => {
                cur.ops.extend(m.ops.iter().cloned());
                *last = *d;
                bytes = bytes.saturating_add(size);
            }
            _ => {
                let mut cur = Mutation::new();
                cur.ops.clone_from(&m.ops);
                out.push((*d, cur));
                bytes = size;
            }
        }
    }
    out
}

/// The largest key of `db` outside the reserved prefix.
pub fn largest_user_key(db: &Db) -> SinkResult<Option<Vec<u8>>> {
    // Descending: at most the few reserved keys come before the answer.
    for item in db.iter(&ReadOptions::default()).rev() {
        let (k, _) = item.map_err(|e| unavailable("reading the follower", e))?;
        if !k.starts_with(RESERVED_KEY_PREFIX) {
            return Ok(Some(k));
        }
    }
    Ok(None)
}

/// The mutation deleting every user key of `db` (`None` when it has none): `[b"", largest)`
/// and `largest` itself, since an end key one byte longer could exceed the key size limit.
/// The state machine keeps its own `\0silt/` keys out of a user range delete.
pub fn clear_mutation(db: &Db) -> SinkResult<Option<Mutation>> {
    let Some(largest) = largest_user_key(db)? else {
        return Ok(None);
    };
    let mut m = Mutation::new();
    m.delete_range(Vec::new(), largest.clone()).delete(largest);
    Ok(Some(m))
}

/// Calls `write` with every user key of `db` as puts, in mutations of at most `ops_max` ops
/// and about `bytes_max` bytes, in key order; stops at the first failure.
pub fn stream_user_keys(
    db: &Db,
    ops_max: usize,
    bytes_max: u64,
    mut write: impl FnMut(&Mutation) -> SinkResult<()>,
) -> SinkResult<()> {
    let mut m = Mutation::new();
    let mut bytes: u64 = 0;
    for item in db.iter(&ReadOptions::default()) {
        let (k, v) = item.map_err(|e| unavailable("reading the checkpoint copy", e))?;
        if k.starts_with(RESERVED_KEY_PREFIX) {
            continue;
        }
        bytes = bytes.saturating_add((k.len() + v.len()) as u64);
        m.put(k, v);
        if m.ops.len() >= ops_max || bytes >= bytes_max {
            write(&m)?;
            m = Mutation::new();
            bytes = 0;
        }
    }
    if !m.ops.is_empty() {
        write(&m)?;
    }
    Ok(())
}

/// The scratch copy of a checkpoint: closed and removed when dropped (best effort; the next
/// [`CheckpointCopy::open`] into the same directory removes a leftover first).
pub struct CheckpointCopy {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    db: Option<Db>,
}

impl CheckpointCopy {
    /// Copies the checkpoint in `src` to `dir` (through `opts.fs`) and opens the copy.
    pub fn open(src: &Path, dir: PathBuf, opts: &Options) -> SinkResult<CheckpointCopy> {
        let fs = Arc::clone(&opts.fs);
        remove_if_exists(fs.as_ref(), &dir)?;
        let mut s = CheckpointCopy { fs, dir, db: None };
        copy_db_dir(s.fs.as_ref(), src, &s.dir)
            .map_err(|e| unavailable("copying the checkpoint", e))?;
        let db = Db::open(&s.dir, opts.clone())
            .map_err(|e| unavailable("opening the checkpoint copy", e))?;
        s.db = Some(db);
        Ok(s)
    }

    /// The opened copy.
    pub fn db(&self) -> SinkResult<&Db> {
        self.db
            .as_ref()
            .ok_or_else(|| SinkError::Unavailable("checkpoint copy not open".into()))
    }

    /// Closes and removes the copy, reporting failures.
    pub fn remove(mut self) -> SinkResult<()> {
        if let Some(db) = self.db.take() {
            db.close()
                .map_err(|e| unavailable("closing the checkpoint copy", e))?;
        }
        remove_if_exists(self.fs.as_ref(), &self.dir)
    }
}

impl Drop for CheckpointCopy {
    fn drop(&mut self) {
        // Only reached on an error path (or after `remove`): that error is what the caller
        // reports, and a leftover is removed by the next open.
        if let Some(db) = self.db.take() {
            let _ = db.close();
        }
        let _ = remove_if_exists(self.fs.as_ref(), &self.dir);
    }
}

fn remove_if_exists(fs: &dyn FileSystem, dir: &Path) -> SinkResult<()> {
    if fs.exists(dir) {
        fs.remove_dir_all(dir)
            .map_err(|e| unavailable(&format!("removing {}", dir.display()), e))?;
    }
    Ok(())
}

/// Names the checkpoint at `decree` in a failure of applying it.
pub fn checkpoint_context(e: SinkError, decree: Decree) -> SinkError {
    match e {
        SinkError::Unavailable(s) => {
            SinkError::Unavailable(format!("applying checkpoint at {decree}: {s}"))
        }
        SinkError::Rejected(s) => {
            SinkError::Rejected(format!("applying checkpoint at {decree}: {s}"))
        }
    }
}
