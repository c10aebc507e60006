//! `silt-server`: one siltdb node. Configuration from `--config <file.json>` overridden by
//! flags; logs to stderr (`tracing`); stops gracefully on SIGTERM or ctrl-c (stops accepting,
//! joins its tasks, closes every replica), exit code 0 after a clean shutdown.

/// The one allocator of this process (seed S4): mimalloc, compiled in statically and pinned
/// in the workspace, like every other binary of the project.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use siltdb_server::{Server, ServerConfig};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "silt-server",
    about = "siltdb replica server",
    args_override_self = true
)]
struct Args {
    /// JSON config file (flags override its values).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Stable node id (>= 1).
    #[arg(long)]
    node_id: Option<u64>,
    /// Listen address, e.g. 127.0.0.1:7100 (port 0 picks one).
    #[arg(long)]
    listen: Option<String>,
    /// Address advertised to peers and clients (default: the bound address).
    #[arg(long)]
    advertise: Option<String>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Raft heartbeat interval in ms.
    #[arg(long)]
    heartbeat_ms: Option<u64>,
    /// Smallest Raft election timeout in ms.
    #[arg(long)]
    election_min_ms: Option<u64>,
    /// Largest Raft election timeout in ms.
    #[arg(long)]
    election_max_ms: Option<u64>,
    /// Bound on a client request inside the server, in ms.
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Period of every replica's checkpoint task in ms (0 = off).
    #[arg(long)]
    checkpoint_interval_ms: Option<u64>,
    /// Entries since a replica's last checkpoint before its task checkpoints.
    #[arg(long)]
    checkpoint_decrees_min: Option<u64>,
    /// Engine memtable size per replica, bytes.
    #[arg(long)]
    memtable_size_bytes: Option<usize>,
    /// The node's one block cache, shared by every replica (e.g. 256MiB, 1GiB).
    #[arg(long, value_parser = siltdb_server::config::parse_size)]
    block_cache_size: Option<u64>,
    /// Budget for memtable bytes across every replica of the node (e.g. 512MiB; 0 = none).
    #[arg(long, value_parser = siltdb_server::config::parse_size)]
    write_buffer_size: Option<u64>,
    /// Background compaction threads shared by every replica (plus one flush thread).
    #[arg(long)]
    background_jobs: Option<usize>,
    /// On the meta service's leader: how long a registered node may stay unreachable before
    /// its replicas are moved onto live nodes (e.g. 30s, 500ms; a bare number is ms; 0 = never).
    #[arg(long, value_parser = siltdb_server::config::parse_duration_ms)]
    node_failure_grace: Option<u64>,
    /// Serve Prometheus metrics (GET /metrics) and GET /healthz on this address.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long)]
    log_level: Option<String>,
    /// Serve the fault-injection requests (network partition simulation; tests only).
    #[arg(long)]
    allow_fault_injection: bool,
    /// Token file: one secret (admin), or lines `<role> <secret>` (admin, read-write,
    /// read-only). Without it the server is unauthenticated.
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
    /// Bulk-load sources must lie under this directory (symlinks resolved).
    #[arg(long)]
    bulk_load_root: Option<PathBuf>,
    /// PEM certificate chain to present: with --tls-key, every connection is TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM certificates this node's connections to its peers trust (default: --tls-cert).
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Serve `--redis-table` over the Redis protocol (RESP2/RESP3) on this address.
    #[arg(long, requires = "redis_table")]
    redis_listen: Option<String>,
    /// The table the Redis endpoint serves.
    #[arg(long, requires = "redis_listen")]
    redis_table: Option<String>,
    /// Write the Redis endpoint's bound address to this file once listening.
    #[arg(long, requires = "redis_listen")]
    redis_addr_file: Option<PathBuf>,
    /// Async worker threads of the server's runtime (default: one per core). Blocking file
    /// work runs on a separate pool, so even one worker keeps serving while tables open.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
}

/// The Redis endpoint's settings.
struct RedisArgs {
    listen: String,
    table: String,
    addr_file: Option<PathBuf>,
}

fn redis_args(args: &Args) -> Option<RedisArgs> {
    Some(RedisArgs {
        listen: args.redis_listen.clone()?,
        table: args.redis_table.clone()?,
        addr_file: args.redis_addr_file.clone(),
    })
}

fn config(args: Args) -> siltdb_server::Result<ServerConfig> {
    let mut c = match &args.config {
        Some(p) => ServerConfig::from_file(p)?,
        None => ServerConfig::default(),
    };
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = args.$f { c.$f = v; })* };
    }
    set!(
        node_id,
        listen,
        data_dir,
        heartbeat_ms,
        election_min_ms,
        election_max_ms
    );
    set!(
        request_timeout_ms,
        checkpoint_interval_ms,
        checkpoint_decrees_min
    );
    set!(memtable_size_bytes, log_level, background_jobs);
    if let Some(v) = args.block_cache_size {
        c.block_cache_size_bytes = v;
    }
    if let Some(v) = args.write_buffer_size {
        c.write_buffer_size_bytes = v;
    }
    if args.metrics_listen.is_some() {
        c.metrics_listen = args.metrics_listen;
    }
    if let Some(v) = args.node_failure_grace {
        c.node_failure_grace_ms = v;
    }
    if args.advertise.is_some() {
        c.advertise = args.advertise;
    }
    if args.allow_fault_injection {
        c.allow_fault_injection = true;
    }
    if args.addr_file.is_some() {
        c.addr_file = args.addr_file;
    }
    if args.auth_token_file.is_some() {
        c.auth_token_file = args.auth_token_file;
    }
    if args.bulk_load_root.is_some() {
        c.bulk_load_root = args.bulk_load_root;
    }
    if args.tls_cert.is_some() {
        c.tls_cert = args.tls_cert;
        c.tls_key = args.tls_key;
    }
    if args.tls_ca.is_some() {
        c.tls_ca = args.tls_ca;
    }
    c.validate()?;
    Ok(c)
}

async fn run(c: ServerConfig, redis: Option<RedisArgs>) -> siltdb_server::Result<()> {
    let server = Server::start(c).await?;
    eprintln!("silt-server listening on {}", server.addr());
    let _redis = match redis {
        Some(r) => Some(start_redis(r, &server).await?),
        None => None,
    };
    wait_for_signal().await;
    server.shutdown().await
}

/// Binds the Redis endpoint and serves it in a task (aborted when the handle drops).
async fn start_redis(r: RedisArgs, server: &Server) -> siltdb_server::Result<AbortOnDrop> {
    use siltdb_server::{Client, ClientOptions, Error};
    let listener = tokio::net::TcpListener::bind(&r.listen)
        .await
        .map_err(|e| Error::InvalidArgument(format!("--redis-listen {}: {e}", r.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::InvalidArgument(format!("--redis-listen {}: {e}", r.listen)))?;
    if let Some(f) = &r.addr_file {
        std::fs::write(f, bound.to_string()).map_err(|e| {
            Error::InvalidArgument(format!("--redis-addr-file {}: {e}", f.display()))
        })?;
    }
    eprintln!("silt-server redis endpoint on {bound} (table {})", r.table);
    // The endpoint reaches the cluster as this node does; its own clients AUTH against the
    // same token file.
    let opts = server
        .node()
        .options()
        .credentials
        .apply(ClientOptions::new(vec![server.addr().to_string()]));
    let client = std::sync::Arc::new(Client::new(opts));
    Ok(AbortOnDrop(tokio::spawn(siltdb_server::redis::serve(
        listener,
        client,
        r.table,
        server.keyring().cloned(),
    ))))
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::error!(error = %e, "ctrl-c handler failed");
            }
            tracing::info!("ctrl-c");
        }
    }
}

/// Structured logs on stderr. openraft reports every election and replication step at INFO
/// for each of the many Rafts of a node: it logs at WARN unless the level is DEBUG or TRACE.
fn init_logging(level: tracing::Level) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let raft_level = if level >= tracing::Level::DEBUG {
        level
    } else {
        tracing::Level::WARN.min(level)
    };
    let targets = Targets::new()
        .with_default(level)
        .with_target("openraft", raft_level);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .finish()
        .with(targets)
        .init();
}

fn main() -> ExitCode {
    // `--version` names the allocator actually linked (seed S4).
    let args: Args = siltdb_server::allocator::parse_args();
    let redis = redis_args(&args);
    let workers = args.worker_threads;
    let c = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("silt-server: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(c.level().unwrap_or(tracing::Level::INFO));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("silt-server");
    if let Some(n) = workers {
        builder.worker_threads(usize::from(n));
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("silt-server: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(c, redis)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "silt-server failed");
            eprintln!("silt-server: {e}");
            ExitCode::FAILURE
        }
    }
}
