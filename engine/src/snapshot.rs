//! Snapshots: a sequence number pinned so compaction keeps the versions it can see.

use crate::key::SeqNo;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The set of live snapshots (refcounted by sequence number).
#[derive(Debug, Default)]
pub(crate) struct SnapshotList {
    live: Mutex<BTreeMap<SeqNo, usize>>,
}

impl SnapshotList {
    /// Registers a snapshot at `seq`.
    pub(crate) fn acquire(self: &Arc<Self>, seq: SeqNo) -> Snapshot {
        *self.live.lock().entry(seq).or_insert(0) += 1;
        Snapshot {
            inner: Arc::new(SnapshotInner {
                seq,
                list: Arc::clone(self),
            }),
        }
    }

    /// Sequence numbers of every live snapshot, ascending.
    pub(crate) fn seqnos(&self) -> Vec<SeqNo> {
        self.live.lock().keys().copied().collect()
    }
}

struct SnapshotInner {
    seq: SeqNo,
    list: Arc<SnapshotList>,
}

impl Drop for SnapshotInner {
    fn drop(&mut self) {
        let mut live = self.list.live.lock();
        if let Some(n) = live.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                live.remove(&self.seq);
            }
        }
    }
}

/// A consistent, read-only view of the database as of one sequence number. Cheap to clone;
/// released when the last clone drops.
#[derive(Clone)]
pub struct Snapshot {
    inner: Arc<SnapshotInner>,
}

impl Snapshot {
    /// The sequence number this snapshot reads at: every write with a seqno `<=` it is visible.
    pub fn seqno(&self) -> SeqNo {
        self.inner.seq
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("seqno", &self.inner.seq)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcounted_release() {
        let list = Arc::new(SnapshotList::default());
        let a = list.acquire(5);
        let b = a.clone();
        let c = list.acquire(3);
        assert_eq!(list.seqnos(), vec![3, 5]);
        drop(a);
        assert_eq!(list.seqnos(), vec![3, 5]);
        drop(c);
        assert_eq!(list.seqnos(), vec![5]);
        drop(b);
        assert!(list.seqnos().is_empty());
    }
}
