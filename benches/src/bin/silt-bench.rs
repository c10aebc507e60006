//! `silt-bench`: a db_bench-style load tool for siltdb.
//!
//! ```sh
//! cargo run --release -p siltdb-benches --bin silt-bench -- --num 1000000 \
//!     --benchmarks fillseq,fillrandom,overwrite,readrandom,readseq,readreverse,seekrandom,deleterandom,bulkload
//! ```
//! Reports ops/s, MB/s and latency percentiles (hdrhistogram, 1 ns .. 60 s), write and space
//! amplification, peak RSS; `--json` prints one JSON object per workload.
//!
//! With the `peers` feature, `--engines siltdb,rocksdb,fjall --runs 3` runs every engine in a
//! fresh directory, interleaved run by run, and ends with a table of medians and each siltdb
//! figure as a ratio to the best peer.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siltdb_benches::engines::{self, Engine, Settings};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(version, about = "db_bench-style load tool for siltdb")]
struct Args {
    /// Comma-separated workloads: fillseq, fillrandom, overwrite, readrandom, readseq,
    /// readreverse, seekrandom, deleterandom, readwhilewriting, fillsync, bulkload.
    #[arg(
        long,
        default_value = "fillseq,fillrandom,overwrite,readrandom,readseq,readreverse,seekrandom,deleterandom,bulkload"
    )]
    benchmarks: String,
    /// Number of keys.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Writer threads for fillsync / readwhilewriting.
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// Keys per write batch.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Sync every write.
    #[arg(long)]
    sync: bool,
    /// none | zstd
    #[arg(long, default_value = "none")]
    compression: String,
    /// Bulk load verification before ingesting: `metadata` (footer, index, properties, first
    /// and last blocks: RocksDB's default, so the comparison is matched) or `full` (every
    /// block: siltdb's default).
    #[arg(long, default_value = "metadata")]
    ingest_verify: String,
    /// Block cache bytes.
    #[arg(long, default_value_t = 64 << 20)]
    cache_size: usize,
    /// Database directory (default: a temp dir).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Engines, comma-separated: siltdb, rocksdb, fjall (the last two need `--features peers`).
    #[arg(long, default_value = "siltdb")]
    engines: String,
    /// Runs per engine, interleaved; the summary shows medians.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Keep the database in `--db` between invocations (db_bench's `--use_existing_db`): it is
    /// not deleted before or after the run, so read workloads can be profiled on their own.
    #[arg(long)]
    use_existing_db: bool,
}

/// Key `i` as 16 decimal digits (zero-padded, like db_bench), without allocating: the
/// harness must not cost more than the engine.
fn key(mut i: u64) -> [u8; 16] {
    let mut k = [b'0'; 16];
    for d in k.iter_mut().rev() {
        *d = b'0' + (i % 10) as u8;
        i /= 10;
    }
    k
}

struct Report {
    engine: &'static str,
    name: String,
    ops: u64,
    secs: f64,
    bytes: u64,
    hist: Histogram<u64>,
    extra: String,
}

impl Report {
    fn print(&self, json: bool) {
        let ops_s = self.ops as f64 / self.secs;
        let mb_s = self.bytes as f64 / self.secs / 1e6;
        let p = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        if json {
            println!(
                "{}",
                serde_json::json!({"engine": self.engine, "workload": self.name, "ops": self.ops, "seconds": self.secs,
                    "ops_per_sec": ops_s, "mb_per_sec": mb_s, "p50_us": p(0.5), "p99_us": p(0.99),
                    "p999_us": p(0.999), "extra": self.extra})
            );
        } else {
            println!(
                "| {:<8} | {:<16} | {:>12.0} | {:>8.1} | {:>8.2} | {:>8.2} | {:>8.2} | {} |",
                self.engine,
                self.name,
                ops_s,
                mb_s,
                p(0.5),
                p(0.99),
                p(0.999),
                self.extra
            );
        }
    }
}

/// A report for a workload timed as a whole (no per-operation latencies).
fn whole_run(name: impl Into<String>, ops: u64, start: Instant, value_size: usize) -> Report {
    let mut hist = hist();
    let _ = hist.record(1);
    Report {
        engine: "",
        name: name.into(),
        ops,
        secs: start.elapsed().as_secs_f64(),
        bytes: ops * (16 + value_size as u64),
        hist,
        extra: String::new(),
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn timed(name: &str, n: u64, bytes_per_op: u64, mut op: impl FnMut(u64)) -> Report {
    let mut h = hist();
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        op(i);
        let _ = h.record(t.elapsed().as_nanos().max(1) as u64);
    }
    Report {
        engine: "",
        name: name.into(),
        ops: n,
        secs: start.elapsed().as_secs_f64(),
        bytes: n * bytes_per_op,
        hist: h,
        extra: String::new(),
    }
}

fn fill(db: &dyn Engine, args: &Args, name: &str, random: bool) -> Report {
    let mut rng = StdRng::seed_from_u64(42);
    let value = vec![b'x'; args.value_size];
    let n = args.num;
    let bpo = 16 + args.value_size as u64;
    let batch = args.batch_size.max(1) as u64;
    let mut keys: Vec<[u8; 16]> = Vec::with_capacity(batch as usize);
    let mut r = timed(name, n / batch, bpo * batch, |i| {
        keys.clear();
        for j in 0..batch {
            let k = if random {
                rng.gen_range(0..n)
            } else {
                i * batch + j
            };
            keys.push(key(k));
        }
        let puts: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (&k[..], &value[..])).collect();
        db.write_batch(&puts, args.sync);
    });
    r.ops *= batch;
    r
}

/// Settles the engine and describes its shape; returns the table bytes too.
fn space(db: &dyn Engine, args: &Args) -> (String, u64) {
    db.settle();
    let sst = db.table_bytes();
    let raw = args.num * (16 + args.value_size as u64);
    let wa = db
        .write_amp()
        .map_or(String::new(), |w| format!(", write amp {w:.2}"));
    (
        format!(
            "tables {:.1} MB, space amp {:.2}{wa}",
            sst as f64 / 1e6,
            sst as f64 / raw as f64
        ),
        sst,
    )
}

/// Peak resident set size of this process (VmHWM), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs one workload on `d`.
fn run_workload(w: &str, d: &dyn Engine, args: &Args, dir: &std::path::Path) -> Report {
    let n = args.num;
    let mut rng = StdRng::seed_from_u64(7);
    match w {
        "fillseq" => fill(d, args, w, false),
        "fillrandom" | "overwrite" => fill(d, args, w, true),
        "readrandom" => {
            let mut found = 0u64;
            let mut r = timed(w, n, 16 + args.value_size as u64, |_| {
                if d.get(&key(rng.gen_range(0..n))) {
                    found += 1;
                }
            });
            r.extra = format!("{found} of {n} found");
            r
        }
        "readwhilewriting" => {
            // One reader timed while a background writer overwrites random keys.
            let stop = std::sync::atomic::AtomicBool::new(false);
            let vs = args.value_size;
            let mut found = 0u64;
            let mut r = std::thread::scope(|sc| {
                let stop = &stop;
                sc.spawn(move || {
                    let mut wr = StdRng::seed_from_u64(99);
                    let v = vec![b'w'; vs];
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let k = key(wr.gen_range(0..n));
                        d.write_batch(&[(&k[..], &v[..])], false);
                    }
                });
                let r = timed(w, n, 16 + vs as u64, |_| {
                    if d.get(&key(rng.gen_range(0..n))) {
                        found += 1;
                    }
                });
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                r
            });
            r.extra = format!("{found} of {n} found, one writer in the background");
            r
        }
        "readseq" | "readreverse" => {
            let start = Instant::now();
            let count = d.scan(w == "readreverse");
            whole_run(w, count, start, args.value_size)
        }
        "seekrandom" => timed(w, n / 10, 0, |_| {
            d.seek_read(&key(rng.gen_range(0..n)), 11);
        }),
        "deleterandom" => timed(w, n, 16, |_| {
            d.delete(&key(rng.gen_range(0..n)));
        }),
        "fillsync" => {
            let threads = args.threads.max(1) as u64;
            let per = (n / threads).max(1);
            let start = Instant::now();
            std::thread::scope(|sc| {
                for t in 0..threads {
                    let vs = args.value_size;
                    sc.spawn(move || {
                        let v = vec![b's'; vs];
                        for i in 0..per {
                            let k = key(t * per + i);
                            d.write_batch(&[(&k[..], &v[..])], true);
                        }
                    });
                }
            });
            whole_run(
                format!("fillsync x{threads}"),
                per * threads,
                start,
                args.value_size,
            )
        }
        "bulkload" => {
            let value = vec![b'b'; args.value_size];
            let start = Instant::now();
            d.bulk_load(dir, n, &key, &value);
            whole_run(w, n, start, args.value_size)
        }
        other => {
            eprintln!("unknown workload {other}");
            std::process::exit(2);
        }
    }
}

#[test]
fn keys_are_sixteen_zero_padded_digits() {
    for i in [0u64, 7, 42, 999_999, 1_000_000, 9_999_999_999_999_999] {
        assert_eq!(key(i).to_vec(), format!("{i:016}").into_bytes());
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = args.db.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let names: Vec<&str> = args.engines.split(',').map(str::trim).collect();
    let settings = Settings {
        cache_bytes: args.cache_size,
        zstd: args.compression == "zstd",
        ingest_verify_blocks: match args.ingest_verify.as_str() {
            "full" => true,
            "metadata" => false,
            other => {
                eprintln!("silt-bench: --ingest-verify {other:?}: expected full or metadata");
                std::process::exit(2);
            }
        },
    };
    for name in &names {
        // Fail before any work on an engine this build does not have.
        let probe = base.join(format!("probe-{name}"));
        match engines::open(name, &probe, &settings) {
            Ok(e) => drop(e),
            Err(e) => {
                eprintln!("silt-bench: {e}");
                std::process::exit(2);
            }
        }
        let _ = std::fs::remove_dir_all(&probe);
    }
    println!(
        "silt-bench {} — engines {}, {} run(s), {} keys, 16 B keys, {} B values, compression {}, \
         cache {} MiB",
        env!("CARGO_PKG_VERSION"),
        names.join(","),
        args.runs,
        args.num,
        args.value_size,
        args.compression,
        args.cache_size >> 20
    );
    if !args.json {
        println!(
            "| engine   | workload         |        ops/s |     MB/s |  p50 us  |  p99 us  | p99.9 us | notes |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---|");
    }
    // (workload, engine) -> ops/s per run; and p99 and table bytes.
    let mut ops: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut p99: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut disk: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for run in 0..args.runs.max(1) {
        for name in &names {
            let path = base.join(format!("{name}-db"));
            let scratch = base.join(format!("{name}-scratch"));
            if !args.use_existing_db {
                let _ = std::fs::remove_dir_all(&path);
            }
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).expect("scratch dir");
            let mut db: Option<Box<dyn Engine>> = None;
            for w in args.benchmarks.split(',').map(str::trim) {
                let fresh = matches!(w, "fillseq" | "fillrandom" | "fillsync" | "bulkload");
                if fresh {
                    drop(db.take());
                    let _ = std::fs::remove_dir_all(&path);
                }
                let d = db.get_or_insert_with(|| {
                    engines::open(name, &path, &settings).expect("engine open")
                });
                let mut report = run_workload(w, d.as_ref(), &args, &scratch);
                report.engine = d.name();
                if matches!(w, "fillseq" | "fillrandom" | "overwrite" | "bulkload") {
                    let (extra, bytes) = space(d.as_ref(), &args);
                    disk.entry((w.to_string(), name.to_string()))
                        .or_default()
                        .push(bytes as f64 / 1e6);
                    report.extra = if report.extra.is_empty() {
                        extra
                    } else {
                        format!("{}; {extra}", report.extra)
                    };
                }
                if run == 0 && name == &names[0] {
                    order.push(report.name.clone());
                }
                let key = (report.name.clone(), name.to_string());
                ops.entry(key.clone())
                    .or_default()
                    .push(report.ops as f64 / report.secs);
                p99.entry(key)
                    .or_default()
                    .push(report.hist.value_at_quantile(0.99) as f64 / 1000.0);
                report.print(args.json);
            }
            drop(db);
            if !args.use_existing_db {
                let _ = std::fs::remove_dir_all(&path);
            }
            let _ = std::fs::remove_dir_all(&scratch);
        }
    }
    if let Some(mb) = peak_rss_mb() {
        println!("peak RSS of this process: {mb:.0} MB");
    }
    if names.len() > 1 || args.runs > 1 {
        println!();
        println!(
            "Medians of {} interleaved run(s), ops/s (p99 µs):",
            args.runs.max(1)
        );
        let cols: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        println!("| workload | {} | siltdb / best peer |", cols.join(" | "));
        println!("|---|{}---:|", "---:|".repeat(cols.len()));
        for w in &order {
            let mut cells = Vec::new();
            let mut silt = None;
            let mut best_peer: Option<f64> = None;
            for n in &names {
                let k = (w.clone(), n.to_string());
                let Some(v) = ops.get_mut(&k) else {
                    cells.push("-".to_string());
                    continue;
                };
                let m = median(v);
                let lat = p99.get_mut(&k).map(|v| median(v)).unwrap_or(0.0);
                cells.push(if lat > 1.0 {
                    format!("{m:.0} ({lat:.1})")
                } else {
                    format!("{m:.0}")
                });
                if *n == "siltdb" {
                    silt = Some(m);
                } else {
                    best_peer = Some(best_peer.map_or(m, |b: f64| b.max(m)));
                }
            }
            let ratio = match (silt, best_peer) {
                (Some(s), Some(b)) if b > 0.0 => format!("{:.2}x", s / b),
                _ => "-".into(),
            };
            println!("| {w} | {} | {ratio} |", cells.join(" | "));
        }
        for (w, _) in disk
            .keys()
            .filter(|(_, n)| n == names[0])
            .cloned()
            .collect::<Vec<_>>()
        {
            let cells: Vec<String> = names
                .iter()
                .map(|n| {
                    disk.get_mut(&(w.clone(), n.to_string()))
                        .map_or("-".into(), |v| format!("{:.1} MB", median(v)))
                })
                .collect();
            println!("| tables after {w} | {} | |", cells.join(" | "));
        }
    }
}
