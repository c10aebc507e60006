//! Range tombstones seen by a reader: fragmented into non-overlapping pieces for fast lookup.
//!
//! Tombstones from every source (memtables, SSTs) that a read can see are split at every start
//! and end key into fragments `[start, end)`, each holding the largest tombstone seqno that
//! covers it (and is visible at the read's seqno). A key at seqno `s` is deleted when the fragment
//! containing it has a seqno `> s`.
//!
//! Fragments cost O(tombstones): one seqno per fragment for reads. Compaction also asks whether
//! a tombstone in the entry's own snapshot stripe covers it; for that each fragment keeps the
//! largest covering seqno of each stripe that has one ([`Fragments::build_striped`]), in one
//! shared list — at most `snapshots + 1` per fragment, never one per covering tombstone (20k
//! mutually overlapping tombstones would otherwise cost about 200M seqnos, 1.6 GB, per build).

use crate::key::{RangeTombstone, SeqNo};
use std::collections::BTreeMap;
use std::ops::Bound;

/// Non-overlapping fragments sorted by start.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fragments {
    starts: Vec<Vec<u8>>,
    ends: Vec<Vec<u8>>,
    /// Largest covering seqno of each fragment.
    seqs: Vec<SeqNo>,
    /// The snapshot seqnos, ascending, that cut seqnos into stripes (empty for reads).
    snapshots: Vec<SeqNo>,
    /// Per fragment `i`, `stripe_max[stripe_at[i]..stripe_at[i + 1]]` holds the largest covering
    /// seqno of every stripe that has one, ascending. Empty unless built striped.
    stripe_max: Vec<SeqNo>,
    stripe_at: Vec<usize>,
}

/// Index of the snapshot stripe `seq` belongs to (the number of snapshots below it): entries in
/// one stripe look the same to every reader.
pub(crate) fn stripe(snapshots: &[SeqNo], seq: SeqNo) -> usize {
    snapshots.partition_point(|s| *s < seq)
}

impl Fragments {
    /// Fragments the tombstones visible at `read_seq`, for reads (largest seqno only).
    pub(crate) fn build(tombstones: &[RangeTombstone], read_seq: SeqNo) -> Self {
        Self::sweep(tombstones, read_seq, None)
    }

    /// Fragments every tombstone for compaction with live `snapshots` (ascending), keeping per
    /// fragment the largest covering seqno of each snapshot stripe, so that
    /// [`Fragments::covered_in_stripe`] can answer.
    pub(crate) fn build_striped(tombstones: &[RangeTombstone], snapshots: &[SeqNo]) -> Self {
        Self::sweep(tombstones, SeqNo::MAX, Some(snapshots))
    }

    fn sweep(tombstones: &[RangeTombstone], read_seq: SeqNo, snapshots: Option<&[SeqNo]>) -> Self {
        let mut out = Fragments {
            snapshots: snapshots.unwrap_or_default().to_vec(),
            ..Fragments::default()
        };
        if snapshots.is_some() {
            out.stripe_at.push(0);
        }
        // Sweep over start/end events in key order with a multiset of active seqnos.
        let mut events: Vec<(&[u8], bool, SeqNo)> = tombstones
            .iter()
            .filter(|t| t.seq <= read_seq && t.start < t.end)
            .flat_map(|t| {
                [
                    (t.start.as_slice(), true, t.seq),
                    (t.end.as_slice(), false, t.seq),
                ]
            })
            .collect();
        events.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut active: BTreeMap<SeqNo, usize> = BTreeMap::new();
        let mut i = 0;
        while i < events.len() {
            let at = events[i].0;
            while i < events.len() && events[i].0 == at {
                let (_, is_start, seq) = events[i];
                if is_start {
                    *active.entry(seq).or_insert(0) += 1;
                } else if let Some(n) = active.get_mut(&seq) {
                    *n -= 1;
                    if *n == 0 {
                        active.remove(&seq);
                    }
                }
                i += 1;
            }
            if let (Some((&seq, _)), Some(next)) = (active.last_key_value(), events.get(i)) {
                out.starts.push(at.to_vec());
                out.ends.push(next.0.to_vec());
                out.seqs.push(seq);
                if snapshots.is_some() {
                    out.push_stripe_maxima(&active, seq);
                }
            }
        }
        out
    }

    /// Appends the largest active seqno of each stripe, walking down from `max` one stripe at
    /// a time: O(stripes holding a seqno) lookups, whatever the number of active tombstones.
    fn push_stripe_maxima(&mut self, active: &BTreeMap<SeqNo, usize>, max: SeqNo) {
        let from = self.stripe_max.len();
        let mut cur = Some(max);
        while let Some(m) = cur {
            self.stripe_max.push(m);
            let k = stripe(&self.snapshots, m);
            // Every seqno of a lower stripe is at or below the snapshot ending it.
            cur = k.checked_sub(1).and_then(|below| {
                let top = self.snapshots[below];
                active
                    .range((Bound::Unbounded, Bound::Included(top)))
                    .next_back()
                    .map(|(&s, _)| s)
            });
        }
        self.stripe_max[from..].reverse();
        self.stripe_at.push(self.stripe_max.len());
    }

    /// True when no tombstone is visible.
    pub(crate) fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    fn fragment_at(&self, user_key: &[u8]) -> Option<usize> {
        let i = self.starts.partition_point(|s| s.as_slice() <= user_key);
        (i > 0 && user_key < self.ends[i - 1].as_slice()).then(|| i - 1)
    }

    /// Largest visible tombstone seqno covering `user_key` (0 = none).
    pub(crate) fn max_seq_at(&self, user_key: &[u8]) -> SeqNo {
        self.fragment_at(user_key).map_or(0, |i| self.seqs[i])
    }

    /// True when a tombstone newer than `key_seq` but in the same snapshot stripe covers
    /// `user_key`: no reader can see the entry, so compaction drops it. (A tombstone of the
    /// entry's own stripe may itself be dropped, so the entry must go too.) Only for fragments
    /// from [`Fragments::build_striped`]; `false` otherwise.
    pub(crate) fn covered_in_stripe(&self, user_key: &[u8], key_seq: SeqNo) -> bool {
        let Some(i) = self.fragment_at(user_key) else {
            return false;
        };
        let (Some(&a), Some(&b)) = (self.stripe_at.get(i), self.stripe_at.get(i + 1)) else {
            return false;
        };
        let maxima = &self.stripe_max[a..b];
        // The first stripe maximum above the entry: in the entry's stripe exactly when some
        // covering tombstone of that stripe is newer than the entry.
        maxima
            .get(maxima.partition_point(|s| *s <= key_seq))
            .is_some_and(|&t| stripe(&self.snapshots, t) == stripe(&self.snapshots, key_seq))
    }

    /// Seqnos held by the fragments (tests: the cost must stay linear).
    #[cfg(test)]
    fn seqnos_held(&self) -> usize {
        self.seqs.len() + self.stripe_max.len()
    }

    /// True if an entry for `user_key` written at `key_seq` is deleted.
    pub(crate) fn covers(&self, user_key: &[u8], key_seq: SeqNo) -> bool {
        !self.is_empty() && self.max_seq_at(user_key) > key_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, e: &str, seq: SeqNo) -> RangeTombstone {
        RangeTombstone {
            start: s.into(),
            end: e.into(),
            seq,
        }
    }

    #[test]
    fn overlapping_tombstones_fragment() {
        let f = Fragments::build(&[t("a", "m", 5), t("f", "z", 9), t("x", "y", 100)], 50);
        assert_eq!(f.max_seq_at(b"0"), 0);
        assert_eq!(f.max_seq_at(b"a"), 5);
        assert_eq!(f.max_seq_at(b"g"), 9);
        assert_eq!(f.max_seq_at(b"x"), 9); // seq 100 not visible at 50
        assert_eq!(f.max_seq_at(b"z"), 0);
        assert!(f.covers(b"b", 4));
        assert!(!f.covers(b"b", 5));
    }

    /// The answer of the old all-seqnos model: the smallest covering seqno above `key_seq`
    /// lies in the entry's stripe.
    fn covered_in_stripe_naive(
        ts: &[RangeTombstone],
        snaps: &[SeqNo],
        key: &[u8],
        key_seq: SeqNo,
    ) -> bool {
        ts.iter()
            .filter(|t| t.start.as_slice() <= key && key < t.end.as_slice() && t.seq > key_seq)
            .map(|t| t.seq)
            .min()
            .is_some_and(|t| stripe(snaps, t) == stripe(snaps, key_seq))
    }

    #[test]
    fn striped_fragments_answer_like_every_seqno_would() {
        let mut x = 7u64;
        let mut rnd = |n: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        for round in 0..200 {
            let ts: Vec<RangeTombstone> = (0..rnd(12) + 1)
                .map(|_| {
                    let a = rnd(20) as u8;
                    let b = a + rnd(8) as u8;
                    RangeTombstone {
                        start: vec![b'a' + a],
                        end: vec![b'a' + b],
                        seq: rnd(60) + 1,
                    }
                })
                .collect();
            let mut snaps: Vec<SeqNo> = (0..rnd(5)).map(|_| rnd(60) + 1).collect();
            snaps.sort_unstable();
            snaps.dedup();
            let f = Fragments::build_striped(&ts, &snaps);
            for k in 0..30u8 {
                let key = [b'a' + k];
                for seq in 0..65 {
                    assert_eq!(
                        f.covered_in_stripe(&key, seq),
                        covered_in_stripe_naive(&ts, &snaps, &key, seq),
                        "round {round} key {} seq {seq} {ts:?} {snaps:?}",
                        key[0] as char
                    );
                }
            }
        }
    }

    #[test]
    fn overlapping_tombstones_cost_linear_seqnos() {
        // `delete_range("", cutoff)` with growing cutoffs: every fragment is covered by all
        // later tombstones.
        let n = 5_000u64;
        let ts: Vec<RangeTombstone> = (1..=n)
            .map(|i| RangeTombstone {
                start: Vec::new(),
                end: format!("c{i:06}").into_bytes(),
                seq: i,
            })
            .collect();
        let f = Fragments::build(&ts, SeqNo::MAX);
        assert!(f.seqnos_held() <= n as usize, "{}", f.seqnos_held());
        let snaps = [n / 4, n / 2, 3 * n / 4];
        let f = Fragments::build_striped(&ts, &snaps);
        let bound = n as usize * (snaps.len() + 2);
        assert!(f.seqnos_held() <= bound, "{} > {bound}", f.seqnos_held());
        assert!(f.covered_in_stripe(b"c000001", 1)); // seq 2 is in the same stripe
        assert!(!f.covered_in_stripe(b"c001250", n / 4)); // next covering seq is above the snapshot
    }
}
