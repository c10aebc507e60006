//! `sst-ingest demo`: the README's first command. Creates a database, writes rows through it,
//! generates an unsorted CSV (with quoted fields and duplicate keys), builds SST files from it
//! with the external sort, verifies and ingests them, checks reads, takes a checkpoint, reopens
//! the checkpoint as a database and checks it, and prints a short report.

use super::{db, out_flush, out_line};
use crate::cli::DemoArgs;
use crate::error::{ToolError, ToolResult};
use crate::external_sort::DuplicatePolicy;
use crate::input::{Format, InputOptions};
use crate::key_encoding::Encoding;
use crate::progress::Progress;
use crate::size::human_bytes;
use crate::sst_build::BuildConfig;
use siltdb::ReadOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Every `DUPLICATE_EVERY`-th CSV key is written a second time, later, with a new value.
const DUPLICATE_EVERY: u64 = 100;
/// Point reads checked after each load.
const SAMPLE_GETS: u64 = 1000;
/// Sort memory for the demo build: small on purpose, so the external sort spills runs.
const DEMO_SORT_BUDGET_BYTES: usize = 8 << 20;
/// SST target size for the demo build: small on purpose, so the output has several files.
const DEMO_TARGET_FILE_BYTES: u64 = 4 << 20;

struct Paths {
    db: PathBuf,
    csv: PathBuf,
    bulk: PathBuf,
    checkpoint: PathBuf,
}

/// Runs the demo.
pub fn run(args: DemoArgs, progress: &Progress) -> ToolResult<()> {
    if args.rows == 0 {
        return Err(ToolError::Usage("--rows must be positive".into()));
    }
    let (root, temporary) = demo_root(args.dir.as_deref())?;
    let paths = Paths {
        db: root.join("db"),
        csv: root.join("input.csv"),
        bulk: root.join("bulk"),
        checkpoint: root.join("checkpoint"),
    };
    let started = Instant::now();
    let mut report = vec![
        format!(
            "siltdb demo: sst-ingest {}",
            crate::allocator::version_line()
        ),
        format!(
            "  directory   {}{}",
            root.display(),
            if temporary.is_some() {
                " (temporary; --dir DIR keeps it)"
            } else {
                ""
            }
        ),
    ];
    run_steps(&paths, args.rows, progress, &mut report)?;
    report.push(format!(
        "  total       {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    report.push(format!(
        "  allocator   {}",
        crate::allocator::allocator_description()
    ));
    let mut out = std::io::stdout().lock();
    for line in &report {
        out_line(&mut out, line.as_bytes())?;
    }
    out_flush(&mut out)?;
    drop(temporary);
    Ok(())
}

/// The demo directory: `--dir` (created; must not already hold a demo) or a temporary one.
fn demo_root(dir: Option<&Path>) -> ToolResult<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| ToolError::io(dir, e))?;
            for part in ["db", "input.csv", "bulk", "checkpoint"] {
                if dir.join(part).exists() {
                    return Err(ToolError::Usage(format!(
                        "{} already holds {part}: choose a new --dir",
                        dir.display()
                    )));
                }
            }
            Ok((dir.to_path_buf(), None))
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("siltdb-demo-")
                .tempdir()
                .map_err(|e| ToolError::io(std::env::temp_dir(), e))?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

fn run_steps(
    paths: &Paths,
    rows: u64,
    progress: &Progress,
    report: &mut Vec<String>,
) -> ToolResult<()> {
    let engine = |what: &'static str| move |e| ToolError::engine(what, e);

    let step = Instant::now();
    let database = db::open(&paths.db, true)?;
    let bar = progress.items(rows, "put");
    for i in 0..rows {
        database
            .put(put_key(i), put_value(i))
            .map_err(engine("demo put"))?;
        if i.is_multiple_of(1024) {
            bar.set_position(i);
            bar.set_message(crate::progress::rate_message(i, step, "puts"));
        }
    }
    bar.finish_and_clear();
    database.flush().map_err(engine("demo flush"))?;
    report.push(format!(
        "  write       {rows} puts + flush in {:.2}s ({:.0} puts/s)",
        step.elapsed().as_secs_f64(),
        rows as f64 / step.elapsed().as_secs_f64().max(1e-9)
    ));

    let step = Instant::now();
    let csv_bytes = write_csv(&paths.csv, rows)?;
    report.push(format!(
        "  csv         {} rows ({} duplicate keys, quoted fields), {} in {:.2}s",
        rows + rows.div_ceil(DUPLICATE_EVERY),
        rows.div_ceil(DUPLICATE_EVERY),
        human_bytes(csv_bytes),
        step.elapsed().as_secs_f64()
    ));

    let config = BuildConfig {
        inputs: vec![paths.csv.clone()],
        input: InputOptions {
            format: Format::Csv,
            key_encoding: Encoding::Utf8,
            value_encoding: Encoding::Utf8,
            header: true,
        },
        out: paths.bulk.clone(),
        target_file_size_bytes: DEMO_TARGET_FILE_BYTES,
        compression: siltdb::Compression::None,
        block_size_bytes: 4096,
        memory_budget_bytes: DEMO_SORT_BUDGET_BYTES,
        duplicates: DuplicatePolicy::LastWins,
        temp_dir: None,
        partitions: None,
    };
    let built = crate::sst_build::build(&config, progress)?;
    report.push(format!(
        "  build       {}",
        super::build_summary(&built, &paths.bulk)
    ));

    let step = Instant::now();
    let verified = crate::verify::verify_dir(&paths.bulk, true, progress)?;
    if !verified.problems.is_empty() {
        return Err(ToolError::Verification(verified.problems));
    }
    let files: Vec<PathBuf> = verified
        .metadata
        .files
        .iter()
        .map(|f| paths.bulk.join(&f.name))
        .collect();
    database
        .ingest(&files, &siltdb::IngestOptions::default())
        .map_err(engine("demo ingest"))?;
    report.push(format!(
        "  ingest      verified and ingested {} file(s) in {:.2}s",
        files.len(),
        step.elapsed().as_secs_f64()
    ));

    let step = Instant::now();
    let entries = check_contents(&database, rows)?;
    report.push(format!(
        "  read        {entries} entries scanned, {} point gets checked in {:.2}s",
        2 * SAMPLE_GETS.min(rows),
        step.elapsed().as_secs_f64()
    ));

    let step = Instant::now();
    let made = database
        .checkpoint(&paths.checkpoint)
        .map_err(engine("demo checkpoint"))?;
    database.close().map_err(engine("demo close"))?;
    let checkpoint = db::open(&paths.checkpoint, false)?;
    let reopened = check_contents(&checkpoint, rows)?;
    checkpoint
        .close()
        .map_err(engine("demo close checkpoint"))?;
    report.push(format!(
        "  checkpoint  {} ({} SST files, seqno {}) at {}, reopened with {reopened} entries in {:.2}s",
        human_bytes(dir_size(&paths.checkpoint)),
        made.files,
        made.seqno,
        paths.checkpoint.display(),
        step.elapsed().as_secs_f64()
    ));
    report.push(format!(
        "  database    {} at {}",
        human_bytes(dir_size(&paths.db)),
        paths.db.display()
    ));
    Ok(())
}

fn put_key(i: u64) -> String {
    format!("put:{i:08}")
}

fn put_value(i: u64) -> String {
    format!("value-{i:08}-{}", "p".repeat(48))
}

fn csv_key(i: u64) -> String {
    format!("csv:{i:08}")
}

fn csv_value(i: u64) -> String {
    if i.is_multiple_of(DUPLICATE_EVERY) {
        format!("updated, \"{i}\"")
    } else {
        format!("value-{i:08}-{}", "c".repeat(48))
    }
}

/// A multiplier coprime with `rows`, so `i * m % rows` visits every row once, unsorted.
fn shuffle_multiplier(rows: u64) -> u64 {
    [7_919u64, 104_729, 1_299_709]
        .into_iter()
        .find(|p| !rows.is_multiple_of(*p))
        .unwrap_or(1)
}

/// Writes the demo CSV: a header, every key once in shuffled order, then every
/// `DUPLICATE_EVERY`-th key again with its final (quoted) value. Returns its size.
fn write_csv(path: &Path, rows: u64) -> ToolResult<u64> {
    let file = std::fs::File::create(path).map_err(|e| ToolError::io(path, e))?;
    let mut out = std::io::BufWriter::new(file);
    let io = |e| ToolError::io(path, e);
    writeln!(out, "key,value").map_err(io)?;
    let multiplier = shuffle_multiplier(rows);
    for r in 0..rows {
        let i = (r as u128 * multiplier as u128 % rows as u128) as u64;
        let first_value = format!("value-{i:08}-first");
        let value = if i.is_multiple_of(DUPLICATE_EVERY) {
            first_value
        } else {
            csv_value(i)
        };
        writeln!(out, "{},{}", csv_key(i), value).map_err(io)?;
    }
    for i in (0..rows).step_by(DUPLICATE_EVERY as usize) {
        let quoted = csv_value(i).replace('"', "\"\"");
        writeln!(out, "{},\"{quoted}\"", csv_key(i)).map_err(io)?;
    }
    out.flush().map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(file.metadata().map_err(io)?.len())
}

/// Scans everything and checks sampled keys from both loads; returns the entry count.
fn check_contents(database: &siltdb::Db, rows: u64) -> ToolResult<u64> {
    let mut entries = 0u64;
    for item in database.iter(&ReadOptions::default()) {
        item.map_err(|e| ToolError::engine("demo scan", e))?;
        entries += 1;
    }
    if entries != 2 * rows {
        return Err(ToolError::Verification(vec![format!(
            "expected {} entries, scanned {entries}",
            2 * rows
        )]));
    }
    let step = (rows / SAMPLE_GETS.min(rows)).max(1);
    for i in (0..rows).step_by(step as usize) {
        for (key, want) in [(put_key(i), put_value(i)), (csv_key(i), csv_value(i))] {
            let got = database
                .get(&key)
                .map_err(|e| ToolError::engine("demo get", e))?;
            if got.as_ref().map(|v| v.as_ref()) != Some(want.as_bytes()) {
                return Err(ToolError::Verification(vec![format!(
                    "key {key}: expected {want:?}, found {:?}",
                    got.map(|v| String::from_utf8_lossy(v.as_ref()).into_owned())
                )]));
            }
        }
    }
    Ok(entries)
}

/// Total size of the files under `dir` (0 where unreadable).
fn dir_size(dir: &Path) -> u64 {
    let Ok(items) = std::fs::read_dir(dir) else {
        return 0;
    };
    items
        .filter_map(Result::ok)
        .map(|item| match item.file_type() {
            Ok(t) if t.is_dir() => dir_size(&item.path()),
            Ok(_) => item.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}
