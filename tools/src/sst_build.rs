//! `build`: input files -> external sort -> SST files + `bulk_load_metadata.json`.
//!
//! Everything is written into a hidden staging directory beside `--out`
//! (`.sst-ingest-build-XXXXXX`), synced, and renamed to `--out` only when complete, so a failed
//! build (bad input, full disk, duplicate key) leaves nothing at `--out`. Sort runs go to a
//! second hidden scratch directory (beside `--out`, or under `--temp-dir`) that is always
//! removed.
//!
//! With `--partitions N` the records are split by `xxh3_64(key) % N`
//! ([`siltdb_client::partition_of`], the cluster's one partition function) into `--out/<p>/`,
//! each partition with its own `NNNNNN.sst` files and `bulk_load_metadata.json` (zero files for a partition no key hashes to): the
//! layout a cluster bulk load (`silt-admin start-bulk-load`) reads.

use crate::error::{ToolError, ToolResult};
use crate::external_sort::{
    DuplicatePolicy, ExternalSorter, SortConfig, SortError, SortRecord, SortStats, SortedRecords,
};
use crate::input::{InputOptions, RecordReader};
use crate::metadata::{self, BulkLoadMetadata, FileEntry};
use crate::progress::Progress;
use siltdb::{Compression, SstInfo, SstWriter, SstWriterOptions};
use siltdb_client::partition_of;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Read buffer per input file.
const INPUT_BUFFER_BYTES: usize = 256 << 10;
/// Bytes an entry adds to an SST beyond its key and value (internal-key trailer, lengths), for
/// the file-size estimate that decides where to split.
const ENTRY_OVERHEAD_BYTES: u64 = 12;
/// Most partitions of one build (each has an SST open while records stream): a table's most.
pub const MAX_PARTITIONS: u32 = siltdb_client::layout::MAX_PARTITIONS;

/// What `build` does.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// Input files, read in order (input order decides which duplicate wins).
    pub inputs: Vec<PathBuf>,
    /// Format and encodings.
    pub input: InputOptions,
    /// Output directory (must not exist, or be empty).
    pub out: PathBuf,
    /// Start a new SST once the current one holds about this many bytes.
    pub target_file_size_bytes: u64,
    /// Block compression.
    pub compression: Compression,
    /// Uncompressed data block size.
    pub block_size_bytes: usize,
    /// Memory for buffering records before spilling a sorted run.
    pub memory_budget_bytes: usize,
    /// Duplicate keys: last wins, or fail.
    pub duplicates: DuplicatePolicy,
    /// Where sort runs go (default: beside `--out`).
    pub temp_dir: Option<PathBuf>,
    /// Split into this many hash partitions, `out/<p>/` each (see the module docs).
    pub partitions: Option<u32>,
}

/// What `build` did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Records read from all inputs.
    pub records_read: u64,
    /// Records dropped because a later occurrence of their key won.
    pub duplicates_dropped: u64,
    /// The metadata written (files and totals); for a partitioned build only the totals over
    /// every partition, with the files in `partitions`.
    pub metadata: BulkLoadMetadata,
    /// Each partition's metadata, by index (empty unless the build is partitioned).
    pub partitions: Vec<BulkLoadMetadata>,
    /// Sort counters (runs spilled, merge passes).
    pub sort: SortStats,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs a build.
pub fn build(config: &BuildConfig, progress: &Progress) -> ToolResult<BuildReport> {
    let started = Instant::now();
    let parent = prepare_out(&config.out)?;
    let staging = tempfile::Builder::new()
        .prefix(".sst-ingest-build-")
        .tempdir_in(&parent)
        .map_err(|e| ToolError::io(&parent, e))?;
    let scratch_parent = config.temp_dir.clone().unwrap_or_else(|| parent.clone());
    let scratch = tempfile::Builder::new()
        .prefix(".sst-ingest-sort-")
        .tempdir_in(&scratch_parent)
        .map_err(|e| ToolError::io(&scratch_parent, e))?;

    let mut sorter = ExternalSorter::new(SortConfig {
        memory_budget_bytes: config.memory_budget_bytes,
        scratch_dir: scratch.path().to_path_buf(),
        duplicates: config.duplicates,
    });
    read_inputs(config, &mut sorter, progress)?;
    let records_read = sorter.stats().records_in;
    let sorted = sorter.finish().map_err(|e| sort_error(e, config))?;
    let (files, duplicates_dropped, sort) =
        write_ssts(config, sorted, staging.path(), records_read, progress)?;
    drop(scratch);

    let (metadata, partitions) = if config.partitions.is_some() {
        let mut partitions = Vec::with_capacity(files.len());
        for (p, files) in files.into_iter().enumerate() {
            let dir = staging.path().join(p.to_string());
            let m = BulkLoadMetadata::new(files);
            metadata::write(&m, &dir)?;
            sync_dir(&dir)?;
            partitions.push(m);
        }
        let mut summary = BulkLoadMetadata::new(Vec::new());
        for m in &partitions {
            summary.totals.files += m.totals.files;
            summary.totals.entries += m.totals.entries;
            summary.totals.bytes += m.totals.bytes;
        }
        (summary, partitions)
    } else {
        let m = BulkLoadMetadata::new(files.into_iter().next().unwrap_or_default());
        metadata::write(&m, staging.path())?;
        (m, Vec::new())
    };
    sync_dir(staging.path())?;
    publish(staging, &config.out, &parent)?;
    Ok(BuildReport {
        records_read,
        duplicates_dropped,
        metadata,
        partitions,
        sort,
        elapsed: started.elapsed(),
    })
}

/// Checks that `out` can be created; returns its parent directory (created if missing).
fn prepare_out(out: &Path) -> ToolResult<PathBuf> {
    if out.exists() {
        let empty_dir = out.is_dir()
            && std::fs::read_dir(out)
                .map_err(|e| ToolError::io(out, e))?
                .next()
                .is_none();
        if !empty_dir {
            return Err(ToolError::Usage(format!(
                "--out {} already exists and is not an empty directory",
                out.display()
            )));
        }
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| ToolError::io(&parent, e))?;
    Ok(parent)
}

fn read_inputs(
    config: &BuildConfig,
    sorter: &mut ExternalSorter,
    progress: &Progress,
) -> ToolResult<()> {
    let total_bytes: u64 = config
        .inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = progress.bytes(total_bytes, "reading");
    let mut seq = 0u64;
    let started = Instant::now();
    for (index, path) in config.inputs.iter().enumerate() {
        let file = std::fs::File::open(path).map_err(|e| ToolError::io(path, e))?;
        let reader = std::io::BufReader::with_capacity(INPUT_BUFFER_BYTES, bar.wrap_read(file));
        let name = path.display().to_string();
        let mut records = RecordReader::new(reader, &name, &config.input);
        let file_index = u32::try_from(index)
            .map_err(|_| ToolError::Usage("more than 4 billion input files".into()))?;
        while let Some(record) = records.next_record()? {
            let origin = crate::external_sort::Origin {
                file: file_index,
                line: record.line,
            };
            sorter
                .push(SortRecord {
                    key: record.key,
                    value: record.value,
                    seq,
                    origin,
                })
                .map_err(|e| sort_error(e, config))?;
            seq += 1;
            if seq.is_multiple_of(4096) {
                bar.set_message(format!(
                    "{seq} rows, {}",
                    crate::progress::rate_message(seq, started, "rows")
                ));
            }
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// One output directory's SST files while records stream in.
struct FileSet {
    dir: PathBuf,
    files: Vec<FileEntry>,
    current: Option<(SstWriter, u64)>,
}

impl FileSet {
    fn put(&mut self, key: &[u8], value: &[u8], config: &BuildConfig) -> ToolResult<()> {
        let options = SstWriterOptions {
            compression: config.compression,
            block_size_bytes: config.block_size_bytes,
            ..Default::default()
        };
        let (writer, estimate_bytes) = match &mut self.current {
            Some(current) => current,
            none => {
                let path = self
                    .dir
                    .join(metadata::sst_file_name(self.files.len() as u64 + 1));
                let writer = SstWriter::create(&path, &options)
                    .map_err(|e| ToolError::engine(format!("creating {}", path.display()), e))?;
                none.insert((writer, 0))
            }
        };
        writer
            .put(key, value)
            .map_err(|e| ToolError::engine("writing SST", e))?;
        *estimate_bytes += key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD_BYTES;
        if *estimate_bytes >= config.target_file_size_bytes {
            self.finish_current()?;
        }
        Ok(())
    }

    fn finish_current(&mut self) -> ToolResult<()> {
        if let Some((writer, _)) = self.current.take() {
            self.files.push(finish_file(writer)?);
        }
        Ok(())
    }
}

/// Streams the sorted records into SST files of about the target size: one file set in
/// `dir`, or one per partition in `dir/<p>/` for a partitioned build. Returns the files of
/// each set, by partition.
fn write_ssts(
    config: &BuildConfig,
    mut sorted: SortedRecords,
    dir: &Path,
    records_read: u64,
    progress: &Progress,
) -> ToolResult<(Vec<Vec<FileEntry>>, u64, SortStats)> {
    let bar = progress.items(records_read, "writing");
    let started = Instant::now();
    let mut sets = Vec::new();
    match config.partitions {
        Some(n) => {
            for p in 0..n {
                let sub = dir.join(p.to_string());
                std::fs::create_dir(&sub).map_err(|e| ToolError::io(&sub, e))?;
                sets.push(FileSet {
                    dir: sub,
                    files: Vec::new(),
                    current: None,
                });
            }
        }
        None => sets.push(FileSet {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            current: None,
        }),
    }
    for record in sorted.by_ref() {
        let record = record.map_err(|e| sort_error(e, config))?;
        let p = config
            .partitions
            .map_or(0, |n| partition_of(&record.key, n) as usize);
        sets[p].put(&record.key, &record.value, config)?;
        bar.inc(1);
        if bar.position().is_multiple_of(4096) {
            bar.set_message(crate::progress::rate_message(
                bar.position(),
                started,
                "rows",
            ));
        }
    }
    let mut files = Vec::with_capacity(sets.len());
    for mut set in sets {
        set.finish_current()?;
        files.push(set.files);
    }
    bar.finish_and_clear();
    Ok((files, sorted.duplicates_dropped(), sorted.stats()))
}

/// Finishes one SST and describes it for the metadata, reading it back for its checksum.
fn finish_file(writer: SstWriter) -> ToolResult<FileEntry> {
    let info: SstInfo = writer
        .finish()
        .map_err(|e| ToolError::engine("finishing SST", e))?;
    let (size, crc32c) =
        metadata::file_size_and_crc32c(&info.path).map_err(|e| ToolError::io(&info.path, e))?;
    // Pair assertion: what the writer says it wrote is what is on disk.
    if size != info.size_bytes {
        return Err(ToolError::Verification(vec![format!(
            "{}: writer reported {} bytes, file has {size}",
            info.path.display(),
            info.size_bytes
        )]));
    }
    let name = info
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(FileEntry {
        name,
        size,
        crc32c,
        smallest_key: hex::encode(&info.smallest_key),
        largest_key: hex::encode(&info.largest_key),
        entries: info.entries,
    })
}

/// Renames the finished staging directory to `out` and syncs the parent.
fn publish(staging: tempfile::TempDir, out: &Path, parent: &Path) -> ToolResult<()> {
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, out) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(ToolError::io(out, e));
    }
    sync_dir(parent)
}

/// fsyncs a directory so renames and new entries in it are durable.
pub fn sync_dir(dir: &Path) -> ToolResult<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ToolError::io(dir, e))
}

/// Turns a sort error into a tool error, naming input files for duplicates.
fn sort_error(error: SortError, config: &BuildConfig) -> ToolError {
    let error_text = matches!(error, SortError::Corrupt { .. }).then(|| error.to_string());
    match error {
        SortError::Duplicate { key, first, second } => {
            let name = |index: u32| {
                config
                    .inputs
                    .get(index as usize)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| format!("input #{index}"))
            };
            ToolError::Usage(format!(
                "{}:{}: duplicate key \"{}\" (hex {}), first seen at {}:{} (--fail-on-duplicate)",
                name(second.file),
                second.line,
                crate::escape::escape(&key),
                hex::encode(&key),
                name(first.file),
                first.line
            ))
        }
        SortError::Io { path, source } => ToolError::io(path, source),
        SortError::Corrupt { path, .. } => {
            let message = error_text.unwrap_or_default();
            ToolError::io(path, std::io::Error::other(message))
        }
    }
}
