//! The bodies of the file commands (`build`, `verify`, `ingest`, `inspect`, `dump`); `db` and
//! `demo` have their own files.

pub mod db;
pub mod demo;

use crate::cli::{BuildArgs, CompressionArg, DumpArgs, IngestArgs, InspectArgs, VerifyArgs};
use crate::error::{ToolError, ToolResult};
use crate::external_sort::DuplicatePolicy;
use crate::input::InputOptions;
use crate::progress::Progress;
use crate::size::human_bytes;
use crate::sst_access::SstFile;
use crate::sst_build::{BuildConfig, BuildReport};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a line to stdout, mapping failures (e.g. a closed pipe) to an error.
pub(crate) fn out_line(out: &mut impl Write, line: &[u8]) -> ToolResult<()> {
    out.write_all(line)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| ToolError::io("<stdout>", e))
}

/// Flushes stdout.
pub(crate) fn out_flush(out: &mut impl Write) -> ToolResult<()> {
    out.flush().map_err(|e| ToolError::io("<stdout>", e))
}

/// The `build` configuration from its arguments.
pub fn build_config(args: &BuildArgs) -> ToolResult<BuildConfig> {
    let memory_budget_bytes = usize::try_from(args.memory_budget)
        .map_err(|_| ToolError::Usage("--memory-budget is larger than memory".into()))?;
    let block_size_bytes = usize::try_from(args.block_size)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| ToolError::Usage("--block-size must be positive".into()))?;
    if let Some(n) = args.partitions {
        if !(1..=crate::sst_build::MAX_PARTITIONS).contains(&n) {
            return Err(ToolError::Usage(format!(
                "--partitions must be 1 to {}",
                crate::sst_build::MAX_PARTITIONS
            )));
        }
    }
    if args.target_file_size == 0 {
        return Err(ToolError::Usage(
            "--target-file-size must be positive".into(),
        ));
    }
    let compression = match args.compression {
        CompressionArg::None => siltdb::Compression::None,
        CompressionArg::Lz4 => siltdb::Compression::Lz4,
        CompressionArg::Zstd => siltdb::Compression::Zstd {
            level: args.zstd_level,
        },
    };
    Ok(BuildConfig {
        inputs: args.inputs.clone(),
        input: InputOptions {
            format: args.format,
            key_encoding: args.key_encoding,
            value_encoding: args.value_encoding,
            header: args.header,
        },
        out: args.out.clone(),
        target_file_size_bytes: args.target_file_size,
        compression,
        block_size_bytes,
        memory_budget_bytes,
        duplicates: if args.fail_on_duplicate {
            DuplicatePolicy::Fail
        } else {
            DuplicatePolicy::LastWins
        },
        temp_dir: args.temp_dir.clone(),
        partitions: args.partitions,
    })
}

/// `sst-ingest build`.
pub fn build(args: BuildArgs, progress: &Progress) -> ToolResult<()> {
    let config = build_config(&args)?;
    let report = crate::sst_build::build(&config, progress)?;
    let mut out = std::io::stdout().lock();
    out_line(&mut out, build_summary(&report, &config.out).as_bytes())?;
    out_flush(&mut out)
}

/// One-line summary of a build.
pub fn build_summary(report: &BuildReport, out: &Path) -> String {
    let totals = report.metadata.totals;
    let partitions = match report.partitions.len() {
        0 => String::new(),
        n => format!(" in {n} partitions"),
    };
    format!(
        "built {} file(s){partitions}, {} entries, {} in {:.2}s -> {} ({} rows read, {} duplicates dropped, {} sort runs spilled)",
        totals.files,
        totals.entries,
        human_bytes(totals.bytes),
        report.elapsed.as_secs_f64(),
        out.display(),
        report.records_read,
        report.duplicates_dropped,
        report.sort.runs_spilled
    )
}

/// `sst-ingest verify`.
pub fn verify(args: VerifyArgs, progress: &Progress) -> ToolResult<()> {
    let report = crate::verify::verify_dir(&args.dir, !args.shallow, progress)?;
    if !report.problems.is_empty() {
        return Err(ToolError::Verification(report.problems));
    }
    let totals = report.metadata.totals;
    let mut out = std::io::stdout().lock();
    let line = format!(
        "OK: {} file(s), {} entries, {} verified in {}",
        totals.files,
        totals.entries,
        human_bytes(totals.bytes),
        args.dir.display()
    );
    out_line(&mut out, line.as_bytes())?;
    out_flush(&mut out)
}

/// `sst-ingest ingest`.
pub fn ingest(args: IngestArgs, progress: &Progress) -> ToolResult<()> {
    if args.paths.len() != 1 || !args.paths[0].is_dir() {
        return ingest_files(&args);
    }
    let dir = &args.paths[0];
    let report = crate::verify::verify_dir(dir, true, progress)?;
    if !report.problems.is_empty() {
        return Err(ToolError::Verification(report.problems));
    }
    let paths: Vec<PathBuf> = report
        .metadata
        .files
        .iter()
        .map(|f| dir.join(&f.name))
        .collect();
    let mut out = std::io::stdout().lock();
    if paths.is_empty() {
        out_line(&mut out, b"nothing to ingest: the metadata lists no files")?;
        return out_flush(&mut out);
    }
    let db = db::open(&args.db, true)?;
    let options = siltdb::IngestOptions {
        move_files: args.move_files,
        ..Default::default()
    };
    let info = db
        .ingest(&paths, &options)
        .map_err(|e| ToolError::engine(format!("ingesting {}", dir.display()), e))?;
    db.close()
        .map_err(|e| ToolError::engine("closing the database", e))?;
    if args.move_files {
        remove_bulk_load_dir(dir, &paths)?;
    }
    out_line(&mut out, ingest_summary(&info, &args.db).as_bytes())?;
    out_flush(&mut out)
}

/// `sst-ingest ingest --db DIR FILE.sst...`: loose SST files of either format, in one atomic
/// ingestion.
fn ingest_files(args: &IngestArgs) -> ToolResult<()> {
    for p in &args.paths {
        if !p.is_file() {
            return Err(ToolError::NotFound(format!(
                "{} is not a file (give one bulk-load directory or SST files)",
                p.display()
            )));
        }
    }
    let db = db::open(&args.db, true)?;
    let options = siltdb::IngestOptions {
        move_files: args.move_files,
        ..Default::default()
    };
    let info = db
        .ingest(&args.paths, &options)
        .map_err(|e| ToolError::engine("ingesting the SST files", e))?;
    db.close()
        .map_err(|e| ToolError::engine("closing the database", e))?;
    let mut out = std::io::stdout().lock();
    out_line(&mut out, ingest_summary(&info, &args.db).as_bytes())?;
    out_flush(&mut out)
}

/// The one-line report of an ingestion into `db`.
fn ingest_summary(info: &siltdb::IngestInfo, db: &Path) -> String {
    format!(
        "ingested {} file(s), {} entries, {} into {} (seqno {}, levels {:?})",
        info.files,
        info.entries,
        human_bytes(info.bytes),
        db.display(),
        info.seqno,
        info.levels
    )
}

/// Opens `path` as a RocksDB table if it ends with a RocksDB magic number.
fn open_rocksdb(path: &Path) -> ToolResult<Option<siltdb::RocksTable>> {
    use siltdb::fs::FileSystem;
    let file = siltdb::fs::StdFs
        .open_read(path)
        .map_err(|e| ToolError::io(path, e))?;
    if !siltdb::is_rocksdb_table(file.as_ref()) {
        return Ok(None);
    }
    siltdb::RocksTable::open(file, path.to_path_buf())
        .map(Some)
        .map_err(|e| ToolError::engine(format!("reading {}", path.display()), e))
}

fn inspect_rocksdb(path: &Path, t: &siltdb::RocksTable) -> ToolResult<()> {
    let p = t.properties();
    let blocks = t
        .data_blocks()
        .map_err(|e| ToolError::engine(format!("reading {}", path.display()), e))?;
    let index = match p.index_type() {
        2 => "two-level (partitioned)",
        _ => "binary search",
    };
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let lines = [
        format!("file:                {}", path.display()),
        format!("format:              {}", t.format_name()),
        format!("checksum:            {}", t.checksum_name()),
        format!(
            "compression:         {}",
            p.compression().unwrap_or_else(|| "-".into())
        ),
        format!("entries:             {}", opt(p.num_entries())),
        format!("range deletions:     {}", opt(p.num_range_deletions())),
        format!("index:               {index}"),
        format!("data blocks:         {}", blocks.len()),
        format!(
            "comparator:          {}",
            p.comparator().unwrap_or_else(|| "-".into())
        ),
        format!(
            "external file:       {}",
            p.external_sst_file_version()
                .map_or_else(|| "no".to_string(), |v| format!("version {v}"))
        ),
        format!("global seqno:        {}", opt(p.global_seqno())),
    ];
    let mut out = std::io::stdout().lock();
    for line in lines {
        out_line(&mut out, line.as_bytes())?;
    }
    out_flush(&mut out)
}

fn dump_rocksdb(args: &DumpArgs, t: &siltdb::RocksTable) -> ToolResult<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut printed = 0u64;
    let mut io_err = None;
    let ts = siltdb::rocksdb_convert::collapsed(t, |k, v| {
        if args.limit.is_some_and(|n| printed >= n) || io_err.is_some() {
            return Ok(());
        }
        let mut line = args.output.render(k);
        if let Some(v) = v {
            line.push(b'\t');
            line.extend_from_slice(&args.output.render(v));
        }
        printed += 1;
        if let Err(e) = out_line(&mut out, &line) {
            io_err = Some(e);
        }
        Ok(())
    })
    .map_err(|e| ToolError::engine(format!("reading {}", args.file.display()), e))?;
    if let Some(e) = io_err {
        return Err(e);
    }
    for r in ts {
        if args.limit.is_some_and(|n| printed >= n) {
            break;
        }
        let line = format!(
            "# range deletion [{}, {})",
            String::from_utf8_lossy(&args.output.render(&r.start)),
            String::from_utf8_lossy(&args.output.render(&r.end))
        );
        printed += 1;
        out_line(&mut out, line.as_bytes())?;
    }
    out_flush(&mut out)
}

/// `--move`: the engine moved the files into the database; remove what is left (any file it
/// did not remove, the metadata) and the directory if nothing else is in it.
fn remove_bulk_load_dir(dir: &Path, paths: &[PathBuf]) -> ToolResult<()> {
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ToolError::io(path, e)),
        }
    }
    let metadata = dir.join(crate::metadata::METADATA_FILE_NAME);
    std::fs::remove_file(&metadata).map_err(|e| ToolError::io(&metadata, e))?;
    // Only an empty directory is removed: anything else in it is not ours.
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

/// `sst-ingest inspect`.
pub fn inspect(args: InspectArgs) -> ToolResult<()> {
    if let Some(t) = open_rocksdb(&args.file)? {
        return inspect_rocksdb(&args.file, &t);
    }
    let sst = SstFile::open(&args.file)?;
    let (_, crc) = crate::metadata::file_size_and_crc32c(&args.file)
        .map_err(|e| ToolError::io(&args.file, e))?;
    let p = sst.properties();
    let (smallest, largest) = sst.key_range().unwrap_or_default();
    let average_block = p.data_size.checked_div(p.num_data_blocks).unwrap_or(0);
    let lines = [
        format!("file:                {}", args.file.display()),
        format!(
            "size:                {} ({} bytes)",
            human_bytes(sst.file_size()),
            sst.file_size()
        ),
        format!("crc32c:              {crc:#010x}"),
        format!("format version:      {}", p.format_version),
        format!("creator:             {}", p.creator),
        format!("created (unix s):    {}", p.creation_time_secs),
        format!("compression:         {}", p.compression),
        format!("entries:             {}", p.num_entries),
        format!("range tombstones:    {}", p.num_range_tombstones),
        format!("smallest key:        {}", crate::escape::escape(&smallest)),
        format!("largest key:         {}", crate::escape::escape(&largest)),
        format!(
            "seqno range:         {}..={}",
            p.smallest_seqno, p.largest_seqno
        ),
        format!("data blocks:         {}", p.num_data_blocks),
        format!(
            "data size:           {} ({} bytes)",
            human_bytes(p.data_size),
            p.data_size
        ),
        format!("average block size:  {average_block} bytes"),
        format!("index size:          {} bytes", p.index_size),
        format!("filter size:         {} bytes", p.filter_size),
    ];
    let mut out = std::io::stdout().lock();
    for line in lines {
        out_line(&mut out, line.as_bytes())?;
    }
    out_flush(&mut out)
}

/// `sst-ingest dump`.
pub fn dump(args: DumpArgs) -> ToolResult<()> {
    if let Some(t) = open_rocksdb(&args.file)? {
        return dump_rocksdb(&args, &t);
    }
    let sst = SstFile::open(&args.file)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    sst.for_each(args.limit, |entry| {
        let mut line = args.output.render(&entry.key);
        if entry.kind == siltdb::ValueKind::Put {
            line.push(b'\t');
            line.extend_from_slice(&args.output.render(&entry.value));
        }
        out_line(&mut out, &line)
    })?;
    out_flush(&mut out)
}
