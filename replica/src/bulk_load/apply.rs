//! The replica side of the ingest control write ([`crate::mutation::IngestCommand`]): what
//! every replica's state machine does when the entry applies.
//!
//! 1. **Skip a repeat.** The engine key [`INGESTED_KEY`] holds the id of the last load
//!    ingested, written in the same batch as the entry's decree. An entry for a load already
//!    recorded is a no-op, so the primary may propose the same ingestion again (after a
//!    timeout waiting for its secondaries) without ingesting twice.
//! 2. **Stage.** Copy every file from the command's source directory into this replica's own
//!    `ingest.<decree>/`, through the engine's file system, checking size and CRC-32C while
//!    copying (temp name, sync, rename, directory sync). A file already staged and intact is
//!    kept (replay after a crash). The shared originals are only read.
//! 3. **Ingest** the staged copies with copy semantics, retrying the engine's retryable errors
//!    ("busy") with exponential backoff and jitter under [`INGEST_APPLY_WAIT_MAX`].
//! 4. **Record and flush**: write `\0silt/applied` and [`INGESTED_KEY`] tagged with the decree,
//!    then flush, so the engine's durable decree reaches the ingestion and the entry is never
//!    replayed here; only then remove the staging directory.
//!
//! Replay after a crash between steps 3 and 4 ingests the staged copies again. That is
//! harmless: every entry after the ingestion is replayed after it too, with newer sequence
//! numbers, so no later overwrite or delete is undone, and entries before it that are replayed
//! get sequence numbers below the second ingestion's, which shadows them exactly as the first
//! did. The older copy of the files is dead data that compaction drops.
//!
//! **Failure.** An ingestion that cannot be applied (a file missing or different at the source,
//! an I/O error, the engine busy past the deadline) fails the whole apply: openraft treats it as
//! a storage error and stops this replica's Raft, with the error naming the file. Applying the
//! entry as a no-op instead would let this replica silently diverge from the others. The driver
//! avoids it by removing the downloaded files only after every replica applied the entry and
//! every replica's log was purged behind a checkpoint holding the data
//! (`super::replica_target`).

use crate::error::{Error, Result};
use crate::mutation::IngestCommand;
use siltdb::fs::{FileSystem, WritableFile};
use siltdb::{Db, IngestOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::metadata::resolve_under;

/// Engine key holding the id (u64 LE) of the last bulk load ingested.
pub const INGESTED_KEY: &[u8] = b"\0silt/bulk_load_ingested";
/// Staging directories are `<replica dir>/ingest.<decree>`.
pub const STAGING_PREFIX: &str = "ingest.";
/// Bound on one ingestion inside `apply`, retries included.
pub const INGEST_APPLY_WAIT_MAX: Duration = Duration::from_secs(120);
/// Bound on one engine ingestion attempt.
pub const INGEST_ATTEMPT_WAIT_MAX: Duration = Duration::from_secs(30);
/// First backoff after a busy engine (doubles, with jitter, up to one second).
const BACKOFF_INITIAL: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
const COPY_CHUNK_BYTES: u64 = 1 << 20;

/// The staging directory of the ingestion at `decree`.
pub fn staging_dir(replica_dir: &Path, decree: u64) -> PathBuf {
    replica_dir.join(format!("{STAGING_PREFIX}{decree}"))
}

/// True if `db` records load `load_id` as the last one ingested.
pub fn already_ingested(db: &Db, load_id: u64) -> Result<bool> {
    Ok(db.get(INGESTED_KEY)?.as_deref() == Some(&load_id.to_le_bytes()[..]))
}

/// Copies and verifies the command's files into `staging`; returns the staged paths in order.
pub fn stage(fs: &dyn FileSystem, cmd: &IngestCommand, staging: &Path) -> Result<Vec<PathBuf>> {
    crate::fs_util::create_dir_durable(fs, staging)?;
    let source = Path::new(&cmd.source_dir);
    let mut staged = Vec::with_capacity(cmd.files.len());
    for file in &cmd.files {
        let bad_name = |why: String| Error::InvalidArgument(format!("ingest command: {why}"));
        let src = resolve_under(source, &file.name).map_err(bad_name)?;
        let dst = resolve_under(staging, &file.name).map_err(bad_name)?;
        let intact = fs.exists(&dst) && size_and_crc32c(fs, &dst)? == (file.size, file.crc32c);
        if !intact {
            let tmp = siltdb::fs::tmp_path(&dst);
            let got = copy_with_crc32c(fs, &src, &tmp)?;
            if got != (file.size, file.crc32c) {
                let _ = fs.remove(&tmp);
                return Err(Error::corruption(
                    &src,
                    0,
                    format!(
                        "{} has size {} and crc32c {:#010x}; the ingest command expects {} and \
                         {:#010x}",
                        file.name, got.0, got.1, file.size, file.crc32c
                    ),
                ));
            }
            fs.rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
        }
        staged.push(dst);
    }
    fs.sync_dir(staging).map_err(|e| Error::io(staging, e))?;
    Ok(staged)
}

fn size_and_crc32c(fs: &dyn FileSystem, path: &Path) -> Result<(u64, u32)> {
    read_crc32c(fs, path, None)
}

/// Copies `src` to `dst` (synced), returning the size and CRC-32C of what was copied.
fn copy_with_crc32c(fs: &dyn FileSystem, src: &Path, dst: &Path) -> Result<(u64, u32)> {
    let mut out = fs.create(dst).map_err(|e| Error::io(dst, e))?;
    let got = read_crc32c(fs, src, Some((dst, out.as_mut())))?;
    out.sync().map_err(|e| Error::io(dst, e))?;
    Ok(got)
}

/// Reads `src` in chunks, returning its size and CRC-32C, and appends every chunk to `out`
/// (named by its path for errors) when given.
fn read_crc32c(
    fs: &dyn FileSystem,
    src: &Path,
    mut out: Option<(&Path, &mut dyn WritableFile)>,
) -> Result<(u64, u32)> {
    let input = fs.open_read(src).map_err(|e| Error::io(src, e))?;
    let size = input.size();
    let mut crc = 0u32;
    let mut buf = vec![0u8; COPY_CHUNK_BYTES.min(size) as usize];
    let mut offset = 0u64;
    while offset < size {
        let n = COPY_CHUNK_BYTES.min(size - offset) as usize;
        input
            .read_at(offset, &mut buf[..n])
            .map_err(|e| Error::io(src, e))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        if let Some((dst, w)) = out.as_mut() {
            w.append(&buf[..n]).map_err(|e| Error::io(*dst, e))?;
        }
        offset += n as u64;
    }
    Ok((size, crc))
}

/// `Db::ingest` with copy semantics, retrying retryable errors with exponential backoff and
/// jitter until [`INGEST_APPLY_WAIT_MAX`]; the last error is returned past it.
pub fn ingest_with_retries(db: &Db, files: &[PathBuf]) -> Result<()> {
    let deadline = Instant::now() + INGEST_APPLY_WAIT_MAX;
    let mut backoff = BACKOFF_INITIAL;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let opts = IngestOptions {
            move_files: false,
            timeout: remaining.min(INGEST_ATTEMPT_WAIT_MAX),
            ..IngestOptions::default()
        };
        match db.ingest(files, &opts) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() => {
                let wait = super::partition::jitter(backoff);
                if Instant::now() + wait >= deadline {
                    return Err(e.into());
                }
                std::thread::sleep(wait);
                backoff = backoff.saturating_mul(2).min(BACKOFF_MAX);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Removes every staging directory (and leftover temp) of a decree at or below `durable`:
/// those entries are never replayed. Staging for later decrees is kept for replay.
pub fn remove_staging_upto(fs: &dyn FileSystem, dir: &Path, durable: Option<u64>) -> Result<()> {
    let Some(durable) = durable else {
        return Ok(());
    };
    for name in fs.list(dir).map_err(|e| Error::io(dir, e))? {
        let Some(decree) = name.strip_prefix(STAGING_PREFIX) else {
            continue;
        };
        let decree = decree.strip_suffix(".tmp").unwrap_or(decree);
        if decree.parse::<u64>().is_ok_and(|d| d <= durable) {
            let path = dir.join(&name);
            fs.remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutation::IngestFile;
    use siltdb::fs::StdFs;

    fn command(source: &Path, files: &[(&str, &[u8])]) -> IngestCommand {
        IngestCommand {
            load_id: 1,
            source_dir: source.to_string_lossy().into_owned(),
            files: files
                .iter()
                .map(|(name, bytes)| IngestFile {
                    name: (*name).into(),
                    size: bytes.len() as u64,
                    crc32c: crc32c::crc32c(bytes),
                })
                .collect(),
        }
    }

    #[test]
    fn stage_copies_verifies_and_names_a_bad_file() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("src");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("000001.sst"), b"first").unwrap();
        std::fs::write(source.join("000002.sst"), b"second").unwrap();
        let fs = StdFs;
        let good = command(
            &source,
            &[("000001.sst", b"first"), ("000002.sst", b"second")],
        );
        let staging = staging_dir(root.path(), 7);
        let staged = stage(&fs, &good, &staging).unwrap();
        assert_eq!(
            staged,
            vec![staging.join("000001.sst"), staging.join("000002.sst")]
        );
        assert_eq!(std::fs::read(&staged[1]).unwrap(), b"second");
        // The originals are only read.
        assert_eq!(std::fs::read(source.join("000001.sst")).unwrap(), b"first");
        // Staged again (replay) with the source gone: the intact copies are used.
        std::fs::remove_dir_all(&source).unwrap();
        assert_eq!(stage(&fs, &good, &staging).unwrap(), staged);

        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("000003.sst"), b"changed").unwrap();
        let bad = command(&source, &[("000003.sst", b"expected")]);
        let e = stage(&fs, &bad, &staging_dir(root.path(), 8)).unwrap_err();
        assert!(e.to_string().contains("000003.sst"), "{e}");
        let missing = command(&source, &[("000004.sst", b"x")]);
        let e = stage(&fs, &missing, &staging_dir(root.path(), 9)).unwrap_err();
        assert!(e.to_string().contains("000004.sst"), "{e}");
        let escape = command(&source, &[("../x.sst", b"x")]);
        assert!(stage(&fs, &escape, &staging_dir(root.path(), 10)).is_err());
    }

    #[test]
    fn staging_at_or_below_the_durable_decree_is_removed() {
        let root = tempfile::tempdir().unwrap();
        for name in [
            "ingest.3",
            "ingest.5",
            "ingest.6",
            "ingest.4.tmp",
            "ingest.x",
            "db.0",
        ] {
            std::fs::create_dir_all(root.path().join(name)).unwrap();
        }
        remove_staging_upto(&StdFs, root.path(), None).unwrap();
        assert!(root.path().join("ingest.3").exists());
        remove_staging_upto(&StdFs, root.path(), Some(5)).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["db.0", "ingest.6", "ingest.x"]);
    }
}
