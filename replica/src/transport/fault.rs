//! The transport's fault hook: drop every message between two given nodes (a network partition)
//! until healed. Both the sending and the receiving side consult it, so setting it on one node
//! of a pair is enough to cut that pair in both directions.

use parking_lot::RwLock;
use std::collections::BTreeSet;

/// Node pairs whose traffic is dropped. Pairs are unordered.
#[derive(Debug, Default)]
pub struct FaultHook {
    blocked: RwLock<BTreeSet<(u64, u64)>>,
}

fn pair(a: u64, b: u64) -> (u64, u64) {
    (a.min(b), a.max(b))
}

impl FaultHook {
    /// Drops all traffic between nodes `a` and `b` (both directions).
    pub fn partition(&self, a: u64, b: u64) {
        self.blocked.write().insert(pair(a, b));
    }

    /// Lets traffic between `a` and `b` flow again.
    pub fn heal(&self, a: u64, b: u64) {
        self.blocked.write().remove(&pair(a, b));
    }

    /// Removes every partition.
    pub fn heal_all(&self) {
        self.blocked.write().clear();
    }

    /// True when traffic between `a` and `b` is dropped.
    pub fn is_blocked(&self, a: u64, b: u64) -> bool {
        self.blocked.read().contains(&pair(a, b))
    }

    /// The blocked pairs, smaller id first.
    pub fn blocked(&self) -> Vec<(u64, u64)> {
        self.blocked.read().iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_unordered_and_heal() {
        let f = FaultHook::default();
        f.partition(3, 1);
        assert!(f.is_blocked(1, 3) && f.is_blocked(3, 1));
        assert!(!f.is_blocked(1, 2));
        f.partition(2, 3);
        assert_eq!(f.blocked(), vec![(1, 3), (2, 3)]);
        f.heal(1, 3);
        assert!(!f.is_blocked(3, 1));
        f.heal_all();
        assert!(f.blocked().is_empty());
    }
}
