//! # siltdb-server
//!
//! `silt-server` hosts siltdb replicas for many partitions ([`siltdb_replica::Gpid`]) in one
//! data directory and serves, on one TCP port, both the Raft traffic between nodes (the
//! replica crate's transport) and client requests (get, put, delete, batch, scan, plus
//! operator requests: create table, list tables, stats, checkpoint, digest, fault injection).
//! The Rust client, the wire protocol and the layouts live in the `siltdb-client` crate (an
//! application depends on it alone); [`client`], [`proto`] and the layout types are its,
//! re-exported here.
//!
//! ## Layers
//! Imports go one way, bottom to top:
//! 1. the client crate: [`proto`] (messages), [`siltdb_client::layout`] (placement and the
//!    partition function), [`client`]; and the replica layer;
//! 2. node infrastructure: [`error`], [`layout`] (the durable layout store), [`config`],
//!    [`auth`] (token files, the request-to-role table), [`confine`] (bulk-load source paths);
//! 3. [`node`]: the hosted replicas and the data requests on them; beside it [`envs`] (a
//!    table's app envs applied to its replicas) and [`hotkey`] (sampled hot-key counters);
//! 4. services on top of a node: [`meta`] (the catalog: a replicated partition holding the node
//!    registry and table layouts, serving create-table and membership changes one at a time),
//!    [`membership`] (moving replicas: learner → voter through openraft membership),
//!    [`bulk_load`] (coordinator, per-partition ingestion through the leader), [`duplication`]
//!    (a table's writes shipped to a table of another cluster), [`backup`] (cold backup and
//!    restore: checkpoint sessions on the server, the copy, retention and restore in the
//!    admin client), [`pegasus`] (the data model's handler), [`split`] (partition split: fence,
//!    copy to the children, switch), `failure` (the meta leader's failure detector and cure: replicas of a node
//!    unreachable past `--node-failure-grace` move onto live nodes);
//! 5. [`dispatch`] (the services of a node and the routing of every request) and [`server`]
//!    (listener, timer, graceful shutdown); beside them [`metrics`] (the Prometheus endpoint,
//!    read-only over the node).
//!
//! Beside them: [`redis`] (a RESP endpoint, a client of the cluster), [`lincheck`],
//! [`allocator`], `fuzzing` (feature `fuzzing`: fuzz entry points of the request, response and layout
//! decoders).
//!
//! ## Bulk load
//! `sst-ingest build --format csv --input data.csv --out /data/bulk --partitions 8` writes one
//! directory per partition; `silt-admin start-bulk-load --table t --dir /data/bulk --wait`
//! loads it through the table's coordinator and `silt-admin bulk-load-status --table t` shows
//! every partition's status. The nodes read the files from a shared file system; see
//! [`bulk_load`] for the protocol and what a multi-machine deployment needs.
#![warn(missing_docs)]

pub mod allocator;
pub mod auth;
pub mod backup;
pub mod bulk_load;
/// The Rust client (the client crate's, re-exported).
pub use siltdb_client::client;
pub mod config;
pub mod confine;
pub mod dispatch;
pub mod duplication;
pub mod envs;
pub mod error;
mod failure;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hotkey;
pub mod layout;
pub mod lincheck;
pub mod membership;
pub mod meta;
pub mod metrics;
pub mod node;
pub mod pegasus;
/// Client messages (the client crate's, re-exported).
pub use siltdb_client::proto;
pub mod redis;
pub mod request_metrics;
pub mod server;
pub mod split;
pub mod timeouts;

pub use client::{Client, ClientOptions};
pub use config::ServerConfig;
pub use error::{Error, Result, ServerError};
pub use layout::{NodeInfo, TableLayout};
pub use server::Server;
