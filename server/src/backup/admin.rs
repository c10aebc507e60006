//! The `silt-admin backup` and `silt-admin restore` commands: their flags and what they run
//! (kept here, beside the backup code, so that the binary only routes to them).
//!
//! Policy: `backup --interval D` repeats a backup every `D` (until killed, or `--count N`
//! times); `--keep N` applies retention after every successful backup (the oldest complete
//! backups beyond `N` go; incomplete ones and the newest never do). A failed backup of a
//! repeating policy is reported and the next one runs on time; the exit status is non-zero
//! when any backup failed.

use super::job::{apply_retention, run_backup};
use super::restore::{fill_table, locate, verify_backup, VerifiedBackup};
use super::target::{BackupLocation, BackupTarget};
use siltdb_client::meta::MetaRequest;
use siltdb_client::proto::{ClientRequest, ClientResponse};
use siltdb_client::{Client, NodeInfo, TableLayout};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest `--interval`.
pub const MAX_BACKUP_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);
/// Bound on creating the restored table.
pub const RESTORE_CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags of `silt-admin backup`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// The table to back up.
    #[arg(long)]
    pub table: String,
    /// The backup root: each backup is a new `backup-<unix ms>` directory in it. A directory,
    /// or `s3://bucket/optional/prefix` (configured by the standard AWS environment
    /// variables).
    #[arg(long)]
    pub to: PathBuf,
    /// Repeat a backup every interval (`500ms`, `30s`, `5m`, `1h`, `1d`; a bare number is
    /// seconds).
    #[arg(long, value_parser = parse_interval)]
    pub interval: Option<Duration>,
    /// With `--interval`: stop after this many backups (default: run until killed).
    #[arg(long, requires = "interval")]
    pub count: Option<u64>,
    /// Retention: after each backup keep only the newest N complete backups of the root.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: Option<u64>,
}

/// Flags of `silt-admin restore`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// A backup root (its newest complete backup is restored) or one backup's directory; a
    /// directory or an `s3://bucket/prefix` URL.
    #[arg(long)]
    pub from: PathBuf,
    /// The new table (must not exist).
    #[arg(long)]
    pub table: String,
    /// App id of the new table (a cluster without a meta service; default: one above the
    /// largest the server knows).
    #[arg(long)]
    pub app_id: Option<u32>,
    /// A hosting node, `id=host:port` (repeat; with the meta service `id` is enough).
    /// Default: the nodes of the tables the server knows (without a meta service), every
    /// registered node (with one).
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// Replicas per partition (default: the backed-up table's, at most the node count).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Where the backup is copied and verified before the table is created (default: the
    /// system's temporary directory); removed afterwards.
    #[arg(long)]
    pub scratch: Option<PathBuf>,
}

/// Parses an interval: a number with `ms`, `s`, `m`, `h` or `d` (none: seconds).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("interval {s:?}: expected a number and a unit (ms, s, m, h, d)"))?;
    let ms_per: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => {
            return Err(format!(
                "interval {s:?}: unknown unit {other:?} (ms, s, m, h, d)"
            ))
        }
    };
    let d = Duration::from_millis(n.saturating_mul(ms_per));
    if d.is_zero() || d > MAX_BACKUP_INTERVAL {
        return Err(format!(
            "interval {s:?}: must be above 0 and at most {} days",
            MAX_BACKUP_INTERVAL.as_secs() / 86_400
        ));
    }
    Ok(d)
}

/// One backup and its retention; prints what it did.
async fn backup_once(
    client: &Client,
    args: &BackupArgs,
    target: &Arc<dyn BackupTarget>,
    json: bool,
) -> Result<(), String> {
    let m = run_backup(client, &args.table, Arc::clone(target)).await?;
    if json {
        let s = serde_json::to_string(&m).map_err(|e| e.to_string())?;
        println!("{s}");
    } else {
        let files: usize = m.partitions.iter().map(|p| p.files.len()).sum();
        let bytes: u64 = m
            .partitions
            .iter()
            .flat_map(|p| p.files.iter())
            .map(|f| f.size_bytes)
            .sum();
        let decrees: Vec<u64> = m.partitions.iter().map(|p| p.decree).collect();
        println!(
            "backup {} of table {}: {} partitions, {files} files, {bytes} bytes, decrees {decrees:?} in {}",
            m.backup_id,
            m.table,
            m.partition_count,
            target.describe()
        );
    }
    if let Some(keep) = args.keep {
        let t = Arc::clone(target);
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        let removed = tokio::task::spawn_blocking(move || apply_retention(t.as_ref(), keep))
            .await
            .map_err(|e| format!("retention task: {e}"))??;
        for id in removed {
            if !json {
                println!("removed backup {id} (retention: keep {keep})");
            }
        }
    }
    Ok(())
}

/// `silt-admin backup`.
pub async fn backup_command(client: &Client, args: BackupArgs, json: bool) -> Result<(), String> {
    let location = BackupLocation::parse(&args.to)?;
    let target: Arc<dyn BackupTarget> = tokio::task::spawn_blocking(move || location.open())
        .await
        .map_err(|e| format!("opening the backup root: {e}"))??;
    let Some(interval) = args.interval else {
        return backup_once(client, &args, &target, json).await;
    };
    let mut failed = 0u64;
    let mut runs = 0u64;
    let mut next = Instant::now();
    loop {
        if let Err(e) = backup_once(client, &args, &target, json).await {
            eprintln!("silt-admin: backup of {} failed: {e}", args.table);
            failed += 1;
        }
        runs += 1;
        if args.count.is_some_and(|c| runs >= c) {
            break;
        }
        next += interval;
        tokio::time::sleep_until(next.max(Instant::now()).into()).await;
    }
    if failed > 0 {
        return Err(format!("{failed} of {runs} backups failed"));
    }
    Ok(())
}

/// Parses a `--node id=host:port` flag (also silt-admin's other commands).
pub fn parse_node(s: &str) -> Result<NodeInfo, String> {
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

fn parse_node_id(s: &str) -> Result<u64, String> {
    let id = s.split('=').next().unwrap_or(s);
    id.parse().map_err(|_| format!("--node {s:?}: bad node id"))
}

/// Creates the restored table: through the meta service when there is one (and no
/// `--app-id`), else directly on the nodes.
async fn create_restored_table(
    client: &Client,
    args: &RestoreArgs,
    addr: &str,
    v: &VerifiedBackup,
) -> Result<TableLayout, String> {
    let m = &v.manifest;
    if args.app_id.is_none() && client.has_meta().await {
        let nodes = args
            .nodes
            .iter()
            .map(|n| parse_node_id(n))
            .collect::<Result<Vec<_>, _>>()?;
        let req = MetaRequest::CreateTable {
            name: args.table.clone(),
            partition_count: m.partition_count,
            replica_count: args.replicas.unwrap_or(m.replica_count),
            nodes,
        };
        return match client.meta(req, RESTORE_CREATE_TIMEOUT).await {
            Ok(ClientResponse::Tables(mut t)) if !t.is_empty() => Ok(t.remove(0)),
            Ok(ClientResponse::Error(e)) => Err(e.to_string()),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        };
    }
    let known = match client.call(addr, &ClientRequest::ListTables).await {
        Ok(ClientResponse::Tables(t)) => t,
        Ok(other) => return Err(format!("{addr}: unexpected answer {other:?}")),
        Err(e) => return Err(format!("{addr}: {e}")),
    };
    let nodes: Vec<NodeInfo> = if args.nodes.is_empty() {
        let mut all: std::collections::BTreeMap<u64, NodeInfo> = Default::default();
        for n in known.iter().flat_map(|l| l.nodes.iter()) {
            all.entry(n.id).or_insert_with(|| n.clone());
        }
        all.into_values().collect()
    } else {
        args.nodes
            .iter()
            .map(|n| parse_node(n))
            .collect::<Result<_, _>>()?
    };
    if nodes.is_empty() {
        return Err(format!(
            "{addr} knows no table to take nodes from: name the hosting nodes (--node id=host:port)"
        ));
    }
    let app_id = match args.app_id {
        Some(a) => a,
        None => known
            .iter()
            .map(|l| l.app_id)
            .max()
            .unwrap_or(0)
            .saturating_add(1),
    };
    let replicas = args
        .replicas
        .unwrap_or(m.replica_count)
        .min(nodes.len() as u32);
    let layout = TableLayout::new(
        args.table.clone(),
        app_id,
        m.partition_count,
        replicas,
        nodes,
    );
    client
        .create_table(&layout)
        .await
        .map_err(|e| e.to_string())?;
    Ok(layout)
}

/// `silt-admin restore`.
pub async fn restore_command(
    client: &Client,
    addr: &str,
    args: RestoreArgs,
    json: bool,
) -> Result<(), String> {
    if client.layout(&args.table).await.is_ok() {
        return Err(format!(
            "table {} exists: restore creates a new table",
            args.table
        ));
    }
    let scratch = args.scratch.clone().unwrap_or_else(std::env::temp_dir);
    let from = args.from.clone();
    let v = tokio::task::spawn_blocking(move || {
        let (target, id) = locate(&from)?;
        verify_backup(target.as_ref(), &id, &scratch)
    })
    .await
    .map_err(|e| format!("verify task: {e}"))??;
    let records: u64 = v.records.iter().sum();
    eprintln!(
        "silt-admin: backup {} of table {} verified: {} partitions, {records} records",
        v.manifest.backup_id, v.manifest.table, v.manifest.partition_count
    );
    let layout = create_restored_table(client, &args, addr, &v).await?;
    let done = fill_table(client, &v, &layout).await.map_err(|e| {
        format!(
            "table {} was created but its restore failed, it is incomplete: {e}",
            layout.name
        )
    })?;
    let written: u64 = done.iter().map(|p| p.records).sum();
    let expired: u64 = done.iter().map(|p| p.expired).sum();
    if json {
        let r = serde_json::json!({
            "backup_id": v.manifest.backup_id,
            "source_table": v.manifest.table,
            "table": layout.name,
            "app_id": layout.app_id,
            "partitions": layout.partition_count,
            "records": written,
            "expired_skipped": expired,
            "decrees": v.manifest.partitions.iter().map(|p| p.decree).collect::<Vec<_>>(),
        });
        println!("{r}");
    } else {
        println!(
            "restored backup {} of table {} into table {} (app_id {}, {} partitions): {written} records, {expired} expired records skipped; every partition's digest matches",
            v.manifest.backup_id,
            v.manifest.table,
            layout.name,
            layout.app_id,
            layout.partition_count
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_with_units_and_bad_ones_are_refused() {
        assert_eq!(parse_interval("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_interval("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "h", "0s", "5y", "-1s", "1.5h", "9999d"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
