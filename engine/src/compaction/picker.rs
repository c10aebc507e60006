//! Chooses the next compaction: the level with the highest score, files rotating through the key
//! space, never touching files that a running compaction owns.
//!
//! The choice itself ([`choose`]) is a pure function of a [`Version`], the [`Options`], the
//! [`PickerState`] (running compactions' claims and each level's compaction pointer) and the
//! file read-triggered compaction scheduled: it can be tested without a database.

use super::read_trigger::ReadTriggered;
use super::{level_targets, Compaction};
use crate::db::{DbInner, DbState};
use crate::manifest::version::{FileMeta, Version};
use crate::manifest::NUM_LEVELS;
use crate::Options;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the picker remembers between choices (kept under the DB mutex).
#[derive(Debug, Default)]
pub(crate) struct PickerState {
    /// Output-range claims of running compactions.
    pub(crate) running: Vec<Claim>,
    /// Where each level's next compaction starts (rotates through the key space).
    pub(crate) compact_pointer: [Vec<u8>; NUM_LEVELS],
}

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
    Some(claim(&mut st.picker, c))
}

/// The compaction `pick` would choose, without claiming it.
pub(crate) fn candidate(inner: &DbInner, st: &DbState) -> Option<Compaction> {
    let v = inner.versions.current();
    choose(&v, &inner.opts(), &st.picker, || {
        inner.read_triggered_in(&v)
    })
}

/// The most urgent compaction of `v`: the level whose score (L0: files / trigger; L1+: bytes /
/// target) is highest and at least 1 and that has inputs no running compaction owns; failing
/// that, the file read-triggered compaction scheduled (asked for only then).
pub(crate) fn choose(
    v: &Version,
    opts: &Options,
    ps: &PickerState,
    read_triggered: impl FnOnce() -> Option<ReadTriggered>,
) -> Option<Compaction> {
    let t = level_targets(v, opts);
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
            l0_output(v, t.base_level)
        } else {
            level + 1
        };
        if let Some(c) = pick_level(v, ps, level, output) {
            return Some(c);
        }
    }
    // Nothing is over its size target: a file that reads keep consulting in vain.
    let r = read_triggered()?;
    if r.level == 0 {
        return pick_level(v, ps, 0, l0_output(v, t.base_level));
    }
    build(v, ps, r.level, r.level + 1, vec![r.file])
}

/// L0's output: the base level, or a non-empty level above it (left over after the base level
/// moved down), so L0 never compacts below newer data.
pub(crate) fn l0_output(v: &Version, base_level: usize) -> usize {
    (1..base_level)
        .find(|l| !v.levels[*l].is_empty())
        .unwrap_or(base_level)
}

fn pick_level(v: &Version, ps: &PickerState, level: usize, output: usize) -> Option<Compaction> {
    if level == 0 {
        let inputs = v.levels[0].clone();
        return build(v, ps, 0, output, inputs);
    }
    let files = &v.levels[level];
    let pointer = &ps.compact_pointer[level];
    let start = files.partition_point(|f| f.largest_user() <= pointer.as_slice());
    for i in 0..files.len() {
        let f = &files[(start + i) % files.len()];
        if f.being_compacted.load(Ordering::Acquire) {
            continue;
        }
        if let Some(c) = build(v, ps, level, output, vec![Arc::clone(f)]) {
            return Some(c);
        }
    }
    None
}

/// Completes a compaction from its first-level inputs, or `None` if it would conflict with a
/// running one.
pub(crate) fn build(
    v: &Version,
    ps: &PickerState,
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
    let clash = ps.running.iter().any(|c| {
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
pub(crate) fn claim(ps: &mut PickerState, c: Compaction) -> Compaction {
    for f in c.all_inputs() {
        f.being_compacted.store(true, Ordering::Release);
    }
    ps.running.push(Claim {
        output_level: c.output_level,
        lo: c.lo.clone(),
        hi: c.hi.clone(),
    });
    ps.compact_pointer[c.level] = c.hi.clone();
    c
}

/// Releases a compaction's claim (on success or failure).
pub(crate) fn release(ps: &mut PickerState, c: &Compaction) {
    for f in c.all_inputs() {
        f.being_compacted.store(false, Ordering::Release);
    }
    if let Some(i) = ps
        .running
        .iter()
        .position(|r| r.output_level == c.output_level && r.lo == c.lo && r.hi == c.hi)
    {
        ps.running.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};
    use crate::manifest::edit::{NewFile, VersionEdit};

    /// A file `number` at `level` covering user keys `lo..=hi`, `size` bytes.
    fn file(number: u64, lo: &str, hi: &str, size: u64) -> NewFile {
        NewFile {
            number,
            size,
            smallest: internal_key(lo.as_bytes(), number * 10, ValueKind::Put),
            largest: internal_key(hi.as_bytes(), number * 10 + 1, ValueKind::Put),
            smallest_seqno: number * 10,
            largest_seqno: number * 10 + 1,
            global_seqno: None,
            num_entries: 10,
            num_range_tombstones: 0,
        }
    }

    fn version(files: Vec<(usize, NewFile)>) -> Version {
        let edit = VersionEdit {
            added: files,
            ..Default::default()
        };
        Version::default().apply(&edit, &None).unwrap()
    }

    fn opts() -> Options {
        Options {
            l0_compaction_trigger: 4,
            memtable_size_bytes: 1 << 20,
            max_bytes_for_level_base: 4 << 20,
            max_bytes_for_level_multiplier: 10,
            ..Options::default()
        }
    }

    fn none() -> Option<ReadTriggered> {
        None
    }

    #[test]
    fn below_every_trigger_nothing_is_chosen_and_the_read_trigger_is_asked_last() {
        let v = version(vec![(0, file(1, "a", "z", 1 << 20))]);
        let mut asked = false;
        let c = choose(&v, &opts(), &PickerState::default(), || {
            asked = true;
            None
        });
        assert!(c.is_none());
        assert!(
            asked,
            "with nothing over its target the read trigger decides"
        );
    }

    #[test]
    fn l0_at_its_trigger_compacts_every_l0_file_into_the_base_level() {
        let files = (1..=4).map(|n| (0, file(n, "a", "m", 1 << 20))).collect();
        let v = version(files);
        let c = choose(&v, &opts(), &PickerState::default(), none).expect("L0 is due");
        assert_eq!(c.level, 0);
        assert_eq!(c.inputs.len(), 4);
        // An empty tree: the base level is the last one (dynamic level targets).
        assert_eq!(c.output_level, NUM_LEVELS - 1);
        assert!(c.bottommost);
        assert!(!c.trivial_move);
    }

    #[test]
    fn the_highest_score_wins_and_overlapping_output_files_join() {
        // L0 at 3/4 of its trigger; L5 at 3x its target with one file overlapping in L6.
        let mut files: Vec<(usize, NewFile)> =
            (1..=3).map(|n| (0, file(n, "a", "b", 1 << 10))).collect();
        files.push((5, file(10, "c", "f", 30 << 20)));
        files.push((6, file(11, "d", "e", 100 << 20)));
        files.push((6, file(12, "x", "y", 100 << 20)));
        let v = version(files);
        let t = level_targets(&v, &opts());
        assert!(v.level_bytes(5) > t.target[5]);
        let c = choose(&v, &opts(), &PickerState::default(), none).expect("L5 is due");
        assert_eq!((c.level, c.output_level), (5, 6));
        assert_eq!(c.inputs.len(), 1);
        assert_eq!(c.next_inputs.len(), 1, "only the overlapping L6 file");
        assert_eq!(c.next_inputs[0].number(), 11);
        assert_eq!((c.lo.as_slice(), c.hi.as_slice()), (&b"c"[..], &b"f"[..]));
    }

    #[test]
    fn a_single_file_overlapping_nothing_below_moves_trivially() {
        let v = version(vec![
            (5, file(10, "c", "f", 30 << 20)),
            (6, file(11, "x", "y", 100 << 20)),
        ]);
        let c = choose(&v, &opts(), &PickerState::default(), none).expect("L5 is due");
        assert!(c.trivial_move);
        assert!(c.next_inputs.is_empty());
    }

    #[test]
    fn claimed_inputs_and_clashing_output_ranges_are_skipped() {
        let files: Vec<(usize, NewFile)> =
            (1..=4).map(|n| (0, file(n, "a", "m", 1 << 20))).collect();
        let v = version(files);
        let mut ps = PickerState::default();
        let first = choose(&v, &opts(), &ps, none).expect("L0 is due");
        let first = claim(&mut ps, first);
        assert!(first
            .all_inputs()
            .all(|f| f.being_compacted.load(Ordering::Acquire)));
        // Every L0 file is owned now: nothing else to do.
        assert!(choose(&v, &opts(), &ps, none).is_none());
        release(&mut ps, &first);
        assert!(ps.running.is_empty());
        assert!(choose(&v, &opts(), &ps, none).is_some());
        // A claim on the output range alone blocks it too.
        ps.running.push(Claim {
            output_level: NUM_LEVELS - 1,
            lo: b"k".to_vec(),
            hi: b"z".to_vec(),
        });
        assert!(choose(&v, &opts(), &ps, none).is_none());
    }

    #[test]
    fn level_files_rotate_through_the_key_space() {
        // Three L5 files, the level far over its target, nothing below.
        let v = version(vec![
            (5, file(10, "a", "b", 30 << 20)),
            (5, file(11, "c", "d", 30 << 20)),
            (5, file(12, "e", "f", 30 << 20)),
            (6, file(13, "x", "y", 10 << 20)),
        ]);
        let mut ps = PickerState::default();
        let mut order = Vec::new();
        for _ in 0..4 {
            let c = choose(&v, &opts(), &ps, none).expect("L5 is due");
            order.push(c.inputs[0].number());
            let c = claim(&mut ps, c);
            release(&mut ps, &c);
        }
        assert_eq!(order, vec![10, 11, 12, 10]);
    }

    #[test]
    fn a_read_triggered_file_is_compacted_into_the_level_below() {
        let v = version(vec![
            (5, file(10, "c", "f", 1 << 20)),
            (6, file(11, "d", "e", 100 << 20)),
        ]);
        let scheduled = ReadTriggered {
            level: 5,
            file: Arc::clone(&v.levels[5][0]),
        };
        let c = choose(&v, &opts(), &PickerState::default(), || Some(scheduled))
            .expect("the read trigger schedules it");
        assert_eq!((c.level, c.output_level), (5, 6));
        assert_eq!(c.next_inputs.len(), 1);
    }

    #[test]
    fn l0_never_compacts_below_a_non_empty_level_above_the_base() {
        // Data left in L3 above the base level: L0 goes there, not past it.
        let mut files: Vec<(usize, NewFile)> =
            (1..=4).map(|n| (0, file(n, "a", "m", 1 << 20))).collect();
        files.push((3, file(20, "a", "c", 1 << 20)));
        let v = version(files);
        let t = level_targets(&v, &opts());
        assert!(t.base_level > 3);
        assert_eq!(l0_output(&v, t.base_level), 3);
    }
}
