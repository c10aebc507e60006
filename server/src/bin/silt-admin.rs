//! `silt-admin`: operator commands for a siltdb cluster — create a table, list tables, nodes
//! and partitions (who leads, how far each replica applied), node stats, checkpoint,
//! membership changes (move a replica, drain a node, add a node and rebalance onto it),
//! cluster duplication (add-dup, remove-dup, query-dup), bulk load (start, status), cold
//! backup (backup, restore), app envs (set-env, get-env, del-env), hot keys (hotkeys) and
//! partition split (split).
//! Every command is bounded by `--timeout-ms` per server; a server that does not answer is
//! reported as down, not waited for.

/// The one allocator of this process (seed S4): mimalloc, compiled in statically and pinned
/// in the workspace, like every other binary of the project.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use siltdb_replica::bulk_load::BulkLoadStatus;
use siltdb_replica::duplication::FailMode;
use siltdb_server::bulk_load::BulkLoadReport;
use siltdb_server::meta::MetaRequest;
use siltdb_server::proto::{ClientRequest, ClientResponse, NodeStats};
use siltdb_server::{Client, ClientOptions, NodeInfo, TableLayout};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "silt-admin", about = "siltdb cluster operator commands")]
struct Args {
    /// A server address to ask (`host:port`).
    #[arg(long, global = true, default_value = "127.0.0.1:7100")]
    addr: String,
    /// Bound on each request, in ms.
    #[arg(long, global = true, default_value_t = 5000)]
    timeout_ms: u64,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// File holding the secret presented to the server (default: `$SILT_TOKEN_FILE`).
    #[arg(long, global = true)]
    token_file: Option<std::path::PathBuf>,
    /// Speak TLS, trusting the certificates of this PEM file (the servers' --tls-ca).
    #[arg(long, global = true)]
    tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Creates a table. Without `--app-id`, through the meta service (which allocates the id
    /// and places the table on the `--node`s, or on every registered node); with `--app-id`,
    /// directly on every `--node id=host:port` (a cluster without a meta service).
    CreateTable {
        /// Table name.
        #[arg(long)]
        name: String,
        /// Table id (unique in the cluster); only without a meta service.
        #[arg(long)]
        app_id: Option<u32>,
        /// Partition count.
        #[arg(long)]
        partitions: u32,
        /// Replicas per partition.
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        /// A hosting node, `id=host:port` (repeat); with the meta service `id` is enough.
        #[arg(long = "node")]
        nodes: Vec<String>,
    },
    /// Creates the meta service: its partition on these nodes, which it registers.
    InitMeta {
        /// A meta node, `id=host:port` (repeat; 1 or 3 usually).
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
    },
    /// Registers a node with the meta service (before `add-node`).
    RegisterNode {
        /// The node, `id=host:port`.
        #[arg(long)]
        node: String,
    },
    /// Prints the meta service's catalog: registered nodes, table layouts, duplications.
    Catalog,
    /// Removes a node from the cluster (meta service): drains it, takes it out of every
    /// layout, unregisters it. Stop its server afterwards.
    RemoveNode {
        /// The node id.
        #[arg(long)]
        node: u64,
        /// Bound on each new replica catching up, in ms.
        #[arg(long, default_value_t = 120_000)]
        catch_up_ms: u64,
    },
    /// Lists the tables the server knows.
    Tables,
    /// Sets a record: `put --table T KEY VALUE` (the string record `(KEY, "")`) or
    /// `put --table T --hash-key H --sort-key S VALUE`.
    Put {
        /// Table name.
        #[arg(long)]
        table: String,
        #[command(flatten)]
        key: RecordKey,
        /// Time to live in seconds (default: the table's default TTL).
        #[arg(long)]
        ttl: Option<u64>,
        /// `KEY VALUE`, or `VALUE` with `--hash-key`.
        #[arg(required = true, num_args = 1..=2)]
        args: Vec<String>,
    },
    /// Prints a record's value alone on stdout; exit status 1 when it is absent or expired.
    Get {
        /// Table name.
        #[arg(long)]
        table: String,
        #[command(flatten)]
        key: RecordKey,
        /// `KEY`, unless `--hash-key` is given.
        #[arg(num_args = 0..=1)]
        args: Vec<String>,
    },
    /// Deletes a record.
    Del {
        /// Table name.
        #[arg(long)]
        table: String,
        #[command(flatten)]
        key: RecordKey,
        /// `KEY`, unless `--hash-key` is given.
        #[arg(num_args = 0..=1)]
        args: Vec<String>,
    },
    /// Prints `KEY<TAB>VALUE` lines in key order: the table's string records (`(KEY, "")`)
    /// with keys in `[--from, --to)`, or with `--hash-key H` the records of `H` as
    /// `SORT_KEY<TAB>VALUE` with sort keys in `[--from, --to)`.
    Scan {
        /// Table name.
        #[arg(long)]
        table: String,
        /// Scan the sort keys of this hash key.
        #[arg(long)]
        hash_key: Option<String>,
        /// First key (inclusive).
        #[arg(long)]
        from: Option<String>,
        /// End key (exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Most lines printed.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Lists the nodes of every table with their state.
    Nodes,
    /// Lists the partitions of a table: leader and each replica's progress.
    Partitions {
        /// Table name.
        #[arg(long)]
        table: String,
    },
    /// Prints one server's statistics.
    Stats,
    /// Checkpoints (and purges the logs of) the server's leader replicas of a table.
    Checkpoint {
        /// Table name.
        #[arg(long)]
        table: String,
    },

    /// Backs up every partition of a table (a consistent checkpoint of each, copied with
    /// checksums) into a new backup under `--to`; `--interval` and `--keep` make a policy.
    Backup(siltdb_server::backup::admin::BackupArgs),
    /// Restores a backup (`--from` a backup root: its newest complete backup) into a new
    /// table, verifying every file before the table is created.
    Restore(siltdb_server::backup::admin::RestoreArgs),

    /// Moves one partition's replica from a node to another (learner → voter).
    MoveReplica {
        /// Table name.
        #[arg(long)]
        table: String,
        /// The partition.
        #[arg(long)]
        partition: u32,
        /// The node giving up its replica.
        #[arg(long)]
        from: u64,
        /// The node taking it, `id=host:port`.
        #[arg(long)]
        to: String,
        /// Bound on the new replica catching up, in ms.
        #[arg(long, default_value_t = 120_000)]
        catch_up_ms: u64,
    },
    /// Moves every replica of a table off a node (before removing the node).
    DrainNode {
        /// Table name (without a meta service; with one, every table).
        #[arg(long)]
        table: Option<String>,
        /// The node to empty.
        #[arg(long)]
        node: u64,
        /// Extra nodes that may take replicas, `id=host:port` (repeat); the table's other
        /// nodes always may.
        #[arg(long = "to")]
        to: Vec<String>,
        /// Bound on each new replica catching up, in ms.
        #[arg(long, default_value_t = 120_000)]
        catch_up_ms: u64,
    },
    /// Adds a node to a table: moves replicas onto it until it hosts its share.
    AddNode {
        /// Table name (without a meta service; with one, every table).
        #[arg(long)]
        table: Option<String>,
        /// The new node, `id=host:port`.
        #[arg(long)]
        node: String,
        /// Bound on each new replica catching up, in ms.
        #[arg(long, default_value_t = 120_000)]
        catch_up_ms: u64,
    },
    /// Duplicates a table to a table (same partition count) of another cluster.
    AddDup {
        /// Source table.
        #[arg(long)]
        table: String,
        /// Servers of the follower cluster, `host:port,host:port`.
        #[arg(long, value_delimiter = ',', required = true)]
        remote_seeds: Vec<String>,
        /// Follower table.
        #[arg(long)]
        remote_table: String,
        /// On an unreadable log range: `slow` (retry) or `skip`.
        #[arg(long, default_value = "slow")]
        fail_mode: String,
        /// The id; default a new one. Give the id of a duplication that did not reach every
        /// node to install it on the nodes that missed it.
        #[arg(long)]
        id: Option<u64>,
    },
    /// Removes a duplication.
    RemoveDup {
        /// Source table.
        #[arg(long)]
        table: String,
        /// The duplication id (see query-dup).
        #[arg(long)]
        id: u64,
    },
    /// Shows each duplication of a table per partition: status, confirmed decree, lag, error.
    QueryDup {
        /// Source table.
        #[arg(long)]
        table: String,
    },
    /// Starts a bulk load of a table from the output of `sst-ingest build --partitions N`
    /// (nodes read the directory: it must be on a file system they share).
    StartBulkLoad {
        /// Table name.
        #[arg(long)]
        table: String,
        /// The build output directory (holding `0/` .. `N-1/`).
        #[arg(long)]
        dir: std::path::PathBuf,
        /// Waits until the load ends; fails unless it succeeded.
        #[arg(long)]
        wait: bool,
        /// Bound on --wait, in seconds.
        #[arg(long, default_value_t = 3600)]
        wait_timeout_s: u64,
    },
    /// Prints the status of a table's bulk load, per partition.
    BulkLoadStatus {
        /// Table name.
        #[arg(long)]
        table: String,
    },
    /// Sets an app env of a table (applied live on every replica; see the README's list of
    /// keys). Unknown keys and bad values are refused.
    SetEnv {
        /// Table name.
        #[arg(long)]
        table: String,
        /// Env key, e.g. `default_ttl` or `replica.write_throttling`.
        #[arg(long)]
        key: String,
        /// Env value.
        #[arg(long, allow_hyphen_values = true)]
        value: String,
    },
    /// Prints the app envs of a table, one `key=value` a line, sorted by key.
    GetEnv {
        /// Table name.
        #[arg(long)]
        table: String,
    },
    /// Removes an app env of a table (back to its default).
    DelEnv {
        /// Table name.
        #[arg(long)]
        table: String,
        /// Env key.
        #[arg(long)]
        key: String,
    },
    /// Prints the hottest keys of every partition of a table, one
    /// `PARTITION<TAB>KIND<TAB>COUNT<TAB>KEY` a line (hottest first within a partition and kind).
    Hotkeys {
        /// Table name.
        #[arg(long)]
        table: String,
        /// `read` or `write` (default: both).
        #[arg(long)]
        kind: Option<String>,
        /// Keys per partition and kind.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Splits a table: doubles its partition count online, waits until the new layout serves
    /// and prints the new partition count. Run it again to finish a split that failed.
    Split {
        /// Table name.
        #[arg(long)]
        table: String,
        /// The partition count wanted: must be twice the current one.
        #[arg(long)]
        partitions: Option<u32>,
        /// Bound on the whole split: seconds, or with a unit (`500ms`, `90s`, `5m`).
        #[arg(long, default_value = "120s", value_parser = parse_timeout)]
        timeout: Duration,
    },
}

type Res<T> = Result<T, String>;

/// The environment variable naming the token file when `--token-file` is absent.
const TOKEN_FILE_ENV: &str = "SILT_TOKEN_FILE";

/// The `--hash-key`/`--sort-key` form of a record address.
#[derive(clap::Args, Debug)]
struct RecordKey {
    /// Hash key (instead of the positional KEY).
    #[arg(long)]
    hash_key: Option<String>,
    /// Sort key (with `--hash-key`; default empty).
    #[arg(long, requires = "hash_key")]
    sort_key: Option<String>,
}

/// Most records a table-wide `scan` collects before sorting.
const MAX_ADMIN_SCAN_RECORDS: usize = 1_000_000;

/// The `(hash_key, sort_key)` a data command names and its remaining positional arguments.
fn record_address(
    key: RecordKey,
    mut args: Vec<String>,
    rest: usize,
) -> Res<(Vec<u8>, Vec<u8>, Vec<String>)> {
    match key.hash_key {
        Some(h) => {
            if args.len() != rest {
                return Err(format!(
                    "with --hash-key expected {rest} positional argument(s), got {}",
                    args.len()
                ));
            }
            Ok((
                h.into_bytes(),
                key.sort_key.unwrap_or_default().into_bytes(),
                args,
            ))
        }
        None => {
            if args.len() != rest + 1 {
                return Err(format!(
                    "expected KEY and {rest} more positional argument(s) (or --hash-key), got {}",
                    args.len()
                ));
            }
            let k = args.remove(0);
            Ok((k.into_bytes(), Vec::new(), args))
        }
    }
}

fn print_row(key: &[u8], value: &[u8]) -> Res<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(key)
        .and_then(|()| out.write_all(b"\t"))
        .and_then(|()| out.write_all(value))
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| format!("stdout: {e}"))
}

async fn data_command(client: &Client, cmd: Cmd) -> Res<()> {
    use siltdb_server::pegasus::{ScanRange, Ttl};
    let err = |e: siltdb_client::Error| e.to_string();
    match cmd {
        Cmd::Put {
            table,
            key,
            ttl,
            args,
        } => {
            let (h, s, rest) = record_address(key, args, 1)?;
            let ttl = match ttl {
                None => Ttl::TableDefault,
                Some(0) => Ttl::Never,
                Some(secs) => Ttl::After(Duration::from_secs(secs)),
            };
            let pg = client.pegasus(&table);
            pg.set(&h, &s, rest[0].as_bytes(), ttl).await.map_err(err)
        }
        Cmd::Get { table, key, args } => {
            let (h, s, _) = record_address(key, args, 0)?;
            match client.pegasus(&table).get(&h, &s).await.map_err(err)? {
                Some(v) => {
                    use std::io::Write;
                    let mut out = std::io::stdout().lock();
                    out.write_all(&v)
                        .and_then(|()| out.write_all(b"\n"))
                        .map_err(|e| format!("stdout: {e}"))
                }
                None => Err("not found".into()),
            }
        }
        Cmd::Del { table, key, args } => {
            let (h, s, _) = record_address(key, args, 0)?;
            client.pegasus(&table).del(&h, &s).await.map_err(err)
        }
        Cmd::Scan {
            table,
            hash_key,
            from,
            to,
            limit,
        } => {
            let limit = limit.unwrap_or(usize::MAX);
            let pg = client.pegasus(&table);
            if let Some(h) = hash_key {
                let range = ScanRange {
                    start: from.unwrap_or_default().into_bytes(),
                    stop: to.map(String::into_bytes),
                    start_inclusive: true,
                    stop_inclusive: false,
                    limit: u32::try_from(limit).unwrap_or(0),
                    reverse: false,
                };
                for r in pg.scan(h.as_bytes(), range).await.map_err(err)? {
                    print_row(&r.sort_key, &r.value)?;
                }
                return Ok(());
            }
            let (from, to) = (from.map(String::into_bytes), to.map(String::into_bytes));
            let mut rows = Vec::new();
            for r in pg.scan_all(MAX_ADMIN_SCAN_RECORDS).await.map_err(err)? {
                let in_range = r.sort_key.is_empty()
                    && from.as_ref().is_none_or(|f| &r.hash_key >= f)
                    && to.as_ref().is_none_or(|t| &r.hash_key < t);
                if in_range {
                    rows.push((r.hash_key, r.value));
                }
            }
            rows.sort();
            for (k, v) in rows.into_iter().take(limit) {
                print_row(&k, &v)?;
            }
            Ok(())
        }
        _ => Err("not a data command".into()),
    }
}

fn parse_node(s: &str) -> Res<NodeInfo> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("--node {s:?}: expected id=host:port"))?;
    let id = id
        .parse()
        .map_err(|_| format!("--node {s:?}: bad node id"))?;
    Ok(NodeInfo {
        id,
        addr: addr.to_string(),
    })
}

/// Bound on one drain or add-node request through the meta service (many moves).
const MEMBERSHIP_RPC_MS: u64 = 30 * 60 * 1000;

/// The node id of `id` or `id=host:port`.
fn parse_id(s: &str) -> Res<u64> {
    let id = s.split('=').next().unwrap_or(s);
    id.parse().map_err(|_| format!("{s:?}: bad node id"))
}

async fn meta_call(client: &Client, req: MetaRequest, timeout_ms: u64) -> Res<ClientResponse> {
    match client.meta(req, Duration::from_millis(timeout_ms)).await {
        Ok(ClientResponse::Error(e)) => Err(e.to_string()),
        Ok(r) => Ok(r),
        Err(e) => Err(e.to_string()),
    }
}

async fn meta_tables(client: &Client, req: MetaRequest, timeout_ms: u64) -> Res<Vec<TableLayout>> {
    match meta_call(client, req, timeout_ms).await? {
        ClientResponse::Tables(t) => Ok(t),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Res<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

async fn tables(client: &Client, addr: &str) -> Res<Vec<TableLayout>> {
    match client.call(addr, &ClientRequest::ListTables).await {
        Ok(ClientResponse::Tables(t)) => Ok(t),
        Ok(other) => Err(format!("{addr}: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Stats of every node of `layouts` (None = down).
async fn all_stats(
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

fn parse_fail_mode(s: &str) -> Res<FailMode> {
    match s.to_ascii_lowercase().as_str() {
        "slow" => Ok(FailMode::Slow),
        "skip" => Ok(FailMode::Skip),
        _ => Err(format!("--fail-mode {s:?}: expected slow or skip")),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Prints the duplications of `table` (each partition as its primary sees it).
async fn query_dup(client: &Client, table: &str, json: bool) -> Res<()> {
    let layout = client.layout(table).await.map_err(|e| e.to_string())?;
    let report = client
        .query_duplication(table)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        let v = serde_json::json!({"replicas": report.replicas, "unreachable": report.unreachable});
        return print_json(&v);
    }
    for (id, why) in &report.unreachable {
        println!("node {id} unreachable: {why}");
    }
    let ids = report.ids();
    if ids.is_empty() {
        println!("no duplication of {table}");
    }
    for id in ids {
        let remote = report
            .replicas
            .iter()
            .find(|r| r.dup_id == id)
            .map(|r| (r.remote.clone(), r.fail_mode));
        let caught_up = report.caught_up(id, layout.partition_count);
        if let Some((remote, mode)) = remote {
            println!("duplication {id} -> {remote} fail_mode={mode:?} caught_up={caught_up}");
        }
        for (p, prim) in report.primaries(id, layout.partition_count) {
            match prim {
                None => println!("  partition {p}: no primary duplicating (election or takeover)"),
                Some(s) => println!(
                    "  partition {p}: node={} status={} confirmed={} lag={} shipped={}{}",
                    s.node,
                    s.status,
                    opt(s.confirmed_decree),
                    opt(s.lag_decrees),
                    s.shipped_mutations,
                    s.last_error
                        .as_deref()
                        .map(|e| format!(" error={e:?}"))
                        .unwrap_or_default()
                ),
            }
        }
    }
    Ok(())
}

async fn run(args: Args) -> Res<()> {
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
    match args.cmd {
        Cmd::CreateTable {
            name,
            app_id: None,
            partitions,
            replicas,
            nodes,
        } => {
            let nodes = nodes.iter().map(|n| parse_id(n)).collect::<Res<Vec<_>>>()?;
            let req = MetaRequest::CreateTable {
                name,
                partition_count: partitions,
                replica_count: replicas,
                nodes,
            };
            let t = meta_tables(&client, req, args.timeout_ms).await?;
            for l in t {
                println!(
                    "created table {} app_id={} ({} partitions) via the meta service",
                    l.name, l.app_id, l.partition_count
                );
            }
            Ok(())
        }
        Cmd::CreateTable {
            name,
            app_id: Some(app_id),
            partitions,
            replicas,
            nodes,
        } => {
            if nodes.is_empty() {
                return Err("--app-id needs the hosting nodes (--node id=host:port)".into());
            }
            let nodes = nodes
                .iter()
                .map(|n| parse_node(n))
                .collect::<Res<Vec<_>>>()?;
            let layout = TableLayout::new(name, app_id, partitions, replicas, nodes);
            client
                .create_table(&layout)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "created table {} ({} partitions)",
                layout.name, layout.partition_count
            );
            Ok(())
        }
        cmd @ (Cmd::Put { .. } | Cmd::Get { .. } | Cmd::Del { .. } | Cmd::Scan { .. }) => {
            data_command(&client, cmd).await
        }
        Cmd::Tables => {
            let t = tables(&client, &args.addr).await?;
            if args.json {
                return print_json(&t);
            }
            for l in t {
                let nodes: Vec<String> = l
                    .nodes
                    .iter()
                    .map(|n| format!("{}={}", n.id, n.addr))
                    .collect();
                println!(
                    "{} app_id={} partitions={} replicas={} epoch={} nodes={}",
                    l.name,
                    l.app_id,
                    l.partition_count,
                    l.replica_count,
                    l.epoch,
                    nodes.join(",")
                );
            }
            Ok(())
        }
        Cmd::Nodes => {
            let t = tables(&client, &args.addr).await?;
            let stats = all_stats(&client, &t).await;
            if args.json {
                let v: BTreeMap<u64, Option<NodeStats>> =
                    stats.into_iter().map(|(id, (_, s))| (id, s)).collect();
                return print_json(&v);
            }
            for (id, (addr, s)) in stats {
                match s {
                    None => println!("node {id} {addr} down"),
                    Some(s) => {
                        let leading = s.partitions.iter().filter(|p| p.leader == Some(id)).count();
                        println!(
                            "node {id} {addr} up uptime_ms={} replicas={} leading={}",
                            s.uptime_ms,
                            s.partitions.len(),
                            leading
                        );
                    }
                }
            }
            Ok(())
        }
        Cmd::Partitions { table } => {
            let t = tables(&client, &args.addr).await?;
            let layout = t
                .iter()
                .find(|l| l.name == table)
                .ok_or_else(|| format!("no table {table:?}"))?;
            let stats = all_stats(&client, std::slice::from_ref(layout)).await;
            let mut rows = Vec::new();
            for p in 0..layout.partition_count {
                let mut leader = None;
                let mut replicas = Vec::new();
                for n in layout.replicas(p) {
                    let s = stats.get(&n.id).and_then(|(_, s)| s.as_ref());
                    let ps = s.and_then(|s| {
                        s.partitions
                            .iter()
                            .find(|x| x.table == table && x.partition == p)
                    });
                    match ps {
                        Some(ps) => {
                            leader = leader.or(ps.leader);
                            replicas.push(serde_json::json!({"node": n.id, "term": ps.term,
                                "applied": ps.applied, "last_log": ps.last_log,
                                "snapshot": ps.snapshot, "purged": ps.purged}));
                        }
                        None => replicas.push(serde_json::json!({"node": n.id, "down": true})),
                    }
                }
                rows.push(
                    serde_json::json!({"partition": p, "leader": leader, "replicas": replicas}),
                );
            }
            if args.json {
                return print_json(&rows);
            }
            for r in rows {
                let reps: Vec<String> = r["replicas"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| match x.get("down") {
                                Some(_) => format!("{}:down", x["node"]),
                                None => format!("{}:applied={}", x["node"], x["applied"]),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "partition {} leader={} {}",
                    r["partition"],
                    r["leader"],
                    reps.join(" ")
                );
            }
            Ok(())
        }
        Cmd::Stats => {
            let s = client.stats(&args.addr).await.map_err(|e| e.to_string())?;
            print_json(&s)
        }
        Cmd::Checkpoint { table } => {
            match client
                .call(&args.addr, &ClientRequest::Checkpoint { table })
                .await
            {
                Ok(ClientResponse::Ok) => {
                    println!("checkpointed");
                    Ok(())
                }
                Ok(other) => Err(format!("{other:?}")),
                Err(e) => Err(e.to_string()),
            }
        }

        Cmd::InitMeta { nodes } => {
            let nodes = nodes
                .iter()
                .map(|n| parse_node(n))
                .collect::<Res<Vec<_>>>()?;
            client.init_meta(&nodes).await.map_err(|e| e.to_string())?;
            println!("meta service on {} nodes", nodes.len());
            Ok(())
        }
        Cmd::RegisterNode { node } => {
            let node = parse_node(&node)?;
            let id = node.id;
            meta_call(&client, MetaRequest::RegisterNode(node), args.timeout_ms).await?;
            println!("node {id} registered");
            Ok(())
        }
        Cmd::Catalog => {
            let c = match meta_call(&client, MetaRequest::Catalog, args.timeout_ms).await? {
                ClientResponse::Catalog(c) => c,
                other => return Err(format!("unexpected answer {other:?}")),
            };
            if args.json {
                return print_json(&c);
            }
            for n in &c.nodes {
                println!("node {} {}", n.id, n.addr);
            }
            for l in &c.tables {
                println!(
                    "table {} app_id={} partitions={} replicas={} epoch={}",
                    l.name, l.app_id, l.partition_count, l.replica_count, l.epoch
                );
            }
            for d in &c.duplications {
                println!(
                    "duplication {} of {} to {}@{}",
                    d.dup_id,
                    d.table,
                    d.remote_table,
                    d.remote_seeds.join(",")
                );
            }
            Ok(())
        }
        Cmd::RemoveNode { node, catch_up_ms } => {
            let req = MetaRequest::RemoveNode { node, catch_up_ms };
            let t = meta_tables(&client, req, MEMBERSHIP_RPC_MS).await?;
            println!(
                "node {node} removed: drained of {} tables and unregistered; stop its server",
                t.len()
            );
            Ok(())
        }
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

/// `silt-admin split`: the partition count wanted is checked against the table's newest
/// layout here (a clear error before anything changes) and again by the coordinator.
async fn split_table(
    client: &Client,
    table: &str,
    partitions: Option<u32>,
    timeout: Duration,
    json: bool,
) -> Res<()> {
    if partitions == Some(0) {
        return Err("--partitions 0: a split doubles the partition count".into());
    }
    let layout = client
        .split_table(table, partitions, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&serde_json::json!({
            "table": layout.name,
            "partitions": layout.partition_count,
            "epoch": layout.epoch,
        }));
    }
    println!("{}", layout.partition_count);
    Ok(())
}

/// A duration: seconds (`30`), or a number with `ms`, `s` or `m`.
fn parse_timeout(s: &str) -> Res<Duration> {
    let s = s.trim();
    let (digits, unit_ms) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 60_000)
    } else {
        (s, 1000)
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("timeout {s:?}: expected seconds, or a number with ms, s or m"))?;
    let ms = n
        .checked_mul(unit_ms)
        .filter(|&ms| ms > 0)
        .ok_or_else(|| format!("timeout {s:?}: must be positive and finite"))?;
    Ok(Duration::from_millis(ms))
}

/// The one place that chooses how a membership or duplication command runs: through the meta
/// service when the cluster has one (it records the change in the catalog and drives it from its
/// leader), else driven by this client against the table's nodes. An added duplication with an
/// explicit `--id` is always client-driven (the meta service picks its own ids).
async fn meta_or_client(client: &Client, cmd: Cmd, json: bool, timeout_ms: u64) -> Res<()> {
    let meta_serves = !matches!(cmd, Cmd::AddDup { id: Some(_), .. });
    if meta_serves && client.has_meta().await {
        via_meta(client, cmd, json, timeout_ms).await
    } else {
        client_driven(client, cmd, json).await
    }
}

/// A membership or duplication command served by the meta service.
async fn via_meta(client: &Client, cmd: Cmd, json: bool, timeout_ms: u64) -> Res<()> {
    match cmd {
        Cmd::MoveReplica {
            table,
            partition,
            from,
            to,
            catch_up_ms,
        } => {
            let req = MetaRequest::MoveReplica {
                table: table.clone(),
                partition,
                from,
                to: parse_id(&to)?,
                catch_up_ms,
            };
            let t = meta_tables(client, req, catch_up_ms.saturating_add(timeout_ms)).await?;
            for l in t {
                let ids: Vec<u64> = l.replicas(partition).iter().map(|n| n.id).collect();
                println!(
                    "moved {table}.{partition} from node {from} via the meta service: replicas {ids:?}, epoch {}",
                    l.epoch
                );
            }
            Ok(())
        }
        Cmd::DrainNode {
            node, catch_up_ms, ..
        } => {
            let req = MetaRequest::DrainNode { node, catch_up_ms };
            let t = meta_tables(client, req, MEMBERSHIP_RPC_MS).await?;
            println!(
                "node {node} drained of {} tables via the meta service",
                t.len()
            );
            Ok(())
        }
        Cmd::AddNode {
            node, catch_up_ms, ..
        } => {
            let id = parse_id(&node)?;
            let req = MetaRequest::AddNode {
                node: id,
                catch_up_ms,
            };
            let t = meta_tables(client, req, MEMBERSHIP_RPC_MS).await?;
            println!(
                "node {id} added to {} tables via the meta service: replicas moved onto it",
                t.len()
            );
            Ok(())
        }
        Cmd::AddDup {
            table,
            remote_seeds,
            remote_table,
            fail_mode,
            id: None,
        } => {
            let req = MetaRequest::AddDuplication {
                table: table.clone(),
                remote_seeds: remote_seeds.clone(),
                remote_table: remote_table.clone(),
                fail_mode: Some(parse_fail_mode(&fail_mode)?),
            };
            let id = match meta_call(client, req, MEMBERSHIP_RPC_MS).await? {
                ClientResponse::Written { decree } => decree,
                other => return Err(format!("unexpected answer {other:?}")),
            };
            if json {
                return print_json(&serde_json::json!({ "id": id }));
            }
            println!(
                "added duplication {id} of {table} to {remote_table}@{} via the meta service",
                remote_seeds.join(",")
            );
            Ok(())
        }
        Cmd::RemoveDup { table, id } => {
            let req = MetaRequest::RemoveDuplication {
                table: table.clone(),
                dup_id: id,
            };
            match meta_call(client, req, MEMBERSHIP_RPC_MS).await? {
                ClientResponse::DuplicationRemoved { replicas } => {
                    println!("removed duplication {id} of {table} ({replicas} replicas) via the meta service");
                    Ok(())
                }
                other => Err(format!("unexpected answer {other:?}")),
            }
        }
        other => client_driven(client, other, json).await,
    }
}

/// A membership or duplication command driven by this client (no meta service).
async fn client_driven(client: &Client, cmd: Cmd, json: bool) -> Res<()> {
    match cmd {
        Cmd::MoveReplica {
            table,
            partition,
            from,
            to,
            catch_up_ms,
        } => {
            let to = parse_node(&to)?;
            let out = client
                .move_replica(
                    &table,
                    partition,
                    from,
                    &to,
                    Duration::from_millis(catch_up_ms),
                )
                .await
                .map_err(|e| e.to_string())?;
            let ids: Vec<u64> = out
                .layout
                .replicas(partition)
                .iter()
                .map(|n| n.id)
                .collect();
            println!(
                "moved {table}.{partition} from node {from} to node {}: replicas {ids:?}, epoch {}{}",
                to.id,
                out.layout.epoch,
                if out.resumed { " (resumed)" } else { "" }
            );
            Ok(())
        }
        Cmd::DrainNode {
            table,
            node,
            to,
            catch_up_ms,
        } => {
            let table = table.ok_or("--table is needed without a meta service")?;
            let layout = client
                .newest_layout(&table)
                .await
                .map_err(|e| e.to_string())?;
            let mut targets = layout.nodes.clone();
            for t in &to {
                targets.push(parse_node(t)?);
            }
            let moves = client
                .drain_node(&table, node, &targets, Duration::from_millis(catch_up_ms))
                .await
                .map_err(|e| e.to_string())?;
            println!("node {node} drained of {table}: {moves} replicas moved");
            Ok(())
        }
        Cmd::AddNode {
            table,
            node,
            catch_up_ms,
        } => {
            let table = table.ok_or("--table is needed without a meta service")?;
            let node = parse_node(&node)?;
            let moves = client
                .rebalance_onto(&table, &node, Duration::from_millis(catch_up_ms))
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "node {} added to {table}: {moves} replicas moved onto it",
                node.id
            );
            Ok(())
        }
        Cmd::AddDup {
            table,
            remote_seeds,
            remote_table,
            fail_mode,
            id,
        } => {
            let mode = parse_fail_mode(&fail_mode)?;
            let id = client
                .add_duplication(&table, &remote_seeds, &remote_table, Some(mode), id)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&serde_json::json!({ "id": id }));
            }
            println!(
                "added duplication {id} of {table} to {remote_table}@{}",
                remote_seeds.join(",")
            );
            Ok(())
        }
        Cmd::RemoveDup { table, id } => {
            let n = client
                .remove_duplication(&table, id)
                .await
                .map_err(|e| e.to_string())?;
            println!("removed duplication {id} of {table} ({n} replicas)");
            Ok(())
        }
        other => Err(format!(
            "not a membership or duplication command: {other:?}"
        )),
    }
}

fn print_report(report: &BulkLoadReport, json: bool) -> Res<()> {
    if json {
        return print_json(report);
    }
    print!("{}", report.to_text());
    Ok(())
}

/// Exit status of a finished load: failure unless it succeeded.
fn finished(report: &BulkLoadReport) -> Res<()> {
    if report.status == BulkLoadStatus::Succeed {
        return Ok(());
    }
    Err(format!(
        "bulk load of table {} ended {}: {}",
        report.table,
        report.status,
        report.error.as_deref().unwrap_or("no reason reported")
    ))
}

async fn start_bulk_load(
    client: &Client,
    table: &str,
    dir: &std::path::Path,
    wait: Option<Duration>,
    json: bool,
) -> Res<()> {
    let dir = std::path::absolute(dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;
    let dir_text = dir
        .to_str()
        .ok_or_else(|| format!("--dir {} is not UTF-8", dir.display()))?;
    let mut report = client
        .start_bulk_load(table, dir_text)
        .await
        .map_err(|e| e.to_string())?;
    let Some(wait) = wait else {
        print_report(&report, json)?;
        return if report.is_finished() {
            finished(&report)
        } else {
            Ok(())
        };
    };
    let deadline = std::time::Instant::now() + wait;
    while !report.is_finished() {
        if std::time::Instant::now() >= deadline {
            print_report(&report, json)?;
            return Err(format!(
                "bulk load of table {table} not finished within {wait:?} (still {}); it goes \
                 on: check bulk-load-status",
                report.status
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        report = client
            .query_bulk_load(table)
            .await
            .map_err(|e| e.to_string())?;
    }
    print_report(&report, json)?;
    finished(&report)
}

/// `set-env`, `get-env`, `del-env` (through the meta service when the cluster has one).
async fn env_command(client: &Client, cmd: Cmd, json: bool) -> Res<()> {
    let err = |e: siltdb_client::Error| e.to_string();
    let changed = match cmd {
        Cmd::SetEnv { table, key, value } => client.set_env(&table, &key, &value).await,
        Cmd::DelEnv { table, key } => client.del_env(&table, &key).await,
        Cmd::GetEnv { table } => {
            let envs = client.envs(&table).await.map_err(err)?;
            if json {
                return print_json(&envs);
            }
            for (k, v) in envs {
                println!("{k}={v}");
            }
            return Ok(());
        }
        other => return Err(format!("not an env command: {other:?}")),
    }
    .map_err(err)?;
    if json {
        return print_json(&changed.envs);
    }
    println!(
        "table {} at layout epoch {}: {} env(s)",
        changed.name,
        changed.epoch,
        changed.envs.len()
    );
    Ok(())
}

/// `hotkeys`: every node of the table asked, reports merged per partition.
async fn hotkeys_command(
    client: &Client,
    table: &str,
    kind: Option<&str>,
    top: usize,
    json: bool,
) -> Res<()> {
    use siltdb_client::hotkeys::HotKeyKind;
    let kind = kind
        .map(HotKeyKind::parse)
        .transpose()
        .map_err(|e| e.to_string())?;
    let reports = client
        .hot_keys(table, kind, top)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        return print_json(&reports);
    }
    for r in &reports {
        for k in &r.keys {
            let head = format!("{}\t{}\t{}", r.partition, r.kind.name(), k.count);
            print_row(head.as_bytes(), &k.key)?;
        }
    }
    Ok(())
}

/// Parses the process arguments; `--version` names the allocator actually linked (seed S4).
fn parse_args() -> Args {
    let version: &'static str =
        Box::leak(siltdb_server::allocator::version_line().into_boxed_str());
    let matches = Args::command().version(version).get_matches();
    Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let args = parse_args();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("silt-admin: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("silt-admin: {e}");
            ExitCode::FAILURE
        }
    }
}
