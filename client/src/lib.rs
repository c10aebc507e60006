//! # siltdb-client
//!
//! What an application needs to talk to a siltdb cluster, and nothing of the server: the wire
//! protocol, table layouts and the partition function, and the Rust client. It depends on
//! neither the engine, nor the replica layer, nor openraft; the server crate (and the replica
//! layer, for its frames and the vocabulary they share) depend on it.
//!
//! Where each concept lives:
//! - [`frame`]: the frame format of the TCP protocol (length, checksum, kind, request id,
//!   bincode payload), shared by Raft and client traffic; [`conn`]: one lazily connected,
//!   self-healing request/response connection.
//! - [`auth`]: roles, secrets and the connection handshake ([`Hello`](auth::Hello)).
//! - [`tls`]: optional TLS of client and peer connections (rustls).
//! - [`proto`]: client and operator requests and responses ([`ClientRequest`],
//!   [`ClientResponse`]) and the statistics a node reports.
//! - [`layout`]: table placement ([`TableLayout`], [`NodeInfo`]) and [`partition_of`].
//! - [`types`]: [`Gpid`], [`WriteOp`], [`IngestCommand`] (re-exported by the replica layer).
//! - [`envs`]: per-table runtime settings (app envs) kept in the layout;
//!   [`throttling`]: the Pegasus throttling string they carry.
//! - [`error`]: [`Error`] and the error a server answers with ([`ServerError`]).
//! - [`client`]: the [`Client`] (routing, leader following, retries under a deadline).
//! - Report and request types of the services, with their client calls: [`meta`] (catalog),
//!   [`membership`] (moving replicas), [`split`] (partition split), [`hotkeys`] (hot-key
//!   reports), [`bulk_load`] (and [`bulk_load_metadata`], the format of
//!   `bulk_load_metadata.json`), [`backup`] (cold backup), [`duplication`], [`pegasus`] (the data
//!   model).
#![warn(missing_docs)]

pub mod auth;
pub mod backup;
pub mod bulk_load;
pub mod bulk_load_metadata;
pub mod client;
pub mod conn;
pub mod duplication;
pub mod envs;
pub mod error;
pub mod frame;
pub mod hotkeys;
pub mod layout;
pub mod membership;
pub mod meta;
pub mod pegasus;
pub mod proto;
pub mod split;
pub mod throttling;
pub mod tls;
pub mod types;

pub use client::{Client, ClientOptions, ScanStream};
pub use error::{Error, Result, ServerError};
pub use layout::{partition_of, NodeInfo, TableLayout};
pub use proto::{ClientRequest, ClientResponse};
pub use types::{Gpid, IngestCommand, IngestFile, WriteOp};
