//! Write-stall control: the one definition of every stall condition of the LSM shape.
//!
//! The write path's stall gate asks `evaluate`, and the memtable switch asks
//! `memtable_limit_reached` (the same memtable-limit rule `evaluate` uses), so two places
//! never hold different definitions (RocksDB PR #12771 shipped a hang because they did). The
//! one stop decided elsewhere is the shared write-buffer budget's last resort
//! (`WriteBufferManager::must_stall`, across databases), which the stall gate reports as a
//! memtable-limit stop. The waiting itself (bounds, `no_slowdown`, counting) is in
//! `db/write.rs`. A stalled writer waits on a condition
//! variable that background work signals whenever it changes the LSM shape, never while holding a
//! lock that flush or compaction needs, and always with a bound.

use crate::Options;
use std::time::Instant;

/// Microseconds since `t`, saturating: how stall waits are accounted.
pub(crate) fn micros_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Why writes are slowed or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallCause {
    /// Too many immutable memtables waiting for flush.
    MemtableLimit,
    /// Too many L0 files.
    L0Files,
    /// Too many bytes waiting for compaction.
    PendingCompactionBytes,
}

impl StallCause {
    /// A short name for properties and messages.
    pub fn name(self) -> &'static str {
        match self {
            StallCause::MemtableLimit => "memtable-limit",
            StallCause::L0Files => "l0-files",
            StallCause::PendingCompactionBytes => "pending-compaction-bytes",
        }
    }
}

/// The write condition right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallState {
    /// Writes proceed at full speed.
    Normal,
    /// Writes are delayed to `delayed_write_rate_bytes`.
    Slowdown(StallCause),
    /// Writes wait until background work relieves the cause.
    Stop(StallCause),
}

/// The LSM shape numbers the stall conditions look at.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Shape {
    pub(crate) immutable_memtables: usize,
    /// True when the active memtable is full (a write must switch it).
    pub(crate) active_full: bool,
    pub(crate) l0_files: usize,
    pub(crate) pending_compaction_bytes: u64,
}

/// The single definition of the stall conditions.
/// True when `immutable_memtables` waiting for flush fill `max_immutable_memtables` (at least
/// one): a full active memtable cannot be switched until a flush finishes.
pub(crate) fn memtable_limit_reached(immutable_memtables: usize, opts: &Options) -> bool {
    immutable_memtables >= opts.max_immutable_memtables.max(1)
}

pub(crate) fn evaluate(shape: &Shape, opts: &Options) -> StallState {
    let imm_max = opts.max_immutable_memtables.max(1);
    if memtable_limit_reached(shape.immutable_memtables, opts) && shape.active_full {
        return StallState::Stop(StallCause::MemtableLimit);
    }
    if shape.l0_files >= opts.l0_stop_trigger.max(1) {
        return StallState::Stop(StallCause::L0Files);
    }
    if shape.pending_compaction_bytes >= opts.hard_pending_compaction_bytes_limit {
        return StallState::Stop(StallCause::PendingCompactionBytes);
    }
    if shape.l0_files >= opts.l0_slowdown_trigger.max(1) {
        return StallState::Slowdown(StallCause::L0Files);
    }
    if shape.pending_compaction_bytes >= opts.soft_pending_compaction_bytes_limit {
        return StallState::Slowdown(StallCause::PendingCompactionBytes);
    }
    if shape.immutable_memtables >= imm_max && imm_max > 1 {
        return StallState::Slowdown(StallCause::MemtableLimit);
    }
    StallState::Normal
}

impl StallStats {
    /// Adds `micros` of stop time to the counter of `cause` (and to the total).
    pub(crate) fn add_stop(&mut self, cause: StallCause, micros: u64) {
        self.stalled_micros = self.stalled_micros.saturating_add(micros);
        let slot = match cause {
            StallCause::MemtableLimit => &mut self.memtable_stop_micros,
            StallCause::L0Files => &mut self.l0_stop_micros,
            StallCause::PendingCompactionBytes => &mut self.pending_bytes_stop_micros,
        };
        *slot = slot.saturating_add(micros);
    }

    /// Adds `micros` of slowdown delay (and to the total).
    pub(crate) fn add_delay(&mut self, micros: u64) {
        self.stalled_micros = self.stalled_micros.saturating_add(micros);
        self.slowdown_micros = self.slowdown_micros.saturating_add(micros);
    }
}

/// Stall counters, exposed through `Db::stats` and `siltdb.stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StallStats {
    /// Writes that had to stop and wait.
    pub stops: u64,
    /// Writes that were delayed.
    pub slowdowns: u64,
    /// Total microseconds writers spent stalled (stopped or delayed; summed over writers).
    pub stalled_micros: u64,
    /// Of `stalled_micros`: stopped waiting for a flush (too many immutable memtables).
    pub memtable_stop_micros: u64,
    /// Of `stalled_micros`: stopped waiting for L0 compaction (L0 at its stop trigger).
    pub l0_stop_micros: u64,
    /// Of `stalled_micros`: stopped on the hard pending-compaction-bytes limit.
    pub pending_bytes_stop_micros: u64,
    /// Of `stalled_micros`: delayed by a slowdown.
    pub slowdown_micros: u64,
    /// Microseconds during which writes were stopped while no flush or compaction ran and
    /// none could be started. Writes stopped on work that nothing will do is a liveness bug
    /// (Pebble #320); this stays at zero unless a checkpoint or manual compaction holds the
    /// work back, and tests assert it.
    pub idle_stop_micros: u64,
    /// Writes rejected with `Error::Stalled` (no_slowdown or timeout).
    pub rejected: u64,
    /// The current cause, if writes are stalled now: evaluated from the LSM shape when the
    /// stats are read (`Db::stats`), not recorded by writers.
    pub current_cause: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let o = Options {
            l0_slowdown_trigger: 4,
            l0_stop_trigger: 8,
            max_immutable_memtables: 2,
            ..Options::default()
        };
        let s = |imm, full, l0| Shape {
            immutable_memtables: imm,
            active_full: full,
            l0_files: l0,
            pending_compaction_bytes: 0,
        };
        assert_eq!(evaluate(&s(0, false, 0), &o), StallState::Normal);
        assert_eq!(
            evaluate(&s(0, false, 4), &o),
            StallState::Slowdown(StallCause::L0Files)
        );
        assert_eq!(
            evaluate(&s(0, false, 8), &o),
            StallState::Stop(StallCause::L0Files)
        );
        assert_eq!(
            evaluate(&s(2, true, 0), &o),
            StallState::Stop(StallCause::MemtableLimit)
        );
        assert_eq!(
            evaluate(&s(2, false, 0), &o),
            StallState::Slowdown(StallCause::MemtableLimit)
        );
    }
}
