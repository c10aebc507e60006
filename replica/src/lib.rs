//! # siltdb-replica
//!
//! The replica layer on top of the `siltdb` engine, through its public API only. Replication
//! inside a replica group runs on openraft 0.9 (`shared/reference/openraft-mapping.md`); Pegasus'
//! vocabulary keeps its names as thin newtypes (`shared/reference/pegasus-replica.md`):
//!
//! | Pegasus | here |
//! |---|---|
//! | ballot / decree / gpid | [`Ballot`] (term), [`Decree`] (log index), [`Gpid`] |
//! | mutation | [`Mutation`], one openraft log entry |
//! | private log (plog) | [`plog::Plog`], openraft's `RaftLogStorage` |
//! | engine + durable decree | [`state_machine::EngineStateMachine`], openraft's `RaftStateMachine` |
//! | checkpoint | [`checkpoint::CheckpointHandle`], openraft's snapshot data |
//! | write throttling | [`throttle`] |
//!
//! Modules:
//! - vocabulary: [`types`] (gpid, ballot, decree), [`error`], [`mutation`], [`raft`] (the
//!   openraft type configuration);
//! - one replica: [`replica`] (a Raft, its plog and its engine), [`plog`] (with `cache`,
//!   `format`, `meta`, `segment`), [`state_machine`], [`durable`] (the durable decree),
//!   [`checkpoint`], [`maintenance`] (periodic checkpoint, plog purge, checkpoint GC),
//!   [`throttle`];
//! - between replicas: [`network`] (in-process), [`transport`] (TCP);
//! - features: [`bulk_load`], [`duplication`], [`pegasus`] (the Pegasus data model);
//! - helpers: [`fs_util`] (durable directory creation); `fuzzing` (behind the `fuzzing`
//!   feature, fuzz entry points).
#![warn(missing_docs)]

pub mod bulk_load;
pub mod checkpoint;
pub mod duplication;
pub mod durable;
pub mod error;
pub mod fs_util;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod maintenance;
pub mod mutation;
pub mod network;
pub mod pegasus;
pub mod plog;
pub mod raft;
pub mod replica;
pub mod state_machine;
pub mod throttle;
pub mod transport;
pub mod types;

pub use error::{Error, Result};
pub use mutation::{Mutation, MutationResp, WriteOp};
pub use types::{Ballot, Decree, Gpid};

/// The engine this layer is built on.
pub use siltdb;
