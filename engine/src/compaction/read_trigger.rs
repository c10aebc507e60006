//! Read-triggered compaction (LevelDB's "seek compaction", Pebble's read sampling).
//!
//! A read that has to consult more than one file pays for every file above the one that
//! answers it. When the same file keeps being consulted in vain, merging it into the level below
//! is cheaper than paying on every read: LevelDB estimates that one extra file probe costs about
//! as much as compacting 16 KiB, so each file gets `size / 16 KiB` (at least 100) wasted probes
//! before it is scheduled. A point lookup charges the first file it consulted when it had to
//! consult a second one; an iterator charges its newest file when it merges more than one
//! sorted run of tables. Size-triggered compactions always go first.
//!
//! After a write burst the last flushes sit in L0 until three more arrive; a read-mostly
//! workload then pays for them on every read. This trigger merges them down once the reads have
//! paid roughly what the compaction costs.

use crate::db::DbInner;
use crate::manifest::version::{FileMeta, Version};
use crate::manifest::NUM_LEVELS;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A file whose wasted reads ran out, waiting for the picker.
#[derive(Debug, Clone)]
pub(crate) struct ReadTriggered {
    pub(crate) level: usize,
    pub(crate) file: Arc<FileMeta>,
}

impl DbInner {
    /// Charges `file` (in `level`) one wasted read; schedules it for compaction when its
    /// allowance runs out. Never blocks on the DB mutex.
    pub(crate) fn charge_wasted_read(&self, level: usize, file: &Arc<FileMeta>) {
        if !self.opts().read_triggered_compaction || level + 1 >= NUM_LEVELS {
            return;
        }
        if file.wasted_reads_left.fetch_sub(1, Ordering::Relaxed) != 1 {
            return;
        }
        let mut pending = self.read_triggered.lock();
        if pending.is_none() {
            *pending = Some(ReadTriggered {
                level,
                file: Arc::clone(file),
            });
        }
        drop(pending);
        self.bg_cv.notify_all();
    }

    /// The scheduled file if it is still live in `v` at its level; forgets a stale one.
    pub(crate) fn read_triggered_in(&self, v: &Version) -> Option<ReadTriggered> {
        let mut pending = self.read_triggered.lock();
        let live = pending
            .as_ref()
            .is_some_and(|p| v.levels[p.level].iter().any(|f| Arc::ptr_eq(f, &p.file)));
        if !live {
            *pending = None;
        }
        pending.clone()
    }

    /// Forgets the scheduled file once a compaction took it.
    pub(crate) fn read_triggered_taken(&self, inputs: &[Arc<FileMeta>]) {
        let mut pending = self.read_triggered.lock();
        if pending
            .as_ref()
            .is_some_and(|p| inputs.iter().any(|f| Arc::ptr_eq(f, &p.file)))
        {
            *pending = None;
        }
    }

    /// An iterator over more than one sorted run of tables charges the newest run's first file
    /// one wasted read.
    pub(crate) fn charge_iterator(&self, v: &Version, lo: Option<&[u8]>, hi: Option<&[u8]>) {
        let mut runs = (0..NUM_LEVELS).filter_map(|level| {
            let first = if level == 0 {
                v.levels[0].iter().find(|f| f.overlaps(lo, hi))
            } else {
                let files = &v.levels[level];
                let i = files.partition_point(|f| lo.is_some_and(|l| f.largest_user() < l));
                files.get(i).filter(|f| f.overlaps(lo, hi))
            };
            first.map(|f| (level, f))
        });
        let newest = runs.next();
        let l0_runs = v.levels[0].iter().filter(|f| f.overlaps(lo, hi)).count();
        if let Some((level, f)) = newest {
            if l0_runs > 1 || runs.next().is_some() {
                self.charge_wasted_read(level, f);
            }
        }
    }
}

/// The files a point lookup consulted: the first is charged one wasted read as soon as a
/// second one has to be consulted too.
#[derive(Default)]
pub(crate) struct Consulted<'a> {
    first: Option<(usize, &'a Arc<FileMeta>)>,
    charged: bool,
}

impl<'a> Consulted<'a> {
    pub(crate) fn note(&mut self, inner: &DbInner, level: usize, f: &'a Arc<FileMeta>) {
        match self.first {
            None => self.first = Some((level, f)),
            Some((l, first)) if !self.charged => {
                self.charged = true;
                inner.charge_wasted_read(l, first);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::version::{allowed_wasted_reads, MIN_WASTED_READS};

    #[test]
    fn allowance_scales_with_size_and_has_a_floor() {
        assert_eq!(allowed_wasted_reads(0), MIN_WASTED_READS);
        assert_eq!(allowed_wasted_reads(1 << 20), MIN_WASTED_READS);
        assert_eq!(allowed_wasted_reads(64 << 20), 4096);
        assert_eq!(allowed_wasted_reads(u64::MAX), (u64::MAX >> 14) as i64);
    }
}
