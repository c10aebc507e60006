//! A node: the replicas this server hosts, for every partition of every stored table, and the
//! answers to client and operator requests.
//!
//! Layer: node (above the client crate's protocol and layouts and the replica layer; below the
//! services and dispatch). It knows no service: [`crate::dispatch`] routes requests to it.
//!
//! Replica directories are `<data dir>/replicas/<app_id>.<partition>`. A table's layout is
//! stored before its replicas are opened, so a restart reopens exactly the replicas of the
//! stored layouts. The first replica of a partition initializes the group (membership with
//! every replica's address) when its log is empty: at creation, or after a crash between
//! storing the layout and initializing. openraft refuses a second initialization.

use crate::error::{Error, Result, ServerError};
use crate::layout::{LayoutStore, TableLayout};
use crate::proto::{
    ClientRequest, ClientResponse, DigestReply, NodeStats, PartitionStats, QuarantinedReplica,
    RequestStats,
};
use openraft::{BasicNode, Raft};
use parking_lot::{Mutex, RwLock};
use siltdb_replica::maintenance::MaintenanceOptions;
use siltdb_replica::raft::TypeConfig;
use siltdb_replica::replica::{Replica, ReplicaOptions};
use siltdb_replica::transport::{FaultHook, RaftHost, TcpNetworkFactory, TransportMetrics};
use siltdb_replica::{Gpid, Mutation, WriteOp};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most rows in one scan page.
pub const MAX_SCAN_ROWS: usize = 10_000;
/// Bytes of keys and values after which a scan page stops.
pub const MAX_SCAN_PAGE_BYTES: usize = 4 << 20;
/// Largest write request (keys + values), so that its log entry fits in a frame.
pub const MAX_WRITE_SIZE_BYTES: u64 = 4 << 20;
/// Most ops in one write request.
pub const MAX_WRITE_OPS: usize = 10_000;
/// Suffix of a replica directory being removed.
pub const REMOVED_SUFFIX: &str = ".removed";
/// How long closing waits for in-flight requests to release a replica.
pub const MAX_REPLICA_CLOSE_WAIT: Duration = Duration::from_secs(10);

/// How a node runs its replicas.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's id.
    pub node_id: u64,
    /// The address peers and clients reach this node at.
    pub addr: String,
    /// Root of the node's data.
    pub data_dir: PathBuf,
    /// openraft configuration of every replica.
    pub raft: openraft::Config,
    /// Bound on a client write or read waiting for the Raft.
    pub request_timeout: Duration,
    /// Engine memtable size per replica.
    pub memtable_size_bytes: usize,
    /// Whether `Partition`/`Heal` requests are served.
    pub allow_fault_injection: bool,
    /// Engine resources every replica shares (block cache, background threads, write-buffer
    /// budget); `None`: each replica's engine owns its own.
    pub resources: Option<Arc<siltdb_replica::siltdb::SharedResources>>,
    /// What the node presents on its own connections to peers and to the cluster (Raft, meta
    /// pushes, moves, bulk loads, duplication): the first admin secret of its token file
    /// (`None` on a cluster without authentication) and its TLS client settings.
    pub credentials: crate::auth::Credentials,
    /// The directory bulk-load sources must lie under ([`crate::confine`]).
    pub bulk_load_root: Option<PathBuf>,
    /// Every replica's periodic checkpoint and log purge ([`siltdb_replica::maintenance`], the
    /// one owner of periodic checkpointing): `--checkpoint-interval-ms` and
    /// `--checkpoint-decrees-min`.
    pub maintenance: MaintenanceOptions,
}

#[derive(Default)]
struct Counters {
    gets: AtomicU64,
    writes: AtomicU64,
    scans: AtomicU64,
    errors: AtomicU64,
    not_leader: AtomicU64,
    timeouts: AtomicU64,
}

/// A local replica of a table: (layout, partition, replica, replica directory).
pub(crate) type LocalReplica = (TableLayout, u32, Arc<Replica>, PathBuf);

/// The replicas of one server and the data requests on them.
pub struct Node {
    pub(crate) opts: NodeOptions,
    pub(crate) store: LayoutStore,
    pub(crate) tables: RwLock<HashMap<String, TableLayout>>,
    pub(crate) replicas: RwLock<HashMap<Gpid, Arc<Replica>>>,
    /// Replicas that did not open at start, with the error (quarantined, never served).
    pub(crate) failed: RwLock<HashMap<Gpid, String>>,
    fault: Arc<FaultHook>,
    metrics: Arc<TransportMetrics>,
    counters: Counters,
    /// Per-partition request counters and latencies (recorded by `crate::dispatch`).
    pub(crate) requests: crate::request_metrics::RequestMetrics,
    /// Serializes table creation and layout changes.
    pub(crate) create_lock: tokio::sync::Mutex<()>,
    /// Serializes catalog requests on the meta leader (`crate::meta`).
    pub(crate) meta_lock: tokio::sync::Mutex<()>,
    /// The last manual compaction of each replica that had one ([`crate::envs`]).
    pub(crate) manual_compacts: Mutex<HashMap<Gpid, crate::envs::ManualCompactRecord>>,
    /// The hot-key counters of the partitions this node serves ([`crate::hotkey`]).
    pub(crate) hot_keys: crate::hotkey::HotKeys,
    /// Pending partition splits and their write fences (`crate::split`).
    pub(crate) splits: crate::split::Splits,
    started: Instant,
    closed: Mutex<bool>,
}

impl RaftHost for Node {
    fn node_id(&self) -> u64 {
        self.opts.node_id
    }

    fn raft(&self, gpid: Gpid) -> Option<Raft<TypeConfig>> {
        self.replicas.read().get(&gpid).map(|r| r.raft().clone())
    }
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Creates the node's data directory (and missing ancestors) through `fs`, each new entry made
/// durable by fsyncing its parent.
pub(crate) fn create_data_dir(fs: &dyn siltdb::fs::FileSystem, dir: &Path) -> Result<()> {
    Ok(siltdb_replica::fs_util::create_dir_durable(fs, dir)?)
}

impl Node {
    /// Opens the node: loads the stored layouts and opens (and if needed initializes) every
    /// hosted replica. Must run inside a tokio runtime.
    pub async fn open(
        opts: NodeOptions,
        fault: Arc<FaultHook>,
        metrics: Arc<TransportMetrics>,
    ) -> Result<Arc<Node>> {
        let data_dir = opts.data_dir.clone();
        let (store, layouts, splits) = blocking(move || {
            create_data_dir(&siltdb::fs::StdFs, &data_dir)?;
            remove_leftovers(&data_dir.join("replicas"))?;
            let store = LayoutStore::open(&data_dir)?;
            let layouts = store.load_all()?;
            let splits = crate::split::Splits::open(&data_dir, &layouts)?;
            Ok((store, layouts, splits))
        })
        .await?;
        let node = Arc::new(Node {
            opts,
            store,
            tables: RwLock::default(),
            replicas: RwLock::default(),
            failed: RwLock::default(),
            fault,
            metrics,
            counters: Counters::default(),
            requests: Default::default(),
            create_lock: tokio::sync::Mutex::new(()),
            meta_lock: tokio::sync::Mutex::new(()),
            manual_compacts: Mutex::default(),
            hot_keys: crate::hotkey::HotKeys::default(),
            splits,
            started: Instant::now(),
            closed: Mutex::new(false),
        });
        for layout in layouts {
            node.open_table(&layout, true).await?;
            node.tables.write().insert(layout.name.clone(), layout);
        }
        // The children of a split still pending take part in their groups again.
        for next in node.splits.all_pending() {
            let current = node
                .table(&next.name)
                .map_err(|e| Error::Internal(e.to_string()))?;
            crate::split::steps::open_children(&node, &current, &next)
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        Ok(node)
    }

    /// This node's options.
    pub fn options(&self) -> &NodeOptions {
        &self.opts
    }

    /// The fault hook of this node's transport.
    pub fn fault(&self) -> &Arc<FaultHook> {
        &self.fault
    }

    pub(crate) fn replica_dir(&self, gpid: Gpid) -> PathBuf {
        self.opts
            .data_dir
            .join("replicas")
            .join(format!("{}.{}", gpid.app_id, gpid.partition_index))
    }

    /// Stores `layout` durably (written and fsynced off the async workers).
    pub(crate) async fn store_layout(&self, layout: &TableLayout) -> Result<(), ServerError> {
        let (store, layout) = (self.store.clone(), layout.clone());
        blocking(move || store.store(&layout))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))
    }

    /// [`remove_replica_dir`] of `gpid`'s directory, off the async workers.
    pub(crate) async fn remove_replica_files(&self, gpid: Gpid) -> Result<(), ServerError> {
        let dir = self.replica_dir(gpid);
        blocking(move || remove_replica_dir(&dir))
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))
    }

    /// Opens this node's replicas of `layout`. With `quarantine` (at node start), a replica
    /// that fails to open (a corrupt or unreadable directory) is recorded in `failed` and
    /// skipped, so the node still serves its other partitions; an operator replaces it with
    /// `move-replica`. Also at node start, a replica directory the layout no longer assigns
    /// here is opened too: it was kept because its group still listed this node
    /// (`crate::membership`), so it keeps voting until the group confirms its removal and a
    /// later layout push deletes it.
    pub(crate) async fn open_table(&self, layout: &TableLayout, quarantine: bool) -> Result<()> {
        for p in 0..layout.partition_count {
            let replicas = layout.replicas(p);
            let gpid = layout.gpid(p);
            let assigned = replicas.iter().any(|n| n.id == self.opts.node_id);
            let kept = quarantine && !assigned && self.replica_dir(gpid).join("plog").exists();
            if !assigned && !kept {
                continue;
            }
            if kept {
                tracing::warn!(%gpid, epoch = layout.epoch,
                    "opening a replica the layout no longer assigns here (kept: its group \
                     had not confirmed the removal)");
            }
            if self.replicas.read().contains_key(&gpid) || self.failed.read().contains_key(&gpid) {
                continue;
            }
            match self.open_replica(layout, p).await {
                Ok(()) => {}
                Err(e) if quarantine => {
                    tracing::error!(%gpid, error = %e, "replica quarantined: it does not open");
                    self.failed.write().insert(gpid, e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        tracing::info!(table = %layout.name, app_id = layout.app_id, "table open");
        Ok(())
    }

    pub(crate) async fn open_replica(&self, layout: &TableLayout, p: u32) -> Result<()> {
        let replicas = layout.replicas(p);
        let gpid = layout.gpid(p);
        let mut o = ReplicaOptions::new(gpid, self.opts.node_id, self.replica_dir(gpid));
        o.raft = self.opts.raft.clone();
        o.maintenance = self.opts.maintenance.clone();
        o.state_machine.db.memtable_size_bytes = self.opts.memtable_size_bytes;
        o.state_machine.db.resources = self.opts.resources.clone();
        o.state_machine.db.compaction_filter = Some(Arc::new(siltdb_replica::pegasus::TtlFilter));
        // The table's envs from the first request on ([`crate::envs`]).
        let envs = layout.table_envs();
        o.throttle_qps = envs.write_throttling.clone();
        o.throttle_size = envs.write_throttling_by_size.clone();
        o.read_throttle_qps = envs.read_throttling.clone();
        crate::envs::set_scenario(&mut o.state_machine.db, envs.usage_scenario);
        let net = TcpNetworkFactory::new(
            gpid,
            self.opts.node_id,
            Arc::clone(&self.fault),
            Arc::clone(&self.metrics),
        )
        .with_token(self.opts.credentials.token.clone())
        .with_tls(self.opts.credentials.tls.clone());
        let replica = Arc::new(Replica::open_with_network(o, net).await?);
        let first = replicas.first().map(|n| n.id) == Some(self.opts.node_id);
        let empty = replica.raft().metrics().borrow().last_log_index.is_none();
        self.replicas.write().insert(gpid, Arc::clone(&replica));
        if first && empty && layout.is_initial_placement(p) {
            let members: BTreeMap<u64, BasicNode> = replicas
                .iter()
                .map(|n| (n.id, BasicNode::new(n.addr.clone())))
                .collect();
            let done = replica.initialize_with(members).await?;
            tracing::info!(%gpid, initialized = done, "partition group initialized");
        }
        Ok(())
    }

    /// Creates a table (idempotent for the identical layout).
    pub async fn create_table(&self, layout: TableLayout) -> Result<(), ServerError> {
        layout
            .validate()
            .map_err(|e| ServerError::InvalidArgument(e.to_string()))?;
        if !layout.nodes.iter().any(|n| n.id == self.opts.node_id) {
            return Err(ServerError::InvalidArgument(format!(
                "node {} is not in the layout of {}",
                self.opts.node_id, layout.name
            )));
        }
        let _serial = self.create_lock.lock().await;
        {
            let tables = self.tables.read();
            if let Some(existing) = tables.get(&layout.name) {
                if *existing == layout {
                    return Ok(());
                }
                return Err(ServerError::AlreadyExists(format!(
                    "table {} with another layout",
                    layout.name
                )));
            }
            if let Some(other) = tables.values().find(|t| t.app_id == layout.app_id) {
                return Err(ServerError::AlreadyExists(format!(
                    "app id {} is table {}",
                    layout.app_id, other.name
                )));
            }
        }
        self.store_layout(&layout).await?;
        self.open_table(&layout, false)
            .await
            .map_err(|e| ServerError::Internal(e.to_string()))?;
        self.tables.write().insert(layout.name.clone(), layout);
        Ok(())
    }

    /// Every local replica of `table`.
    pub(crate) fn local_replicas(&self, table: &str) -> Result<Vec<LocalReplica>, ServerError> {
        let layout = self.table(table)?;
        let replicas = self.replicas.read();
        Ok((0..layout.partition_count)
            .filter_map(|p| {
                let gpid = layout.gpid(p);
                let r = replicas.get(&gpid)?;
                Some((layout.clone(), p, Arc::clone(r), self.replica_dir(gpid)))
            })
            .collect())
    }

    /// Every local replica of every table.
    pub(crate) fn all_local_replicas(&self) -> Vec<LocalReplica> {
        let names: Vec<String> = self.tables.read().keys().cloned().collect();
        names
            .iter()
            .filter_map(|t| self.local_replicas(t).ok())
            .flatten()
            .collect()
    }

    pub(crate) fn table(&self, name: &str) -> Result<TableLayout, ServerError> {
        self.tables
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| ServerError::NoSuchTable(name.to_string()))
    }

    pub(crate) fn replica(
        &self,
        table: &str,
        partition: u32,
    ) -> Result<(TableLayout, Arc<Replica>), ServerError> {
        let layout = self.table(table)?;
        if partition >= layout.partition_count {
            if self
                .splits
                .pending(table)
                .is_some_and(|next| partition < next.partition_count)
            {
                // A client already routing by the split's layout: this node has not switched.
                return Err(crate::split::fence::splitting(table));
            }
            return Err(ServerError::InvalidArgument(format!(
                "partition {partition} of {} partitions",
                layout.partition_count
            )));
        }
        let gpid = layout.gpid(partition);
        let r = self.replicas.read().get(&gpid).cloned();
        let r = r.ok_or_else(|| match self.failed.read().get(&gpid) {
            Some(e) => ServerError::NoSuchPartition(format!("{gpid} is quarantined: {e}")),
            None => ServerError::NoSuchPartition(gpid.to_string()),
        })?;
        Ok((layout, r))
    }

    pub(crate) fn map_error(&self, layout: &TableLayout, e: siltdb_replica::Error) -> ServerError {
        use siltdb_replica::Error as E;
        match e {
            E::NotLeader { leader } => ServerError::NotLeader {
                leader,
                addr: leader.and_then(|l| layout.addr_of(l).map(str::to_string)),
            },
            E::Throttled { delay_ms, .. } => ServerError::Throttled { delay_ms },
            E::InvalidArgument(m) => ServerError::InvalidArgument(m),
            E::StaleBallot { .. } => ServerError::Unavailable(e.to_string()),
            E::Raft(m) | E::Closed(m) => ServerError::Unavailable(m),
            other => ServerError::Internal(other.to_string()),
        }
    }

    pub(crate) async fn bounded<T>(
        &self,
        what: &str,
        layout: &TableLayout,
        f: impl std::future::Future<Output = siltdb_replica::Result<T>>,
    ) -> Result<T, ServerError> {
        match tokio::time::timeout(self.opts.request_timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_error(layout, e)),
            Err(_) => Err(ServerError::Timeout(format!(
                "{what} not done within {:?}",
                self.opts.request_timeout
            ))),
        }
    }

    pub(crate) fn check_key(
        layout: &TableLayout,
        partition: u32,
        key: &[u8],
    ) -> Result<(), ServerError> {
        let p = layout.partition_of(key);
        if p != partition {
            return Err(ServerError::WrongPartition(format!(
                "key {key:?} is in partition {p}, not {partition}"
            )));
        }
        Ok(())
    }

    pub(crate) async fn get(
        &self,
        table: &str,
        partition: u32,
        key: Vec<u8>,
    ) -> Result<ClientResponse, ServerError> {
        count(&self.counters.gets);
        let (layout, r) = self.replica(table, partition)?;
        Self::check_key(&layout, partition, &key)?;
        if let Some(next) = self.splits.pending(table) {
            if next.partition_of(&key) != partition {
                return Err(crate::split::fence::splitting(table));
            }
        }
        let v = self.bounded("read", &layout, r.read(&key)).await?;
        Ok(ClientResponse::Value(v))
    }

    pub(crate) async fn write(
        &self,
        table: &str,
        partition: u32,
        ops: Vec<WriteOp>,
    ) -> Result<ClientResponse, ServerError> {
        count(&self.counters.writes);
        let (layout, r) = self.replica(table, partition)?;
        if ops.is_empty() || ops.len() > MAX_WRITE_OPS {
            return Err(ServerError::InvalidArgument(format!(
                "{} ops (1 to {MAX_WRITE_OPS})",
                ops.len()
            )));
        }
        for op in &ops {
            match op {
                WriteOp::Put { key, .. } | WriteOp::Delete { key } => {
                    Self::check_key(&layout, partition, key)?
                }
                WriteOp::DeleteRange { .. } => {
                    return Err(ServerError::InvalidArgument(
                        "range deletes span hash partitions and are not accepted".into(),
                    ))
                }
            }
        }
        let m = client_mutation(ops)?;
        let _admitted = self.splits.admit_write(table).await?;
        let resp = self.bounded("write", &layout, r.write(m)).await?;
        Ok(ClientResponse::Written {
            decree: resp.decree,
        })
    }

    pub(crate) async fn scan(
        &self,
        table: &str,
        partition: u32,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: u32,
        partition_count: u32,
    ) -> Result<ClientResponse, ServerError> {
        count(&self.counters.scans);
        let (layout, r) = self.replica(table, partition)?;
        if partition_count != 0 && partition_count != layout.partition_count {
            return Err(ServerError::WrongPartition(format!(
                "{table} has {} partitions, not {partition_count}: it was split",
                layout.partition_count
            )));
        }
        if self.splits.pending(table).is_some() {
            return Err(crate::split::fence::splitting(table));
        }
        let rows_max = (limit as usize).clamp(1, MAX_SCAN_ROWS);
        let page = self
            .bounded(
                "scan",
                &layout,
                r.scan(start, end, rows_max, MAX_SCAN_PAGE_BYTES),
            )
            .await?;
        let (count, splits) = (layout.partition_count, layout.splits);
        let rows = page
            .rows
            .into_iter()
            .filter(|(k, _)| crate::split::owner::plain_visible(k, partition, count, splits))
            .collect();
        Ok(ClientResponse::Rows {
            rows,
            resume_from: page.resume_from,
        })
    }

    pub(crate) async fn digest(
        &self,
        table: &str,
        partition: u32,
    ) -> Result<ClientResponse, ServerError> {
        let (layout, r) = self.replica(table, partition)?;
        let d = self.bounded("digest", &layout, r.digest()).await?;
        Ok(ClientResponse::Digest(DigestReply {
            applied: d.applied.map(|a| a.0),
            keys: d.keys,
            hash: d.hash,
        }))
    }

    /// Checkpoints every local leader replica of `table` and purges its log to it.
    pub async fn checkpoint(&self, table: &str) -> Result<usize, ServerError> {
        let layout = self.table(table)?;
        let mut done = 0;
        for p in 0..layout.partition_count {
            let Some(r) = self.replicas.read().get(&layout.gpid(p)).cloned() else {
                continue;
            };
            if r.leader() != Some(self.opts.node_id) {
                continue;
            }
            self.bounded("checkpoint", &layout, async {
                r.checkpoint().await?;
                r.purge_log().await
            })
            .await?;
            done += 1;
        }
        Ok(done)
    }

    /// Statistics of this node.
    pub fn stats(&self) -> NodeStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let tables = self.tables.read().clone();
        let names: HashMap<u32, String> = tables
            .values()
            .map(|t| (t.app_id, t.name.clone()))
            .collect();
        let mut partitions: Vec<PartitionStats> = self
            .replicas
            .read()
            .iter()
            .map(|(gpid, r)| {
                let m = r.raft().metrics().borrow().clone();
                PartitionStats {
                    table: names.get(&gpid.app_id).cloned().unwrap_or_default(),
                    partition: gpid.partition_index,
                    leader: m.current_leader,
                    term: m.current_term,
                    applied: m.last_applied.map(|l| l.index),
                    last_log: m.last_log_index,
                    snapshot: m.snapshot.map(|l| l.index),
                    purged: m.purged.map(|l| l.index),
                }
            })
            .collect();
        partitions.sort_by(|a, b| (&a.table, a.partition).cmp(&(&b.table, b.partition)));
        let mut quarantined: Vec<QuarantinedReplica> = self
            .failed
            .read()
            .iter()
            .map(|(gpid, error)| QuarantinedReplica {
                table: names.get(&gpid.app_id).cloned().unwrap_or_default(),
                partition: gpid.partition_index,
                error: error.clone(),
            })
            .collect();
        quarantined.sort_by(|a, b| (&a.table, a.partition).cmp(&(&b.table, b.partition)));
        NodeStats {
            node_id: self.opts.node_id,
            addr: self.opts.addr.clone(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            requests: RequestStats {
                gets: g(&c.gets),
                writes: g(&c.writes),
                scans: g(&c.scans),
                errors: g(&c.errors),
                not_leader: g(&c.not_leader),
                timeouts: g(&c.timeouts),
            },
            transport: self.metrics.snapshot(),
            partitioned: self.fault.blocked(),
            partitions,
            quarantined,
        }
    }

    /// Whether the node refuses requests (it is closing).
    pub fn is_closed(&self) -> bool {
        *self.closed.lock()
    }

    /// Refuses every request from now on (the first step of closing).
    pub fn refuse_requests(&self) {
        *self.closed.lock() = true;
    }

    /// Counts a request answered with `e`.
    pub(crate) fn count_error(&self, e: &ServerError) {
        count(&self.counters.errors);
        match e {
            ServerError::NotLeader { .. } => count(&self.counters.not_leader),
            ServerError::Timeout(_) => count(&self.counters.timeouts),
            _ => {}
        }
    }

    /// Serves a fault-injection request (`Partition`, `Heal`) when the node allows them.
    pub(crate) fn fault_injection(
        &self,
        req: &ClientRequest,
    ) -> Result<ClientResponse, ServerError> {
        if !self.opts.allow_fault_injection {
            return Err(ServerError::InvalidArgument(
                "fault injection is disabled (--allow-fault-injection)".into(),
            ));
        }
        match req {
            ClientRequest::Partition { peers } => {
                for &p in peers {
                    if p != self.opts.node_id {
                        self.fault.partition(self.opts.node_id, p);
                    }
                }
                tracing::warn!(blocked = ?self.fault.blocked(), "fault hook: partitioned");
                Ok(ClientResponse::Ok)
            }
            ClientRequest::Heal => {
                self.fault.heal_all();
                tracing::warn!("fault hook: healed");
                Ok(ClientResponse::Ok)
            }
            other => Err(ServerError::Internal(format!(
                "not a fault injection: {other:?}"
            ))),
        }
    }

    /// The stored layouts, by app id.
    pub(crate) fn list_tables(&self) -> Vec<TableLayout> {
        let mut t: Vec<TableLayout> = self.tables.read().values().cloned().collect();
        t.sort_by_key(|l| l.app_id);
        t
    }

    /// Closes every replica (flushing engines). Requests after this are refused. The services
    /// holding replica handles (duplicators, bulk loads) are stopped first, by their owner
    /// (`crate::dispatch::Services::close`).
    pub async fn close(&self) -> Result<()> {
        self.refuse_requests();
        let replicas: Vec<(Gpid, Arc<Replica>)> = self.replicas.write().drain().collect();
        let mut first_error = None;
        for (gpid, r) in replicas {
            if let Err(e) = close_replica(r).await {
                tracing::error!(%gpid, error = %e, "closing replica");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Closes a replica once in-flight requests released it (bounded); otherwise stops its Raft
/// and closes its engine through the shared handle.
pub(crate) async fn close_replica(mut r: Arc<Replica>) -> Result<()> {
    let deadline = Instant::now() + MAX_REPLICA_CLOSE_WAIT;
    loop {
        match Arc::try_unwrap(r) {
            Ok(replica) => return Ok(replica.close().await?),
            Err(shared) if Instant::now() < deadline => {
                r = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(shared) => {
                tracing::warn!(gpid = %shared.gpid(), "replica still in use; closing it shared");
                shared
                    .raft()
                    .shutdown()
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                return Ok(shared.state_machine().close()?);
            }
        }
    }
}

/// A write's ops as one log entry, refused when larger than [`MAX_WRITE_SIZE_BYTES`] (the
/// entry must fit in a frame). User writes and duplication writes both go through it.
pub(crate) fn client_mutation(ops: Vec<WriteOp>) -> Result<Mutation, ServerError> {
    let m = Mutation {
        ballot: None,
        ops,
        control: None,
    };
    if m.size_bytes() > MAX_WRITE_SIZE_BYTES {
        return Err(ServerError::InvalidArgument(format!(
            "write of {} bytes exceeds {MAX_WRITE_SIZE_BYTES}",
            m.size_bytes()
        )));
    }
    Ok(m)
}

/// Runs blocking file work on tokio's blocking pool, never on an async worker (a worker
/// stuck in an fsync or a directory removal delays every request and heartbeat on it).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("blocking file task failed: {e}")))?
}

/// Removes a replica directory: renamed to `<dir>.removed` (durably), then deleted.
pub fn remove_replica_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mut removed = dir.as_os_str().to_owned();
    removed.push(REMOVED_SUFFIX);
    let removed = std::path::PathBuf::from(removed);
    std::fs::rename(dir, &removed).map_err(|e| Error::io(dir, e))?;
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(parent, e))?;
    }
    std::fs::remove_dir_all(&removed).map_err(|e| Error::io(&removed, e))
}

/// Deletes what a crash left of replica removals under `replicas_dir`.
pub fn remove_leftovers(replicas_dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(replicas_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(replicas_dir, e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| Error::io(replicas_dir, e))?.path();
        let leftover = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(REMOVED_SUFFIX));
        if leftover {
            tracing::info!(path = %path.display(), "removing a half-removed replica");
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}
