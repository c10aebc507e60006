//! Bulk load on the cluster: loading the SST files `sst-ingest build --partitions N` wrote into
//! every partition of a table whose replicas live on several nodes.
//!
//! Layer: service (on top of [`crate::node`]; the reports and steps on the wire are in
//! `siltdb_client::bulk_load`).
//!
//! ## Roles
//! * **Coordinator**: the table's first node ([`coordinator`]) runs the replica crate's
//!   [`BulkLoadController`] for the table on one plain thread it owns. Each partition's driver
//!   ([`PartitionBulkLoad`]) downloads `<source>/<partition>/` through a
//!   [`LocalDirProvider`] into `<data dir>/bulk_load/<table>/<partition>/bulk_load/`, then
//!   ingests through a [`ClusterTarget`]. A second `StartBulkLoad` of a table whose load is
//!   running is refused.
//! * **Hosting nodes** answer [`ReplicaBulkOp`]s about their local replica of one partition:
//!   its ballot, leader and applied decree; proposing the ingest control mutation (only on the
//!   leader, through `Replica::write_control`: fenced by ballot, never throttled); checkpoint
//!   and log purge.
//!
//! ## Ingestion
//! [`ClusterTarget`] is the network counterpart of
//! [`siltdb_replica::bulk_load::replica_target::ReplicaGroupTarget`]: it asks the partition's
//! leader to propose the ingest mutation (built by
//! [`siltdb_replica::bulk_load::replica_target::ingest_mutation`]), waits until every hosting
//! node reports the decree applied (every replica stages its own copy of the files and ingests
//! it when the entry applies), then asks every hosting node to checkpoint and purge its log, so
//! that a replica that falls behind later learns the data from a checkpoint, never by replaying
//! the ingest entry (whose files are gone once the load ends). User writes keep flowing during
//! the ingestion: they are ordered in the log around the ingest entry and wait for its apply;
//! the ingestion itself passes neither the user-write gate nor throttling (seed S3), so the
//! two can never wait on each other.
//!
//! ## File access
//! The ingest command names the coordinator's download directory; every replica copies the
//! files from there. That works because the nodes of this deployment share one file system
//! (one machine, or a shared mount). A deployment across machines needs a remote provider
//! (object store or HTTP, fetched by each hosting node) instead of [`LocalDirProvider`].
//!
//! ## Restarts
//! The per-partition states persist in the coordinator's `bulk_load/<table>/<p>/`, the load
//! itself in `bulk_load/<table>/load.json` (source, and the outcome once finished). A
//! coordinator that restarts while a load runs does not resume it: it cancels the unfinished
//! partitions (their downloads are removed, except for partitions that were ingesting: a
//! replica may still have to apply their ingest entry from those files, so they stay until the
//! next start), and reports the load FAILED with the reason and every partition's last status;
//! an operator starts it again (ingestion is atomic per partition, so a partition is either
//! wholly loaded or not at all). A partition whose ingestion failed after its entry may have
//! been proposed (not applied by every replica in time) keeps its files the same way: a
//! replica applying the entry later must find them, or it would diverge from the others. A new start first waits (at most [`MAX_CATCH_UP_WAIT`]) until
//! every replica of such a kept partition caught up with its leader, then clears it. A graceful
//! shutdown stops the coordinator thread after its current round (joined within a bound; a
//! thread still inside an ingestion round stops calling out and is left to the process exit),
//! and the load is reported FAILED (interrupted) the same way.

use crate::error::ServerError;
use crate::node::Node;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
pub use siltdb_client::bulk_load::{
    coordinator, BulkLoadReport, IngestControl, IngestMutation, PartitionReport, ReplicaBulkOp,
    ReplicaBulkReply,
};
use siltdb_client::layout::{NodeInfo, TableLayout};
use siltdb_client::proto::ClientResponse;
use siltdb_client::{Client, ClientOptions};
use siltdb_replica::bulk_load::download::DownloadManager;
use siltdb_replica::bulk_load::metadata::METADATA_FILE_NAME;
use siltdb_replica::bulk_load::metrics::BulkLoadMetrics;
use siltdb_replica::bulk_load::partition::BULK_LOAD_DIR_NAME;
use siltdb_replica::bulk_load::provider::LocalDirProvider;
use siltdb_replica::bulk_load::replica_target::ingest_mutation;
use siltdb_replica::bulk_load::state::PartitionState;
use siltdb_replica::bulk_load::target::{IngestRequest, IngestTarget, IngestionGate, TargetError};
use siltdb_replica::bulk_load::{
    BulkLoadController, BulkLoadStatus, ControllerConfig, PartitionBulkLoad, PartitionConfig,
};
use siltdb_replica::mutation::{ControlOp, IngestCommand};
use siltdb_replica::types::Ballot;
use siltdb_replica::Mutation;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Directory of the coordinator's bulk-load state, inside the data directory.
pub const BULK_LOAD_DIR: &str = "bulk_load";
/// The persisted description of a table's load, in `bulk_load/<table>/`.
pub const LOAD_FILE: &str = "load.json";
/// Partitions of one node downloading at once; the others wait for a slot.
pub const DOWNLOAD_SLOTS: usize = 4;
/// Pause between the coordinator's rounds over the partitions.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Bound on a whole load; past it the load fails and its partitions are cancelled.
pub const MAX_LOAD_TIME: Duration = Duration::from_secs(3600);
/// Bound on one request of the coordinator to a hosting node.
pub const REPLICA_RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on every hosting node's checkpoint after the ingestion, retries included.
pub const MAX_CHECKPOINT_WAIT: Duration = Duration::from_secs(60);
/// Bound on waiting, before a new load, for the replicas of partitions an interrupted load
/// left unfinished to catch up with their leader.
pub const MAX_CATCH_UP_WAIT: Duration = Duration::from_secs(60);
/// Pause between polls of the hosting nodes' applied decrees.
const APPLIED_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Bound on the coordinator thread's first round, which a start request waits for.
const MAX_START_WAIT: Duration = Duration::from_secs(3);
/// Bound on joining the coordinator threads at shutdown.
const MAX_SHUTDOWN_JOIN_WAIT: Duration = Duration::from_secs(15);

/// How a finished load ended, as persisted in [`LOAD_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Outcome {
    status: BulkLoadStatus,
    error: Option<String>,
}

/// [`LOAD_FILE`]: what a coordinator restart needs to report the load.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoadRecord {
    table: String,
    app_id: u32,
    source_dir: String,
    finished: Option<Outcome>,
}

impl LoadRecord {
    fn save(&self, dir: &Path) -> Result<(), String> {
        let path = dir.join(LOAD_FILE);
        let text = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        siltdb::fs::write_atomic(&siltdb::fs::StdFs, &path, &text).map_err(|e| e.to_string())
    }

    fn load(dir: &Path) -> Result<LoadRecord, String> {
        let path = dir.join(LOAD_FILE);
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// What a load's thread and its queries share.
struct LoadShared {
    dir: PathBuf,
    record: Mutex<LoadRecord>,
    controller: BulkLoadController,
    /// Each partition's engine side, by index (the drivers hold them too).
    targets: Vec<Arc<ClusterTarget>>,
    /// Set at shutdown: the thread ends after its round, the targets stop calling out.
    stop: Arc<AtomicBool>,
}

impl LoadShared {
    fn finish(&self, outcome: Outcome) {
        let mut record = self.record.lock();
        record.finished = Some(outcome);
        if let Err(e) = record.save(&self.dir) {
            tracing::error!(table = %record.table, error = %e, "persisting the bulk-load outcome");
        }
    }

    /// Force-cancels every partition that has not reached a terminal status (downloads are
    /// joined and removed).
    fn cancel_unfinished(&self) {
        for p in self.controller.partitions() {
            if !p.status().is_terminal() {
                if let Err(e) = p.force_cancel() {
                    tracing::warn!(gpid = %p.gpid(), error = %e, "cancelling a partition's load");
                }
            }
        }
    }
}

/// One table's load on its coordinator.
struct TableLoad {
    shared: Arc<LoadShared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TableLoad {
    fn running(&self) -> bool {
        self.thread
            .lock()
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    fn report(&self, coordinator: u64) -> BulkLoadReport {
        let running = self.running();
        let progress = self.shared.controller.query();
        let record = self.shared.record.lock().clone();
        let (status, error, partitions) = match progress {
            Ok(p) => (p.status, p.error, p.partitions),
            Err(e) => (BulkLoadStatus::Failed, Some(e.to_string()), Vec::new()),
        };
        let (status, error) = match (&record.finished, running) {
            (Some(o), false) => (o.status, o.error.clone()),
            _ => (status, error),
        };
        BulkLoadReport {
            table: record.table,
            source_dir: record.source_dir,
            coordinator,
            status,
            error,
            running,
            partitions: partitions
                .into_iter()
                .map(|p| PartitionReport {
                    partition: p.gpid.partition_index,
                    status: p.status,
                    downloaded_bytes: p.downloaded_bytes,
                    total_bytes: p.total_bytes,
                    error: p.error,
                })
                .collect(),
        }
    }
}

/// The bulk loads this node coordinates.
pub struct BulkLoads {
    root: PathBuf,
    /// Presented by the coordinator's client to the hosting nodes.
    credentials: crate::auth::Credentials,
    /// Sources must lie under it ([`crate::confine`]).
    source_root: Option<PathBuf>,
    downloads: Arc<DownloadManager>,
    loads: Mutex<HashMap<String, Arc<TableLoad>>>,
    /// Serializes starts (the check for a running load and its replacement).
    start_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for BulkLoads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tables: Vec<String> = self.loads.lock().keys().cloned().collect();
        f.debug_struct("BulkLoads")
            .field("root", &self.root)
            .field("tables", &tables)
            .finish()
    }
}

impl BulkLoads {
    /// No loads yet; state goes under `data_dir/bulk_load/`; the coordinator presents `credentials`
    /// to the hosting nodes and reads sources under `source_root` only ([`crate::confine`]).
    pub fn new(
        data_dir: &Path,
        credentials: crate::auth::Credentials,
        source_root: Option<PathBuf>,
    ) -> Self {
        BulkLoads {
            root: data_dir.join(BULK_LOAD_DIR),
            credentials,
            source_root,
            downloads: DownloadManager::new(DOWNLOAD_SLOTS, Arc::new(BulkLoadMetrics::default())),
            loads: Mutex::default(),
            start_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Reopens the loads persisted under the data directory (after the node's tables are
    /// open). A load that was still running is cancelled and reported FAILED (module docs).
    pub fn recover(&self, node: &Node) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.join(LOAD_FILE).exists() {
                continue;
            }
            match self.recover_one(node, &dir) {
                Ok(()) => {}
                Err(e) => tracing::error!(dir = %dir.display(), error = %e, "bulk load unreadable"),
            }
        }
    }

    fn recover_one(&self, node: &Node, dir: &Path) -> Result<(), String> {
        let record = LoadRecord::load(dir)?;
        let layout = node.table(&record.table).map_err(|e| e.to_string())?;
        if layout.app_id != record.app_id {
            return Err(format!(
                "the load was for app id {}, table {} is app id {}",
                record.app_id, record.table, layout.app_id
            ));
        }
        // Read before opening the drivers, which roll INGESTING back to DOWNLOADING.
        let persisted: Vec<Option<BulkLoadStatus>> = (0..layout.partition_count)
            .map(|p| {
                PartitionState::load(&dir.join(p.to_string()))
                    .ok()
                    .map(|s| s.status)
            })
            .collect();
        let shared = self.open_load(&layout, dir, record)?;
        if shared.record.lock().finished.is_none() {
            let mut statuses = Vec::new();
            let mut kept = Vec::new();
            for (p, driver) in shared.controller.partitions().iter().enumerate() {
                let before = persisted.get(p).copied().flatten();
                let shown = before.map_or_else(|| "?".to_string(), |s| s.to_string());
                statuses.push(format!("{p}={shown}"));
                if before == Some(BulkLoadStatus::Ingesting) {
                    // Its ingest entry may be committed but not yet applied on every replica,
                    // which copies the files from here: keep them until the next start.
                    kept.push(p.to_string());
                } else if !driver.status().is_terminal() {
                    if let Err(e) = driver.force_cancel() {
                        tracing::warn!(gpid = %driver.gpid(), error = %e, "cancelling a partition");
                    }
                }
            }
            let kept = match kept.is_empty() {
                true => String::new(),
                false => format!(
                    "; the files of partition(s) {} (ingesting then) are kept until the next \
                     start, for replicas still applying their ingestion",
                    kept.join(",")
                ),
            };
            let reason = format!(
                "interrupted: coordinator node {} restarted during the load (partition \
                 statuses then: {}); unfinished partitions were cancelled{kept}; start the \
                 load again",
                node.options().node_id,
                statuses.join(" ")
            );
            tracing::warn!(table = %layout.name, %reason, "bulk load interrupted");
            shared.finish(Outcome {
                status: BulkLoadStatus::Failed,
                error: Some(reason),
            });
        }
        let load = Arc::new(TableLoad {
            shared,
            thread: Mutex::new(None),
        });
        self.loads.lock().insert(layout.name.clone(), load);
        Ok(())
    }

    fn open_load(
        &self,
        layout: &TableLayout,
        dir: &Path,
        record: LoadRecord,
    ) -> Result<Arc<LoadShared>, String> {
        open_load(&self.credentials, &self.downloads, layout, dir, record)
    }

    /// Starts a load of `table` from `source_dir` on this node (its coordinator) and answers
    /// with the status after the first round over the partitions.
    pub async fn start(
        &self,
        node: &Node,
        table: &str,
        source_dir: &str,
    ) -> Result<ClientResponse, ServerError> {
        let layout = node.table(table)?;
        let me = node.options().node_id;
        check_coordinator(&layout, me)?;
        // Confinement walks the source and the checks read it: off the async workers.
        let (root, asked, checked) = (
            self.source_root.clone(),
            source_dir.to_string(),
            layout.clone(),
        );
        let source_dir = blocking(move || {
            let confined = crate::confine::confine_source(root.as_deref(), Path::new(&asked))
                .map_err(ServerError::InvalidArgument)?;
            let source = confined.to_str().ok_or_else(|| {
                ServerError::InvalidArgument(format!("source directory {asked} is not UTF-8"))
            })?;
            check_source(&checked, Path::new(source))?;
            Ok(source.to_string())
        })
        .await?;
        let source_dir = source_dir.as_str();
        let serial = self.start_lock.lock().await;
        if let Some(existing) = self.loads.lock().get(table) {
            if existing.running() {
                return Err(ServerError::AlreadyExists(format!(
                    "a bulk load of table {table} is already running (status {}); query it \
                     with bulk-load-status",
                    existing.report(me).status
                )));
            }
        }
        let old = self.loads.lock().remove(table);
        let dir = self.root.join(table);
        let record = LoadRecord {
            table: table.to_string(),
            app_id: layout.app_id,
            source_dir: source_dir.to_string(),
            finished: None,
        };
        // The old thread's join, the directory, the record and the drivers' state files:
        // blocking work, done on the blocking pool while the start lock is held (the lock is
        // only awaited, never held by a blocked worker).
        let (credentials, downloads) = (self.credentials.clone(), Arc::clone(&self.downloads));
        let shared = blocking(move || {
            if let Some(old) = old {
                join_finished(&old);
            }
            let internal = |e: String| ServerError::Internal(e);
            siltdb::fs::create_dir_durable(&siltdb::fs::StdFs, &dir)
                .map_err(|e| internal(format!("{}: {e}", dir.display())))?;
            record.save(&dir).map_err(internal)?;
            open_load(&credentials, &downloads, &layout, &dir, record).map_err(internal)
        })
        .await?;
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("bulk-load-{table}"))
            .spawn(move || drive(&thread_shared, started_tx))
            .map_err(|e| ServerError::Internal(format!("spawning the bulk-load thread: {e}")))?;
        let load = Arc::new(TableLoad {
            shared,
            thread: Mutex::new(Some(thread)),
        });
        self.loads
            .lock()
            .insert(table.to_string(), Arc::clone(&load));
        // From here on a concurrent start finds this load running.
        drop(serial);
        tracing::info!(table, source_dir, "bulk load started");
        // The first round (every partition's metadata fetched and validated) is quick; its
        // result makes the answer useful. The load goes on regardless.
        let _ = tokio::time::timeout(MAX_START_WAIT, started_rx).await;
        Ok(ClientResponse::BulkLoad(load.report(me)))
    }

    /// The status of `table`'s load on this node (its coordinator).
    pub fn query(&self, node: &Node, table: &str) -> Result<ClientResponse, ServerError> {
        let layout = node.table(table)?;
        let me = node.options().node_id;
        check_coordinator(&layout, me)?;
        let load = self.loads.lock().get(table).cloned();
        match load {
            Some(load) => Ok(ClientResponse::BulkLoad(load.report(me))),
            None => Err(ServerError::InvalidArgument(format!(
                "no bulk load of table {table} was started"
            ))),
        }
    }

    /// Every load this node coordinates, for the metrics endpoint: (table, the load's status,
    /// each partition's status). Reads the drivers' states: call it off the async workers.
    pub(crate) fn statuses(&self, me: u64) -> Vec<(String, BulkLoadReport)> {
        let loads: Vec<(String, Arc<TableLoad>)> = self
            .loads
            .lock()
            .iter()
            .map(|(t, l)| (t.clone(), Arc::clone(l)))
            .collect();
        let mut out: Vec<_> = loads.into_iter().map(|(t, l)| (t, l.report(me))).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Stops every coordinator thread after its current round and joins it (bounded); an
    /// unfinished load is then reported FAILED (interrupted) and its partitions cancelled.
    pub async fn shutdown(&self) {
        let loads: Vec<Arc<TableLoad>> = self.loads.lock().values().cloned().collect();
        for load in &loads {
            load.shared.stop.store(true, Ordering::Release);
        }
        let deadline = Instant::now() + MAX_SHUTDOWN_JOIN_WAIT;
        for load in loads {
            while load.running() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if load.running() {
                tracing::warn!(
                    table = %load.shared.record.lock().table,
                    "bulk-load thread still in an ingestion round at shutdown; left to exit"
                );
            } else {
                join_finished(&load);
            }
        }
    }
}

/// Opens the drivers of a load of `layout` whose state lives in `dir` (reads their state
/// files: call it off the async workers).
fn open_load(
    credentials: &crate::auth::Credentials,
    downloads: &Arc<DownloadManager>,
    layout: &TableLayout,
    dir: &Path,
    record: LoadRecord,
) -> Result<Arc<LoadShared>, String> {
    let seeds = layout.nodes.iter().map(|n| n.addr.clone()).collect();
    let client = Arc::new(Client::new(credentials.apply(ClientOptions::new(seeds))));
    let runtime = tokio::runtime::Handle::current();
    let provider = Arc::new(LocalDirProvider::new(&record.source_dir));
    let mut partitions = Vec::with_capacity(layout.partition_count as usize);
    let mut targets = Vec::with_capacity(layout.partition_count as usize);
    let stop = Arc::new(AtomicBool::new(false));
    for p in 0..layout.partition_count {
        let target = Arc::new(ClusterTarget {
            table: layout.name.clone(),
            partition: p,
            replicas: layout.replicas(p),
            client: Arc::clone(&client),
            runtime: runtime.clone(),
            last_ballot: AtomicU64::new(0),
            stop: Arc::clone(&stop),
        });
        let config = PartitionConfig::new(layout.gpid(p), dir.join(p.to_string()));
        let gate = IngestionGate::new(Arc::clone(downloads.metrics()));
        targets.push(Arc::clone(&target));
        let driver = PartitionBulkLoad::open(
            config,
            provider.clone(),
            target,
            gate,
            Arc::clone(downloads),
        )
        .map_err(|e| format!("partition {p}: {e}"))?;
        partitions.push(driver);
    }
    let config = ControllerConfig {
        poll_interval: POLL_INTERVAL,
        ..ControllerConfig::default()
    };
    Ok(Arc::new(LoadShared {
        dir: dir.to_path_buf(),
        record: Mutex::new(record),
        controller: BulkLoadController::new(partitions, config),
        targets,
        stop,
    }))
}

/// Runs `f` on tokio's blocking pool (file work and joins never run on an async worker).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::Internal(format!("bulk-load task failed: {e}")))?
}

/// Joins a load's thread that has finished.
fn join_finished(load: &TableLoad) {
    let handle = load.thread.lock().take();
    if let Some(h) = handle {
        if h.join().is_err() {
            tracing::error!("a bulk-load thread panicked");
        }
    }
}

fn check_coordinator(layout: &TableLayout, me: u64) -> Result<(), ServerError> {
    let c = coordinator(layout)
        .ok_or_else(|| ServerError::Internal(format!("table {} has no nodes", layout.name)))?;
    if c.id != me {
        return Err(ServerError::InvalidArgument(format!(
            "bulk loads of table {} are coordinated by node {} at {}, not node {me}",
            layout.name, c.id, c.addr
        )));
    }
    Ok(())
}

/// Refuses, before anything starts, a source directory that is not absolute, missing, lacks
/// a partition's metadata, or was built for more partitions than the table has.
fn check_source(layout: &TableLayout, source: &Path) -> Result<(), ServerError> {
    let bad = |m: String| Err(ServerError::InvalidArgument(m));
    if !source.is_absolute() {
        return bad(format!(
            "source directory {} is not an absolute path",
            source.display()
        ));
    }
    if !source.is_dir() {
        return bad(format!(
            "source directory {} does not exist",
            source.display()
        ));
    }
    let missing: Vec<String> = (0..layout.partition_count)
        .filter(|p| {
            !source
                .join(p.to_string())
                .join(METADATA_FILE_NAME)
                .is_file()
        })
        .map(|p| p.to_string())
        .collect();
    if !missing.is_empty() {
        return bad(format!(
            "source directory {} lacks {METADATA_FILE_NAME} of partition(s) {} of table {} \
             ({} partitions; build with `sst-ingest build --partitions {}`)",
            source.display(),
            missing.join(","),
            layout.name,
            layout.partition_count,
            layout.partition_count
        ));
    }
    if source
        .join(layout.partition_count.to_string())
        .try_exists()
        .unwrap_or(false)
    {
        return bad(format!(
            "source directory {} holds partition {}, but table {} has {} partitions: it was \
             built for another partition count",
            source.display(),
            layout.partition_count,
            layout.name,
            layout.partition_count
        ));
    }
    Ok(())
}

/// The coordinator thread of one load: start, then rounds until a terminal status, a stop
/// or [`MAX_LOAD_TIME`]; a load that did not succeed has its unfinished partitions cancelled.
fn drive(shared: &LoadShared, started: tokio::sync::oneshot::Sender<()>) {
    let controller = &shared.controller;
    if let Err(reason) = clear_interrupted(shared) {
        let _ = started.send(());
        shared.finish(Outcome {
            status: BulkLoadStatus::Failed,
            error: Some(reason),
        });
        return;
    }
    let first = controller.start();
    let _ = started.send(());
    let deadline = Instant::now() + MAX_LOAD_TIME;
    let mut round = first;
    let outcome = loop {
        match round {
            Err(e) => {
                break Outcome {
                    status: BulkLoadStatus::Failed,
                    error: Some(e.to_string()),
                }
            }
            Ok(p) if p.status.is_terminal() => {
                break Outcome {
                    status: p.status,
                    error: p.error,
                }
            }
            Ok(_) => {}
        }
        if shared.stop.load(Ordering::Acquire) {
            break Outcome {
                status: BulkLoadStatus::Failed,
                error: Some(
                    "interrupted: the coordinator shut down during the load; start it again".into(),
                ),
            };
        }
        if Instant::now() >= deadline {
            break Outcome {
                status: BulkLoadStatus::Failed,
                error: Some(format!("not finished within {MAX_LOAD_TIME:?}")),
            };
        }
        std::thread::sleep(POLL_INTERVAL);
        round = controller.tick();
    };
    if outcome.status != BulkLoadStatus::Succeed {
        shared.cancel_unfinished();
    }
    tracing::info!(
        table = %shared.record.lock().table,
        status = %outcome.status,
        error = ?outcome.error,
        "bulk load finished"
    );
    shared.finish(outcome);
}

/// Partitions an interrupted load left unfinished, and partitions whose ingestion failed after
/// it may have been proposed, kept their files for replicas still applying the old ingestion:
/// once every replica of such a partition caught up with its leader (bounded by
/// [`MAX_CATCH_UP_WAIT`]), the old load is cleared so the new one starts from scratch.
fn clear_interrupted(shared: &LoadShared) -> Result<(), String> {
    let deadline = Instant::now() + MAX_CATCH_UP_WAIT;
    for (p, driver) in shared.controller.partitions().iter().enumerate() {
        if driver.status().is_terminal() && !driver.files_kept() {
            continue;
        }
        if let Some(target) = shared.targets.get(p) {
            target.wait_caught_up(deadline).map_err(|e| {
                format!(
                    "partition {p}: the files of the interrupted load are still needed: {e}; \
                     start the load again once every replica is up"
                )
            })?;
        }
        driver
            .clear()
            .map_err(|e| format!("partition {p}: clearing the interrupted load: {e}"))?;
    }
    Ok(())
}

/// A failed call to a hosting node.
struct CallError {
    retryable: bool,
    message: String,
}

/// [`IngestTarget`] for a partition whose replicas live on several nodes (module docs). Its
/// calls block on the node's runtime: it runs on the coordinator's plain threads only.
pub struct ClusterTarget {
    table: String,
    partition: u32,
    replicas: Vec<NodeInfo>,
    client: Arc<Client>,
    runtime: tokio::runtime::Handle,
    last_ballot: AtomicU64,
    /// The node is shutting down: no more calls (its runtime is about to stop).
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for ClusterTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTarget")
            .field("table", &self.table)
            .field("partition", &self.partition)
            .field("replicas", &self.replicas)
            .finish()
    }
}

/// A reachable replica's state.
#[derive(Debug, Clone, Copy)]
struct ReplicaState {
    node_id: u64,
    ballot: u64,
    leader: Option<u64>,
    applied: Option<u64>,
}

impl ClusterTarget {
    fn call(
        &self,
        addr: &str,
        op: ReplicaBulkOp,
        timeout: Duration,
    ) -> Result<ReplicaBulkReply, CallError> {
        if self.stop.load(Ordering::Acquire) {
            return Err(CallError {
                retryable: true,
                message: "the coordinator is shutting down".into(),
            });
        }
        let req = crate::proto::ClientRequest::BulkLoadReplica {
            table: self.table.clone(),
            partition: self.partition,
            op,
        };
        let answer = self
            .runtime
            .block_on(self.client.call_with_timeout(addr, &req, timeout));
        match answer {
            Ok(ClientResponse::BulkLoadReplica(r)) => Ok(r),
            Ok(ClientResponse::Error(e)) => Err(CallError {
                retryable: e.is_retryable(),
                message: format!("{addr}: {e}"),
            }),
            Ok(_) => Err(CallError {
                retryable: false,
                message: format!("{addr}: unexpected answer to a bulk-load request"),
            }),
            Err(e) => Err(CallError {
                retryable: true,
                message: format!("{addr}: {e}"),
            }),
        }
    }

    fn state(&self, node: &NodeInfo) -> Result<ReplicaState, String> {
        match self.call(&node.addr, ReplicaBulkOp::State, REPLICA_RPC_TIMEOUT) {
            Ok(ReplicaBulkReply::State {
                node_id,
                ballot,
                leader,
                applied,
            }) => Ok(ReplicaState {
                node_id,
                ballot,
                leader,
                applied,
            }),
            Ok(other) => Err(format!("node {}: unexpected {other:?}", node.id)),
            Err(e) => Err(format!("node {}: {}", node.id, e.message)),
        }
    }

    /// The states of the reachable replicas, and the errors of the others.
    fn states(&self) -> (Vec<(NodeInfo, ReplicaState)>, Vec<String>) {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for n in &self.replicas {
            match self.state(n) {
                Ok(s) => ok.push((n.clone(), s)),
                Err(e) => errors.push(e),
            }
        }
        (ok, errors)
    }

    /// The replica that believes it leads, at the highest ballot.
    fn primary(states: &[(NodeInfo, ReplicaState)]) -> Option<(NodeInfo, ReplicaState)> {
        states
            .iter()
            .filter(|(_, s)| s.leader == Some(s.node_id))
            .max_by_key(|(_, s)| s.ballot)
            .cloned()
    }

    /// Waits until every hosting replica applied what the leader had applied when asked.
    fn wait_caught_up(&self, deadline: Instant) -> Result<(), String> {
        let applied = loop {
            let (states, errors) = self.states();
            if let Some((_, s)) = Self::primary(&states) {
                break s.applied;
            }
            if Instant::now() >= deadline || self.stop.load(Ordering::Acquire) {
                return Err(format!("no primary ({})", errors.join("; ")));
            }
            std::thread::sleep(APPLIED_POLL_INTERVAL);
        };
        let Some(decree) = applied else {
            return Ok(());
        };
        for node in &self.replicas {
            loop {
                let last = match self.state(node) {
                    Ok(s) if s.applied.is_some_and(|a| a >= decree) => break,
                    Ok(s) => format!("node {} applied {:?} of {decree}", node.id, s.applied),
                    Err(e) => e,
                };
                if Instant::now() >= deadline || self.stop.load(Ordering::Acquire) {
                    return Err(format!("not every replica caught up: {last}"));
                }
                std::thread::sleep(APPLIED_POLL_INTERVAL);
            }
        }
        Ok(())
    }

    /// Waits until every hosting node applied `decree`, by `deadline`.
    fn wait_all_applied(
        &self,
        decree: u64,
        request: &IngestRequest<'_>,
    ) -> Result<(), TargetError> {
        for node in &self.replicas {
            loop {
                let last = match self.state(node) {
                    Ok(s) if s.applied.is_some_and(|a| a >= decree) => break,
                    Ok(s) => format!("node {} applied {:?}", node.id, s.applied),
                    Err(e) => e,
                };
                if request.cancel.is_cancelled() {
                    return Err(TargetError::Cancelled);
                }
                if Instant::now() >= request.deadline || self.stop.load(Ordering::Acquire) {
                    return Err(TargetError::Retryable(format!(
                        "partition {}: not every replica applied the ingestion at decree \
                         {decree} in time ({last})",
                        self.partition
                    )));
                }
                std::thread::sleep(APPLIED_POLL_INTERVAL);
            }
        }
        Ok(())
    }
}

impl IngestTarget for ClusterTarget {
    fn ballot(&self) -> Ballot {
        let (states, _) = self.states();
        let ballot = match Self::primary(&states) {
            Some((_, s)) => Some(s.ballot),
            None => states.iter().map(|(_, s)| s.ballot).max(),
        };
        match ballot {
            Some(b) => {
                self.last_ballot.store(b, Ordering::Release);
                Ballot(b)
            }
            None => Ballot(self.last_ballot.load(Ordering::Acquire)),
        }
    }

    fn ingest(&self, request: &IngestRequest<'_>) -> Result<(), TargetError> {
        let (states, errors) = self.states();
        let Some((primary, state)) = Self::primary(&states) else {
            return Err(TargetError::Retryable(format!(
                "partition {} has no primary ({})",
                self.partition,
                errors.join("; ")
            )));
        };
        if request.ballot != Ballot(state.ballot) {
            return Err(TargetError::StaleBallot {
                request: request.ballot,
                current: Ballot(state.ballot),
            });
        }
        if request.cancel.is_cancelled() {
            return Err(TargetError::Cancelled);
        }
        let mutation = ingest_wire(ingest_mutation(request)?)?;
        let remaining = request
            .deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let op = ReplicaBulkOp::Ingest {
            mutation,
            timeout_ms: u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX),
        };
        match self.call(&primary.addr, op, remaining + REPLICA_RPC_TIMEOUT) {
            Ok(ReplicaBulkReply::Ingested { decree }) => self.wait_all_applied(decree, request),
            Ok(ReplicaBulkReply::StaleBallot { current }) => Err(TargetError::StaleBallot {
                request: request.ballot,
                current: Ballot(current),
            }),
            Ok(other) => Err(TargetError::Fatal(format!(
                "node {}: unexpected {other:?}",
                primary.id
            ))),
            Err(e) if e.retryable => Err(TargetError::Retryable(format!(
                "ingest on node {}: {}",
                primary.id, e.message
            ))),
            Err(e) => Err(TargetError::Fatal(format!(
                "ingest on node {}: {}",
                primary.id, e.message
            ))),
        }
    }

    fn checkpoint(&self) -> Result<(), TargetError> {
        let deadline = Instant::now() + MAX_CHECKPOINT_WAIT;
        for node in &self.replicas {
            let mut backoff = Duration::from_millis(20);
            loop {
                let e = match self.call(&node.addr, ReplicaBulkOp::Checkpoint, MAX_CHECKPOINT_WAIT)
                {
                    Ok(ReplicaBulkReply::Checkpointed { .. }) => break,
                    Ok(other) => CallError {
                        retryable: false,
                        message: format!("unexpected {other:?}"),
                    },
                    Err(e) => e,
                };
                if !e.retryable || Instant::now() + backoff >= deadline {
                    return Err(TargetError::Fatal(format!(
                        "checkpoint of partition {} on node {}: {}",
                        self.partition, node.id, e.message
                    )));
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
        Ok(())
    }

    fn is_serving_writes(&self) -> bool {
        Self::primary(&self.states().0).is_some()
    }
}

/// An ingest command proposed through this server names the coordinator's download
/// directory of this very partition, `<data dir>/bulk_load/<table>/<partition>/bulk_load`
/// (module docs): any other directory is refused, so an operator's request cannot make the
/// replicas read files from elsewhere.
fn check_ingest_source(
    table: &str,
    partition: u32,
    cmd: &IngestCommand,
) -> Result<(), ServerError> {
    let path = Path::new(&cmd.source_dir);
    let tail: Vec<&std::ffi::OsStr> = path.iter().rev().take(4).collect();
    let p = partition.to_string();
    let expected = [BULK_LOAD_DIR_NAME, p.as_str(), table, BULK_LOAD_DIR];
    let matches =
        tail.len() == expected.len() && tail.iter().zip(expected).all(|(got, want)| *got == want);
    if !path.is_absolute() || !matches {
        return Err(ServerError::InvalidArgument(format!(
            "ingest source {} is not a bulk-load download directory of {table}.{partition}              (<data dir>/{BULK_LOAD_DIR}/{table}/{partition}/{BULK_LOAD_DIR_NAME})",
            path.display()
        )));
    }
    Ok(())
}

/// The wire form of an ingest control mutation; `Fatal` for any other control op.
fn ingest_wire(m: Mutation) -> Result<IngestMutation, TargetError> {
    let control = match m.control {
        Some(ControlOp::Ingest(c)) => Some(IngestControl::Ingest(c)),
        None => None,
        Some(other) => {
            return Err(TargetError::Fatal(format!(
                "not an ingest control operation: {other:?}"
            )))
        }
    };
    Ok(IngestMutation {
        ballot: m.ballot.map(|b| b.0),
        ops: m.ops,
        control,
    })
}

/// The mutation an [`IngestMutation`] stands for.
fn ingest_from_wire(m: IngestMutation) -> Mutation {
    Mutation {
        ballot: m.ballot.map(Ballot),
        ops: m.ops,
        control: m
            .control
            .map(|IngestControl::Ingest(c)| ControlOp::Ingest(c)),
    }
}

/// Answers a [`ReplicaBulkOp`] about this node's replica of `table`'s `partition`.
pub async fn replica_op(
    node: &Node,
    table: &str,
    partition: u32,
    op: ReplicaBulkOp,
) -> Result<ClientResponse, ServerError> {
    let (layout, r) = node.replica(table, partition)?;
    let reply = match op {
        ReplicaBulkOp::State => ReplicaBulkReply::State {
            node_id: r.id(),
            ballot: r.ballot().0,
            leader: r.leader(),
            applied: r.applied().map(|d| d.0),
        },
        ReplicaBulkOp::Ingest {
            mutation,
            timeout_ms,
        } => {
            let mutation = ingest_from_wire(mutation);
            let cmd = match (&mutation.control, mutation.ops.is_empty()) {
                (Some(ControlOp::Ingest(cmd)), true) => cmd.clone(),
                _ => {
                    return Err(ServerError::InvalidArgument(
                        "a bulk-load ingest carries exactly one ingest control operation".into(),
                    ))
                }
            };
            // Validated before it is proposed: an entry in the log is applied by every
            // replica, after every restart, so one that cannot take effect stays out.
            let current = r.ballot();
            if mutation.ballot != Some(current) {
                return Ok(ClientResponse::BulkLoadReplica(
                    ReplicaBulkReply::StaleBallot { current: current.0 },
                ));
            }
            check_ingest_source(table, partition, &cmd)?;
            blocking(move || {
                siltdb_replica::bulk_load::apply::verify_sources(&siltdb::fs::StdFs, &cmd)
                    .map_err(ServerError::InvalidArgument)
            })
            .await?;
            let timeout = Duration::from_millis(timeout_ms);
            match tokio::time::timeout(timeout, r.write_control(mutation)).await {
                Ok(Ok(resp)) => ReplicaBulkReply::Ingested {
                    decree: resp.decree,
                },
                Ok(Err(siltdb_replica::Error::StaleBallot { current, .. })) => {
                    ReplicaBulkReply::StaleBallot { current: current.0 }
                }
                Ok(Err(e)) => return Err(node.map_error(&layout, e)),
                Err(_) => {
                    return Err(ServerError::Timeout(format!(
                        "ingestion not applied within {timeout:?}"
                    )))
                }
            }
        }
        ReplicaBulkOp::Checkpoint => {
            let decree = node
                .bounded("checkpoint", &layout, async {
                    let d = r.checkpoint().await?;
                    r.purge_log().await?;
                    Ok(d)
                })
                .await?;
            ReplicaBulkReply::Checkpointed {
                decree: decree.map(|d| d.0),
            }
        }
    };
    Ok(ClientResponse::BulkLoadReplica(reply))
}

#[cfg(test)]
mod tests {
    use super::*;
    use siltdb_client::frame::encode_payload;
    use siltdb_replica::mutation::{IngestCommand, IngestFile};

    fn ingest() -> Mutation {
        Mutation::control(
            Some(Ballot(7)),
            ControlOp::Ingest(IngestCommand {
                load_id: 42,
                source_dir: "/data/bulk/t/3/bulk_load".into(),
                files: vec![IngestFile {
                    name: "000001.sst".into(),
                    size: 4096,
                    crc32c: 0xdead_beef,
                }],
            }),
        )
    }

    #[test]
    fn the_ingest_wire_form_encodes_as_the_mutation_and_converts_back() {
        let m = ingest();
        let wire = ingest_wire(m.clone()).unwrap();
        assert_eq!(encode_payload(&wire).unwrap(), encode_payload(&m).unwrap());
        assert_eq!(ingest_from_wire(wire), m);
        let mut plain = Mutation::new();
        plain.put(b"k".to_vec(), b"v".to_vec());
        let wire = ingest_wire(plain.clone()).unwrap();
        assert_eq!(
            encode_payload(&wire).unwrap(),
            encode_payload(&plain).unwrap()
        );
        assert_eq!(ingest_from_wire(wire), plain);
    }

    #[test]
    fn a_non_ingest_control_op_has_no_wire_form() {
        let atomic = siltdb_replica::pegasus::AtomicOp {
            now_ms: 1,
            kind: siltdb_replica::pegasus::atomic::AtomicKind::Incr {
                hash_key: b"h".to_vec(),
                sort_key: b"s".to_vec(),
                delta: 1,
                expire: siltdb_replica::pegasus::Expire::Keep,
            },
        };
        let m = Mutation::control(None, ControlOp::Atomic(Box::new(atomic)));
        assert!(matches!(ingest_wire(m), Err(TargetError::Fatal(_))));
    }
}
