//! Merges several sorted internal iterators into one, in both directions.
//!
//! LevelDB's merging iterator: every child is positioned; the current child is the one with the
//! smallest key (forward) or largest key (reverse). Switching direction re-positions every other
//! child relative to the current key. The valid children sit in a binary heap keyed by their
//! current key, so a step costs O(log children) comparisons.

use super::{BoxedIter, InternalIterator};
use crate::key::cmp_internal;
use crate::Result;
use std::cmp::Ordering;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Reverse,
}

/// A merge of child iterators.
pub struct MergingIterator {
    children: Vec<BoxedIter>,
    /// Indices of the valid children, a binary heap whose root is the current child: the
    /// smallest key going forward, the largest going in reverse.
    heap: Vec<usize>,
    direction: Direction,
    /// A child reported an error: the merge stops (a silently skipped child would hide keys).
    failed: bool,
}

impl MergingIterator {
    /// Merges `children`; internal keys must be unique across them.
    pub fn new(children: Vec<BoxedIter>) -> Self {
        MergingIterator {
            heap: Vec::with_capacity(children.len()),
            children,
            direction: Direction::Forward,
            failed: false,
        }
    }

    /// True if child `a` should be closer to the root than child `b`.
    #[inline]
    fn before(&self, a: usize, b: usize) -> bool {
        let o = cmp_internal(self.children[a].key(), self.children[b].key());
        match self.direction {
            Direction::Forward => o == Ordering::Less,
            Direction::Reverse => o == Ordering::Greater,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                return;
            }
            let r = l + 1;
            let mut best = l;
            if r < n && self.before(self.heap[r], self.heap[l]) {
                best = r;
            }
            if !self.before(self.heap[best], self.heap[i]) {
                return;
            }
            self.heap.swap(i, best);
            i = best;
        }
    }

    /// Records an error of child `i` if it stopped because of one.
    fn check(&mut self, i: usize) {
        if !self.children[i].valid() && self.children[i].status().is_err() {
            self.failed = true;
        }
    }

    /// Rebuilds the heap from every valid child, in `direction`.
    fn rebuild(&mut self, direction: Direction) {
        self.direction = direction;
        self.heap.clear();
        for i in 0..self.children.len() {
            if self.children[i].valid() {
                self.heap.push(i);
            } else {
                self.check(i);
            }
        }
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
    }

    /// After the root child moved: restore the heap.
    fn fix_root(&mut self) {
        let Some(&root) = self.heap.first() else {
            return;
        };
        if self.children[root].valid() {
            self.sift_down(0);
        } else {
            self.check(root);
            let last = self.heap.len() - 1;
            self.heap.swap(0, last);
            self.heap.pop();
            self.sift_down(0);
        }
    }

    fn current(&self) -> Option<usize> {
        self.heap.first().copied()
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        !self.failed && !self.heap.is_empty()
    }
    fn seek_to_first(&mut self) {
        for c in &mut self.children {
            c.seek_to_first();
        }
        self.rebuild(Direction::Forward);
    }
    fn seek_to_last(&mut self) {
        for c in &mut self.children {
            c.seek_to_last();
        }
        self.rebuild(Direction::Reverse);
    }
    fn seek(&mut self, target: &[u8]) {
        for c in &mut self.children {
            c.seek(target);
        }
        self.rebuild(Direction::Forward);
    }
    fn seek_for_prev(&mut self, target: &[u8]) {
        for c in &mut self.children {
            c.seek_for_prev(target);
        }
        self.rebuild(Direction::Reverse);
    }
    fn next(&mut self) {
        let Some(cur) = self.current() else { return };
        if self.direction != Direction::Forward {
            let key = self.children[cur].key().to_vec();
            for (i, c) in self.children.iter_mut().enumerate() {
                if i != cur {
                    c.seek(&key);
                    if c.valid() && cmp_internal(c.key(), &key) == Ordering::Equal {
                        c.next();
                    }
                }
            }
            self.children[cur].next();
            self.rebuild(Direction::Forward);
            return;
        }
        self.children[cur].next();
        self.fix_root();
    }
    fn prev(&mut self) {
        let Some(cur) = self.current() else { return };
        if self.direction != Direction::Reverse {
            let key = self.children[cur].key().to_vec();
            for (i, c) in self.children.iter_mut().enumerate() {
                if i != cur {
                    c.seek_for_prev(&key);
                    if c.valid() && cmp_internal(c.key(), &key) == Ordering::Equal {
                        c.prev();
                    }
                }
            }
            self.children[cur].prev();
            self.rebuild(Direction::Reverse);
            return;
        }
        self.children[cur].prev();
        self.fix_root();
    }
    fn key(&self) -> &[u8] {
        self.current().map_or(&[], |c| self.children[c].key())
    }
    fn value(&self) -> &[u8] {
        self.current().map_or(&[], |c| self.children[c].value())
    }
    fn status(&self) -> Result<()> {
        for c in &self.children {
            c.status()?;
        }
        Ok(())
    }
}

/// An iterator over a sorted `Vec` of entries (tests, small in-memory sources).
pub struct VecIter {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    pos: Option<usize>,
}

impl VecIter {
    /// `entries` must be sorted by internal key.
    pub fn new(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        VecIter { entries, pos: None }
    }
}

impl InternalIterator for VecIter {
    fn valid(&self) -> bool {
        self.pos.is_some()
    }
    fn seek_to_first(&mut self) {
        self.pos = (!self.entries.is_empty()).then_some(0);
    }
    fn seek_to_last(&mut self) {
        self.pos = self.entries.len().checked_sub(1);
    }
    fn seek(&mut self, target: &[u8]) {
        let i = self
            .entries
            .partition_point(|(k, _)| cmp_internal(k, target) == Ordering::Less);
        self.pos = (i < self.entries.len()).then_some(i);
    }
    fn seek_for_prev(&mut self, target: &[u8]) {
        let i = self
            .entries
            .partition_point(|(k, _)| cmp_internal(k, target) != Ordering::Greater);
        self.pos = i.checked_sub(1);
    }
    fn next(&mut self) {
        self.pos = self.pos.map(|p| p + 1).filter(|p| *p < self.entries.len());
    }
    fn prev(&mut self) {
        self.pos = self.pos.and_then(|p| p.checked_sub(1));
    }
    fn key(&self) -> &[u8] {
        self.pos.map_or(&[], |p| &self.entries[p].0)
    }
    fn value(&self) -> &[u8] {
        self.pos.map_or(&[], |p| &self.entries[p].1)
    }
    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};

    fn src(keys: &[(&str, u64)]) -> BoxedIter {
        let mut v: Vec<_> = keys
            .iter()
            .map(|(k, s)| (internal_key(k.as_bytes(), *s, ValueKind::Put), vec![]))
            .collect();
        v.sort_by(|a, b| cmp_internal(&a.0, &b.0));
        Box::new(VecIter::new(v))
    }

    #[test]
    fn merges_and_switches_direction() {
        let mut m = MergingIterator::new(vec![
            src(&[("a", 1), ("c", 3), ("e", 5)]),
            src(&[("b", 2), ("c", 9), ("f", 6)]),
            src(&[]),
        ]);
        let mut all = Vec::new();
        m.seek_to_first();
        while m.valid() {
            all.push(m.key().to_vec());
            m.next();
        }
        let mut sorted = all.clone();
        sorted.sort_by(|a, b| cmp_internal(a, b));
        assert_eq!(all, sorted);
        assert_eq!(all.len(), 6);
        // Walk forward 3, back 2, forward 1: positions must agree with the sorted list.
        m.seek_to_first();
        m.next();
        m.next();
        assert_eq!(m.key(), &all[2][..]);
        m.prev();
        assert_eq!(m.key(), &all[1][..]);
        m.prev();
        assert_eq!(m.key(), &all[0][..]);
        m.next();
        assert_eq!(m.key(), &all[1][..]);
        m.seek_to_last();
        assert_eq!(m.key(), &all[5][..]);
        m.prev();
        m.next();
        assert_eq!(m.key(), &all[5][..]);
    }
}
