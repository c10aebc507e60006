//! The block cache: decoded data blocks shared by every open table, with a byte budget.
//!
//! Keys are `(cache id, block offset)`, where each opened [`super::Table`] takes a fresh cache id
//! from [`BlockCache::next_cache_id`], so a reopened or replaced file never sees stale blocks.
//! Values are `Arc<Block>`: an iterator keeps its block alive after eviction. `quick_cache`
//! shards internally and evicts with CLOCK-Pro by weight (uncompressed bytes plus overhead).

use super::block::Block;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes charged per cached block on top of its contents (map entry, `Arc` header, `Block`).
const ENTRY_OVERHEAD_BYTES: u64 = 96;
/// Typical block size, to size the cache's hash tables.
const TYPICAL_BLOCK_BYTES: usize = 4096;

#[derive(Clone, Debug)]
struct BlockWeighter;

impl quick_cache::Weighter<(u64, u64), Arc<Block>> for BlockWeighter {
    fn weight(&self, _key: &(u64, u64), block: &Arc<Block>) -> u64 {
        block.memory_bytes() as u64 + ENTRY_OVERHEAD_BYTES
    }
}

/// A sharded cache of decoded blocks with a byte budget.
pub struct BlockCache {
    cache: quick_cache::sync::Cache<(u64, u64), Arc<Block>, BlockWeighter>,
    next_id: AtomicU64,
    /// Lookups that found their block.
    hits: AtomicU64,
    /// Lookups that did not.
    misses: AtomicU64,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("usage_bytes", &self.usage_bytes())
            .field("capacity_bytes", &self.cache.capacity())
            .finish()
    }
}

impl BlockCache {
    /// A cache holding up to `capacity_bytes` of blocks.
    pub fn new(capacity_bytes: usize) -> Arc<Self> {
        let items = (capacity_bytes / TYPICAL_BLOCK_BYTES).max(16);
        Arc::new(BlockCache {
            cache: quick_cache::sync::Cache::with_weighter(
                items,
                capacity_bytes as u64,
                BlockWeighter,
            ),
            next_id: AtomicU64::new(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Bytes currently charged to cached blocks.
    pub fn usage_bytes(&self) -> u64 {
        self.cache.weight()
    }

    /// The byte budget.
    pub fn capacity_bytes(&self) -> u64 {
        self.cache.capacity()
    }

    /// Changes the byte budget; shrinking evicts at once.
    pub fn set_capacity_bytes(&self, capacity_bytes: u64) {
        self.cache.set_capacity(capacity_bytes);
    }

    /// Blocks currently cached.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True when no block is cached.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// A cache id never returned before by this cache (one per opened table).
    pub fn next_cache_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The cached block at `offset` of the table with `cache_id`.
    pub fn get(&self, cache_id: u64, offset: u64) -> Option<Arc<Block>> {
        let found = self.cache.get(&(cache_id, offset));
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Lookups since creation that found their block, and those that did not.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Caches a block.
    pub fn insert(&self, cache_id: u64, offset: u64, block: Arc<Block>) {
        self.cache.insert((cache_id, offset), block);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: usize) -> Arc<Block> {
        let mut data = vec![0u8; n];
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        // The filler bytes are not valid entries, but the restart array is: fine for weighing.
        Arc::new(Block::new(data).unwrap())
    }

    #[test]
    fn budget_is_respected_and_ids_unique() {
        let c = BlockCache::new(100_000);
        for i in 0..200 {
            c.insert(1, i * 4096, block(4000));
        }
        assert!(c.usage_bytes() <= 100_000, "{}", c.usage_bytes());
        assert!(c.usage_bytes() > 50_000, "{}", c.usage_bytes());
        let roomy = BlockCache::new(1 << 20);
        roomy.insert(7, 0, block(100));
        assert!(roomy.get(7, 0).is_some());
        assert!(roomy.get(7, 4096).is_none());
        assert!(roomy.get(8, 0).is_none());
        assert_eq!(roomy.hits_and_misses(), (1, 2));
        let a = c.next_cache_id();
        assert_ne!(a, c.next_cache_id());
        let zero = BlockCache::new(0);
        zero.insert(1, 0, block(10));
        assert_eq!(zero.usage_bytes(), 0);
    }
}
