//! The Pegasus data model on the cluster: records `(hash_key, sort_key) -> value` with a TTL,
//! routed by the hash key only (`partition_of(hash_key)`), stored with the replica crate's
//! record encoding ([`siltdb_replica::pegasus::record`], `docs/format.md`).
//!
//! Layer: service (on top of [`crate::node`]; the messages and the Rust API are the client
//! crate's `siltdb_client::pegasus`, re-exported).
//!
//! [`proto`] holds the messages ([`PegasusRequest`] inside `ClientRequest::Pegasus`),
//! [`handler`] their answers on the partition leader, [`client`] the Rust API
//! ([`crate::Client::pegasus`]). Reads hide expired records at once (by the leader's clock);
//! sets and deletes are plain replicated writes of encoded records; check-and-set,
//! check-and-mutate and incr are [`siltdb_replica::pegasus::AtomicOp`]s decided by the state
//! machine when their log entry applies, so every replica reaches the same outcome.

/// The Rust API (the client crate's, re-exported).
pub use siltdb_client::pegasus::client;
pub mod handler;
/// The messages (the client crate's, re-exported).
pub use siltdb_client::pegasus::proto;

pub use client::{Pegasus, Ttl};
pub use proto::{PegasusRequest, PegasusResponse, Record, ScanRange};
