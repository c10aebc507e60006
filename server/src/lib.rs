//! # siltdb-server
//!
//! `silt-server` hosts siltdb replicas for many partitions ([`siltdb_replica::Gpid`]) in one
//! data directory and serves, on one TCP port, both the Raft traffic between nodes (the
//! replica crate's transport) and client requests (get, put, delete, batch, scan, plus
//! operator requests: create table, list tables, stats, checkpoint, digest, fault injection).
//! The [`client`] module is the Rust client: it routes by partition hash, follows the leader
//! and retries under a deadline.
//!
//! Files: [`config`] (flags + JSON file), [`layout`] (static table placement, stored durably),
//! [`proto`] (client messages), [`node`] (hosted replicas, request handling), [`server`]
//! (listener, timer, graceful shutdown), [`client`], [`error`], [`bulk_load`] (bulk load on the
//! cluster: coordinator, per-partition ingestion through the leader).
#![warn(missing_docs)]

pub mod bulk_load;
pub mod client;
pub mod config;
pub mod error;
pub mod layout;
pub mod lincheck;
pub mod node;
pub mod proto;
pub mod server;

pub use client::{Client, ClientOptions};
pub use config::ServerConfig;
pub use error::{Error, Result, ServerError};
pub use layout::{NodeInfo, TableLayout};
pub use server::Server;
