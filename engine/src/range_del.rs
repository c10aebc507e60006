//! Range tombstones seen by a reader: fragmented into non-overlapping pieces for fast lookup.
//!
//! Tombstones from every source (memtables, SSTs) that a read can see are split at every start
//! and end key into fragments `[start, end)`, each holding the largest tombstone seqno that
//! covers it (and is visible at the read's seqno). A key at seqno `s` is deleted when the fragment
//! containing it has a seqno `> s`.

use crate::key::{RangeTombstone, SeqNo};

/// Non-overlapping fragments sorted by start.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fragments {
    starts: Vec<Vec<u8>>,
    ends: Vec<Vec<u8>>,
    /// Largest covering seqno of each fragment.
    seqs: Vec<SeqNo>,
    /// Every covering seqno of each fragment, ascending (compaction needs them all).
    all_seqs: Vec<Vec<SeqNo>>,
}

impl Fragments {
    /// Fragments the tombstones visible at `read_seq`.
    pub(crate) fn build(tombstones: &[RangeTombstone], read_seq: SeqNo) -> Self {
        let visible: Vec<&RangeTombstone> = tombstones
            .iter()
            .filter(|t| t.seq <= read_seq && t.start < t.end)
            .collect();
        if visible.is_empty() {
            return Fragments::default();
        }
        // Sweep over start/end events in key order with a multiset of active seqnos.
        let mut events: Vec<(&[u8], bool, SeqNo)> = visible
            .iter()
            .flat_map(|t| {
                [
                    (t.start.as_slice(), true, t.seq),
                    (t.end.as_slice(), false, t.seq),
                ]
            })
            .collect();
        events.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut active: std::collections::BTreeMap<SeqNo, usize> = Default::default();
        let mut out = Fragments::default();
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
                out.all_seqs.push(active.keys().copied().collect());
            }
        }
        out
    }

    /// True when no tombstone is visible.
    pub(crate) fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Largest visible tombstone seqno covering `user_key` (0 = none).
    pub(crate) fn max_seq_at(&self, user_key: &[u8]) -> SeqNo {
        let i = self.starts.partition_point(|s| s.as_slice() <= user_key);
        if i == 0 {
            return 0;
        }
        if user_key < self.ends[i - 1].as_slice() {
            self.seqs[i - 1]
        } else {
            0
        }
    }

    /// The smallest seqno `> key_seq` of a tombstone covering `user_key`, if any: the tombstone
    /// that hides the entry from the most readers.
    pub(crate) fn min_seq_above(&self, user_key: &[u8], key_seq: SeqNo) -> Option<SeqNo> {
        let i = self.starts.partition_point(|s| s.as_slice() <= user_key);
        if i == 0 || user_key >= self.ends[i - 1].as_slice() {
            return None;
        }
        let all = &self.all_seqs[i - 1];
        all.get(all.partition_point(|s| *s <= key_seq)).copied()
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
}
