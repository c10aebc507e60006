//! `silt-bench`: a db_bench-style load tool for siltdb.
//!
//! ```sh
//! cargo run --release -p siltdb-benches --bin silt-bench -- --num 1000000 \
//!     --benchmarks fillseq,fillrandom,overwrite,readrandom,readseq,readreverse,seekrandom,deleterandom,bulkload
//! ```
//! Reports ops/s, MB/s and latency percentiles (hdrhistogram, 1 ns .. 60 s), write and space
//! amplification; `--json` prints one JSON object per workload.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siltdb::{
    Compression, Db, IngestOptions, Options, ReadOptions, SstWriter, SstWriterOptions, WriteOptions,
};
use std::path::{Path, PathBuf};
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
    /// Block cache bytes.
    #[arg(long, default_value_t = 64 << 20)]
    cache_size: usize,
    /// Database directory (default: a temp dir).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [b'0'; 16];
    let s = format!("{i:016}");
    k.copy_from_slice(s.as_bytes());
    k
}

struct Report {
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
                serde_json::json!({"workload": self.name, "ops": self.ops, "seconds": self.secs,
                    "ops_per_sec": ops_s, "mb_per_sec": mb_s, "p50_us": p(0.5), "p99_us": p(0.99),
                    "p999_us": p(0.999), "extra": self.extra})
            );
        } else {
            println!(
                "| {:<16} | {:>12.0} | {:>8.1} | {:>8.2} | {:>8.2} | {:>8.2} | {} |",
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

fn open(path: &Path, args: &Args) -> Db {
    let compression = match args.compression.as_str() {
        "zstd" => Compression::Zstd { level: 3 },
        _ => Compression::None,
    };
    Db::open(
        path,
        Options {
            compression,
            block_cache_size_bytes: args.cache_size,
            ..Options::default()
        },
    )
    .expect("open")
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
        name: name.into(),
        ops: n,
        secs: start.elapsed().as_secs_f64(),
        bytes: n * bytes_per_op,
        hist: h,
        extra: String::new(),
    }
}

fn fill(db: &Db, args: &Args, name: &str, random: bool) -> Report {
    let mut rng = StdRng::seed_from_u64(42);
    let value = vec![b'x'; args.value_size];
    let wo = WriteOptions {
        sync: args.sync,
        ..Default::default()
    };
    let n = args.num;
    let bpo = 16 + args.value_size as u64;
    let batch = args.batch_size.max(1) as u64;
    let mut r = timed(name, n / batch, bpo * batch, |i| {
        let mut b = siltdb::WriteBatch::new();
        for j in 0..batch {
            let k = if random {
                rng.gen_range(0..n)
            } else {
                i * batch + j
            };
            b.put(key(k), &value);
        }
        db.write(b, &wo).expect("write");
    });
    r.ops *= batch;
    r
}

fn space(db: &Db, args: &Args) -> String {
    // Measure the settled shape: memtable flushed, compactions done.
    db.flush().expect("flush");
    db.wait_for_background_work(std::time::Duration::from_secs(600))
        .expect("background work settles");
    let sst: u64 = db
        .property("siltdb.total-sst-size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let raw = args.num * (16 + args.value_size as u64);
    format!(
        "sst {:.1} MB, space amp {:.2}, write amp {:.2}",
        sst as f64 / 1e6,
        sst as f64 / raw as f64,
        db.stats().write_amplification()
    )
}

fn main() {
    let args = Args::parse();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = args.db.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    println!(
        "siltdb {} — {} keys, 16 B keys, {} B values, compression {}, cache {} MiB",
        env!("CARGO_PKG_VERSION"),
        args.num,
        args.value_size,
        args.compression,
        args.cache_size >> 20
    );
    if !args.json {
        println!("| workload         |        ops/s |     MB/s |  p50 us  |  p99 us  | p99.9 us | notes |");
        println!("|---|---:|---:|---:|---:|---:|---|");
    }
    let path = base.join("bench-db");
    let mut db: Option<Db> = None;
    let n = args.num;
    for w in args.benchmarks.split(',') {
        let w = w.trim();
        let fresh = matches!(w, "fillseq" | "fillrandom" | "fillsync" | "bulkload");
        if fresh {
            if let Some(d) = db.take() {
                d.close().expect("close");
            }
            let _ = std::fs::remove_dir_all(&path);
            db = Some(open(&path, &args));
        }
        let d = db.get_or_insert_with(|| open(&path, &args));
        let mut rng = StdRng::seed_from_u64(7);
        let report = match w {
            "fillseq" => fill(d, &args, w, false),
            "fillrandom" | "overwrite" => fill(d, &args, w, true),
            "readrandom" => {
                let mut found = 0u64;
                let mut r = timed(w, n, 16 + args.value_size as u64, |_| {
                    if d.get(key(rng.gen_range(0..n))).expect("get").is_some() {
                        found += 1;
                    }
                });
                r.extra = format!("{found} of {n} found");
                r
            }
            "readwhilewriting" => {
                // One reader timed while a background writer overwrites random keys.
                let stop = std::sync::atomic::AtomicBool::new(false);
                let dref: &Db = d;
                let vs = args.value_size;
                let mut found = 0u64;
                let mut r = std::thread::scope(|sc| {
                    let stop = &stop;
                    sc.spawn(move || {
                        let mut wr = StdRng::seed_from_u64(99);
                        let v = vec![b'w'; vs];
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            dref.put(key(wr.gen_range(0..n)), &v).expect("put");
                        }
                    });
                    let r = timed(w, n, 16 + vs as u64, |_| {
                        if dref.get(key(rng.gen_range(0..n))).expect("get").is_some() {
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
                let mut count = 0u64;
                let it = d.iter(&ReadOptions::default());
                if w == "readseq" {
                    for item in it {
                        item.expect("iter");
                        count += 1;
                    }
                } else {
                    for item in it.rev() {
                        item.expect("iter");
                        count += 1;
                    }
                }
                whole_run(w, count, start, args.value_size)
            }
            "seekrandom" => timed(w, n / 10, 0, |_| {
                let ro = ReadOptions {
                    lower_bound: Some(key(rng.gen_range(0..n)).to_vec()),
                    ..Default::default()
                };
                for item in d.iter(&ro).take(11) {
                    item.expect("iter");
                }
            }),
            "deleterandom" => timed(w, n, 16, |_| {
                d.delete(key(rng.gen_range(0..n))).expect("delete");
            }),
            "fillsync" => {
                let per = (n / args.threads as u64).max(1);
                let start = Instant::now();
                let dref: &Db = d;
                std::thread::scope(|sc| {
                    for t in 0..args.threads as u64 {
                        let vs = args.value_size;
                        sc.spawn(move || {
                            let v = vec![b's'; vs];
                            let wo = WriteOptions {
                                sync: true,
                                ..Default::default()
                            };
                            for i in 0..per {
                                let mut b = siltdb::WriteBatch::new();
                                b.put(key(t * per + i), &v);
                                dref.write(b, &wo).expect("write");
                            }
                        });
                    }
                });
                let ops = per * args.threads as u64;
                whole_run(
                    format!("fillsync x{}", args.threads),
                    ops,
                    start,
                    args.value_size,
                )
            }
            "bulkload" => {
                let sst = base.join("bulk.sst");
                let value = vec![b'b'; args.value_size];
                let start = Instant::now();
                let mut wr = SstWriter::create(&sst, &SstWriterOptions::default()).expect("sst");
                for i in 0..n {
                    wr.put(key(i), &value).expect("put");
                }
                wr.finish().expect("finish");
                d.ingest(
                    &[&sst],
                    &IngestOptions {
                        move_files: true,
                        ..Default::default()
                    },
                )
                .expect("ingest");
                whole_run(w, n, start, args.value_size)
            }
            other => {
                eprintln!("unknown workload {other}");
                std::process::exit(2);
            }
        };
        let mut report = report;
        if matches!(w, "fillseq" | "fillrandom" | "overwrite" | "bulkload") {
            let extra = space(d, &args);
            report.extra = if report.extra.is_empty() {
                extra
            } else {
                format!("{}; {extra}", report.extra)
            };
        }
        report.print(args.json);
    }
    if let Some(d) = db {
        d.close().expect("close");
    }
}
