//! The command line of `silt-admin`: global flags ([`Args`]) and every command ([`Cmd`]) with
//! its flags. A contract: scripts and tests use these exact names.

use crate::Res;
use clap::{Parser, Subcommand};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "silt-admin", about = "siltdb cluster operator commands")]
pub(crate) struct Args {
    /// A server address to ask (`host:port`).
    #[arg(long, global = true, default_value = "127.0.0.1:7100")]
    pub(crate) addr: String,
    /// Bound on each request, in ms.
    #[arg(long, global = true, default_value_t = 5000)]
    pub(crate) timeout_ms: u64,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// File holding the secret presented to the server (default: `$SILT_TOKEN_FILE`).
    #[arg(long, global = true)]
    pub(crate) token_file: Option<std::path::PathBuf>,
    /// Speak TLS, trusting the certificates of this PEM file (the servers' --tls-ca).
    #[arg(long, global = true)]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
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

/// The environment variable naming the token file when `--token-file` is absent.
pub(crate) const TOKEN_FILE_ENV: &str = "SILT_TOKEN_FILE";

/// The `--hash-key`/`--sort-key` form of a record address.
#[derive(clap::Args, Debug)]
pub(crate) struct RecordKey {
    /// Hash key (instead of the positional KEY).
    #[arg(long)]
    pub(crate) hash_key: Option<String>,
    /// Sort key (with `--hash-key`; default empty).
    #[arg(long, requires = "hash_key")]
    pub(crate) sort_key: Option<String>,
}

/// A duration: seconds (`30`), or a number with `ms`, `s` or `m`.
pub(crate) fn parse_timeout(s: &str) -> Res<Duration> {
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
