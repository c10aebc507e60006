//! Iterators over internal keys, and the user-facing iterator built on them.
//!
//! Every source (memtable, SST block, SST file, level, merge) implements [`InternalIterator`]:
//! a positioned cursor over `(internal key, value)` in [`crate::key::cmp_internal`] order that can
//! move both ways. Errors make the iterator invalid and are reported by `status()`.

pub mod db_iter;
pub(crate) mod level;
pub mod merge;

use crate::Result;

/// A bidirectional cursor over internal keys in internal-key order.
pub trait InternalIterator: Send {
    /// True when positioned on an entry.
    fn valid(&self) -> bool;
    /// Positions on the first entry.
    fn seek_to_first(&mut self);
    /// Positions on the last entry.
    fn seek_to_last(&mut self);
    /// Positions on the first entry `>= target` (internal-key order).
    fn seek(&mut self, target: &[u8]);
    /// Positions on the last entry `<= target` (internal-key order).
    fn seek_for_prev(&mut self, target: &[u8]);
    /// Moves to the next entry. Requires `valid()`.
    fn next(&mut self);
    /// Moves to the previous entry. Requires `valid()`.
    fn prev(&mut self);
    /// Current internal key. Requires `valid()`.
    fn key(&self) -> &[u8];
    /// Current value. Requires `valid()`.
    fn value(&self) -> &[u8];
    /// The first error met, if any (an iterator with an error is not valid).
    fn status(&self) -> Result<()>;
}

/// A boxed internal iterator.
pub type BoxedIter = Box<dyn InternalIterator>;
