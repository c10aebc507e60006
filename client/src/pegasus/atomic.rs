//! The read-modify-write operations of the data model as they travel ([`AtomicKind`] inside
//! `PegasusRequest::Atomic`) and their outcome ([`AtomicResult`]). The replica layer stamps an
//! [`AtomicKind`] with the leader's clock (its `AtomicOp`), decides it when the log entry
//! applies, and re-exports these types.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch by this machine's clock (0 before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The Pegasus check types of check-and-set / check-and-mutate, applied to the live value of
/// the check sort key (absent when missing or expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckType {
    /// Always passes.
    NoCheck,
    /// The value is absent.
    ValueNotExist,
    /// The value is absent or empty.
    ValueNotExistOrEmpty,
    /// The value exists.
    ValueExist,
    /// The value exists and is not empty.
    ValueNotEmpty,
    /// The value contains the operand.
    MatchAnywhere,
    /// The value starts with the operand.
    MatchPrefix,
    /// The value ends with the operand.
    MatchPostfix,
    /// value < operand, bytewise.
    BytesLess,
    /// value <= operand, bytewise.
    BytesLessOrEqual,
    /// value == operand.
    BytesEqual,
    /// value >= operand, bytewise.
    BytesGreaterOrEqual,
    /// value > operand, bytewise.
    BytesGreater,
    /// value < operand as decimal i64.
    IntLess,
    /// value <= operand as decimal i64.
    IntLessOrEqual,
    /// value == operand as decimal i64.
    IntEqual,
    /// value >= operand as decimal i64.
    IntGreaterOrEqual,
    /// value > operand as decimal i64.
    IntGreater,
}

/// Every check type, in the order of their codes.
pub const CHECK_TYPES: [CheckType; 18] = [
    CheckType::NoCheck,
    CheckType::ValueNotExist,
    CheckType::ValueNotExistOrEmpty,
    CheckType::ValueExist,
    CheckType::ValueNotEmpty,
    CheckType::MatchAnywhere,
    CheckType::MatchPrefix,
    CheckType::MatchPostfix,
    CheckType::BytesLess,
    CheckType::BytesLessOrEqual,
    CheckType::BytesEqual,
    CheckType::BytesGreaterOrEqual,
    CheckType::BytesGreater,
    CheckType::IntLess,
    CheckType::IntLessOrEqual,
    CheckType::IntEqual,
    CheckType::IntGreaterOrEqual,
    CheckType::IntGreater,
];

impl CheckType {
    /// The Pegasus code of the type (0 = no check ... 17 = int greater), its encoding byte.
    pub fn code(self) -> u8 {
        CHECK_TYPES.iter().position(|c| *c == self).unwrap_or(0) as u8
    }

    /// The type of a code; `None` when unknown.
    pub fn from_code(code: u8) -> Option<CheckType> {
        CHECK_TYPES.get(code as usize).copied()
    }

    /// Whether `value` (the live value, `None` when absent) passes against `operand`;
    /// `Err` when an int compare meets a non-integer.
    pub fn passes(self, value: Option<&[u8]>, operand: &[u8]) -> Result<bool, String> {
        use CheckType as C;
        let int = |b: &[u8], what: &str| -> Result<i64, String> {
            parse_i64(b).ok_or_else(|| format!("check {what} is not an integer"))
        };
        Ok(match (self, value) {
            (C::NoCheck, _) => true,
            (C::ValueNotExist, v) => v.is_none(),
            (C::ValueNotExistOrEmpty, v) => v.is_none_or(<[u8]>::is_empty),
            (C::ValueExist, v) => v.is_some(),
            (C::ValueNotEmpty, v) => v.is_some_and(|v| !v.is_empty()),
            (_, None) => {
                if matches!(
                    self,
                    C::IntLess
                        | C::IntLessOrEqual
                        | C::IntEqual
                        | C::IntGreaterOrEqual
                        | C::IntGreater
                ) {
                    int(operand, "operand")?;
                }
                false
            }
            (C::MatchAnywhere, Some(v)) => {
                operand.is_empty() || v.windows(operand.len()).any(|w| w == operand)
            }
            (C::MatchPrefix, Some(v)) => v.starts_with(operand),
            (C::MatchPostfix, Some(v)) => v.ends_with(operand),
            (C::BytesLess, Some(v)) => v < operand,
            (C::BytesLessOrEqual, Some(v)) => v <= operand,
            (C::BytesEqual, Some(v)) => v == operand,
            (C::BytesGreaterOrEqual, Some(v)) => v >= operand,
            (C::BytesGreater, Some(v)) => v > operand,
            (c, Some(v)) => {
                let o = int(operand, "operand")?;
                let v = int(v, "value")?;
                match c {
                    C::IntLess => v < o,
                    C::IntLessOrEqual => v <= o,
                    C::IntEqual => v == o,
                    C::IntGreaterOrEqual => v >= o,
                    _ => v > o,
                }
            }
        })
    }
}

/// A decimal i64 (optional leading `-`, no spaces, no `+`, no leading zeros beyond `0`), as
/// Redis and Pegasus parse integers.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || s == "-0"
    {
        return None;
    }
    s.parse().ok()
}

/// The expiry a write gives its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expire {
    /// Expire at this time, milliseconds since the Unix epoch; in a request,
    /// [`super::proto::EXPIRE_TABLE_DEFAULT`] (0) asks for the table's default TTL and
    /// [`super::proto::EXPIRE_NEVER`] for none (the leader resolves both; the op that applies
    /// carries 0 for never).
    At(u64),
    /// Keep the live record's expiry (never, when there is no live record).
    Keep,
}

/// One write of a check-and-mutate, within its hash key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mutate {
    /// Set a record.
    Put {
        /// Sort key.
        sort_key: Vec<u8>,
        /// User value.
        value: Vec<u8>,
        /// Its expiry.
        expire: Expire,
    },
    /// Delete a record.
    Delete {
        /// Sort key.
        sort_key: Vec<u8>,
    },
    /// Change a live record's expiry (no-op when absent).
    SetExpire {
        /// Sort key.
        sort_key: Vec<u8>,
        /// New expiry (0 = never).
        expire_ms: u64,
    },
    /// Delete every record of the hash key.
    DeleteAll,
}

/// The operation itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AtomicKind {
    /// Pegasus check_and_mutate (check_and_set is one `Put`): if the check passes, apply the
    /// mutations in order.
    CheckAndMutate {
        /// The hash key of every record involved.
        hash_key: Vec<u8>,
        /// The record checked.
        check_sort_key: Vec<u8>,
        /// The check.
        check: CheckType,
        /// Its operand.
        operand: Vec<u8>,
        /// Applied when the check passes.
        mutations: Vec<Mutate>,
        /// Return the checked record's value.
        return_check_value: bool,
    },
    /// Adds `delta` to the decimal i64 record (absent, expired or empty = 0).
    Incr {
        /// Hash key.
        hash_key: Vec<u8>,
        /// Sort key.
        sort_key: Vec<u8>,
        /// Added value.
        delta: i64,
        /// Expiry of the result.
        expire: Expire,
    },
}

impl AtomicKind {
    /// Resolves the expiries a request carries into the ones the proposed op carries, so every
    /// replica applies the same: each [`Expire::At`] through `resolve` (the leader's table
    /// default TTL, or never), and a `SetExpire` of [`super::proto::EXPIRE_NEVER`] to 0 (never,
    /// as the applied op spells it; an explicit new expiry is not a default).
    pub fn resolve_expiries(&mut self, resolve: impl Fn(u64) -> u64) {
        let at = |e: &mut Expire| {
            if let Expire::At(ms) = e {
                *ms = resolve(*ms);
            }
        };
        match self {
            AtomicKind::Incr { expire, .. } => at(expire),
            AtomicKind::CheckAndMutate { mutations, .. } => {
                for m in mutations {
                    match m {
                        Mutate::Put { expire, .. } => at(expire),
                        Mutate::SetExpire { expire_ms, .. }
                            if *expire_ms == super::proto::EXPIRE_NEVER =>
                        {
                            *expire_ms = 0
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}

/// What an applied atomic op (the replica layer's `AtomicOp`) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtomicResult {
    /// Why the op was refused (nothing written); `None` when it ran.
    pub error: Option<String>,
    /// Check-and-mutate: whether the check passed (and the mutations were applied). Incr: true.
    pub succeeded: bool,
    /// The checked record's live value before the op (when asked for) and its expiry.
    pub check_value: Option<(u64, Vec<u8>)>,
    /// Per mutation: how many live records it found (0 or 1; `DeleteAll`: the count).
    pub live_before: Vec<u64>,
    /// Incr: the new value.
    pub int_value: i64,
}

#[cfg(test)]
mod tests {
    use super::super::proto::EXPIRE_NEVER;
    use super::*;

    #[test]
    fn every_expiry_of_a_request_is_resolved_once() {
        let resolve = |ms: u64| if ms == 0 { 5_000 } else { ms + 1 };
        let mut incr = AtomicKind::Incr {
            hash_key: b"h".to_vec(),
            sort_key: b"s".to_vec(),
            delta: 1,
            expire: Expire::At(0),
        };
        incr.resolve_expiries(resolve);
        assert!(matches!(
            incr,
            AtomicKind::Incr {
                expire: Expire::At(5_000),
                ..
            }
        ));
        let mut cam = AtomicKind::CheckAndMutate {
            hash_key: b"h".to_vec(),
            check_sort_key: b"c".to_vec(),
            check: CheckType::NoCheck,
            operand: Vec::new(),
            mutations: vec![
                Mutate::Put {
                    sort_key: b"a".to_vec(),
                    value: b"v".to_vec(),
                    expire: Expire::At(7),
                },
                Mutate::Put {
                    sort_key: b"b".to_vec(),
                    value: b"v".to_vec(),
                    expire: Expire::Keep,
                },
                Mutate::SetExpire {
                    sort_key: b"c".to_vec(),
                    expire_ms: EXPIRE_NEVER,
                },
                Mutate::SetExpire {
                    sort_key: b"d".to_vec(),
                    expire_ms: 0,
                },
                Mutate::DeleteAll,
            ],
            return_check_value: false,
        };
        cam.resolve_expiries(resolve);
        let AtomicKind::CheckAndMutate { mutations, .. } = cam else {
            panic!("kind changed");
        };
        let expiries: Vec<String> = mutations
            .iter()
            .map(|m| match m {
                Mutate::Put { expire, .. } => format!("{expire:?}"),
                Mutate::SetExpire { expire_ms, .. } => expire_ms.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        // A SetExpire is an explicit expiry, not a request for the default: 0 stays 0.
        assert_eq!(expiries, ["At(8)", "Keep", "0", "0", "DeleteAll"]);
    }
}
