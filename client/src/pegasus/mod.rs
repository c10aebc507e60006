//! The Pegasus data model as the client sees it: records `(hash_key, sort_key) -> value` with
//! a TTL, routed by the hash key only (`partition_of(hash_key)`).
//!
//! [`proto`] holds the messages ([`PegasusRequest`] inside `ClientRequest::Pegasus`),
//! [`atomic`] the read-modify-write operations and their results, [`client`] the Rust API
//! ([`crate::Client::pegasus`]). The server answers the messages on the partition leader
//! (`siltdb_server::pegasus::handler`).

pub mod atomic;
pub mod client;
pub mod proto;

pub use atomic::{now_ms, AtomicKind, AtomicResult, CheckType, Expire, Mutate};
pub use client::{Pegasus, Ttl};
pub use proto::{
    PegasusRequest, PegasusResponse, Record, ScanRange, EXPIRE_NEVER, EXPIRE_TABLE_DEFAULT,
};
