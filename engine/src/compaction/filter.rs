//! User hooks that run during compaction (e.g. TTL expiry in the replica layer).

/// What a [`CompactionFilter`] decides for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterDecision {
    /// Keep the entry as is.
    Keep,
    /// Drop the entry (as if deleted; older versions below may become visible again only if
    /// they are outside this compaction — use it for values that are dead for good, like TTL).
    Remove,
    /// Replace the value.
    ChangeValue(Vec<u8>),
}

/// Runs on every value (never on tombstones) that compaction would keep as the newest version of
/// its key *and* that no live snapshot can see (so snapshot reads stay repeatable).
///
/// It runs on background threads, concurrently, and must not call back into the `Db`; it must be
/// deterministic for a given (key, value) — the same entry can be filtered again later.
pub trait CompactionFilter: Send + Sync + std::fmt::Debug {
    /// Decides the fate of `value` stored under `key` at `level` (the compaction's output level).
    fn filter(&self, level: usize, key: &[u8], value: &[u8]) -> FilterDecision;
}
