//! Merges several sorted internal iterators into one, in both directions.
//!
//! LevelDB's merging iterator: every child is positioned; the current child is the one with the
//! smallest key (forward) or largest key (reverse). Switching direction re-positions every other
//! child relative to the current key. Children are few (memtables + L0 files + one per level), so
//! a linear scan to find the extreme beats a heap's bookkeeping.

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
    current: Option<usize>,
    direction: Direction,
}

impl MergingIterator {
    /// Merges `children`; internal keys must be unique across them.
    pub fn new(children: Vec<BoxedIter>) -> Self {
        MergingIterator {
            children,
            current: None,
            direction: Direction::Forward,
        }
    }

    fn find_smallest(&mut self) {
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b) if cmp_internal(c.key(), self.children[b].key()) != Ordering::Less => {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }

    fn find_largest(&mut self) {
        let mut best: Option<usize> = None;
        for (i, c) in self.children.iter().enumerate() {
            if !c.valid() {
                continue;
            }
            best = match best {
                Some(b) if cmp_internal(c.key(), self.children[b].key()) != Ordering::Greater => {
                    Some(b)
                }
                _ => Some(i),
            };
        }
        self.current = best;
    }
}

impl InternalIterator for MergingIterator {
    fn valid(&self) -> bool {
        self.current.is_some() && self.status().is_ok()
    }
    fn seek_to_first(&mut self) {
        for c in &mut self.children {
            c.seek_to_first();
        }
        self.direction = Direction::Forward;
        self.find_smallest();
    }
    fn seek_to_last(&mut self) {
        for c in &mut self.children {
            c.seek_to_last();
        }
        self.direction = Direction::Reverse;
        self.find_largest();
    }
    fn seek(&mut self, target: &[u8]) {
        for c in &mut self.children {
            c.seek(target);
        }
        self.direction = Direction::Forward;
        self.find_smallest();
    }
    fn seek_for_prev(&mut self, target: &[u8]) {
        for c in &mut self.children {
            c.seek_for_prev(target);
        }
        self.direction = Direction::Reverse;
        self.find_largest();
    }
    fn next(&mut self) {
        let Some(cur) = self.current else { return };
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
            self.direction = Direction::Forward;
        }
        self.children[cur].next();
        self.find_smallest();
    }
    fn prev(&mut self) {
        let Some(cur) = self.current else { return };
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
            self.direction = Direction::Reverse;
        }
        self.children[cur].prev();
        self.find_largest();
    }
    fn key(&self) -> &[u8] {
        self.current.map_or(&[], |c| self.children[c].key())
    }
    fn value(&self) -> &[u8] {
        self.current.map_or(&[], |c| self.children[c].value())
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
