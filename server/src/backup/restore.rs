//! Restoring a backup into a new table (in the admin client), in two phases so that nothing
//! serves before the backup is known good:
//!
//! 1. [`verify_backup`]: every file of every partition is streamed into a scratch directory
//!    while its size and crc32c are checked against the manifest (a mismatch names the file
//!    and fails); each partition's copy is then opened as an engine and read whole (the
//!    engine's own block checksums). Only then does the caller create the table.
//! 2. [`fill_table`]: each partition's records (user keys; records already expired are
//!    dropped) are written into the new table in bounded batches, and the partition's leader
//!    digest (key count and xxh3 of keys and values, the server's `Digest`) must then equal the
//!    digest of what was written. (A record that expires during the restore may be dropped by
//!    a compaction before the check: the check then fails and says so.)
//!
//! The new table has the backup's partition count, so every record lands in the partition of
//! the same index (the partition function depends on the key and the count only).

use super::job::{complete_backups, unix_ms};
use super::manifest::{BackupManifest, MANIFEST_FILE, MAX_MANIFEST_SIZE_BYTES};
use super::s3::S3Target;
use super::target::{BackupLocation, BackupTarget, LocalDirTarget};
use siltdb_client::{Client, TableLayout, WriteOp};
use siltdb_replica::mutation::RESERVED_KEY_PREFIX;
use siltdb_replica::pegasus::record::{decode_key, decode_value, expired, now_ms};
use siltdb_replica::siltdb::{Db, Options, ReadOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most records in one restore write.
pub const MAX_RESTORE_BATCH_OPS: usize = 1_000;
/// Bytes of keys and values after which a restore write is sent.
pub const MAX_RESTORE_BATCH_BYTES: usize = 1 << 20;
/// Batches a partition's reader may run ahead of the writes.
const RESTORE_QUEUE_BATCHES: usize = 4;
/// Bound on a restored partition's digest matching.
pub const MAX_DIGEST_WAIT: Duration = Duration::from_secs(60);
/// Buffer of the checksumming copy.
const COPY_BUFFER_BYTES: usize = 1 << 20;

/// Where a restore reads from: a backup root (its newest complete backup) or one backup's
/// directory (it holds a `BACKUP_MANIFEST`); either a directory or an `s3://` URL (blocking:
/// run it off the async threads).
pub fn locate(dir: &Path) -> Result<(Arc<dyn BackupTarget>, String), String> {
    if let BackupLocation::S3 { bucket, prefix } = BackupLocation::parse(dir)? {
        return locate_s3(&bucket, &prefix);
    }
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    if dir.join(MANIFEST_FILE).is_file() {
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: no backup id in the path", dir.display()))?;
        let root = dir.parent().unwrap_or(Path::new("/"));
        return Ok((Arc::new(LocalDirTarget::new(root)), id.to_string()));
    }
    let target = LocalDirTarget::new(dir);
    let newest = complete_backups(&target)?
        .pop()
        .ok_or_else(|| format!("{}: no complete backup (no {MANIFEST_FILE})", dir.display()))?;
    Ok((Arc::new(target), newest.0))
}

/// [`locate`] in a bucket: `prefix` is one backup when `prefix/BACKUP_MANIFEST` exists, else a
/// root.
fn locate_s3(bucket: &str, prefix: &str) -> Result<(Arc<dyn BackupTarget>, String), String> {
    let root = S3Target::from_env(bucket, prefix).map_err(|e| e.to_string())?;
    if !prefix.is_empty() {
        let (parent, last) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let up = root.with_prefix(parent).map_err(|e| e.to_string())?;
        if up
            .read_small(&format!("{last}/{MANIFEST_FILE}"), MAX_MANIFEST_SIZE_BYTES)
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok((Arc::new(up), last.to_string()));
        }
    }
    let newest = complete_backups(&root)?.pop().ok_or_else(|| {
        format!(
            "{}: no complete backup (no {MANIFEST_FILE})",
            root.describe()
        )
    })?;
    Ok((Arc::new(root), newest.0))
}

/// Reads and checks the manifest of backup `id`.
pub fn read_manifest(target: &dyn BackupTarget, id: &str) -> Result<BackupManifest, String> {
    let path = format!("{id}/{MANIFEST_FILE}");
    let what = format!("{}/{path}", target.describe());
    let bytes = target
        .read_small(&path, MAX_MANIFEST_SIZE_BYTES)
        .map_err(|e| format!("{what}: {e}"))?
        .ok_or_else(|| format!("{what}: missing: the backup is incomplete"))?;
    BackupManifest::decode(&bytes, &what)
}

/// A backup copied into scratch space and verified; the scratch space goes when it drops.
pub struct VerifiedBackup {
    /// The backup's manifest.
    pub manifest: BackupManifest,
    /// Per partition: its scratch engine directory.
    dirs: Vec<PathBuf>,
    /// Per partition: user records found.
    pub records: Vec<u64>,
    scratch: PathBuf,
}

impl Drop for VerifiedBackup {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.scratch) {
            tracing::warn!(dir = %self.scratch.display(), error = %e, "removing restore scratch");
        }
    }
}

/// Phase 1 (module docs): copies backup `id` into a new directory under `scratch_root` and
/// verifies every file and every partition's engine. Blocking: run it off the async threads.
pub fn verify_backup(
    target: &dyn BackupTarget,
    id: &str,
    scratch_root: &Path,
) -> Result<VerifiedBackup, String> {
    let manifest = read_manifest(target, id)?;
    let scratch = scratch_root.join(format!("silt-restore.{}.{}", std::process::id(), unix_ms()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut v = VerifiedBackup {
        manifest,
        dirs: Vec::new(),
        records: Vec::new(),
        scratch,
    };
    for p in v.manifest.partitions.clone() {
        let dir = v.scratch.join(p.partition.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for f in &p.files {
            let path = format!("{id}/{}/{}", p.partition, f.name);
            copy_checked(target, &path, &dir.join(&f.name), f.size_bytes, f.crc32c)?;
        }
        let records = count_records(&dir)
            .map_err(|e| format!("backup {id}, partition {}: {e}", p.partition))?;
        v.dirs.push(dir);
        v.records.push(records);
    }
    Ok(v)
}

/// Copies `path` of the target to `to`, checking size and crc32c on the way.
fn copy_checked(
    target: &dyn BackupTarget,
    path: &str,
    to: &Path,
    size_bytes: u64,
    crc_want: u32,
) -> Result<(), String> {
    let what = format!("{}/{path}", target.describe());
    let mut r = target.open(path).map_err(|e| format!("{what}: {e}"))?;
    let mut w = std::fs::File::create(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut buf = vec![0u8; COPY_BUFFER_BYTES];
    let mut crc = 0u32;
    let mut len = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| format!("{what}: {e}"))?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        len = len.saturating_add(n as u64);
        w.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", to.display()))?;
    }
    if len != size_bytes {
        return Err(format!(
            "backup file {what} is damaged: {len} bytes, the manifest says {size_bytes}"
        ));
    }
    if crc != crc_want {
        return Err(format!(
            "backup file {what} is damaged: crc32c {crc:08x}, the manifest says {crc_want:08x}"
        ));
    }
    Ok(())
}

fn open_engine(dir: &Path) -> Result<Db, String> {
    Db::open(dir, Options::default()).map_err(|e| format!("opening the checkpoint: {e}"))
}

/// Opens a partition's copy and reads every record (every block's checksum).
fn count_records(dir: &Path) -> Result<u64, String> {
    let db = open_engine(dir)?;
    let mut n = 0u64;
    for item in db.iter(&ReadOptions::default()) {
        let (k, _) = item.map_err(|e| format!("reading the checkpoint: {e}"))?;
        if !k.starts_with(RESERVED_KEY_PREFIX) {
            n += 1;
        }
    }
    db.close()
        .map_err(|e| format!("closing the checkpoint: {e}"))?;
    Ok(n)
}

/// What a partition's restore wrote: records and their digest (as the server computes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRestore {
    /// Records written.
    pub records: u64,
    /// Records left out because they had expired.
    pub expired: u64,
    /// xxh3 of the written keys and values (the server's `Digest`).
    pub hash: u64,
}

/// Reads partition `dir` and hands its live records to `send` in bounded batches; returns
/// what was sent.
fn read_partition(
    dir: &Path,
    mut send: impl FnMut(Vec<WriteOp>) -> Result<(), String>,
) -> Result<PartitionRestore, String> {
    let db = open_engine(dir)?;
    let now = now_ms();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut out = PartitionRestore {
        records: 0,
        expired: 0,
        hash: 0,
    };
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    for item in db.iter(&ReadOptions::default()) {
        let (k, v) = item.map_err(|e| format!("reading the checkpoint: {e}"))?;
        if k.starts_with(RESERVED_KEY_PREFIX) {
            continue;
        }
        // Exactly what the server's TTL compaction filter would drop.
        let record = decode_key(&k).is_some();
        if record && decode_value(&v).is_some_and(|(expire_ms, _)| expired(expire_ms, now)) {
            out.expired += 1;
            continue;
        }
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(&k);
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(&v);
        out.records += 1;
        bytes = bytes.saturating_add(k.len() + v.len());
        batch.push(WriteOp::Put { key: k, value: v });
        if batch.len() >= MAX_RESTORE_BATCH_OPS || bytes >= MAX_RESTORE_BATCH_BYTES {
            send(std::mem::take(&mut batch))?;
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        send(batch)?;
    }
    db.close()
        .map_err(|e| format!("closing the checkpoint: {e}"))?;
    out.hash = h.digest();
    Ok(out)
}

/// Phase 2 (module docs): writes every partition of `v` into the new table `layout` and
/// checks each partition's digest.
pub async fn fill_table(
    client: &Client,
    v: &VerifiedBackup,
    layout: &TableLayout,
) -> Result<Vec<PartitionRestore>, String> {
    if layout.partition_count != v.manifest.partition_count {
        return Err(format!(
            "table {} has {} partitions, the backup {}",
            layout.name, layout.partition_count, v.manifest.partition_count
        ));
    }
    let mut out = Vec::new();
    for (p, dir) in v.dirs.iter().enumerate() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<WriteOp>>(RESTORE_QUEUE_BATCHES);
        let dir = dir.clone();
        let reader = tokio::task::spawn_blocking(move || {
            read_partition(&dir, |ops| {
                tx.blocking_send(ops)
                    .map_err(|_| "the writer stopped".to_string())
            })
        });
        let mut write_error = None;
        while let Some(ops) = rx.recv().await {
            if let Err(e) = client.batch(&layout.name, ops).await {
                write_error = Some(format!("writing partition {p}: {e}"));
                break;
            }
        }
        drop(rx);
        let read = reader
            .await
            .map_err(|e| format!("partition {p}: reader failed: {e}"))?;
        if let Some(e) = write_error {
            return Err(e);
        }
        let done = read.map_err(|e| format!("partition {p}: {e}"))?;
        wait_digest(client, layout, p as u32, &done).await?;
        out.push(done);
    }
    Ok(out)
}

/// Waits until some replica of partition `p` (its leader first of all) reports the digest of
/// what was written.
async fn wait_digest(
    client: &Client,
    layout: &TableLayout,
    p: u32,
    want: &PartitionRestore,
) -> Result<(), String> {
    let deadline = Instant::now() + MAX_DIGEST_WAIT;
    let mut seen = String::new();
    loop {
        for n in layout.replicas(p) {
            match client.digest(&n.addr, &layout.name, p).await {
                Ok(d) if d.applied.is_some() && d.keys == want.records && d.hash == want.hash => {
                    return Ok(())
                }
                Ok(d) => seen = format!("node {}: {} keys, hash {:016x}", n.id, d.keys, d.hash),
                Err(e) => seen = format!("node {}: {e}", n.id),
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "partition {p}: no replica reports the restored data ({} keys, hash {:016x}) \
                 within {MAX_DIGEST_WAIT:?}; last seen {seen}",
                want.records, want.hash
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
