//! Pegasus' replication vocabulary as newtypes: [`Gpid`], [`Ballot`], [`Decree`].
//!
//! A ballot is openraft's term, a decree is openraft's log index (see
//! `shared/reference/openraft-mapping.md` §2). "Invalid" is `Option::None`, never `-1`: the
//! arithmetic is checked so that an underflow is an `Option`, not a wrapped number.

use serde::{Deserialize, Serialize};
pub use siltdb_client::Gpid;
use std::fmt;

/// The configuration epoch: openraft's term. A request carrying a lower ballot than the
/// replica's is stale and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ballot(pub u64);

impl Ballot {
    /// The next ballot, `None` on overflow.
    pub fn checked_next(self) -> Option<Ballot> {
        self.0.checked_add(1).map(Ballot)
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ballot {}", self.0)
    }
}

/// The sequence number of a mutation: openraft's log index. Decrees start at 0 (the
/// membership entry written by `initialize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Decree(pub u64);

impl Decree {
    /// The first decree of a partition.
    pub const ZERO: Decree = Decree(0);

    /// `self + n`, `None` on overflow.
    pub fn checked_add(self, n: u64) -> Option<Decree> {
        self.0.checked_add(n).map(Decree)
    }

    /// `self - n`, `None` below zero.
    pub fn checked_sub(self, n: u64) -> Option<Decree> {
        self.0.checked_sub(n).map(Decree)
    }

    /// The decree after `self`, `None` on overflow.
    pub fn next(self) -> Option<Decree> {
        self.checked_add(1)
    }

    /// The decree before `self`, `None` for decree 0.
    pub fn prev(self) -> Option<Decree> {
        self.checked_sub(1)
    }

    /// The first decree after an optional one: 0 when `d` is `None` (nothing yet).
    pub fn after(d: Option<Decree>) -> Option<Decree> {
        match d {
            None => Some(Decree::ZERO),
            Some(d) => d.next(),
        }
    }

    /// The number of decrees in `[self, end)`, `None` when `end < self`.
    pub fn distance_to(self, end: Decree) -> Option<u64> {
        end.0.checked_sub(self.0)
    }
}

impl fmt::Display for Decree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "decree {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_arithmetic_never_wraps() {
        assert_eq!(Decree(0).prev(), None);
        assert_eq!(Decree(u64::MAX).next(), None);
        assert_eq!(Decree(5).checked_sub(6), None);
        assert_eq!(Decree(5).checked_sub(5), Some(Decree(0)));
        assert_eq!(Decree::after(None), Some(Decree(0)));
        assert_eq!(Decree::after(Some(Decree(7))), Some(Decree(8)));
        assert_eq!(Decree(3).distance_to(Decree(2)), None);
        assert_eq!(Decree(3).distance_to(Decree(10)), Some(7));
        assert_eq!(Ballot(u64::MAX).checked_next(), None);
        assert_eq!(Ballot(1).checked_next(), Some(Ballot(2)));
        assert_eq!(Gpid::new(2, 7).to_string(), "2.7");
    }
}
