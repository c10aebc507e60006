//! The commands of `silt-admin`: [`run`] builds the client from the global flags and hands
//! each command to its module; the helpers below are shared by them.

mod bulk_load;
mod data;
mod duplication;
mod envs;
mod membership;
mod meta;
mod split;
mod tables;

/// What every command module uses.
mod prelude {
    pub(crate) use super::*;
    pub(crate) use crate::cli::{Args, Cmd, RecordKey, TOKEN_FILE_ENV};
    pub(crate) use crate::Res;
    pub(crate) use siltdb_replica::bulk_load::BulkLoadStatus;
    pub(crate) use siltdb_replica::duplication::FailMode;
    pub(crate) use siltdb_server::bulk_load::BulkLoadReport;
    pub(crate) use siltdb_server::meta::MetaRequest;
    pub(crate) use siltdb_server::proto::{ClientRequest, ClientResponse, NodeStats};
    pub(crate) use siltdb_server::{Client, ClientOptions, TableLayout};
    pub(crate) use std::collections::BTreeMap;
    pub(crate) use std::time::Duration;
}

use bulk_load::*;
use data::*;
use duplication::*;
use envs::*;
use membership::*;
use prelude::*;
use split::*;

pub(crate) use siltdb_server::backup::admin::parse_node;

/// Bound on one drain or add-node request through the meta service (many moves).
pub(crate) const MEMBERSHIP_RPC_MS: u64 = 30 * 60 * 1000;

/// The node id of `id` or `id=host:port`.
pub(crate) fn parse_id(s: &str) -> Res<u64> {
    let id = s.split('=').next().unwrap_or(s);
    id.parse().map_err(|_| format!("{s:?}: bad node id"))
}

pub(crate) async fn meta_call(
    client: &Client,
    req: MetaRequest,
    timeout_ms: u64,
) -> Res<ClientResponse> {
    match client.meta(req, Duration::from_millis(timeout_ms)).await {
        Ok(ClientResponse::Error(e)) => Err(e.to_string()),
        Ok(r) => Ok(r),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) async fn meta_tables(
    client: &Client,
    req: MetaRequest,
    timeout_ms: u64,
) -> Res<Vec<TableLayout>> {
    match meta_call(client, req, timeout_ms).await? {
        ClientResponse::Tables(t) => Ok(t),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Res<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

pub(crate) async fn tables(client: &Client, addr: &str) -> Res<Vec<TableLayout>> {
    match client.call(addr, &ClientRequest::ListTables).await {
        Ok(ClientResponse::Tables(t)) => Ok(t),
        Ok(other) => Err(format!("{addr}: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Stats of every node of `layouts` (None = down).
pub(crate) async fn all_stats(
    client: &Client,
    layouts: &[TableLayout],
) -> BTreeMap<u64, (String, Option<NodeStats>)> {
    let mut nodes = BTreeMap::new();
    for n in layouts.iter().flat_map(|l| l.nodes.iter()) {
        nodes.entry(n.id).or_insert_with(|| n.addr.clone());
    }
    let mut out = BTreeMap::new();
    for (id, addr) in nodes {
        let s = client.stats(&addr).await.ok();
        out.insert(id, (addr, s));
    }
    out
}

pub(crate) fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The global flags a command needs besides its own.
pub(crate) struct Global {
    /// `--addr`.
    pub(crate) addr: String,
    /// `--json`.
    pub(crate) json: bool,
    /// `--timeout-ms`.
    pub(crate) timeout_ms: u64,
}

/// Runs one command line.
pub(crate) async fn run(args: Args) -> Res<()> {
    let token_file = args
        .token_file
        .clone()
        .or_else(|| std::env::var_os(TOKEN_FILE_ENV).map(std::path::PathBuf::from));
    let token = match &token_file {
        Some(p) => Some(siltdb_server::auth::Secret::from_file(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let tls = match &args.tls_ca {
        Some(p) => Some(siltdb_client::tls::TlsClient::from_ca_file(p).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut opts = ClientOptions::new(vec![args.addr.clone()])
        .with_token(token)
        .with_tls(tls);
    opts.rpc_timeout = Duration::from_millis(args.timeout_ms);
    opts.deadline = Duration::from_millis(args.timeout_ms.saturating_mul(4));
    let client = Client::new(opts);
    let g = Global {
        addr: args.addr.clone(),
        json: args.json,
        timeout_ms: args.timeout_ms,
    };
    match args.cmd {
        cmd @ (Cmd::Put { .. } | Cmd::Get { .. } | Cmd::Del { .. } | Cmd::Scan { .. }) => {
            data_command(&client, cmd).await
        }
        cmd @ (Cmd::CreateTable { .. }
        | Cmd::Tables
        | Cmd::Nodes
        | Cmd::Partitions { .. }
        | Cmd::Stats
        | Cmd::Checkpoint { .. }) => tables::table_command(&client, cmd, &g).await,
        cmd @ (Cmd::InitMeta { .. }
        | Cmd::RegisterNode { .. }
        | Cmd::Catalog
        | Cmd::RemoveNode { .. }) => meta::meta_command(&client, cmd, &g).await,
        cmd @ (Cmd::MoveReplica { .. }
        | Cmd::DrainNode { .. }
        | Cmd::AddNode { .. }
        | Cmd::AddDup { .. }
        | Cmd::RemoveDup { .. }) => meta_or_client(&client, cmd, args.json, args.timeout_ms).await,
        Cmd::QueryDup { table } => query_dup(&client, &table, args.json).await,
        Cmd::StartBulkLoad {
            table,
            dir,
            wait,
            wait_timeout_s,
        } => {
            let wait = wait.then(|| Duration::from_secs(wait_timeout_s));
            start_bulk_load(&client, &table, &dir, wait, args.json).await
        }
        Cmd::Backup(b) => siltdb_server::backup::admin::backup_command(&client, b, args.json).await,
        Cmd::Restore(r) => {
            siltdb_server::backup::admin::restore_command(&client, &args.addr, r, args.json).await
        }
        cmd @ (Cmd::SetEnv { .. } | Cmd::GetEnv { .. } | Cmd::DelEnv { .. }) => {
            env_command(&client, cmd, args.json).await
        }
        Cmd::Hotkeys { table, kind, top } => {
            hotkeys_command(&client, &table, kind.as_deref(), top, args.json).await
        }
        Cmd::BulkLoadStatus { table } => {
            let report = client
                .query_bulk_load(&table)
                .await
                .map_err(|e| e.to_string())?;
            print_report(&report, args.json)
        }
        Cmd::Split {
            table,
            partitions,
            timeout,
        } => split_table(&client, &table, partitions, timeout, args.json).await,
    }
}
