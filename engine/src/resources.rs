//! Resources that several databases in one process share: one block cache, one pool of
//! background threads, one background-write rate limiter and one write-buffer budget.
//!
//! A node that hosts hundreds of replicas opens hundreds of [`crate::Db`]s. Without sharing,
//! each reserves its own cache and runs its own threads, and nothing bounds the memtables
//! across them. With one [`SharedResources`] in every database's [`crate::Options::resources`]:
//!
//! - the block cache is one capacity for all of them (each table has its own cache id, so
//!   databases never see each other's blocks);
//! - background work runs on `background_jobs` pool threads plus one thread that only flushes,
//!   whatever the number of databases; a pool thread looks for a flush in every database
//!   before it starts any compaction (flushes relieve the stalls that hurt writers most);
//! - background writes (flush and compaction output) of every database draw on one token
//!   bucket;
//! - memtable bytes across every database are bounded by the write-buffer budget: when the
//!   mutable memtables near the budget, the largest one is frozen and flushed; writers stop
//!   only as a last resort, when memtables still waiting for flush hold twice the budget
//!   (bounded by `max_write_stall_ms` like every stall).
//!
//! Drop the last handle after closing the databases; the pool threads are joined then.

use crate::compaction::rate_limit::RateLimiter;
use crate::db::{DbInner, JobPool};
use crate::sst::BlockCache;
use crate::{Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How to size a [`SharedResources`].
#[derive(Debug, Clone)]
pub struct SharedResourcesOptions {
    /// Capacity of the one block cache, in bytes (0 = no block cache). Default 256 MiB.
    pub block_cache_size_bytes: usize,
    /// Pool threads that run compactions (and flushes when one waits); at least 1. One more
    /// thread only flushes. Default 4.
    pub background_jobs: usize,
    /// Bytes per second that all background writes together may use (0 = unlimited).
    /// Default 0.
    pub background_write_rate_bytes: u64,
    /// Budget for memtable bytes across every database (0 = unbounded). Default 1 GiB.
    pub write_buffer_size_bytes: usize,
}

impl Default for SharedResourcesOptions {
    fn default() -> Self {
        SharedResourcesOptions {
            block_cache_size_bytes: 256 << 20,
            background_jobs: 4,
            background_write_rate_bytes: 0,
            write_buffer_size_bytes: 1 << 30,
        }
    }
}

/// One block cache, background pool, rate limiter and write-buffer budget for many databases.
/// Pass the same `Arc` in [`crate::Options::resources`] of each database that should share
/// them.
pub struct SharedResources {
    pub(crate) block_cache: Option<Arc<BlockCache>>,
    pub(crate) rate_limiter: Arc<RateLimiter>,
    pub(crate) write_buffer: WriteBufferManager,
    pub(crate) pool: Arc<JobPool>,
}

impl std::fmt::Debug for SharedResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedResources")
            .field("block_cache_capacity", &self.block_cache_capacity())
            .field("write_buffer_budget", &self.write_buffer.budget)
            .field("threads", &self.pool.thread_count())
            .finish()
    }
}

impl SharedResources {
    /// Creates the resources and starts the pool threads.
    pub fn new(opts: SharedResourcesOptions) -> Result<Arc<SharedResources>> {
        let pool = JobPool::start(opts.background_jobs)
            .map_err(|e| Error::io("background pool threads", e))?;
        Ok(Arc::new(SharedResources {
            block_cache: (opts.block_cache_size_bytes > 0)
                .then(|| BlockCache::new(opts.block_cache_size_bytes)),
            rate_limiter: Arc::new(RateLimiter::new(opts.background_write_rate_bytes)),
            write_buffer: WriteBufferManager::new(opts.write_buffer_size_bytes),
            pool,
        }))
    }

    /// Capacity of the shared block cache in bytes (0 when there is none).
    pub fn block_cache_capacity(&self) -> usize {
        self.block_cache
            .as_ref()
            .map_or(0, |c| c.capacity_bytes() as usize)
    }

    /// Lookups of the shared block cache that found their block, and those that did not
    /// (since the resources were created; `(0, 0)` without a cache).
    pub fn block_cache_hits_and_misses(&self) -> (u64, u64) {
        self.block_cache
            .as_ref()
            .map_or((0, 0), |c| c.hits_and_misses())
    }

    /// Bytes held by the shared block cache now.
    pub fn block_cache_usage(&self) -> usize {
        self.block_cache
            .as_ref()
            .map_or(0, |c| c.usage_bytes() as usize)
    }

    /// Changes the block cache's capacity at run time (shrinking evicts at once). Has no
    /// effect when the resources were created without a cache.
    pub fn set_block_cache_capacity(&self, bytes: usize) {
        if let Some(c) = &self.block_cache {
            c.set_capacity_bytes(bytes as u64);
        }
    }

    /// Memtable bytes of every database using these resources (active and waiting for flush).
    pub fn write_buffer_usage(&self) -> usize {
        self.write_buffer.used.load(Ordering::Relaxed)
    }

    /// The write-buffer budget in bytes (0 = unbounded).
    pub fn write_buffer_budget(&self) -> usize {
        self.write_buffer.budget
    }

    /// Number of background threads (the pool plus its flush thread).
    pub fn background_threads(&self) -> usize {
        self.pool.thread_count()
    }

    /// Databases open on these resources.
    pub fn databases(&self) -> usize {
        self.pool.databases().len()
    }

    /// The database (of those on these resources) whose active memtable is largest.
    pub(crate) fn largest_memtable(&self) -> Option<Arc<DbInner>> {
        self.pool
            .databases()
            .into_iter()
            .max_by_key(|d| d.active_memtable_bytes())
    }
}

impl Drop for SharedResources {
    fn drop(&mut self) {
        self.pool.shutdown();
    }
}

/// Bounds memtable bytes across databases (RocksDB's `WriteBufferManager`).
///
/// Each memtable charges its growth (`MemTable::charge`); freezing moves its bytes from
/// mutable to immutable; a flushed or dropped memtable releases them.
pub(crate) struct WriteBufferManager {
    budget: usize,
    /// Bytes of every charged memtable.
    pub(crate) used: AtomicUsize,
    /// Bytes of the active (mutable) memtables.
    pub(crate) mutable: AtomicUsize,
}

impl WriteBufferManager {
    fn new(budget: usize) -> Self {
        WriteBufferManager {
            budget,
            used: AtomicUsize::new(0),
            mutable: AtomicUsize::new(0),
        }
    }

    /// Adds `bytes` to the mutable and total counts.
    pub(crate) fn charge(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
        self.mutable.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A memtable of `bytes` was frozen: no longer mutable, still held.
    pub(crate) fn freeze(&self, bytes: usize) {
        sub(&self.mutable, bytes);
    }

    /// A frozen memtable of `bytes` was flushed or dropped.
    pub(crate) fn release(&self, bytes: usize) {
        sub(&self.used, bytes);
    }

    /// A still-active memtable of `bytes` was dropped (database closed).
    pub(crate) fn release_mutable(&self, bytes: usize) {
        sub(&self.mutable, bytes);
        sub(&self.used, bytes);
    }

    /// True when a memtable should be frozen to stay within the budget: the mutable memtables
    /// hold more than 7/8 of it, or everything held exceeds it while the mutable ones hold
    /// at least half (RocksDB's rule: freezing then actually frees a lot).
    pub(crate) fn should_flush(&self) -> bool {
        if self.budget == 0 {
            return false;
        }
        let mutable = self.mutable.load(Ordering::Relaxed);
        let used = self.used.load(Ordering::Relaxed);
        mutable > self.budget / 8 * 7 || (used >= self.budget && mutable >= self.budget / 2)
    }

    /// True when writers must wait for flushes: memtables hold twice the budget.
    pub(crate) fn must_stall(&self) -> bool {
        self.budget != 0 && self.used.load(Ordering::Relaxed) >= self.budget.saturating_mul(2)
    }
}

/// Saturating atomic subtraction (a release never makes a count wrap).
fn sub(a: &AtomicUsize, bytes: usize) {
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(bytes))
    });
}
