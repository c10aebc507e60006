//! A Redis-protocol (RESP2/RESP3) endpoint serving one table of the cluster.
//!
//! Layer: an endpoint beside the server, a client of the cluster (it uses only the client crate).
//!
//! `silt-server --redis-listen ADDR --redis-table NAME` answers Redis clients (redis-cli,
//! redis-benchmark, client libraries) from any node; each command becomes data-model requests
//! routed to the partition leaders by the Rust client ([`crate::pegasus`]). A string key `k`
//! is the record `(k, "")`, a hash field `f` of `k` is the record `(k, f)`. [`resp`] is the
//! bounded protocol parser and the reply encoder, [`commands`] the command table, [`server`]
//! the listener and connections (pipelined: every complete command in the input buffer is
//! answered in order), [`auth`] the AUTH of a server with a token file.

pub mod auth;
pub mod commands;
pub mod resp;
pub mod server;

pub use server::serve;
