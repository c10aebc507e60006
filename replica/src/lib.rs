//! # siltdb-replica
//!
//! The replica layer that runs on top of the `siltdb` engine, through its public API only. It will
//! hold the mutation log (plog), decrees and ballots, restart replay, checkpoints, learn,
//! duplication, bulk load and write throttling (see `../shared/reference/pegasus-replica.md`).
//! Replication inside a replica group will run on openraft.
#![warn(missing_docs)]

/// The engine this layer is built on.
pub use siltdb;
