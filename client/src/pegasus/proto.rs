//! Pegasus messages, carried in `ClientRequest::Pegasus` / `ClientResponse::Pegasus`.

use super::atomic::{AtomicKind, AtomicResult};
use serde::{Deserialize, Serialize};

/// The expiry of a write request (`MultiSet::expire_ms`, `Expire::At` of an atomic op) that
/// asks for the table's default TTL (the `default_ttl` app env, [`crate::envs`]), which the
/// leader applies when the write arrives (never, when the table has none).
pub const EXPIRE_TABLE_DEFAULT: u64 = 0;
/// The expiry of a write request that asks for a record that never expires, whatever the
/// table's default TTL (stored as 0, "never", in the record).
pub const EXPIRE_NEVER: u64 = u64::MAX;

/// A live record as a read returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Hash key.
    pub hash_key: Vec<u8>,
    /// Sort key.
    pub sort_key: Vec<u8>,
    /// Expiry, milliseconds since the Unix epoch (0 = never).
    pub expire_ms: u64,
    /// User value.
    pub value: Vec<u8>,
}

/// A sort-key range of one hash key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRange {
    /// First sort key (empty with `start_inclusive` = from the first).
    pub start: Vec<u8>,
    /// Last sort key; `None` = to the last one.
    pub stop: Option<Vec<u8>>,
    /// Whether `start` itself is included.
    pub start_inclusive: bool,
    /// Whether `stop` itself is included.
    pub stop_inclusive: bool,
    /// Most records returned (0 = no limit beyond the server's cap).
    pub limit: u32,
    /// Largest sort keys first.
    pub reverse: bool,
}

/// A request on the records of one hash key (or, for `ScanPartition`, of one partition).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PegasusRequest {
    /// The live records of these sort keys (empty list: every record of the hash key).
    MultiGet {
        /// Hash key.
        hash_key: Vec<u8>,
        /// Sort keys.
        sort_keys: Vec<Vec<u8>>,
    },
    /// A sort-key range scan.
    Scan {
        /// Hash key.
        hash_key: Vec<u8>,
        /// The range.
        range: ScanRange,
    },
    /// How many live records the hash key holds.
    SortKeyCount {
        /// Hash key.
        hash_key: Vec<u8>,
    },
    /// Sets records (one log entry).
    MultiSet {
        /// Hash key.
        hash_key: Vec<u8>,
        /// `(sort_key, value)` pairs.
        kvs: Vec<(Vec<u8>, Vec<u8>)>,
        /// Expiry of every record, ms since the epoch, or [`EXPIRE_TABLE_DEFAULT`] (0) or
        /// [`EXPIRE_NEVER`].
        expire_ms: u64,
    },
    /// Deletes records (one log entry).
    MultiDel {
        /// Hash key.
        hash_key: Vec<u8>,
        /// Sort keys.
        sort_keys: Vec<Vec<u8>>,
    },
    /// A read-modify-write decided at apply time.
    Atomic(AtomicKind),
    /// Live records of the whole partition from engine key `from` on (Redis SCAN, DBSIZE).
    ScanPartition {
        /// First engine key (inclusive).
        from: Vec<u8>,
        /// Most records.
        limit: u32,
        /// Return keys only (values empty).
        keys_only: bool,
        /// The partition count the client routed by: a server whose layout has another count
        /// (the table was split) answers `WrongPartition`. 0: not checked.
        partition_count: u32,
    },
}

impl PegasusRequest {
    /// The hash key that routes the request (`None`: `ScanPartition`).
    pub fn hash_key(&self) -> Option<&[u8]> {
        match self {
            PegasusRequest::MultiGet { hash_key, .. }
            | PegasusRequest::Scan { hash_key, .. }
            | PegasusRequest::SortKeyCount { hash_key }
            | PegasusRequest::MultiSet { hash_key, .. }
            | PegasusRequest::MultiDel { hash_key, .. } => Some(hash_key),
            PegasusRequest::Atomic(k) => Some(match k {
                AtomicKind::CheckAndMutate { hash_key, .. } | AtomicKind::Incr { hash_key, .. } => {
                    hash_key
                }
            }),
            PegasusRequest::ScanPartition { .. } => None,
        }
    }
}

/// The answer to a [`PegasusRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PegasusResponse {
    /// Records in sort-key order (reverse order for a reverse scan); `more` when a limit cut
    /// the answer short, with the engine key to resume a partition scan from.
    Records {
        /// The records.
        records: Vec<Record>,
        /// Whether more records follow.
        more: bool,
        /// `ScanPartition`: the engine key to continue from.
        resume_from: Option<Vec<u8>>,
    },
    /// A count.
    Count(u64),
    /// A write was committed at `decree`.
    Written {
        /// The decree.
        decree: u64,
    },
    /// The outcome of an atomic op.
    Atomic(AtomicResult),
}
