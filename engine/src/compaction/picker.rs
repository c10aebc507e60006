//! Chooses the next compaction: the level with the highest score, files rotating through the key
//! space, never touching files that a running compaction owns.

use super::{level_targets, Compaction};
use crate::db::{DbInner, DbState};
use crate::manifest::version::{FileMeta, Version};
use crate::manifest::NUM_LEVELS;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A running compaction's claim on its output level's key range.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) output_level: usize,
    pub(crate) lo: Vec<u8>,
    pub(crate) hi: Vec<u8>,
}

fn busy(files: &[Arc<FileMeta>]) -> bool {
    files
        .iter()
        .any(|f| f.being_compacted.load(Ordering::Acquire))
}

fn range_of(files: &[Arc<FileMeta>]) -> (Vec<u8>, Vec<u8>) {
    let lo = files.iter().map(|f| f.smallest_user()).min().unwrap_or(&[]);
    let hi = files.iter().map(|f| f.largest_user()).max().unwrap_or(&[]);
    (lo.to_vec(), hi.to_vec())
}

/// Picks the most urgent automatic compaction and claims its inputs.
pub(crate) fn pick(inner: &DbInner, st: &mut DbState) -> Option<Compaction> {
    let c = candidate(inner, st)?;
    inner.read_triggered_taken(&c.inputs);
    Some(claim(st, c))
}

/// The compaction `pick` would choose, without claiming it.
pub(crate) fn candidate(inner: &DbInner, st: &DbState) -> Option<Compaction> {
    let v = inner.versions.current();
    let opts = &inner.opts();
    let t = level_targets(&v, opts);
    let mut scores: Vec<(f64, usize)> = Vec::new();
    let l0 = v.levels[0].len();
    if l0 > 0 && !busy(&v.levels[0]) {
        scores.push((l0 as f64 / opts.l0_compaction_trigger.max(1) as f64, 0));
    }
    for l in 1..NUM_LEVELS - 1 {
        let bytes: u64 = v.levels[l]
            .iter()
            .filter(|f| !f.being_compacted.load(Ordering::Acquire))
            .map(|f| f.f.size)
            .sum();
        if bytes > 0 {
            scores.push((bytes as f64 / t.target[l].max(1) as f64, l));
        }
    }
    scores.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (score, level) in scores {
        if score < 1.0 {
            break;
        }
        let output = if level == 0 {
            l0_output(&v, t.base_level)
        } else {
            level + 1
        };
        if let Some(c) = pick_level(&v, st, level, output) {
            return Some(c);
        }
    }
    // Nothing is over its size target: a file that reads keep consulting in vain.
    let r = inner.read_triggered_in(&v)?;
    if r.level == 0 {
        return pick_level(&v, st, 0, l0_output(&v, t.base_level));
    }
    build(&v, st, r.level, r.level + 1, vec![r.file])
}

/// L0's output: the base level, or a non-empty level above it (left over after the base level
/// moved down), so L0 never compacts below newer data.
pub(crate) fn l0_output(v: &Version, base_level: usize) -> usize {
    (1..base_level)
        .find(|l| !v.levels[*l].is_empty())
        .unwrap_or(base_level)
}

fn pick_level(v: &Version, st: &DbState, level: usize, output: usize) -> Option<Compaction> {
    if level == 0 {
        let inputs = v.levels[0].clone();
        return build(v, st, 0, output, inputs);
    }
    let files = &v.levels[level];
    let pointer = &st.compact_pointer[level];
    let start = files.partition_point(|f| f.largest_user() <= pointer.as_slice());
    for i in 0..files.len() {
        let f = &files[(start + i) % files.len()];
        if f.being_compacted.load(Ordering::Acquire) {
            continue;
        }
        if let Some(c) = build(v, st, level, output, vec![Arc::clone(f)]) {
            return Some(c);
        }
    }
    None
}

/// Completes a compaction from its first-level inputs, or `None` if it would conflict with a
/// running one.
pub(crate) fn build(
    v: &Version,
    st: &DbState,
    level: usize,
    output_level: usize,
    inputs: Vec<Arc<FileMeta>>,
) -> Option<Compaction> {
    if inputs.is_empty() || busy(&inputs) {
        return None;
    }
    let (mut lo, mut hi) = range_of(&inputs);
    let next_inputs = if output_level == level {
        Vec::new()
    } else {
        v.overlapping(output_level, Some(&lo), Some(&hi))
    };
    if busy(&next_inputs) {
        return None;
    }
    if !next_inputs.is_empty() {
        let (a, b) = range_of(&next_inputs);
        lo = lo.min(a);
        hi = hi.max(b);
    }
    let clash = st.running.iter().any(|c| {
        c.output_level == output_level
            && c.lo.as_slice() <= hi.as_slice()
            && lo.as_slice() <= c.hi.as_slice()
    });
    if clash {
        return None;
    }
    // Levels between the input and output level (when L0 skips to the base level) must not
    // hold overlapping data, or the output would sit below newer data.
    for l in level + 1..output_level {
        if !v.overlapping(l, Some(&lo), Some(&hi)).is_empty() {
            return None;
        }
    }
    let grandparents = if output_level + 1 < NUM_LEVELS {
        v.overlapping(output_level + 1, Some(&lo), Some(&hi))
    } else {
        Vec::new()
    };
    let bottommost =
        (output_level + 1..NUM_LEVELS).all(|l| v.overlapping(l, Some(&lo), Some(&hi)).is_empty());
    let trivial_move = inputs.len() == 1 && next_inputs.is_empty() && output_level != level;
    Some(Compaction {
        level,
        output_level,
        inputs,
        next_inputs,
        grandparents,
        bottommost,
        trivial_move,
        lo,
        hi,
    })
}

/// Marks the inputs as owned by a compaction and records its output range.
pub(crate) fn claim(st: &mut DbState, c: Compaction) -> Compaction {
    for f in c.all_inputs() {
        f.being_compacted.store(true, Ordering::Release);
    }
    st.running.push(Claim {
        output_level: c.output_level,
        lo: c.lo.clone(),
        hi: c.hi.clone(),
    });
    st.compact_pointer[c.level] = c.hi.clone();
    c
}

/// Releases a compaction's claim (on success or failure).
pub(crate) fn release(st: &mut DbState, c: &Compaction) {
    for f in c.all_inputs() {
        f.being_compacted.store(false, Ordering::Release);
    }
    if let Some(i) = st
        .running
        .iter()
        .position(|r| r.output_level == c.output_level && r.lo == c.lo && r.hi == c.hi)
    {
        st.running.remove(i);
    }
}
