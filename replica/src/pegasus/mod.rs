//! The Pegasus data model on top of the replica's plain key-value engine.
//!
//! A record is addressed by `(hash_key, sort_key)`; the partition is chosen by the hash key only
//! (the server routes by `partition_of(hash_key)`). [`record`] holds the key and value encodings
//! (`docs/format.md`, "Pegasus records"), [`atomic`] the read-modify-write operations that the
//! state machine decides at apply time (check-and-set, check-and-mutate, incr), and
//! [`ttl_filter`] the compaction filter that drops expired records.

pub mod atomic;
pub mod record;
pub mod ttl_filter;

pub use atomic::{AtomicOp, AtomicResult, CheckType, Expire, Mutate};
pub use record::{decode_key, decode_value, encode_key, encode_value, hash_key_range, now_ms};
pub use ttl_filter::TtlFilter;
