//! Leveled compaction: level targets, the picker, and the job that merges files.
//!
//! Levels L0..L6. L0 files overlap (one per flush or ingestion); L1+ are sorted runs. Level
//! targets are dynamic (RocksDB's `level_compaction_dynamic_level_bytes`): the last level's size
//! sets the targets of the levels above it, each `max_bytes_for_level_multiplier` times smaller,
//! and L0 compacts straight into the *base level* — the highest level whose target is at least
//! `max_bytes_for_level_base` / multiplier. With most data in the last level, space amplification
//! stays near 1 + 1/multiplier.

pub(crate) mod filter;
pub(crate) mod job;
pub(crate) mod picker;
pub(crate) mod rate_limit;
pub(crate) mod read_trigger;

pub use filter::{CompactionFilter, FilterDecision};

use crate::manifest::version::{FileMeta, Version};
use crate::manifest::NUM_LEVELS;
use crate::Options;
use std::sync::Arc;

/// A chosen compaction: inputs from `level` (and `output_level`) merged into `output_level`.
#[derive(Debug)]
pub(crate) struct Compaction {
    pub(crate) level: usize,
    pub(crate) output_level: usize,
    pub(crate) inputs: Vec<Arc<FileMeta>>,
    pub(crate) next_inputs: Vec<Arc<FileMeta>>,
    pub(crate) grandparents: Vec<Arc<FileMeta>>,
    /// No file below `output_level` overlaps the key range: tombstones can be dropped.
    pub(crate) bottommost: bool,
    /// A single file overlapping nothing below: just change its level.
    pub(crate) trivial_move: bool,
    /// The user-key range of all inputs.
    pub(crate) lo: Vec<u8>,
    pub(crate) hi: Vec<u8>,
}

impl Compaction {
    pub(crate) fn all_inputs(&self) -> impl Iterator<Item = &Arc<FileMeta>> {
        self.inputs.iter().chain(self.next_inputs.iter())
    }

    pub(crate) fn input_bytes(&self) -> u64 {
        self.all_inputs().map(|f| f.f.size).sum()
    }
}

/// Per-level byte targets and the base level.
#[derive(Debug, Clone)]
pub(crate) struct LevelTargets {
    pub(crate) base_level: usize,
    pub(crate) target: [u64; NUM_LEVELS],
}

/// The smallest base-level target: `max_bytes_for_level_base`, capped at what one L0 compaction
/// brings in (`memtable_size_bytes x l0_compaction_trigger`). The base level's target lies
/// between this and `multiplier` times it, so an L0 compaction merges into at most about
/// `multiplier` times its own size.
///
/// Without the cap, small memtables under a large base target make every L0 compaction merge a
/// few tiny files into a level that holds all the data, so each flush costs a rewrite of the
/// whole database: write amplification grows with the data instead of with its logarithm, and
/// writers under a sustained stall collapse to a crawl (issue 17). With the cap the base level
/// is at most `multiplier` times its input, like every other level pair.
pub(crate) fn effective_level_base(opts: &Options) -> u64 {
    let l0_input =
        (opts.memtable_size_bytes as u64).saturating_mul(opts.l0_compaction_trigger.max(1) as u64);
    opts.max_bytes_for_level_base.min(l0_input).max(1)
}

/// Computes dynamic level targets from the current shape.
pub(crate) fn level_targets(v: &Version, opts: &Options) -> LevelTargets {
    let mult = opts.max_bytes_for_level_multiplier.max(2);
    let base = effective_level_base(opts);
    let last = NUM_LEVELS - 1;
    let bottom_bytes = (1..NUM_LEVELS).map(|l| v.level_bytes(l)).max().unwrap_or(0);
    let mut target = [0u64; NUM_LEVELS];
    let mut base_level = last;
    let mut size = bottom_bytes.max(base);
    target[last] = size;
    while base_level > 1 && size / mult >= base {
        size /= mult;
        base_level -= 1;
        target[base_level] = size;
    }
    // Levels above the base level should be empty; give them a tiny target so any data there
    // drains downwards.
    for t in target.iter_mut().take(base_level).skip(1) {
        *t = 1;
    }
    LevelTargets { base_level, target }
}

/// Bytes that compaction still has to move to bring every level under its target.
pub(crate) fn pending_bytes(v: &Version, opts: &Options) -> u64 {
    let t = level_targets(v, opts);
    let mut pending = 0u64;
    if v.levels[0].len() >= opts.l0_compaction_trigger.max(1) {
        pending = pending.saturating_add(v.level_bytes(0));
    }
    for l in 1..NUM_LEVELS - 1 {
        let bytes = v.level_bytes(l);
        if bytes > t.target[l] {
            pending = pending.saturating_add(bytes - t.target[l]);
        }
    }
    pending
}

/// Picks the most urgent automatic compaction, if any, and claims its inputs.
pub(crate) fn pick(inner: &crate::db::DbInner, st: &mut crate::db::DbState) -> Option<Compaction> {
    picker::pick(inner, st)
}

/// Runs a claimed compaction.
pub(crate) fn run(inner: &crate::db::DbInner, c: Compaction) -> crate::Result<()> {
    job::run(inner, c)
}

/// Longest a manual compaction waits for conflicting background work on one level.
const MANUAL_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

impl crate::Db {
    /// Waits until no flush or compaction is running or needed (the LSM shape has settled), a
    /// background error, or `timeout` (then `Error::Busy`). For benchmarks, tests and tools
    /// that measure the steady state.
    pub fn wait_for_background_work(&self, timeout: std::time::Duration) -> crate::Result<()> {
        let inner = &self.inner;
        let deadline = std::time::Instant::now() + timeout;
        let mut st = inner.state.lock();
        loop {
            inner.check_bg_error(&st)?;
            let idle = st.imms.is_empty() && !st.flush_running && st.compactions_running == 0;
            if idle && picker::candidate(inner, &st).is_none() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(crate::Error::Busy(format!(
                    "background work still running after {timeout:?}"
                )));
            }
            inner.bg_cv.notify_all();
            inner
                .shape_cv
                .wait_for(&mut st, std::time::Duration::from_millis(50));
        }
    }

    /// Flushes the memtable, then compacts every file overlapping `[start, end]` (None =
    /// unbounded) level by level down to the bottom level, rewriting bottom-level files so that
    /// deleted data and tombstones in the range are dropped. Runs in the calling thread;
    /// waits (bounded) for conflicting background compactions.
    pub fn compact_range(
        &self,
        start: Option<impl AsRef<[u8]>>,
        end: Option<impl AsRef<[u8]>>,
    ) -> crate::Result<()> {
        let inner = &self.inner;
        inner.check_writable()?;
        inner.flush_and_wait()?;
        let lo = start.map(|s| s.as_ref().to_vec());
        let hi = end.map(|e| e.as_ref().to_vec());
        for level in 0..NUM_LEVELS {
            let deadline = std::time::Instant::now() + MANUAL_WAIT;
            let c = loop {
                let mut st = inner.state.lock();
                inner.check_bg_error(&st)?;
                let v = inner.versions.current();
                let files = if level == 0 {
                    v.levels[0].clone()
                } else {
                    v.overlapping(level, lo.as_deref(), hi.as_deref())
                };
                if files.is_empty() {
                    break None;
                }
                let output = (level + 1).min(NUM_LEVELS - 1);
                if let Some(c) = picker::build(&v, &st.picker, level, output, files) {
                    break Some(picker::claim(&mut st.picker, c));
                }
                if std::time::Instant::now() >= deadline {
                    return Err(crate::Error::Busy(format!(
                        "manual compaction of level {level} waited {} s for background compactions",
                        MANUAL_WAIT.as_secs()
                    )));
                }
                inner.bg_cv.notify_all();
                inner
                    .shape_cv
                    .wait_for(&mut st, std::time::Duration::from_millis(50));
            };
            if let Some(c) = c {
                let r = job::run(inner, c);
                {
                    let st = inner.state.lock();
                    inner.install_sv(&st);
                }
                inner.purge_obsolete_files();
                inner.shape_cv.notify_all();
                inner.bg_cv.notify_all();
                if let Err(e) = r {
                    inner.set_bg_error(&e);
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
