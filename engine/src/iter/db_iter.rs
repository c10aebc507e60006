//! The user-facing iterator: newest visible version of each key, tombstones and range
//! tombstones applied, bounds respected, both directions.
//!
//! Forward and reverse traversal use two independent cursors over the same pinned view (memtables
//! and version), created lazily; `next()` and `next_back()` stop where they meet, as
//! `DoubleEndedIterator` requires.

use super::BoxedIter;
use crate::key::{self, SeqNo, ValueKind, MAX_SEQNO};
use crate::range_del::Fragments;
use crate::snapshot::Snapshot;
use crate::{Error, Result};

/// Versions of one key stepped over one by one before an iterator seeks past the rest
/// (RocksDB's `max_sequential_skip_in_iterations`): a key overwritten thousands of times
/// since the last flush costs a scan one seek, not thousands of steps.
pub(crate) const MAX_SEQUENTIAL_SKIPS: usize = 8;

/// Moves `it` forward to the newest version of `uk` visible at `seq`, or past `uk` when there
/// is none: steps over at most [`MAX_SEQUENTIAL_SKIPS`] newer versions, then seeks.
fn skip_key(it: &mut dyn crate::iter::InternalIterator, uk: &[u8], seq: SeqNo) {
    let newer = |it: &dyn crate::iter::InternalIterator| {
        it.valid() && key::user_key(it.key()) == uk && key::seqno(it.key()) > seq
    };
    for _ in 0..MAX_SEQUENTIAL_SKIPS {
        if !newer(it) {
            return;
        }
        it.next();
    }
    if newer(it) {
        it.seek(&key::seek_key(uk, seq));
    }
}

/// Builds merged internal iterators over a pinned view of the database.
pub(crate) trait IterSource: Send + Sync {
    fn build(&self) -> BoxedIter;
}

/// An iterator over `(key, value)` pairs in ascending key order; `next_back` descends.
/// Items are `Result`s: an I/O error or corruption ends the iteration with that error.
pub struct DbIter {
    source: Box<dyn IterSource>,
    read_seq: SeqNo,
    tombstones: Fragments,
    lower: Option<Vec<u8>>,
    upper: Option<Vec<u8>>,
    fwd: Option<BoxedIter>,
    bwd: Option<BoxedIter>,
    front_last: Option<Vec<u8>>,
    back_last: Option<Vec<u8>>,
    done: bool,
    pending_error: Option<Error>,
    _snapshot: Option<Snapshot>,
}

impl DbIter {
    pub(crate) fn new(
        source: Box<dyn IterSource>,
        read_seq: SeqNo,
        tombstones: Fragments,
        lower: Option<Vec<u8>>,
        upper: Option<Vec<u8>>,
        snapshot: Option<Snapshot>,
    ) -> Self {
        DbIter {
            source,
            read_seq,
            tombstones,
            lower,
            upper,
            fwd: None,
            bwd: None,
            front_last: None,
            back_last: None,
            done: false,
            pending_error: None,
            _snapshot: snapshot,
        }
    }

    /// An iterator that yields one error.
    pub(crate) fn failed(e: Error) -> Self {
        struct Nothing;
        impl IterSource for Nothing {
            fn build(&self) -> BoxedIter {
                Box::new(super::merge::VecIter::new(Vec::new()))
            }
        }
        let mut it = DbIter::new(Box::new(Nothing), 0, Fragments::default(), None, None, None);
        it.pending_error = Some(e);
        it
    }

    fn fail(&mut self, e: Error) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        self.done = true;
        Some(Err(e))
    }

    fn corrupt(&mut self, ikey: &[u8]) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        let e = Error::corruption(
            "<iterator>",
            0,
            format!("malformed internal key {:?}", ikey),
        );
        self.fail(e)
    }
}

impl Iterator for DbIter {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending_error.take() {
            return self.fail(e);
        }
        if self.done {
            return None;
        }
        if self.fwd.is_none() {
            let mut it = self.source.build();
            match &self.lower {
                Some(l) => it.seek(&key::seek_key(l, MAX_SEQNO)),
                None => it.seek_to_first(),
            }
            self.fwd = Some(it);
        }
        loop {
            let it = self.fwd.as_mut()?;
            if !it.valid() {
                return match it.status() {
                    Err(e) => self.fail(e),
                    Ok(()) => None,
                };
            }
            let Some((uk, seq, kind)) = key::parse(it.key()) else {
                let k = it.key().to_vec();
                return self.corrupt(&k);
            };
            if self.upper.as_deref().is_some_and(|u| uk >= u) {
                return None;
            }
            if self.back_last.as_deref().is_some_and(|b| uk >= b) {
                return None;
            }
            if seq > self.read_seq {
                // Versions newer than this read: step over a few, then seek to the newest
                // visible one.
                let uk = uk.to_vec();
                skip_key(it.as_mut(), &uk, self.read_seq);
                continue;
            }
            let uk = uk.to_vec();
            let out = (kind == ValueKind::Put && !self.tombstones.covers(&uk, seq))
                .then(|| it.value().to_vec());
            // Skip older versions of this key.
            it.next();
            skip_key(it.as_mut(), &uk, 0);
            while it.valid() && key::user_key(it.key()) == uk.as_slice() {
                it.next();
            }
            if let Some(v) = out {
                self.front_last = Some(uk.clone());
                return Some(Ok((uk, v)));
            }
        }
    }
}

impl DoubleEndedIterator for DbIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending_error.take() {
            return self.fail(e);
        }
        if self.done {
            return None;
        }
        if self.bwd.is_none() {
            let mut it = self.source.build();
            match &self.upper {
                Some(u) => it.seek_for_prev(&key::range_end_sentinel(u)),
                None => it.seek_to_last(),
            }
            self.bwd = Some(it);
        }
        loop {
            let it = self.bwd.as_mut()?;
            if !it.valid() {
                return match it.status() {
                    Err(e) => self.fail(e),
                    Ok(()) => None,
                };
            }
            let uk = key::user_key(it.key()).to_vec();
            if self.lower.as_deref().is_some_and(|l| uk.as_slice() < l) {
                return None;
            }
            if self
                .front_last
                .as_deref()
                .is_some_and(|f| uk.as_slice() <= f)
            {
                return None;
            }
            // Walk back over the versions of `uk`; the last visible one seen is the newest. A key
            // with many versions is not walked: after a few steps, a seek finds the newest
            // visible version and a second seek moves before the key.
            let mut best: Option<(SeqNo, ValueKind, Vec<u8>)> = None;
            let mut steps = 0;
            while it.valid() && key::user_key(it.key()) == uk.as_slice() {
                if steps == MAX_SEQUENTIAL_SKIPS {
                    it.seek(&key::seek_key(&uk, self.read_seq));
                    best = None;
                    if it.valid() && key::user_key(it.key()) == uk.as_slice() {
                        let Some((_, seq, kind)) = key::parse(it.key()) else {
                            let k = it.key().to_vec();
                            return self.corrupt(&k);
                        };
                        debug_assert!(seq <= self.read_seq);
                        best = Some((seq, kind, it.value().to_vec()));
                    }
                    if let Err(e) = it.status() {
                        return self.fail(e);
                    }
                    it.seek_for_prev(&key::range_end_sentinel(&uk));
                    break;
                }
                let Some((_, seq, kind)) = key::parse(it.key()) else {
                    let k = it.key().to_vec();
                    return self.corrupt(&k);
                };
                if seq <= self.read_seq {
                    best = Some((seq, kind, it.value().to_vec()));
                }
                it.prev();
                steps += 1;
            }
            if let Err(e) = it.status() {
                return self.fail(e);
            }
            if let Some((seq, ValueKind::Put, v)) = best {
                if !self.tombstones.covers(&uk, seq) {
                    self.back_last = Some(uk.clone());
                    return Some(Ok((uk, v)));
                }
            }
        }
    }
}
