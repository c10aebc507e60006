//! Taking a backup (in the admin client): every partition's leader checkpoints and stages its
//! checkpoint ([`super::session`]); the client streams each file into the target under a new
//! backup id, computing its crc32c on the way, and writes the manifest last. Retention removes
//! the oldest complete backups beyond a count.
//!
//! Consistency: each partition's copy is the checkpoint of its leader right after a read
//! barrier, so it holds every write acknowledged before the partition was prepared, and
//! exactly the entries up to the recorded decree. Partitions are checkpointed one after the
//! other, so different partitions are consistent at different moments (as in Pegasus' cold
//! backup); writes keep flowing throughout.

use super::manifest::{BackupManifest, FileEntry, PartitionEntry, MANIFEST_FILE};
use super::manifest::{MANIFEST_FORMAT_VERSION, MAX_MANIFEST_SIZE_BYTES};
use super::target::{BackupTarget, BackupWriter};
use crate::proto::{ClientRequest, ClientResponse};
use siltdb_client::backup::{BackupReply, BackupRequest, StagedFile, MAX_BACKUP_CHUNK_BYTES};
use siltdb_client::{Client, TableLayout};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// Prefix of a backup id; the rest is the start time in Unix ms, zero-padded so that ids sort
/// by time.
pub const BACKUP_ID_PREFIX: &str = "backup-";
/// Bound on a partition's prepare (barrier, checkpoint, staging) on its leader.
pub const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one chunk read.
pub const CHUNK_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts of one chunk read before the backup fails.
pub const MAX_CHUNK_READ_ATTEMPTS: u32 = 3;

/// Unix time in ms.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The time of a backup id, `None` for other names.
pub fn parse_backup_id(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(BACKUP_ID_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The id of a backup started at `ms`.
pub fn backup_id(ms: u64) -> String {
    format!("{BACKUP_ID_PREFIX}{ms:016}")
}

async fn blocking<T: Send + 'static>(
    what: String,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("{what}: task failed: {e}"))?
        .map_err(|e| format!("{what}: {e}"))
}

/// Every backup id under `target` with a readable manifest, oldest first (incomplete ones,
/// without a manifest, are left out).
pub fn complete_backups(
    target: &dyn BackupTarget,
) -> Result<Vec<(String, BackupManifest)>, String> {
    let mut ids: Vec<(u64, String)> = target
        .list()
        .map_err(|e| format!("listing {}: {e}", target.describe()))?
        .into_iter()
        .filter_map(|n| parse_backup_id(&n).map(|t| (t, n)))
        .collect();
    ids.sort();
    let mut out = Vec::new();
    for (_, id) in ids {
        let path = format!("{id}/{MANIFEST_FILE}");
        let what = format!("{}/{path}", target.describe());
        match target.read_small(&path, MAX_MANIFEST_SIZE_BYTES) {
            Ok(Some(bytes)) => match BackupManifest::decode(&bytes, &what) {
                Ok(m) => out.push((id, m)),
                Err(e) => tracing::warn!(error = %e, "skipping a backup with a bad manifest"),
            },
            Ok(None) => {}
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
    Ok(out)
}

/// Removes the oldest complete backups beyond the newest `keep` (at least 1 is always kept;
/// incomplete backups are never touched). A backup's manifest goes first, so a crash halfway
/// leaves an incomplete backup, never a damaged complete one. Returns the removed ids.
pub fn apply_retention(target: &dyn BackupTarget, keep: usize) -> Result<Vec<String>, String> {
    let complete = complete_backups(target)?;
    let excess = complete.len().saturating_sub(keep.max(1));
    let mut removed = Vec::new();
    for (id, _) in complete.into_iter().take(excess) {
        let what = format!("{}/{id}", target.describe());
        target
            .remove(&format!("{id}/{MANIFEST_FILE}"))
            .map_err(|e| format!("removing {what}: {e}"))?;
        target
            .remove_all(&id)
            .map_err(|e| format!("removing {what}: {e}"))?;
        removed.push(id);
    }
    Ok(removed)
}

/// Backs up every partition of `table` into a new backup under `target` and returns its
/// manifest (already written).
pub async fn run_backup(
    client: &Client,
    table: &str,
    target: Arc<dyn BackupTarget>,
) -> Result<BackupManifest, String> {
    let layout = client.layout(table).await.map_err(|e| e.to_string())?;
    let started = unix_ms();
    let id = {
        let t = Arc::clone(&target);
        let existing = blocking("listing the backup root".into(), move || t.list()).await?;
        let mut ms = started;
        while existing.contains(&backup_id(ms)) {
            ms += 1;
        }
        backup_id(ms)
    };
    let mut partitions = Vec::new();
    for p in 0..layout.partition_count {
        match copy_partition(client, &layout, p, &target, &id).await {
            Ok(entry) => {
                tracing::info!(partition = p, decree = entry.decree, "partition backed up");
                partitions.push(entry);
            }
            Err(e) => {
                // This attempt has no manifest (incomplete): remove what it wrote, so that
                // failed attempts do not pile up. A crash leaves it; it is never restored.
                let t = Arc::clone(&target);
                let dead = id.clone();
                if let Err(r) = blocking("removing the failed backup".into(), move || {
                    t.remove_all(&dead)
                })
                .await
                {
                    tracing::warn!(error = %r, "removing a failed backup attempt");
                }
                return Err(format!("backup {id}, partition {p}: {e}"));
            }
        }
    }
    let manifest = BackupManifest {
        format_version: MANIFEST_FORMAT_VERSION,
        backup_id: id.clone(),
        table: table.to_string(),
        app_id: layout.app_id,
        partition_count: layout.partition_count,
        replica_count: layout.replica_count,
        started_unix_ms: started,
        finished_unix_ms: unix_ms(),
        partitions,
    };
    let bytes = manifest.encode()?;
    let t = Arc::clone(&target);
    blocking(format!("writing the manifest of {id}"), move || {
        t.seal(&id)?;
        t.put_atomic(&format!("{id}/{MANIFEST_FILE}"), &bytes)
    })
    .await?;
    Ok(manifest)
}

async fn copy_partition(
    client: &Client,
    layout: &TableLayout,
    p: u32,
    target: &Arc<dyn BackupTarget>,
    id: &str,
) -> Result<PartitionEntry, String> {
    let req = ClientRequest::Backup(BackupRequest::Prepare {
        table: layout.name.clone(),
        partition: p,
    });
    let resp = client
        .partition_call_with(layout, p, &req, PREPARE_TIMEOUT)
        .await
        .map_err(|e| format!("preparing the checkpoint: {e}"))?;
    let ClientResponse::Backup(BackupReply::Prepared {
        session,
        node_id,
        addr,
        decree,
        term,
        files,
    }) = resp
    else {
        return Err(format!("unexpected answer to prepare: {resp:?}"));
    };
    let mut copied = Vec::new();
    let mut result = Ok(());
    for f in &files {
        let path = format!("{id}/{p}/{}", f.name);
        match copy_file(client, &addr, session, f, target, path).await {
            Ok(e) => copied.push(e),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // Release either way (an unreleased session expires on the server).
    let release = ClientRequest::Backup(BackupRequest::Release { session });
    if let Err(e) = client
        .call_with_timeout(&addr, &release, CHUNK_READ_TIMEOUT)
        .await
    {
        tracing::warn!(%addr, session, error = %e, "releasing a backup session");
    }
    result?;
    Ok(PartitionEntry {
        partition: p,
        decree,
        term,
        node_id,
        files: copied,
    })
}

async fn read_chunk(
    client: &Client,
    addr: &str,
    session: u64,
    file: &str,
    offset: u64,
) -> Result<Vec<u8>, String> {
    let req = ClientRequest::Backup(BackupRequest::Read {
        session,
        file: file.to_string(),
        offset,
        len_max: MAX_BACKUP_CHUNK_BYTES,
    });
    let mut last = String::new();
    for _ in 0..MAX_CHUNK_READ_ATTEMPTS {
        match client
            .call_with_timeout(addr, &req, CHUNK_READ_TIMEOUT)
            .await
        {
            Ok(ClientResponse::Backup(BackupReply::Chunk(c))) => return Ok(c),
            Ok(ClientResponse::Error(e)) if !e.is_retryable() => {
                return Err(format!("{addr}: {e}"))
            }
            Ok(other) => last = format!("{addr}: unexpected answer {other:?}"),
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    Err(last)
}

/// Streams one staged file into the target (chunk by chunk: never whole in memory).
async fn copy_file(
    client: &Client,
    addr: &str,
    session: u64,
    file: &StagedFile,
    target: &Arc<dyn BackupTarget>,
    path: String,
) -> Result<FileEntry, String> {
    let what = format!("{}/{path}", target.describe());
    let t = Arc::clone(target);
    let p = path.clone();
    let mut w: Box<dyn BackupWriter> = blocking(what.clone(), move || t.create(&p)).await?;
    let mut crc = 0u32;
    let mut offset = 0u64;
    loop {
        let chunk = read_chunk(client, addr, session, &file.name, offset).await?;
        if chunk.is_empty() {
            break;
        }
        offset = offset.saturating_add(chunk.len() as u64);
        if offset > file.size_bytes {
            return Err(format!(
                "{}: more than the {} bytes staged",
                file.name, file.size_bytes
            ));
        }
        crc = crc32c::crc32c_append(crc, &chunk);
        w = blocking(what.clone(), move || {
            w.write_all(&chunk)?;
            Ok(w)
        })
        .await?;
    }
    if offset != file.size_bytes {
        return Err(format!(
            "{}: {offset} bytes read of {} staged",
            file.name, file.size_bytes
        ));
    }
    blocking(what, move || w.finish()).await?;
    Ok(FileEntry {
        name: file.name.clone(),
        size_bytes: offset,
        crc32c: crc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::target::LocalDirTarget;

    fn fake_backup(t: &LocalDirTarget, ms: u64, complete: bool) -> String {
        let id = backup_id(ms);
        let mut w = t.create(&format!("{id}/0/000001.sst")).unwrap();
        w.write_all(b"x").unwrap();
        w.finish().unwrap();
        if complete {
            let m = BackupManifest {
                format_version: MANIFEST_FORMAT_VERSION,
                backup_id: id.clone(),
                table: "t".into(),
                app_id: 1,
                partition_count: 1,
                replica_count: 1,
                started_unix_ms: ms,
                finished_unix_ms: ms,
                partitions: vec![PartitionEntry {
                    partition: 0,
                    decree: 1,
                    term: 1,
                    node_id: 1,
                    files: vec![],
                }],
            };
            t.put_atomic(&format!("{id}/{MANIFEST_FILE}"), &m.encode().unwrap())
                .unwrap();
        }
        id
    }

    #[test]
    fn retention_keeps_the_newest_complete_backups_and_never_an_incomplete_one() {
        let tmp = tempfile::tempdir().unwrap();
        let t = LocalDirTarget::new(tmp.path());
        let old_incomplete = fake_backup(&t, 5, false);
        let ids: Vec<String> = (10..15).map(|ms| fake_backup(&t, ms, true)).collect();
        let new_incomplete = fake_backup(&t, 20, false);
        let removed = apply_retention(&t, 2).unwrap();
        assert_eq!(removed, ids[..3].to_vec());
        let left: Vec<String> = complete_backups(&t)
            .unwrap()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(left, ids[3..].to_vec());
        let mut names = t.list().unwrap();
        names.sort();
        assert_eq!(
            names,
            vec![
                old_incomplete,
                ids[3].clone(),
                ids[4].clone(),
                new_incomplete
            ]
        );
        // keep 0 still keeps the newest.
        assert_eq!(apply_retention(&t, 0).unwrap(), vec![ids[3].clone()]);
        assert_eq!(complete_backups(&t).unwrap().len(), 1);
        assert_eq!(parse_backup_id(&ids[4]), Some(14));
        assert_eq!(parse_backup_id("backup-"), None);
        assert_eq!(parse_backup_id("other"), None);
    }
}
