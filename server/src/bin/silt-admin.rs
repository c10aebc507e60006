//! `silt-admin`: operator commands for a siltdb cluster — create a table, list tables, nodes
//! and partitions (who leads, how far each replica applied), node stats, checkpoint, bulk load
//! (start, status).
//! Every command is bounded by `--timeout-ms` per server; a server that does not answer is
//! reported as down, not waited for.

use clap::{Parser, Subcommand};
use siltdb_replica::bulk_load::BulkLoadStatus;
use siltdb_server::bulk_load::BulkLoadReport;
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
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Creates a table on every node of its layout.
    CreateTable {
        /// Table name.
        #[arg(long)]
        name: String,
        /// Table id (unique in the cluster).
        #[arg(long)]
        app_id: u32,
        /// Partition count.
        #[arg(long)]
        partitions: u32,
        /// Replicas per partition.
        #[arg(long, default_value_t = 3)]
        replicas: u32,
        /// A hosting node, `id=host:port` (repeat).
        #[arg(long = "node", required = true)]
        nodes: Vec<String>,
    },
    /// Lists the tables the server knows.
    Tables,
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
}

type Res<T> = Result<T, String>;

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

async fn run(args: Args) -> Res<()> {
    let mut opts = ClientOptions::new(vec![args.addr.clone()]);
    opts.rpc_timeout = Duration::from_millis(args.timeout_ms);
    opts.deadline = Duration::from_millis(args.timeout_ms.saturating_mul(4));
    let client = Client::new(opts);
    match args.cmd {
        Cmd::CreateTable {
            name,
            app_id,
            partitions,
            replicas,
            nodes,
        } => {
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
                    "{} app_id={} partitions={} replicas={} nodes={}",
                    l.name,
                    l.app_id,
                    l.partition_count,
                    l.replica_count,
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
        Cmd::StartBulkLoad {
            table,
            dir,
            wait,
            wait_timeout_s,
        } => {
            let wait = wait.then(|| Duration::from_secs(wait_timeout_s));
            start_bulk_load(&client, &table, &dir, wait, args.json).await
        }
        Cmd::BulkLoadStatus { table } => {
            let report = client
                .query_bulk_load(&table)
                .await
                .map_err(|e| e.to_string())?;
            print_report(&report, args.json)
        }
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

fn main() -> ExitCode {
    let args = Args::parse();
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
