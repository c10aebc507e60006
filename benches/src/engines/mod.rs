//! The engines `silt-bench` drives, behind one small trait so every workload runs the same code
//! against each of them. siltdb is always built; RocksDB and fjall come with the `peers` feature.
//!
//! Matched settings (the bar): 16 B keys, 100 B values, no compression, a 64 MiB block
//! cache, 64 MiB memtables, 10 bits/key bloom filters, WAL on without sync unless asked.

use crate::values::Values;
use std::path::Path;

#[cfg(feature = "peers")]
pub mod fjall_engine;
#[cfg(feature = "peers")]
pub mod rocksdb_engine;
pub mod siltdb_engine;

/// Data block compression of a run (`--compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchCompression {
    /// Uncompressed.
    None,
    /// LZ4 (siltdb, RocksDB and fjall).
    Lz4,
    /// zstd level 3 (siltdb and RocksDB; fjall has no zstd and stays uncompressed).
    Zstd,
}

impl std::str::FromStr for BenchCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(BenchCompression::None),
            "lz4" => Ok(BenchCompression::Lz4),
            "zstd" => Ok(BenchCompression::Zstd),
            other => Err(format!(
                "unknown compression {other:?}: expected none, lz4 or zstd"
            )),
        }
    }
}

/// Settings every engine is opened with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Block cache bytes.
    pub cache_bytes: usize,
    /// Data block compression.
    pub compression: BenchCompression,
    /// Bulk load: read every block of the file before ingesting (siltdb's default), instead
    /// of the footer, index, properties and first/last blocks (RocksDB's default, matched).
    pub ingest_verify_blocks: bool,
}

/// One key-value engine under test.
pub trait Engine: Send + Sync {
    /// Short name for tables.
    fn name(&self) -> &'static str;
    /// Writes `puts` as one atomic batch.
    fn write_batch(&self, puts: &[(&[u8], &[u8])], sync: bool);
    /// Point lookup; true when found.
    fn get(&self, key: &[u8]) -> bool;
    /// Deletes `key`.
    fn delete(&self, key: &[u8]);
    /// Seeks to the first key `>= key` and reads up to `n` entries; returns how many.
    fn seek_read(&self, key: &[u8], n: usize) -> usize;
    /// Scans everything forward (or backward); returns the entry count.
    fn scan(&self, reverse: bool) -> u64;
    /// Writes `n` sorted keys `key(0..n)` with values `values.get(i)` into an external file
    /// under `dir` and ingests it.
    fn bulk_load(&self, dir: &Path, n: u64, key: &dyn Fn(u64) -> [u8; 16], values: &Values);
    /// Flushes memtables and waits until background compaction is done.
    fn settle(&self);
    /// Bytes of table files on disk (after [`Engine::settle`]).
    fn table_bytes(&self) -> u64;
    /// Write amplification if the engine reports it.
    fn write_amp(&self) -> Option<f64>;
    /// The engine's own statistics text (`--stats`), if it has one.
    fn stats_text(&self) -> Option<String> {
        None
    }
    /// Total time writers spent stalled since open, in microseconds, if the engine reports it.
    fn stall_micros(&self) -> Option<u64> {
        None
    }
}

/// Opens engine `name` in the fresh directory `dir`.
pub fn open(name: &str, dir: &Path, s: &Settings) -> Result<Box<dyn Engine>, String> {
    match name {
        "siltdb" => Ok(Box::new(siltdb_engine::Silt::open(dir, s))),
        #[cfg(feature = "peers")]
        "rocksdb" => Ok(Box::new(rocksdb_engine::Rocks::open(dir, s))),
        #[cfg(feature = "peers")]
        "fjall" => Ok(Box::new(fjall_engine::Fjall::open(dir, s))),
        #[cfg(not(feature = "peers"))]
        "rocksdb" | "fjall" => Err(format!(
            "engine {name} needs the `peers` feature: cargo run --release -p siltdb-benches \
             --features peers --bin silt-bench -- --engines siltdb,{name}"
        )),
        other => Err(format!("unknown engine {other}")),
    }
}

/// Total bytes of the regular files under `dir` whose names end with `suffix` (all when empty).
pub fn dir_bytes(dir: &Path, suffix: &str) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&p, suffix),
                Ok(m) if p.to_string_lossy().ends_with(suffix) => m.len(),
                _ => 0,
            }
        })
        .sum()
}
