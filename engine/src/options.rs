//! Options for opening a database, writing and reading.

use crate::fs::{FileSystem, StdFs};
use crate::snapshot::Snapshot;
use std::sync::Arc;

/// Block compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Blocks stored as is.
    #[default]
    None,
    /// LZ4 (raw block format, via the pure-Rust `lz4_flex`): fast to compress and decompress,
    /// a lower ratio than zstd.
    Lz4,
    /// zstd at the given level (1..=22; 3 is a good default).
    Zstd {
        /// zstd compression level.
        level: i32,
    },
}

/// Options for [`crate::Db::open`]. Construct with `..Default::default()`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create the database if the directory holds none. Default `true`.
    pub create_if_missing: bool,
    /// Fail if a database already exists. Default `false`.
    pub error_if_exists: bool,
    /// Size at which the active memtable is frozen and flushed. Default 64 MiB.
    pub memtable_size_bytes: usize,
    /// Frozen memtables waiting for flush; writes stall past this. Default 2.
    pub max_immutable_memtables: usize,
    /// Target uncompressed data block size. Default 4 KiB.
    pub block_size_bytes: usize,
    /// Block cache budget in bytes; 0 disables the cache. Default 64 MiB.
    pub block_cache_size_bytes: usize,
    /// Bloom filter bits per key; 0 disables filters. Default 10.
    pub bloom_bits_per_key: u32,
    /// Block compression. Default [`Compression::None`]. Used at every level when
    /// [`Options::compression_per_level`] is empty.
    pub compression: Compression,
    /// Block compression by output level: entry `i` applies to files that flush (level 0) or
    /// compaction (output level `i`) writes. Empty (the default) = [`Options::compression`]
    /// everywhere; a level beyond the end of the vector uses its last entry (so
    /// `[None, None, Lz4]` is lz4 from L2 down). Ingested files keep the compression they were
    /// written with; a file that compaction would move down unchanged (a trivial move) is
    /// rewritten instead when the two levels' compressions differ. A common setting: none for L0–L1, lz4 in the middle, zstd at the bottom.
    pub compression_per_level: Vec<Compression>,
    /// L0 file count that triggers an L0 compaction. Default 4.
    pub l0_compaction_trigger: usize,
    /// L0 file count at which writes are slowed down. Default 20.
    pub l0_slowdown_trigger: usize,
    /// L0 file count at which writes stop until compaction catches up. Default 36.
    pub l0_stop_trigger: usize,
    /// Target size of SST files written by compaction. Default 64 MiB.
    pub target_file_size_bytes: u64,
    /// Filesystem every file operation goes through. Default: the real filesystem.
    pub fs: Arc<dyn FileSystem>,
    /// Background threads for compaction (each also flushes when a flush waits). One more
    /// thread is dedicated to flushes, so a flush never waits behind a long compaction and the
    /// memtable-limit stop lasts only as long as a flush. Default 2.
    pub max_background_jobs: usize,
    /// Open table handles kept in the table cache. Default 1000.
    pub max_open_files: usize,
    /// Target size of L1 (the base level) in bytes. Default 256 MiB.
    pub max_bytes_for_level_base: u64,
    /// Size ratio between adjacent levels. Default 10.
    pub max_bytes_for_level_multiplier: u64,
    /// Pending compaction bytes at which writes slow down. Default 64 GiB.
    pub soft_pending_compaction_bytes_limit: u64,
    /// Pending compaction bytes at which writes stop. Default 256 GiB.
    pub hard_pending_compaction_bytes_limit: u64,
    /// Longest a write waits in a stall before returning [`crate::Error::Stalled`]. Default 60 s.
    pub max_write_stall_ms: u64,
    /// Write rate (bytes/s) while slowed down. Default 16 MiB/s.
    pub delayed_write_rate_bytes: u64,
    /// Rate limit for background (flush + compaction) writes in bytes/s; 0 = unlimited. Default 0.
    pub background_write_rate_bytes: u64,
    /// Hook run on values during compaction (e.g. TTL). Default `None`.
    pub compaction_filter: Option<Arc<dyn crate::compaction::CompactionFilter>>,
    /// Treat a corrupt record in the middle of a WAL as an error on open (instead of stopping
    /// replay there). Default `true`.
    pub paranoid_checks: bool,
    /// Compact a file into the level below once reads have consulted it in vain about as often
    /// as its compaction would cost (LevelDB's seek compaction: `size / 16 KiB` wasted reads,
    /// at least 100). Size-triggered compactions always go first. Default `true`.
    pub read_triggered_compaction: bool,
    /// Resources shared with other databases of this process: block cache, background
    /// threads, background-write rate limiter and write-buffer budget. When set, they replace
    /// `block_cache_size_bytes`, `max_background_jobs` and `background_write_rate_bytes`, and
    /// the database starts no threads of its own. Default `None` (the database owns them).
    pub resources: Option<Arc<crate::SharedResources>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: true,
            error_if_exists: false,
            memtable_size_bytes: 64 << 20,
            max_immutable_memtables: 2,
            block_size_bytes: 4 << 10,
            block_cache_size_bytes: 64 << 20,
            bloom_bits_per_key: 10,
            compression: Compression::None,
            compression_per_level: Vec::new(),
            l0_compaction_trigger: 4,
            l0_slowdown_trigger: 20,
            l0_stop_trigger: 36,
            target_file_size_bytes: 64 << 20,
            fs: Arc::new(StdFs),
            max_background_jobs: 2,
            max_open_files: 1000,
            max_bytes_for_level_base: 256 << 20,
            max_bytes_for_level_multiplier: 10,
            soft_pending_compaction_bytes_limit: 64 << 30,
            hard_pending_compaction_bytes_limit: 256 << 30,
            max_write_stall_ms: 60_000,
            delayed_write_rate_bytes: 16 << 20,
            background_write_rate_bytes: 0,
            paranoid_checks: true,
            read_triggered_compaction: true,
            compaction_filter: None,
            resources: None,
        }
    }
}

impl Options {
    /// The compression of files written to `level`: [`Options::compression_per_level`]'s entry
    /// for it (its last entry past its end), or [`Options::compression`] when that is empty.
    pub fn compression_for_level(&self, level: usize) -> Compression {
        match self.compression_per_level.get(level) {
            Some(&c) => c,
            None => self
                .compression_per_level
                .last()
                .copied()
                .unwrap_or(self.compression),
        }
    }
}

/// The options [`crate::Db::set_options`] can change while the database is open. Each `None`
/// leaves that option as it is; each `Some` has the meaning of the [`Options`] field of the
/// same name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutableOptions {
    /// [`Options::memtable_size_bytes`] (applies from the next memtable check).
    pub memtable_size_bytes: Option<usize>,
    /// [`Options::l0_compaction_trigger`].
    pub l0_compaction_trigger: Option<usize>,
    /// [`Options::l0_slowdown_trigger`].
    pub l0_slowdown_trigger: Option<usize>,
    /// [`Options::l0_stop_trigger`].
    pub l0_stop_trigger: Option<usize>,
    /// [`Options::target_file_size_bytes`] (files written from now on).
    pub target_file_size_bytes: Option<u64>,
    /// [`Options::max_bytes_for_level_base`].
    pub max_bytes_for_level_base: Option<u64>,
    /// [`Options::soft_pending_compaction_bytes_limit`].
    pub soft_pending_compaction_bytes_limit: Option<u64>,
    /// [`Options::hard_pending_compaction_bytes_limit`].
    pub hard_pending_compaction_bytes_limit: Option<u64>,
    /// [`Options::max_write_stall_ms`] (writes that arrive from now on).
    pub max_write_stall_ms: Option<u64>,
    /// [`Options::delayed_write_rate_bytes`].
    pub delayed_write_rate_bytes: Option<u64>,
    /// [`Options::background_write_rate_bytes`]. Refused for a database on
    /// [`crate::SharedResources`] (whose one limiter is shared).
    pub background_write_rate_bytes: Option<u64>,
    /// [`Options::block_cache_size_bytes`]: resizes the database's own cache (shrinking evicts
    /// at once). Refused for a database on [`crate::SharedResources`]
    /// (use [`crate::SharedResources::set_block_cache_capacity`]) and for one opened without a
    /// cache.
    pub block_cache_size_bytes: Option<usize>,
}

impl MutableOptions {
    /// `base` with these changes applied.
    pub(crate) fn apply_to(&self, base: &Options) -> Options {
        let mut o = base.clone();
        let set = |dst: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        let set64 = |dst: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        set(&mut o.memtable_size_bytes, self.memtable_size_bytes);
        set(&mut o.l0_compaction_trigger, self.l0_compaction_trigger);
        set(&mut o.l0_slowdown_trigger, self.l0_slowdown_trigger);
        set(&mut o.l0_stop_trigger, self.l0_stop_trigger);
        set64(&mut o.target_file_size_bytes, self.target_file_size_bytes);
        set64(
            &mut o.max_bytes_for_level_base,
            self.max_bytes_for_level_base,
        );
        set64(
            &mut o.soft_pending_compaction_bytes_limit,
            self.soft_pending_compaction_bytes_limit,
        );
        set64(
            &mut o.hard_pending_compaction_bytes_limit,
            self.hard_pending_compaction_bytes_limit,
        );
        set64(&mut o.max_write_stall_ms, self.max_write_stall_ms);
        set64(
            &mut o.delayed_write_rate_bytes,
            self.delayed_write_rate_bytes,
        );
        set64(
            &mut o.background_write_rate_bytes,
            self.background_write_rate_bytes,
        );
        set(&mut o.block_cache_size_bytes, self.block_cache_size_bytes);
        o
    }
}

/// Options for one write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// fdatasync the WAL before acknowledging. Default `false`.
    pub sync: bool,
    /// Skip the WAL: the write is lost on a crash before the next flush. Default `false`.
    pub disable_wal: bool,
    /// Return [`crate::Error::Stalled`] at once instead of waiting in a write stall. Default `false`.
    pub no_slowdown: bool,
    // Write tags (e.g. a replication decree) ride on the batch: `WriteBatch::set_tag`.
}

/// Options for reads and iterators.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Read as of this snapshot; `None` = latest.
    pub snapshot: Option<Snapshot>,
    /// Inclusive lower bound for iterators.
    pub lower_bound: Option<Vec<u8>>,
    /// Exclusive upper bound for iterators.
    pub upper_bound: Option<Vec<u8>>,
    /// Verify block checksums on read. Default `true`.
    pub verify_checksums: bool,
    /// Put blocks read into the block cache. Default `true`.
    pub fill_cache: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            snapshot: None,
            lower_bound: None,
            upper_bound: None,
            verify_checksums: true,
            fill_cache: true,
        }
    }
}
