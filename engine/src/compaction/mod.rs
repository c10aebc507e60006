//! Leveled compaction (picker and job). Being written; the placeholders keep the engine usable.

use crate::db::{DbInner, DbState};
use crate::manifest::version::Version;
use crate::{Options, Result};

/// A chosen compaction.
pub(crate) struct Compaction;

/// Bytes that compaction still has to move to reach the level targets.
pub(crate) fn pending_bytes(_v: &Version, _opts: &Options) -> u64 {
    0
}

/// Picks the most urgent compaction, if any.
pub(crate) fn pick(_inner: &DbInner, _st: &DbState) -> Option<Compaction> {
    None
}

/// Runs a compaction.
pub(crate) fn run(_inner: &DbInner, _c: Compaction) -> Result<()> {
    Ok(())
}

impl crate::Db {
    /// Compacts every file overlapping `[start, end]` (None = unbounded) down to the bottom
    /// level, after flushing the memtable. Waits, bounded, for the work to finish.
    pub fn compact_range(
        &self,
        start: Option<impl AsRef<[u8]>>,
        end: Option<impl AsRef<[u8]>>,
    ) -> Result<()> {
        self.inner.check_writable()?;
        self.inner.flush_and_wait()?;
        let _ = (start.map(|s| s.as_ref().to_vec()), end.map(|e| e.as_ref().to_vec()));
        Ok(())
    }
}
