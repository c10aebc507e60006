//! `Db::property` and `Db::stats`: what the engine reports about itself.
//!
//! Property names:
//! - `siltdb.stats` — multi-line human-readable summary: per-level files and bytes, write
//!   amplification, flush/compaction and stall counters.
//! - `siltdb.num-files-at-level<N>` — file count of level N.
//! - `siltdb.estimate-live-data-size` — bytes of the bottom-most data (an estimate of live data).
//! - `siltdb.total-sst-size` — bytes of every live SST file.
//! - `siltdb.background-error` — the background error, or empty.
//! - `siltdb.num-immutable-mem-table`, `siltdb.cur-size-active-mem-table`,
//!   `siltdb.last-sequence`, `siltdb.durable-tag`, `siltdb.stall-cause`.

use super::Db;
use crate::manifest::NUM_LEVELS;
use crate::stall::StallStats;
use crate::{Error, MutableOptions, Options, Result};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A snapshot of the engine's counters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Files per level.
    pub files_per_level: [usize; NUM_LEVELS],
    /// Bytes per level.
    pub bytes_per_level: [u64; NUM_LEVELS],
    /// Memtable flushes completed.
    pub flushes: u64,
    /// Bytes written by flushes.
    pub flush_bytes: u64,
    /// Compactions completed (trivial moves included).
    pub compactions: u64,
    /// Compactions that only moved a file down a level.
    pub trivial_moves: u64,
    /// Bytes read by compactions.
    pub compaction_read_bytes: u64,
    /// Bytes written by compactions.
    pub compaction_write_bytes: u64,
    /// User bytes written since open (keys + values of every write, as applied).
    pub user_bytes: u64,
    /// Write-stall counters.
    pub stall: StallStats,
    /// Immutable memtables waiting for flush.
    pub immutable_memtables: usize,
    /// Bytes compaction must rewrite to bring every level within its target (the estimate
    /// the pending-bytes stall triggers compare).
    pub pending_compaction_bytes: u64,
}

impl Stats {
    /// (flush + compaction bytes written) / user bytes written.
    pub fn write_amplification(&self) -> f64 {
        if self.user_bytes == 0 {
            return 0.0;
        }
        (self.flush_bytes + self.compaction_write_bytes) as f64 / self.user_bytes as f64
    }

    /// Total bytes of live SST files.
    pub fn total_sst_bytes(&self) -> u64 {
        self.bytes_per_level.iter().sum()
    }
}

impl Db {
    /// Current counters.
    pub fn stats(&self) -> Stats {
        let inner = &self.inner;
        let v = inner.versions.current();
        let mut s = Stats {
            pending_compaction_bytes: crate::compaction::pending_bytes(&v, &inner.opts()),
            ..Stats::default()
        };
        for l in 0..NUM_LEVELS {
            s.files_per_level[l] = v.levels[l].len();
            s.bytes_per_level[l] = v.level_bytes(l);
        }
        let c = &inner.stats;
        s.flushes = c.flushes.load(Ordering::Relaxed);
        s.flush_bytes = c.flush_bytes.load(Ordering::Relaxed);
        s.compactions = c.compactions.load(Ordering::Relaxed);
        s.trivial_moves = c.trivial_moves.load(Ordering::Relaxed);
        s.compaction_read_bytes = c.compaction_read_bytes.load(Ordering::Relaxed);
        s.compaction_write_bytes = c.compaction_write_bytes.load(Ordering::Relaxed);
        s.user_bytes = c.user_bytes.load(Ordering::Relaxed);
        let st = inner.state.lock();
        s.stall = st.stall.clone();
        s.stall.current_cause = inner.stall_cause_now(&st);
        s.immutable_memtables = st.imms.len();
        s
    }

    /// The options in force now: those given at open with every [`Db::set_options`] change.
    pub fn options(&self) -> Options {
        Options::clone(&self.inner.opts())
    }

    /// Changes options while the database is open (RocksDB's `SetOptions`). The whole change
    /// is validated as `Db::open` validates options and applied at once, or refused with
    /// [`Error::InvalidArgument`] and nothing changed. Stalled writers and background work
    /// re-evaluate at once: raising a stop trigger releases a stall without waiting.
    pub fn set_options(&self, change: &MutableOptions) -> Result<()> {
        let inner = &self.inner;
        let shared = inner.resources.is_some();
        if shared && change.background_write_rate_bytes.is_some() {
            return Err(Error::InvalidArgument(
                "background_write_rate_bytes is set on the SharedResources this database uses"
                    .into(),
            ));
        }
        if change.block_cache_size_bytes.is_some() {
            if shared {
                return Err(Error::InvalidArgument(
                    "block_cache_size_bytes: this database uses a shared block cache \
                     (SharedResources::set_block_cache_capacity)"
                        .into(),
                ));
            }
            if inner.tables.block_cache.is_none() || change.block_cache_size_bytes == Some(0) {
                return Err(Error::InvalidArgument(
                    "block_cache_size_bytes: a block cache can be resized, not added or removed \
                     while the database is open"
                        .into(),
                ));
            }
        }
        {
            let mut opts = inner.options.write();
            let next = change.apply_to(&opts);
            super::open::validate(&next)?;
            if let Some(b) = change.background_write_rate_bytes {
                inner.rate_limiter.set_rate(b);
            }
            if let (Some(b), Some(c)) = (change.block_cache_size_bytes, &inner.tables.block_cache) {
                c.set_capacity_bytes(b as u64);
            }
            *opts = Arc::new(next);
        }
        // Take the DB mutex once so no waiter misses the change between its check and its wait.
        drop(inner.state.lock());
        inner.shape_cv.notify_all();
        inner.bg_cv.notify_all();
        inner.queue_cv.notify_all();
        Ok(())
    }

    /// A named property (see the module docs for names); `None` for unknown names.
    pub fn property(&self, name: &str) -> Option<String> {
        let inner = &self.inner;
        if let Some(n) = name.strip_prefix("siltdb.num-files-at-level") {
            let l: usize = n.parse().ok()?;
            let v = inner.versions.current();
            return v.levels.get(l).map(|f| f.len().to_string());
        }
        match name {
            "siltdb.stats" => Some(self.stats_text()),
            "siltdb.total-sst-size" => Some(self.stats().total_sst_bytes().to_string()),
            "siltdb.estimate-live-data-size" => {
                let v = inner.versions.current();
                let bottom = (0..NUM_LEVELS).rev().find(|l| !v.levels[*l].is_empty());
                Some(bottom.map_or(0, |l| v.level_bytes(l)).to_string())
            }
            "siltdb.background-error" => Some(
                inner
                    .state
                    .lock()
                    .bg_error
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            ),
            "siltdb.num-immutable-mem-table" => Some(inner.state.lock().imms.len().to_string()),
            "siltdb.cur-size-active-mem-table" => {
                Some(inner.state.lock().mem.size_bytes().to_string())
            }
            "siltdb.last-sequence" => Some(self.latest_seqno().to_string()),
            "siltdb.durable-tag" => Some(
                self.durable_tag()
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
            ),
            "siltdb.stall-cause" => Some(
                inner
                    .stall_cause_now(&inner.state.lock())
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => None,
        }
    }

    fn stats_text(&self) -> String {
        let s = self.stats();
        let mut out = String::new();
        let _ = writeln!(out, "level  files        bytes");
        for l in 0..NUM_LEVELS {
            let _ = writeln!(
                out,
                "L{l}   {:>6} {:>12}",
                s.files_per_level[l], s.bytes_per_level[l]
            );
        }
        let _ = writeln!(out, "total sst bytes: {}", s.total_sst_bytes());
        let _ = writeln!(out, "user bytes written: {}", s.user_bytes);
        let _ = writeln!(out, "write amplification: {:.2}", s.write_amplification());
        let _ = writeln!(out, "flushes: {} ({} bytes)", s.flushes, s.flush_bytes);
        let _ = writeln!(
            out,
            "compactions: {} (trivial moves {}), read {} bytes, wrote {} bytes",
            s.compactions, s.trivial_moves, s.compaction_read_bytes, s.compaction_write_bytes
        );
        let _ = writeln!(
            out,
            "stalls: stops {}, slowdowns {}, rejected {}, stalled {} us (memtable stop {} us, \
             l0 stop {} us, pending-bytes stop {} us, slowdown {} us, idle while stopped {} us), \
             current cause {}",
            s.stall.stops,
            s.stall.slowdowns,
            s.stall.rejected,
            s.stall.stalled_micros,
            s.stall.memtable_stop_micros,
            s.stall.l0_stop_micros,
            s.stall.pending_bytes_stop_micros,
            s.stall.slowdown_micros,
            s.stall.idle_stop_micros,
            s.stall.current_cause.unwrap_or("none")
        );
        let _ = writeln!(out, "immutable memtables: {}", s.immutable_memtables);
        out
    }

    /// Flushes the active memtable to an SST and waits (bounded) until it is durable.
    pub fn flush(&self) -> Result<()> {
        self.inner.check_writable()?;
        self.inner.flush_and_wait()
    }
}
