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
//!    ("busy") with exponential backoff and jitter under [`MAX_INGEST_APPLY_WAIT`].
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
//! **Refusal (issue #25).** Applying a committed entry must be deterministic and total: an
//! ingestion that cannot take effect because of what the command names — a name that escapes
//! the source directory, a source directory or file that is missing or unreadable, a file whose
//! size or CRC-32C differs from the command, files the engine refuses as invalid — is applied as
//! a **recorded failure**: nothing is ingested, the decree advances, and the engine key
//! [`FAILED_KEY`] holds an [`IngestFailure`] (load, decree, reason) written in the same batch, so
//! every replica reading the same files records the same failure, it survives restarts and
//! checkpoints, and the entry is never retried by replay. The proposer sees it in
//! [`crate::mutation::MutationResp::ingest_failure`] and `super::replica_target` checks every
//! replica's record, so the bulk load fails visibly instead of halting the state machine (an
//! error returned to openraft stops this replica's Raft, and a restart would replay the same
//! entry into the same error). The reason never includes the size or checksum of the file a
//! path names (a command may name any path; its contents are not the proposer's to learn).
//!
//! Faults of this replica's own storage (writing the staging copy, the engine's I/O) and an
//! engine still busy past [`MAX_INGEST_APPLY_WAIT`] are not properties of the entry: they still
//! fail the apply, as any other local storage error does. The driver removes the downloaded
//! files only after every replica applied the entry and every replica's log was purged behind a
//! checkpoint holding the data (`super::replica_target`).

use crate::error::{Error, Result};
use crate::mutation::IngestCommand;
use serde::{Deserialize, Serialize};
use siltdb::fs::FileSystem;
use siltdb::{Db, IngestOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::metadata::resolve_under;

/// Engine key holding the id (u64 LE) of the last bulk load ingested.
pub const INGESTED_KEY: &[u8] = b"\0silt/bulk_load_ingested";
/// Engine key holding the JSON [`IngestFailure`] of the last ingest entry applied as refused.
pub const FAILED_KEY: &[u8] = b"\0silt/bulk_load_failed";

/// An ingest entry applied as a recorded failure (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestFailure {
    /// The load the entry carried.
    pub load_id: u64,
    /// The entry's decree.
    pub decree: u64,
    /// Why it could not take effect, naming the file.
    pub reason: String,
}

/// Why an ingest entry cannot take effect: recorded, never returned to openraft.
pub type Refusal = String;

/// The failure `db` records, if the last refused ingest entry left one.
pub fn recorded_failure(db: &Db) -> Result<Option<IngestFailure>> {
    let Some(bytes) = db.get(FAILED_KEY)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Error::corruption(
            "engine key \\0silt/bulk_load_failed",
            0,
            format!("bad ingest failure record: {e}"),
        )
    })
}

/// Stages (unless already staged) and ingests the command's files: `Ok(Err(refusal))` when
/// the entry cannot take effect, `Err` on a fault of this replica's own storage.
pub fn stage_and_ingest(
    fs: &dyn FileSystem,
    db: &Db,
    cmd: &IngestCommand,
    staging: &Path,
) -> Result<std::result::Result<(), Refusal>> {
    let files = match stage(fs, cmd, staging)? {
        Ok(files) => files,
        Err(refusal) => return Ok(Err(refusal)),
    };
    ingest_with_retries(db, &files)
}
/// Staging directories are `<replica dir>/ingest.<decree>`.
pub const STAGING_PREFIX: &str = "ingest.";
/// Bound on one ingestion inside `apply`, retries included.
pub const MAX_INGEST_APPLY_WAIT: Duration = Duration::from_secs(120);
/// Bound on one engine ingestion attempt.
pub const MAX_INGEST_ATTEMPT_WAIT: Duration = Duration::from_secs(30);
/// First backoff after a busy engine (doubles, with jitter, up to one second).
const BACKOFF_INITIAL: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const COPY_CHUNK_BYTES: u64 = 1 << 20;

/// The staging directory of the ingestion at `decree`.
pub fn staging_dir(replica_dir: &Path, decree: u64) -> PathBuf {
    replica_dir.join(format!("{STAGING_PREFIX}{decree}"))
}

/// True if `db` records load `load_id` as the last one ingested.
pub fn already_ingested(db: &Db, load_id: u64) -> Result<bool> {
    Ok(db.get(INGESTED_KEY)?.as_deref() == Some(&load_id.to_le_bytes()[..]))
}

/// Copies and verifies the command's files into `staging`; returns the staged paths in order,
/// or why the command cannot take effect (a bad name, a source file missing, unreadable or not
/// matching the command). `Err` is a fault of this replica's own storage.
pub fn stage(
    fs: &dyn FileSystem,
    cmd: &IngestCommand,
    staging: &Path,
) -> Result<std::result::Result<Vec<PathBuf>, Refusal>> {
    crate::fs_util::create_dir_durable(fs, staging)?;
    let source = Path::new(&cmd.source_dir);
    let mut staged = Vec::with_capacity(cmd.files.len());
    for file in &cmd.files {
        let refuse = |why: String| Ok(Err(format!("ingest command: {why}")));
        let src = match resolve_under(source, &file.name) {
            Ok(p) => p,
            Err(why) => return refuse(why),
        };
        let dst = match resolve_under(staging, &file.name) {
            Ok(p) => p,
            Err(why) => return refuse(why),
        };
        let intact = fs.exists(&dst) && size_and_crc32c(fs, &dst)? == (file.size, file.crc32c);
        if !intact {
            let tmp = siltdb::fs::tmp_path(&dst);
            let copied = copy_verified(fs, &src, &tmp, file.size, file.crc32c);
            match copied {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    let _ = fs.remove(&tmp);
                    return refuse(format!("{}: {why}", src.display()));
                }
                Err(e) => {
                    let _ = fs.remove(&tmp);
                    return Err(e);
                }
            }
            fs.rename(&tmp, &dst).map_err(|e| Error::io(&dst, e))?;
        }
        staged.push(dst);
    }
    fs.sync_dir(staging).map_err(|e| Error::io(staging, e))?;
    Ok(Ok(staged))
}

/// Checks, before an ingest entry is proposed, that every file it names is present under its
/// source directory with the size and CRC-32C it records: `Err(why)` names the file and the
/// problem without revealing what the file actually holds (as [`stage`] does at apply). The
/// check is repeated at apply (the files may change in between); this one keeps a command
/// that can never take effect out of the log.
pub fn verify_sources(
    fs: &dyn FileSystem,
    cmd: &IngestCommand,
) -> std::result::Result<(), Refusal> {
    const MISMATCH: &str = "does not match the size and crc32c in the ingest command";
    let source = Path::new(&cmd.source_dir);
    if !source.is_absolute()
        || source
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(format!(
            "ingest command: source directory {} is not an absolute path without `..`",
            source.display()
        ));
    }
    if cmd.files.is_empty() {
        return Err("ingest command: no files".into());
    }
    for file in &cmd.files {
        let src =
            resolve_under(source, &file.name).map_err(|why| format!("ingest command: {why}"))?;
        let refuse = |why: String| format!("ingest command: {}: {why}", src.display());
        let input = fs
            .open_read(&src)
            .map_err(|e| refuse(format!("cannot be read at the source ({})", e.kind())))?;
        if input.size() != file.size {
            return Err(refuse(MISMATCH.into()));
        }
        let mut crc = 0u32;
        let mut on_chunk = |chunk: &[u8]| {
            crc = crc32c::crc32c_append(crc, chunk);
            Ok(())
        };
        match read_chunks(input.as_ref(), file.size, &mut on_chunk) {
            Ok(()) => {}
            Err(ChunkError::Read(e)) => {
                return Err(refuse(format!(
                    "cannot be read at the source ({})",
                    e.kind()
                )))
            }
            Err(ChunkError::Sink(e)) => return Err(refuse(e.to_string())),
        }
        if crc != file.crc32c {
            return Err(refuse(MISMATCH.into()));
        }
    }
    Ok(())
}

fn size_and_crc32c(fs: &dyn FileSystem, path: &Path) -> Result<(u64, u32)> {
    let input = fs.open_read(path).map_err(|e| Error::io(path, e))?;
    let mut crc = 0u32;
    let mut on_chunk = |chunk: &[u8]| {
        crc = crc32c::crc32c_append(crc, chunk);
        Ok(())
    };
    let size = input.size();
    read_chunks(input.as_ref(), size, &mut on_chunk).map_err(|e| match e {
        ChunkError::Read(e) => Error::io(path, e),
        ChunkError::Sink(e) => e,
    })?;
    Ok((size, crc))
}

/// Copies `src` to `dst` (synced) if it has `size` bytes with CRC-32C `crc`. `Ok(Err(why))`
/// names a source problem without revealing the source's actual size or checksum; `Err` is a
/// fault writing `dst`.
fn copy_verified(
    fs: &dyn FileSystem,
    src: &Path,
    dst: &Path,
    size: u64,
    crc: u32,
) -> Result<std::result::Result<(), Refusal>> {
    const MISMATCH: &str = "does not match the size and crc32c in the ingest command";
    let input = match fs.open_read(src) {
        Ok(f) => f,
        Err(e) => return Ok(Err(format!("cannot be read at the source ({})", e.kind()))),
    };
    // Checked before copying anything: a command may name a huge or unrelated file.
    if input.size() != size {
        return Ok(Err(MISMATCH.into()));
    }
    let mut out = fs.create(dst).map_err(|e| Error::io(dst, e))?;
    let mut got = 0u32;
    let mut on_chunk = |chunk: &[u8]| {
        got = crc32c::crc32c_append(got, chunk);
        out.append(chunk).map_err(|e| Error::io(dst, e))
    };
    match read_chunks(input.as_ref(), size, &mut on_chunk) {
        Ok(()) => {}
        Err(ChunkError::Read(e)) => {
            return Ok(Err(format!("cannot be read at the source ({})", e.kind())))
        }
        Err(ChunkError::Sink(e)) => return Err(e),
    }
    if got != crc {
        return Ok(Err(MISMATCH.into()));
    }
    out.sync().map_err(|e| Error::io(dst, e))?;
    Ok(Ok(()))
}

enum ChunkError {
    /// Reading the input failed.
    Read(std::io::Error),
    /// The chunk consumer failed.
    Sink(Error),
}

/// Reads the first `size` bytes of `input` in chunks of [`COPY_CHUNK_BYTES`], handing each to
/// `on_chunk`.
fn read_chunks(
    input: &dyn siltdb::fs::RandomAccessFile,
    size: u64,
    on_chunk: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> std::result::Result<(), ChunkError> {
    let mut buf = vec![0u8; COPY_CHUNK_BYTES.min(size) as usize];
    let mut offset = 0u64;
    while offset < size {
        let n = COPY_CHUNK_BYTES.min(size - offset) as usize;
        input
            .read_at(offset, &mut buf[..n])
            .map_err(ChunkError::Read)?;
        on_chunk(&buf[..n]).map_err(ChunkError::Sink)?;
        offset += n as u64;
    }
    Ok(())
}

/// `Db::ingest` with copy semantics, retrying retryable errors with exponential backoff and
/// jitter until [`MAX_INGEST_APPLY_WAIT`]; the last error is returned past it. Files the engine
/// refuses (not an I/O fault, not retryable) are a refusal.
pub fn ingest_with_retries(db: &Db, files: &[PathBuf]) -> Result<std::result::Result<(), Refusal>> {
    let deadline = Instant::now() + MAX_INGEST_APPLY_WAIT;
    let mut backoff = BACKOFF_INITIAL;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let opts = IngestOptions {
            move_files: false,
            timeout: remaining.min(MAX_INGEST_ATTEMPT_WAIT),
            ..IngestOptions::default()
        };
        match db.ingest(files, &opts) {
            Ok(_) => return Ok(Ok(())),
            Err(e) if e.is_retryable() => {
                let wait = super::partition::jitter(backoff);
                if Instant::now() + wait >= deadline {
                    return Err(e.into());
                }
                std::thread::sleep(wait);
                backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
            }
            // The files' content (checked against the command while staging) is invalid: the
            // same on every replica.
            Err(e @ (siltdb::Error::Corruption { .. } | siltdb::Error::InvalidArgument(_))) => {
                return Ok(Err(format!("the engine refused the files: {e}")))
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
        let staged = stage(&fs, &good, &staging).unwrap().unwrap();
        assert_eq!(
            staged,
            vec![staging.join("000001.sst"), staging.join("000002.sst")]
        );
        assert_eq!(std::fs::read(&staged[1]).unwrap(), b"second");
        // The originals are only read.
        assert_eq!(std::fs::read(source.join("000001.sst")).unwrap(), b"first");
        // Staged again (replay) with the source gone: the intact copies are used.
        std::fs::remove_dir_all(&source).unwrap();
        assert_eq!(stage(&fs, &good, &staging).unwrap().unwrap(), staged);

        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(source.join("000003.sst"), b"changed").unwrap();
        let bad = command(&source, &[("000003.sst", b"expected")]);
        // Refusals (the entry cannot take effect), not storage errors.
        let e = stage(&fs, &bad, &staging_dir(root.path(), 8))
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("000003.sst"), "{e}");
        let missing = command(&source, &[("000004.sst", b"x")]);
        let e = stage(&fs, &missing, &staging_dir(root.path(), 9))
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("000004.sst"), "{e}");
        let escape = command(&source, &[("../x.sst", b"x")]);
        assert!(stage(&fs, &escape, &staging_dir(root.path(), 10))
            .unwrap()
            .is_err());
    }

    #[test]
    fn a_mismatch_never_reveals_the_named_files_size_or_checksum() {
        let root = tempfile::tempdir().unwrap();
        let source = root.path().join("src");
        std::fs::create_dir_all(&source).unwrap();
        let secret = b"secret contents of some file";
        std::fs::write(source.join("000001.sst"), secret).unwrap();
        let actual_crc = format!("{:x}", crc32c::crc32c(secret));
        // Same size, other checksum; then another size.
        let mut same_size = command(&source, &[("000001.sst", secret)]);
        same_size.files[0].crc32c ^= 1;
        let other_size = command(&source, &[("000001.sst", b"short")]);
        for (i, cmd) in [same_size, other_size].iter().enumerate() {
            let why = stage(&StdFs, cmd, &staging_dir(root.path(), i as u64))
                .unwrap()
                .unwrap_err();
            assert!(
                why.contains("000001.sst") && why.contains("does not match"),
                "{why}"
            );
            // The (random) directory name aside, nothing about the file is in the message.
            let rest = why.replace(source.to_string_lossy().as_ref(), "<src>");
            assert!(
                !rest.contains(&secret.len().to_string()),
                "size leaked: {why}"
            );
            assert!(
                !rest.to_lowercase().contains(&actual_crc),
                "crc leaked: {why}"
            );
        }
    }

    #[test]
    fn verify_sources_accepts_the_named_files_and_refuses_missing_or_changed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("a.sst"), b"alpha").unwrap();
        let cmd = command(&src, &[("a.sst", b"alpha")]);
        assert_eq!(verify_sources(&StdFs, &cmd), Ok(()));

        let mut changed = cmd.clone();
        changed.files[0].crc32c ^= 1;
        let why = verify_sources(&StdFs, &changed).unwrap_err();
        assert!(
            why.contains("a.sst") && why.contains("does not match"),
            "{why}"
        );

        let missing = command(&src, &[("b.sst", b"beta")]);
        let why = verify_sources(&StdFs, &missing).unwrap_err();
        assert!(
            why.contains("b.sst") && why.contains("cannot be read"),
            "{why}"
        );

        let mut gone = cmd.clone();
        gone.source_dir = dir.path().join("vanished").to_str().unwrap().to_string();
        assert!(verify_sources(&StdFs, &gone).is_err());

        let mut relative = cmd.clone();
        relative.source_dir = "src".into();
        assert!(verify_sources(&StdFs, &relative)
            .unwrap_err()
            .contains("absolute"));

        let mut traversal = cmd;
        traversal.files[0].name = "../a.sst".into();
        assert!(verify_sources(&StdFs, &traversal).is_err());
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
