//! `silt-bench`: a db_bench-style load tool for siltdb.
//!
//! ```sh
//! cargo run --release -p siltdb-benches --bin silt-bench -- --num 1000000 \
//!     --benchmarks fillseq,fillrandom,overwrite,readrandom,readseq,readreverse,seekrandom,deleterandom,bulkload
//! ```
//! Reports ops/s, MB/s and latency percentiles (hdrhistogram, 1 ns .. 60 s) and, after every
//! workload, write amplification (bytes written by flush + compaction / user bytes), total write
//! stall time, peak RSS (VmHWM) and disk bytes; `--json` prints one JSON object per workload.
//!
//! Concurrency and skew: `--threads N` readers for `readrandom`, `seekrandom`,
//! `readwhilewriting` (plus one writer, at full speed or `--writer-rate` ops/s) and the YCSB
//! workloads `ycsba` (50% reads, 50% updates), `ycsbb` (95/5), `ycsbc` (reads only), `ycsbe`
//! (95% scans of 1..=100 entries, 5% inserts) and `ycsbf` (50% reads, 50% read-modify-writes),
//! whose keys are YCSB's scrambled zipfian (θ = 0.99) over the `--num` keys a fill loaded.
//! Nothing is kept per key, so `--num 50000000` needs no more memory than the engine.
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
use siltdb_benches::engines::{self, BenchCompression, Engine, Settings};
use siltdb_benches::values::Values;
use siltdb_benches::zipfian::ScrambledZipfian;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Largest `--value-size`.
const MAX_VALUE_SIZE_BYTES: usize = 64 << 10;
/// Longest YCSB E scan (entries); lengths are uniform in `1..=` this, as in YCSB.
const MAX_YCSB_SCAN_LEN: usize = 100;

fn parse_value_size(s: &str) -> Result<usize, String> {
    let v: usize = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if v > MAX_VALUE_SIZE_BYTES {
        return Err(format!(
            "{v} is above the {MAX_VALUE_SIZE_BYTES} byte limit"
        ));
    }
    Ok(v)
}

#[derive(Parser, Debug)]
#[command(version, about = "db_bench-style load tool for siltdb")]
struct Args {
    /// Comma-separated workloads: fillseq, fillrandom, overwrite, readrandom, readseq,
    /// readreverse, seekrandom, deleterandom, readwhilewriting, fillsync, bulkload, ycsba,
    /// ycsbb, ycsbc, ycsbe, ycsbf (also spelt ycsb-a, ycsb_a, ...). Read and YCSB workloads
    /// expect a fill first.
    #[arg(
        long,
        default_value = "fillseq,fillrandom,overwrite,readrandom,readseq,readreverse,seekrandom,deleterandom,bulkload"
    )]
    benchmarks: String,
    /// Number of keys.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Value size in bytes, at most 64 KiB.
    #[arg(long, default_value_t = 100, value_parser = parse_value_size)]
    value_size: usize,
    /// Threads: readers for readrandom, seekrandom, readwhilewriting and the YCSB workloads
    /// (default 1), writers for fillsync (default 8).
    #[arg(long)]
    threads: Option<usize>,
    /// readwhilewriting: the writer's rate in writes/s; 0 = as fast as it can.
    #[arg(long, default_value_t = 0)]
    writer_rate: u64,
    /// Operations of the read and YCSB workloads (default: --num; seekrandom: --num / 10).
    #[arg(long)]
    reads: Option<u64>,
    /// Operations of ycsbe, whose scans cost far more than a point read (default: as the other
    /// YCSB workloads).
    #[arg(long)]
    scans: Option<u64>,
    /// After each workload, print the engine's own statistics (siltdb: levels, files, bytes,
    /// flushes, compactions, stalls).
    #[arg(long)]
    stats: bool,
    /// Keys per write batch.
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    /// Sync every write.
    #[arg(long)]
    sync: bool,
    /// Data block compression: none, lz4 or zstd (level 3).
    #[arg(long, default_value = "none")]
    compression: BenchCompression,
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
    /// Engine figures taken after the workload (see [`Shape`]).
    shape: Shape,
}

/// What every run reports after each workload: the engine's write amplification and total
/// stall time since open, the process's peak RSS so far, and the bytes under the database
/// directory.
#[derive(Default)]
struct Shape {
    write_amp: Option<f64>,
    stall_ms: Option<f64>,
    peak_rss_mb: Option<f64>,
    disk_mb: f64,
}

impl Shape {
    fn of(db: &dyn Engine, dir: &std::path::Path) -> Shape {
        Shape {
            write_amp: db.write_amp(),
            stall_ms: db.stall_micros().map(|us| us as f64 / 1000.0),
            peak_rss_mb: peak_rss_mb(),
            disk_mb: engines::dir_bytes(dir, "") as f64 / 1e6,
        }
    }
}

/// `x` with `digits` decimals, or `-`.
fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.digits$}"))
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
                    "p999_us": p(0.999), "write_amp": self.shape.write_amp,
                    "stall_ms": self.shape.stall_ms, "peak_rss_mb": self.shape.peak_rss_mb,
                    "disk_mb": self.shape.disk_mb, "extra": self.extra})
            );
        } else {
            println!(
                "| {:<8} | {:<16} | {:>12.0} | {:>8.1} | {:>8.2} | {:>8.2} | {:>8.2} | {:>5} | {:>8} | {:>6} | {:>8.1} | {} |",
                self.engine,
                self.name,
                ops_s,
                mb_s,
                p(0.5),
                p(0.99),
                p(0.999),
                opt(self.shape.write_amp, 2),
                opt(self.shape.stall_ms, 0),
                opt(self.shape.peak_rss_mb, 0),
                self.shape.disk_mb,
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
        shape: Shape::default(),
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
        shape: Shape::default(),
    }
}

/// Runs `op` `n` times split over `threads` threads (each with its own seeded generator and
/// histogram, merged at the end); ops/s is over the wall time of the whole run. `op` returns
/// whether the operation found what it looked for.
fn parallel<F>(name: &str, threads: usize, n: u64, bytes_per_op: u64, op: F) -> (Report, u64)
where
    F: Fn(&mut StdRng) -> bool + Sync,
{
    let threads = threads.max(1) as u64;
    let per = (n / threads).max(1);
    let start = Instant::now();
    let results: Vec<(Histogram<u64>, u64)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                sc.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(7 + t * 1_000_003);
                    let mut h = hist();
                    let mut found = 0u64;
                    for _ in 0..per {
                        let t0 = Instant::now();
                        if op(&mut rng) {
                            found += 1;
                        }
                        let _ = h.record(t0.elapsed().as_nanos().max(1) as u64);
                    }
                    (h, found)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut h = hist();
    let mut found = 0;
    for (th, f) in &results {
        let _ = h.add(th);
        found += f;
    }
    let name = if threads > 1 {
        format!("{name} x{threads}")
    } else {
        name.to_string()
    };
    let report = Report {
        engine: "",
        name,
        ops: per * threads,
        secs,
        bytes: per * threads * bytes_per_op,
        hist: h,
        extra: String::new(),
        shape: Shape::default(),
    };
    (report, found)
}

/// A YCSB core workload's operation mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ycsb {
    /// 50% reads, 50% updates.
    A,
    /// 95% reads, 5% updates.
    B,
    /// Reads only.
    C,
    /// 95% short scans, 5% inserts of new keys.
    E,
    /// 50% reads, 50% read-modify-writes.
    F,
}

impl Ycsb {
    /// Parses `ycsba`, `ycsb-a`, `ycsb_a` (any case).
    fn parse(w: &str) -> Option<Ycsb> {
        let norm: String = w
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        match norm.as_str() {
            "ycsba" => Some(Ycsb::A),
            "ycsbb" => Some(Ycsb::B),
            "ycsbc" => Some(Ycsb::C),
            "ycsbe" => Some(Ycsb::E),
            "ycsbf" => Some(Ycsb::F),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ycsb::A => "ycsb-a",
            Ycsb::B => "ycsb-b",
            Ycsb::C => "ycsb-c",
            Ycsb::E => "ycsb-e",
            Ycsb::F => "ycsb-f",
        }
    }
}

/// Runs YCSB workload `y` over keys `0..--num` (scrambled zipfian); E inserts keys from `--num`
/// up.
fn ycsb(y: Ycsb, d: &dyn Engine, args: &Args) -> Report {
    let n = args.num.max(1);
    let ops = match y {
        Ycsb::E => args.scans.or(args.reads).unwrap_or(n),
        _ => args.reads.unwrap_or(n),
    };
    let zipf = ScrambledZipfian::new(n);
    let values = Values::new(args.value_size, 5);
    let found = AtomicU64::new(0);
    let next_insert = AtomicU64::new(n);
    let (reads, writes, scans) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let count = |c: &AtomicU64| {
        c.fetch_add(1, Ordering::Relaxed);
    };
    let (mut r, _) = parallel(
        y.name(),
        args.threads.unwrap_or(1),
        ops,
        16 + args.value_size as u64,
        |rng| {
            let k = key(zipf.next(rng));
            let p: u32 = rng.gen_range(0..100);
            match y {
                Ycsb::A | Ycsb::B | Ycsb::C => {
                    let read_pct = match y {
                        Ycsb::A => 50,
                        Ycsb::B => 95,
                        _ => 100,
                    };
                    if p < read_pct {
                        count(&reads);
                        if d.get(&k) {
                            count(&found);
                        }
                    } else {
                        count(&writes);
                        d.write_batch(&[(&k[..], values.get(u64::from(p)))], false);
                    }
                    true
                }
                Ycsb::E => {
                    if p < 95 {
                        count(&scans);
                        let len = rng.gen_range(1..=MAX_YCSB_SCAN_LEN);
                        if d.seek_read(&k, len) > 0 {
                            count(&found);
                        }
                    } else {
                        count(&writes);
                        let i = next_insert.fetch_add(1, Ordering::Relaxed);
                        d.write_batch(&[(&key(i)[..], values.get(i))], false);
                    }
                    true
                }
                Ycsb::F => {
                    count(&reads);
                    if d.get(&k) {
                        count(&found);
                    }
                    if p >= 50 {
                        count(&writes);
                        d.write_batch(&[(&k[..], values.get(u64::from(p)))], false);
                    }
                    true
                }
            }
        },
    );
    let (reads, writes, scans, found) = (
        reads.into_inner(),
        writes.into_inner(),
        scans.into_inner(),
        found.into_inner(),
    );
    r.extra = match y {
        Ycsb::E => format!("{scans} scans ({found} non-empty), {writes} inserts; zipfian 0.99"),
        Ycsb::F => {
            format!("{reads} reads ({found} found), {writes} read-modify-writes; zipfian 0.99")
        }
        _ => format!("{reads} reads ({found} found), {writes} updates; zipfian 0.99"),
    };
    r
}

/// `--threads` readers of random keys while one writer overwrites random keys, at full speed or
/// `--writer-rate` writes/s; the report is the readers', the writer's rate is in its notes.
fn read_while_writing(d: &dyn Engine, args: &Args) -> Report {
    let n = args.num.max(1);
    let vs = args.value_size;
    let stop = AtomicBool::new(false);
    let rate = args.writer_rate;
    let (mut r, found, writes, wsecs) = std::thread::scope(|sc| {
        let stop = &stop;
        let writer = sc.spawn(move || {
            let mut wr = StdRng::seed_from_u64(99);
            let values = Values::new(vs, 9);
            let start = Instant::now();
            let mut written = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = key(wr.gen_range(0..n));
                d.write_batch(&[(&k[..], values.get(written))], false);
                written += 1;
                if rate > 0 {
                    // Pace to `rate`: sleep until this write's slot (in short steps, so the
                    // writer notices the end of the run).
                    let due = Duration::from_secs_f64(written as f64 / rate as f64);
                    while !stop.load(Ordering::Relaxed) {
                        let Some(ahead) = due.checked_sub(start.elapsed()) else {
                            break;
                        };
                        std::thread::sleep(ahead.min(Duration::from_millis(10)));
                    }
                }
            }
            (written, start.elapsed().as_secs_f64())
        });
        let (r, found) = parallel(
            "readwhilewriting",
            args.threads.unwrap_or(1),
            args.reads.unwrap_or(n),
            16 + vs as u64,
            |rng| d.get(&key(rng.gen_range(0..n))),
        );
        stop.store(true, Ordering::Relaxed);
        let (w, secs) = writer.join().expect("writer thread");
        (r, found, w, secs)
    });
    let target = if rate > 0 {
        format!(" (rate {rate}/s)")
    } else {
        " (full speed)".to_string()
    };
    r.extra = format!(
        "{found} of {} found; writer {:.0} ops/s{target}",
        r.ops,
        writes as f64 / wsecs.max(1e-9)
    );
    r
}

fn fill(db: &dyn Engine, args: &Args, name: &str, random: bool) -> Report {
    let mut rng = StdRng::seed_from_u64(42);
    let values = Values::new(args.value_size, if random { 2 } else { 1 });
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
        let puts: Vec<(&[u8], &[u8])> = keys
            .iter()
            .enumerate()
            .map(|(j, k)| (&k[..], values.get(i * batch + j as u64)))
            .collect();
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

/// Resets this process's peak resident set size (VmHWM) to the current RSS, so each engine's
/// run reports its own peak rather than the largest of the engines before it (Linux:
/// `clear_refs` value 5; elsewhere nothing happens).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
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
            let (mut r, found) = parallel(
                w,
                args.threads.unwrap_or(1),
                args.reads.unwrap_or(n),
                16 + args.value_size as u64,
                |rng| d.get(&key(rng.gen_range(0..n.max(1)))),
            );
            r.extra = format!("{found} of {} found", r.ops);
            r
        }
        "readwhilewriting" => read_while_writing(d, args),
        "readseq" | "readreverse" => {
            let start = Instant::now();
            let count = d.scan(w == "readreverse");
            whole_run(w, count, start, args.value_size)
        }
        "seekrandom" => {
            parallel(
                w,
                args.threads.unwrap_or(1),
                args.reads.unwrap_or(n / 10),
                0,
                |rng| d.seek_read(&key(rng.gen_range(0..n.max(1))), 11) > 0,
            )
            .0
        }
        "deleterandom" => timed(w, n, 16, |_| {
            d.delete(&key(rng.gen_range(0..n)));
        }),
        "fillsync" => {
            let threads = args.threads.unwrap_or(8).max(1) as u64;
            let per = (n / threads).max(1);
            let start = Instant::now();
            std::thread::scope(|sc| {
                for t in 0..threads {
                    let vs = args.value_size;
                    sc.spawn(move || {
                        let values = Values::new(vs, 10 + t);
                        for i in 0..per {
                            let k = key(t * per + i);
                            d.write_batch(&[(&k[..], values.get(i))], true);
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
            let values = Values::new(args.value_size, 3);
            let start = Instant::now();
            d.bulk_load(dir, n, &key, &values);
            whole_run(w, n, start, args.value_size)
        }
        other => match Ycsb::parse(other) {
            Some(y) => ycsb(y, d, args),
            None => {
                eprintln!("silt-bench: unknown workload {other}");
                std::process::exit(2);
            }
        },
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
        compression: args.compression,
        ingest_verify_blocks: match args.ingest_verify.as_str() {
            "full" => true,
            "metadata" => false,
            other => {
                eprintln!("silt-bench: --ingest-verify {other:?}: expected full or metadata");
                std::process::exit(2);
            }
        },
    };
    const KNOWN: [&str; 11] = [
        "fillseq",
        "fillrandom",
        "overwrite",
        "readrandom",
        "readseq",
        "readreverse",
        "seekrandom",
        "deleterandom",
        "readwhilewriting",
        "fillsync",
        "bulkload",
    ];
    for w in args.benchmarks.split(',').map(str::trim) {
        if !KNOWN.contains(&w) && Ycsb::parse(w).is_none() {
            eprintln!(
                "silt-bench: unknown workload {w:?}: expected one of {}, ycsba, ycsbb, ycsbc, \
                 ycsbe, ycsbf",
                KNOWN.join(", ")
            );
            std::process::exit(2);
        }
    }
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
        match args.compression {
            BenchCompression::None => "none",
            BenchCompression::Lz4 => "lz4",
            BenchCompression::Zstd => "zstd",
        },
        args.cache_size >> 20
    );
    if !args.json {
        println!(
            "| engine   | workload         |        ops/s |     MB/s |  p50 us  |  p99 us  | p99.9 us | w-amp | stall ms | RSS MB |  disk MB | notes |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    }
    // (workload, engine) -> ops/s per run; and p99 and table bytes.
    let mut ops: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut p99: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut disk: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    // engine -> the largest peak RSS of its runs, MB.
    let mut peak: BTreeMap<String, f64> = BTreeMap::new();
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
            reset_peak_rss();
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
                // After the fills' settle, so their flush and compaction count.
                report.shape = Shape::of(d.as_ref(), &path);
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
                if args.stats {
                    if let Some(text) = d.stats_text() {
                        println!("{text}");
                    }
                }
            }
            drop(db);
            if let Some(mb) = peak_rss_mb() {
                let e = peak.entry(name.to_string()).or_insert(0.0);
                *e = e.max(mb);
            }
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
        let cells: Vec<String> = names
            .iter()
            .map(|n| peak.get(*n).map_or("-".into(), |mb| format!("{mb:.0} MB")))
            .collect();
        println!("| peak RSS | {} | |", cells.join(" | "));
    }
}
