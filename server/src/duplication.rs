//! Cluster duplication: every partition of a source table ships its committed writes,
//! asynchronously, to the same partition of a table on another cluster (Pegasus'
//! duplication; the replica crate's [`siltdb_replica::duplication`] does the per-partition
//! work: status machine, persisted records, duplicator thread, plog GC floor).
//!
//! Layer: service (on top of [`crate::node`]; the reports are in `siltdb_client::duplication`).
//!
//! - [`RemoteClusterSink`]: the [`DuplicationSink`] for "partition p of table T on the cluster
//!   reached through these seeds", over a [`Client`]. Partition counts must match (checked by
//!   `hello`, as Pegasus does), so partition p of the source maps to partition p of the
//!   follower, and every key lands where the follower's client would look for it.
//! - [`NodeDuplications`]: a node's duplications. Every replica of a duplicated table holds the
//!   record (under its replica directory, so it survives restarts), but **only the partition's
//!   leader runs its duplicator** (the primary duplicates, as in Pegasus): a supervisor thread
//!   opens a replica's [`Duplications`] when the node leads the partition and closes it when
//!   it stops leading.
//! - `handle`: the add / remove / query / duplication-write requests.
//!
//! **Leader change.** A new leader resumes from its own record, which is as old as the last
//! time this node led the partition (or INIT when it never did): it re-ships from there, which
//! is harmless (blind writes re-applied in decree order; see the `GroupSink` docs), or copies a
//! checkpoint first when its log no longer holds the decrees it would resume from (a follower's
//! log is purged without a duplication floor: only the leader publishes one). A
//! checkpoint replaces the follower partition's user keys with the checkpoint's. A deposed
//! leader stops shipping at its next call (every sink call checks that the node still leads
//! the source partition) and its duplicator at the supervisor's next pass.
//!
//! **Limits.** (1) The duplication record is installed by the client on every node of the
//! layout: a node down during `add-dup` or `remove-dup` misses it, and the command fails
//! naming the node; the operator repeats it once the node is back (`add-dup --id N`, and
//! `remove-dup`, are idempotent). (2) Shipping
//! is at-least-once. Every duplication write names its source partition and the term of the
//! source leader shipping it, and the follower node refuses a term below one it has seen from
//! that source, checking and writing under one lock per (follower partition, source): once a
//! new source leader has shipped, a deposed one (cut off by a network partition and still
//! believing it leads) cannot land a stale batch after it. That fence lives in the follower
//! leader's memory: a follower leader change or restart at the same time as a source leader
//! change leaves a window for one stale batch, which lasts until those keys are written again
//! (Pegasus orders such writes by timestamp). (3) The follower table is
//! not write-protected: user writes to it are overwritten or deleted by a checkpoint copy.
//! (4) The server has no bulk load yet; the replica crate's duplicator stops in front of a
//! bulk-load ingestion (see [`siltdb_replica::duplication`]).

use crate::client::{Client, ClientOptions};
use crate::error::ServerError;
use crate::layout::TableLayout;
use crate::node::{client_mutation, LocalReplica, Node, MAX_WRITE_OPS};
use crate::proto::{ClientRequest, ClientResponse};
use parking_lot::{Condvar, Mutex};
pub use siltdb_client::duplication::{DuplicationReplicaStatus, DuplicationReport};
use siltdb_replica::duplication::replay::{
    checkpoint_context, clear_mutation, merge_batch, stream_user_keys, CheckpointCopy,
};
use siltdb_replica::duplication::sink::{refuse_control, SinkResult};
use siltdb_replica::duplication::{
    store, DuplicationOptions, DuplicationRecord, DuplicationSink, Duplications, FailMode,
    ReplicaSource, SinkError, SinkResolver,
};
use siltdb_replica::replica::Replica;
use siltdb_replica::siltdb::fs::{FileSystem, StdFs};
use siltdb_replica::{Decree, Gpid, Mutation, WriteOp};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the supervisor matches the running duplicators to the partitions this node leads.
pub const SUPERVISE_EVERY: Duration = Duration::from_millis(200);
/// Bound on one request of a sink to the follower cluster.
pub const REMOTE_RPC_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on one sink operation on the follower cluster, retries (leader moves) included.
pub const REMOTE_DEADLINE: Duration = Duration::from_secs(5);
/// Most ops in one follower write.
pub const MAX_FOLLOWER_WRITE_OPS: usize = 1024;
/// Most key and value bytes in one follower write (below [`crate::node::MAX_WRITE_SIZE_BYTES`]).
pub const MAX_FOLLOWER_WRITE_BYTES: u64 = 1 << 20;
/// Directory under a replica's directory holding the sinks' scratch copies of checkpoints.
pub const SCRATCH_DIR: &str = "dup-scratch";

/// The name a duplication record stores for its follower: `remote_table@seed,seed`.
pub fn remote_name(remote_table: &str, seeds: &[String]) -> String {
    format!("{remote_table}@{}", seeds.join(","))
}

/// Splits a [`remote_name`] into the table and its seeds; `None` when malformed.
pub fn parse_remote(name: &str) -> Option<(String, Vec<String>)> {
    let (table, seeds) = name.split_once('@')?;
    let seeds: Vec<String> = seeds
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    (!table.is_empty() && !seeds.is_empty()).then(|| (table.to_string(), seeds))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError::Unavailable(format!("{what}: {e}"))
}

/// A duplication follower that is partition `partition` of `remote_table` on another cluster.
///
/// Every call blocks on a tokio runtime handle, bounded by [`REMOTE_DEADLINE`] per follower
/// operation: call it from a plain thread (the duplicator's), never from a runtime worker.
pub struct RemoteClusterSink {
    client: Arc<Client>,
    rt: tokio::runtime::Handle,
    remote_table: String,
    partition: u32,
    partition_count: u32,
    source: Arc<Replica>,
    source_id: String,
    node_id: u64,
    scratch_dir: PathBuf,
    // Serializes checkpoint applies (each owns the one scratch copy).
    applying: Mutex<()>,
}

impl RemoteClusterSink {
    /// A sink shipping source partition `partition` (of a table of `partition_count`
    /// partitions, replica `source` on node `node_id`, named `source_id` to the follower, the
    /// same on every node of the partition) to `remote_table` through `client`, with scratch
    /// copies of checkpoints under `scratch_dir`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Arc<Client>,
        rt: tokio::runtime::Handle,
        remote_table: String,
        partition: u32,
        partition_count: u32,
        source: Arc<Replica>,
        source_id: String,
        node_id: u64,
        scratch_dir: PathBuf,
    ) -> Self {
        Self {
            client,
            rt,
            remote_table,
            partition,
            partition_count,
            source,
            source_id,
            node_id,
            scratch_dir,
            applying: Mutex::new(()),
        }
    }

    /// Refuses to ship from a replica that no longer leads the source partition.
    fn check_primary(&self) -> SinkResult<()> {
        if self.source.leader() == Some(self.node_id) {
            return Ok(());
        }
        Err(SinkError::Unavailable(format!(
            "node {} no longer leads source partition {}",
            self.node_id,
            self.source.gpid()
        )))
    }

    /// Runs `f` on the runtime, bounded by [`REMOTE_DEADLINE`] (plus a margin for the
    /// client's own last attempt).
    fn block<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = siltdb_client::Result<T>>,
    ) -> SinkResult<T> {
        let bound = REMOTE_DEADLINE + REMOTE_RPC_TIMEOUT;
        match self
            .rt
            .block_on(async move { tokio::time::timeout(bound, f).await })
        {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(what, e)),
            Err(_) => Err(SinkError::Unavailable(format!(
                "{what}: no answer within {bound:?}"
            ))),
        }
    }

    fn write(&self, clear: bool, ops: Vec<WriteOp>) -> SinkResult<()> {
        self.check_primary()?;
        let what = format!("{}.{}", self.remote_table, self.partition);
        let term = self.source.ballot().0;
        self.block(
            &what,
            self.client.duplication_write(
                &self.remote_table,
                self.partition,
                clear,
                ops,
                &self.source_id,
                term,
            ),
        )
    }
}

impl DuplicationSink for RemoteClusterSink {
    fn hello(&self) -> SinkResult<()> {
        let layout = self.block(
            "fetching the follower layout",
            self.client.layout(&self.remote_table),
        )?;
        if layout.partition_count != self.partition_count {
            return Err(SinkError::Rejected(format!(
                "follower table {} has {} partitions, the source {}",
                self.remote_table, layout.partition_count, self.partition_count
            )));
        }
        Ok(())
    }

    fn apply_checkpoint(&self, dir: &Path, decree: Decree) -> SinkResult<()> {
        let _one = self.applying.lock();
        self.check_primary()?;
        let scratch_db = siltdb_replica::siltdb::Options::default();
        // Open the copy before touching the follower: a bad checkpoint leaves it as it was.
        let copy = CheckpointCopy::open(dir, self.scratch_dir.join("checkpoint.copy"), &scratch_db)
            .map_err(|e| checkpoint_context(e, decree))?;
        let db = copy.db()?;
        self.write(true, Vec::new())
            .map_err(|e| checkpoint_context(e, decree))?;
        stream_user_keys(db, MAX_FOLLOWER_WRITE_OPS, MAX_FOLLOWER_WRITE_BYTES, |m| {
            self.write(false, m.ops.clone())
        })
        .map_err(|e| checkpoint_context(e, decree))?;
        copy.remove()
    }

    fn ship(&self, batch: &[(Decree, Mutation)]) -> SinkResult<Decree> {
        refuse_control(batch)?;
        let mut acked: Option<Decree> = None;
        for (last, m) in merge_batch(batch, MAX_FOLLOWER_WRITE_OPS, MAX_FOLLOWER_WRITE_BYTES) {
            // Blank and membership entries arrive empty: nothing to write.
            if !m.ops.is_empty() {
                if let Err(e) = self.write(false, m.ops) {
                    return acked.ok_or(e);
                }
            }
            acked = Some(last);
        }
        acked.ok_or_else(|| SinkError::Unavailable("empty batch".into()))
    }
}

/// Whether `rec` would resume shipping from a decree the log purged (up to `purged`): then it
/// must copy a checkpoint first (module docs).
fn resumes_in_purged_log(rec: &DuplicationRecord, purged: Option<u64>) -> bool {
    match (rec.confirmed_decree, purged) {
        (Some(c), Some(p)) => rec.status.is_live() && c.0 < p,
        _ => false,
    }
}

/// The highest source term seen by a follower partition from one source, locked across each
/// duplication write so that a check and its write are not overtaken.
type Fence = Arc<tokio::sync::Mutex<u64>>;

/// The name of source partition `partition` of `layout` to its followers: the same on every
/// node of the source cluster, and distinct between source clusters (it hashes the nodes).
fn source_id(layout: &TableLayout, partition: u32) -> String {
    let nodes: Vec<String> = layout
        .nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.addr))
        .collect();
    let h = xxhash_rust::xxh3::xxh3_64(nodes.join(",").as_bytes());
    format!("{}.{}.{partition}@{h:016x}", layout.name, layout.app_id)
}

struct Running {
    replica: Arc<Replica>,
    dups: Duplications,
}

/// A node's duplications: the record store of every local replica and the duplicators of the
/// partitions this node leads (see the module docs).
pub struct NodeDuplications {
    node_id: u64,
    rt: tokio::runtime::Handle,
    fs: Arc<dyn FileSystem>,
    opts: DuplicationOptions,
    // Held across opening and closing managers (closing joins duplicator threads, bounded by
    // the sinks' deadlines): only ever taken on plain threads and in `spawn_blocking`.
    running: Mutex<HashMap<Gpid, Running>>,
    clients: Arc<Mutex<HashMap<String, Arc<Client>>>>,
    /// Presented to the follower clusters (this node's own secret: see the README, "Security").
    credentials: crate::auth::Credentials,
    fences: Mutex<HashMap<(String, u32, String), Fence>>,
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl NodeDuplications {
    /// The duplications of node `node_id`, driving async calls on `rt`, presenting `credentials`
    /// to the follower clusters.
    pub fn new(
        node_id: u64,
        rt: tokio::runtime::Handle,
        credentials: crate::auth::Credentials,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id,
            rt,
            fs: Arc::new(StdFs),
            opts: DuplicationOptions::default(),
            running: Mutex::default(),
            clients: Arc::default(),
            credentials,
            fences: Mutex::default(),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        })
    }

    /// Starts the supervisor thread over `node`'s replicas.
    pub(crate) fn start(self: &Arc<Self>, node: Weak<Node>) -> std::io::Result<()> {
        let me = Arc::clone(self);
        let t = std::thread::Builder::new()
            .name("silt-dup-supervisor".into())
            .spawn(move || me.supervise(node))?;
        *self.thread.lock() = Some(t);
        Ok(())
    }

    fn supervise(&self, node: Weak<Node>) {
        loop {
            {
                let mut s = self.stop.lock();
                if !*s {
                    self.wake.wait_for(&mut s, SUPERVISE_EVERY);
                }
                if *s {
                    return;
                }
            }
            let Some(n) = node.upgrade() else { return };
            let replicas = n.all_local_replicas();
            drop(n);
            self.reconcile(replicas);
        }
    }

    /// Stops the supervisor and every duplicator (joined; records stay on disk). Blocks:
    /// call it from a plain thread or `spawn_blocking`.
    pub fn shutdown(&self) {
        *self.stop.lock() = true;
        self.wake.notify_all();
        let t = self.thread.lock().take();
        if let Some(t) = t {
            // A panicked supervisor was already reported by the panic hook.
            let _ = t.join();
        }
        let running: Vec<Running> = self.running.lock().drain().map(|(_, r)| r).collect();
        Self::stop_all(running);
    }

    /// Stops the duplicators of `running`, in parallel: each stop waits out its duplicator's
    /// call in flight (bounded by the sink's deadline), and those should not add up. The
    /// scoped threads are all joined before this returns.
    fn stop_all(running: Vec<Running>) {
        match running.len() {
            0 => {}
            1 => running.into_iter().for_each(Self::stop_running),
            _ => std::thread::scope(|s| {
                for r in running {
                    s.spawn(move || Self::stop_running(r));
                }
            }),
        }
    }

    fn stop_running(r: Running) {
        r.dups.close();
        drop(r.dups);
        // A follower keeps no duplication floor: its log is purged as usual, and a later
        // takeover copies a checkpoint when it needs to (module docs).
        r.replica.plog().retain().set(None);
    }

    /// Runs the duplicators of the partitions this node leads, and only those.
    fn reconcile(&self, replicas: Vec<LocalReplica>) {
        let mut running = self.running.lock();
        let leading: HashMap<Gpid, &LocalReplica> = replicas
            .iter()
            .filter(|(_, _, r, _)| r.leader() == Some(self.node_id))
            .map(|l| (l.2.gpid(), l))
            .collect();
        let gone: Vec<Gpid> = running
            .iter()
            .filter(|(g, r)| {
                leading
                    .get(g)
                    .is_none_or(|(_, _, now, _)| !Arc::ptr_eq(now, &r.replica))
            })
            .map(|(g, _)| *g)
            .collect();
        let mut stopping = Vec::new();
        for g in gone {
            if let Some(r) = running.remove(&g) {
                tracing::info!(gpid = %g, "duplication: not leading, stopping duplicators");
                stopping.push(r);
            }
        }
        Self::stop_all(stopping);
        for (gpid, l) in leading {
            if running.contains_key(&gpid) {
                continue;
            }
            match self.take_over(l) {
                Ok(Some(r)) => {
                    tracing::info!(%gpid, "duplication: leading, duplicators started");
                    running.insert(gpid, r);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(%gpid, error = %e, "duplication: cannot start"),
            }
        }
    }

    /// Opens the duplications of a replica this node now leads (`None`: it has none). A
    /// record whose next decree the log no longer holds copies a checkpoint first.
    fn take_over(&self, l: &LocalReplica) -> siltdb_replica::Result<Option<Running>> {
        let (layout, partition, replica, dir) = l;
        let dup_dir = store::dir_of(dir);
        let records = store::load_all(self.fs.as_ref(), &dup_dir)?;
        if records.is_empty() {
            return Ok(None);
        }
        let purged = replica.plog().stats().purged.map(|p| p.index);
        for mut rec in records {
            if resumes_in_purged_log(&rec, purged) {
                tracing::info!(gpid = %replica.gpid(), id = rec.id, "duplication: log purged \
                    past the confirmed decree; copying a checkpoint");
                // LOG (or PAUSE, once started) without a confirmed decree copies a checkpoint.
                rec.confirmed_decree = None;
                store::save(self.fs.as_ref(), &dup_dir, &rec)?;
            }
        }
        let source = Arc::new(ReplicaSource::new(Arc::clone(replica), self.rt.clone()));
        let dups = Duplications::open(
            dir,
            Arc::clone(&self.fs),
            source,
            self.resolver(layout, *partition, replica, dir),
            self.opts.clone(),
        )?;
        Ok(Some(Running {
            replica: Arc::clone(replica),
            dups,
        }))
    }

    fn resolver(
        &self,
        layout: &TableLayout,
        partition: u32,
        replica: &Arc<Replica>,
        dir: &Path,
    ) -> SinkResolver {
        let (rt, node_id) = (self.rt.clone(), self.node_id);
        let partition_count = layout.partition_count;
        let replica = Arc::clone(replica);
        let scratch_root = dir.join(SCRATCH_DIR);
        let clients = Arc::clone(&self.clients);
        let credentials = self.credentials.clone();
        let source_id = source_id(layout, partition);
        Arc::new(move |name: &str| {
            let (table, seeds) = parse_remote(name)?;
            let client = follower_client(&clients, &seeds, &credentials);
            let hash = xxhash_rust::xxh3::xxh3_64(name.as_bytes());
            Some(Arc::new(RemoteClusterSink::new(
                client,
                rt.clone(),
                table,
                partition,
                partition_count,
                Arc::clone(&replica),
                source_id.clone(),
                node_id,
                scratch_root.join(format!("{hash:016x}")),
            )) as Arc<dyn DuplicationSink>)
        })
    }

    /// Installs duplication `id` on every replica of `replicas` (idempotent for the same
    /// remote); returns how many replicas got it now.
    fn add(
        &self,
        replicas: &[LocalReplica],
        id: u64,
        remote: &str,
        fail_mode: FailMode,
    ) -> Result<u32, ServerError> {
        let running = self.running.lock();
        let mut added = 0;
        for (_, _, r, dir) in replicas {
            let existing = match running.get(&r.gpid()) {
                Some(run) => run.dups.query(id).ok().map(|i| i.remote),
                None => self.record(dir, id)?.map(|rec| rec.remote),
            };
            match existing {
                Some(other) if other != remote => {
                    return Err(ServerError::AlreadyExists(format!(
                        "duplication {id} of {} goes to {other}",
                        r.gpid()
                    )))
                }
                Some(_) => continue,
                None => {}
            }
            match running.get(&r.gpid()) {
                Some(run) => run
                    .dups
                    .add_with_id(id, remote, fail_mode)
                    .map_err(internal)?,
                None => store::save(
                    self.fs.as_ref(),
                    &store::dir_of(dir),
                    &DuplicationRecord::new(id, remote, fail_mode),
                )
                .map_err(internal)?,
            }
            added += 1;
        }
        Ok(added)
    }

    /// The fence of follower partition `partition` of `table` against `source`.
    fn fence(&self, table: &str, partition: u32, source: &str) -> Fence {
        let mut f = self.fences.lock();
        let e = f.entry((table.to_string(), partition, source.to_string()));
        Arc::clone(e.or_default())
    }

    fn record(&self, dir: &Path, id: u64) -> Result<Option<DuplicationRecord>, ServerError> {
        let recs = store::load_all(self.fs.as_ref(), &store::dir_of(dir)).map_err(internal)?;
        Ok(recs.into_iter().find(|r| r.id == id))
    }

    /// Removes duplication `id` from every replica of `replicas`; returns how many had it.
    fn remove(&self, replicas: &[LocalReplica], id: u64) -> Result<u32, ServerError> {
        let running = self.running.lock();
        let mut removed = 0;
        for (_, _, r, dir) in replicas {
            if let Some(run) = running.get(&r.gpid()) {
                if run.dups.query(id).is_ok() {
                    run.dups.remove(id).map_err(internal)?;
                    removed += 1;
                    continue;
                }
            }
            if self.record(dir, id)?.is_some() {
                store::delete(self.fs.as_ref(), &store::dir_of(dir), id).map_err(internal)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The duplications this node runs (it leads their partitions), for the metrics endpoint:
    /// (gpid, duplication id, lag in decrees, mutations confirmed). Takes the lock that
    /// opening and closing duplicators hold: call it off the async workers.
    pub(crate) fn running_figures(&self) -> Vec<(Gpid, u64, Option<u64>, u64)> {
        let running = self.running.lock();
        let mut out: Vec<_> = running
            .iter()
            .flat_map(|(gpid, run)| {
                run.dups
                    .list()
                    .into_iter()
                    .map(move |i| (*gpid, i.id, i.lag_decrees, i.metrics.confirmed_mutations))
            })
            .collect();
        out.sort_by_key(|(g, id, _, _)| (g.app_id, g.partition_index, *id));
        out
    }

    /// Every local replica's view of every duplication of the table.
    fn query(
        &self,
        replicas: &[LocalReplica],
    ) -> Result<Vec<DuplicationReplicaStatus>, ServerError> {
        let running = self.running.lock();
        let mut out = Vec::new();
        for (_, partition, r, dir) in replicas {
            if let Some(run) = running.get(&r.gpid()) {
                for i in run.dups.list() {
                    out.push(DuplicationReplicaStatus {
                        dup_id: i.id,
                        partition: *partition,
                        node: self.node_id,
                        primary: true,
                        remote: i.remote,
                        status: i.status,
                        fail_mode: i.fail_mode,
                        checkpoint_decree: i.checkpoint_decree.map(|d| d.0),
                        confirmed_decree: i.confirmed_decree.map(|d| d.0),
                        lag_decrees: i.lag_decrees,
                        last_error: i.last_error,
                        shipped_mutations: i.metrics.confirmed_mutations,
                    });
                }
                continue;
            }
            let recs = store::load_all(self.fs.as_ref(), &store::dir_of(dir)).map_err(internal)?;
            for rec in recs.into_iter().filter(|r| r.status.is_live()) {
                out.push(DuplicationReplicaStatus {
                    dup_id: rec.id,
                    partition: *partition,
                    node: self.node_id,
                    primary: false,
                    remote: rec.remote,
                    status: rec.status,
                    fail_mode: rec.fail_mode,
                    checkpoint_decree: rec.checkpoint_decree.map(|d| d.0),
                    confirmed_decree: rec.confirmed_decree.map(|d| d.0),
                    lag_decrees: None,
                    last_error: rec.last_error,
                    shipped_mutations: 0,
                });
            }
        }
        Ok(out)
    }
}

/// The client of the follower cluster reached through `seeds`, shared by every sink to it.
fn follower_client(
    clients: &Mutex<HashMap<String, Arc<Client>>>,
    seeds: &[String],
    credentials: &crate::auth::Credentials,
) -> Arc<Client> {
    let mut clients = clients.lock();
    let c = clients.entry(seeds.join(",")).or_insert_with(|| {
        let mut o = credentials.apply(ClientOptions::new(seeds.to_vec()));
        o.rpc_timeout = REMOTE_RPC_TIMEOUT;
        o.deadline = REMOTE_DEADLINE;
        Arc::new(Client::new(o))
    });
    Arc::clone(c)
}

fn internal(e: impl std::fmt::Display) -> ServerError {
    ServerError::Internal(e.to_string())
}

/// Runs `f` on the blocking pool (it takes the duplications lock and may join threads).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServerError::Internal(format!("duplication task: {e}")))?
}

/// Answers the duplication requests (add, remove, query, duplication write) with the node's
/// duplications `dups`.
pub(crate) async fn handle(
    node: &Node,
    dups: &Arc<NodeDuplications>,
    req: ClientRequest,
) -> Result<ClientResponse, ServerError> {
    match req {
        ClientRequest::AddDuplication {
            table,
            dup_id,
            remote_seeds,
            remote_table,
            fail_mode,
        } => {
            if dup_id == 0 {
                return Err(ServerError::InvalidArgument("duplication id 0".into()));
            }
            let remote = remote_name(&remote_table, &remote_seeds);
            if parse_remote(&remote).is_none() || remote_table.contains(['@', ',']) {
                return Err(ServerError::InvalidArgument(format!(
                    "bad remote table {remote_table:?} or seeds {remote_seeds:?}"
                )));
            }
            let replicas = node.local_replicas(&table)?;
            let svc = Arc::clone(dups);
            let mode = fail_mode.unwrap_or(FailMode::Slow);
            let n = blocking(move || svc.add(&replicas, dup_id, &remote, mode)).await?;
            tracing::info!(%table, dup_id, added = n, "duplication added");
            Ok(ClientResponse::Ok)
        }
        ClientRequest::RemoveDuplication { table, dup_id } => {
            let replicas = node.local_replicas(&table)?;
            let svc = Arc::clone(dups);
            let n = blocking(move || svc.remove(&replicas, dup_id)).await?;
            tracing::info!(%table, dup_id, removed = n, "duplication removed");
            Ok(ClientResponse::DuplicationRemoved { replicas: n })
        }
        ClientRequest::QueryDuplication { table } => {
            let replicas = node.local_replicas(&table)?;
            let svc = Arc::clone(dups);
            let v = blocking(move || svc.query(&replicas)).await?;
            Ok(ClientResponse::Duplications(v))
        }
        ClientRequest::DuplicationWrite {
            table,
            partition,
            clear,
            ops,
            source,
            source_term,
        } => {
            let fence = dups.fence(&table, partition, &source);
            let timeout = node.options().request_timeout;
            let Ok(mut seen) = tokio::time::timeout(timeout, fence.lock()).await else {
                return Err(ServerError::Timeout(format!(
                    "duplication write from {source} queued over {timeout:?}"
                )));
            };
            if source_term < *seen {
                return Err(ServerError::InvalidArgument(format!(
                    "duplication write from {source} in term {source_term}, after term {}: \
                     a deposed source leader",
                    *seen
                )));
            }
            *seen = source_term;
            duplication_write(node, &table, partition, clear, ops).await
        }
        other => Err(ServerError::InvalidArgument(format!(
            "not a duplication request: {other:?}"
        ))),
    }
}

/// A follower write: checked like a user write except that a range delete (partition-local)
/// is allowed, then applied through `write_control` (no user throttling). With `clear`, a
/// barrier write and the range delete of every user key of the partition come first. The
/// caller holds the source's fence: a deposed source leader's write that passed it is applied
/// before any write of the new leader (module docs).
async fn duplication_write(
    node: &Node,
    table: &str,
    partition: u32,
    clear: bool,
    ops: Vec<WriteOp>,
) -> Result<ClientResponse, ServerError> {
    let (layout, r) = node.replica(table, partition)?;
    if (ops.is_empty() && !clear) || ops.len() > MAX_WRITE_OPS {
        return Err(ServerError::InvalidArgument(format!(
            "{} ops (1 to {MAX_WRITE_OPS}, or 0 with clear)",
            ops.len()
        )));
    }
    for op in &ops {
        if let WriteOp::Put { key, .. } | WriteOp::Delete { key } = op {
            Node::check_key(&layout, partition, key)?;
        }
    }
    let m = client_mutation(ops)?;
    let _admitted = node.splits.admit_write(table).await?;
    let decree = node
        .bounded("duplication write", &layout, async {
            let mut decree = None;
            if clear {
                // The barrier: every earlier write to this partition is applied here once it
                // returns, or never commits (GroupSink docs), so the largest key read below
                // covers them all.
                decree = Some(r.write_control(Mutation::new()).await?.decree);
                let db = r.state_machine().db();
                let wipe = tokio::task::spawn_blocking(move || clear_mutation(&db))
                    .await
                    .map_err(|e| siltdb_replica::Error::Raft(format!("clear task: {e}")))?
                    .map_err(|e| siltdb_replica::Error::Raft(e.to_string()))?;
                if let Some(w) = wipe {
                    decree = Some(r.write_control(w).await?.decree);
                }
            }
            if !m.ops.is_empty() {
                decree = Some(r.write_control(m).await?.decree);
            }
            Ok::<u64, siltdb_replica::Error>(decree.unwrap_or(0))
        })
        .await?;
    Ok(ClientResponse::Written { decree })
}

#[cfg(test)]
mod tests {
    use super::*;
    use siltdb_replica::duplication::Status;

    #[test]
    fn remote_names_round_trip_and_malformed_ones_are_refused() {
        let seeds = vec!["10.0.0.1:7100".to_string(), "10.0.0.2:7100".to_string()];
        let name = remote_name("backup", &seeds);
        assert_eq!(name, "backup@10.0.0.1:7100,10.0.0.2:7100");
        assert_eq!(parse_remote(&name), Some(("backup".to_string(), seeds)));
        assert_eq!(parse_remote("backup"), None);
        assert_eq!(parse_remote("@a:1"), None);
        assert_eq!(parse_remote("backup@"), None);
        assert_eq!(parse_remote("backup@,"), None);
    }

    fn status(
        p: u32,
        node: u64,
        primary: bool,
        st: Status,
        lag: Option<u64>,
    ) -> DuplicationReplicaStatus {
        DuplicationReplicaStatus {
            dup_id: 7,
            partition: p,
            node,
            primary,
            remote: "f@a:1".into(),
            status: st,
            fail_mode: FailMode::Slow,
            checkpoint_decree: Some(1),
            confirmed_decree: Some(5),
            lag_decrees: lag,
            last_error: None,
            shipped_mutations: 0,
        }
    }

    #[test]
    fn a_takeover_copies_a_checkpoint_only_when_the_log_lost_the_next_decree() {
        let mut r = DuplicationRecord::new(1, "f@a:1", FailMode::Slow);
        assert!(
            !resumes_in_purged_log(&r, Some(10)),
            "no confirmed decree yet"
        );
        r.status = Status::Log;
        r.confirmed_decree = Some(Decree(10));
        assert!(!resumes_in_purged_log(&r, None));
        assert!(
            !resumes_in_purged_log(&r, Some(10)),
            "11 is still in the log"
        );
        assert!(resumes_in_purged_log(&r, Some(11)));
        r.status = Status::Removed;
        assert!(!resumes_in_purged_log(&r, Some(11)));
    }

    #[test]
    fn source_ids_are_stable_per_partition_and_differ_between_clusters() {
        let nodes = |port: u16| {
            (1..=3)
                .map(|id| crate::layout::NodeInfo {
                    id,
                    addr: format!("127.0.0.1:{}", port + id as u16),
                })
                .collect::<Vec<_>>()
        };
        let a = TableLayout::new("t", 1, 8, 3, nodes(7100));
        let b = TableLayout::new("t", 1, 8, 3, nodes(7200));
        assert_eq!(source_id(&a, 3), source_id(&a.clone(), 3));
        assert_ne!(source_id(&a, 3), source_id(&a, 4));
        assert_ne!(source_id(&a, 3), source_id(&b, 3));
    }

    #[test]
    fn caught_up_needs_every_partition_shipping_without_lag_on_every_primary() {
        let mut r = DuplicationReport {
            replicas: vec![
                status(0, 1, true, Status::Log, Some(0)),
                status(0, 2, false, Status::Init, None),
                status(1, 2, true, Status::Log, Some(0)),
            ],
            unreachable: Vec::new(),
        };
        assert_eq!(r.ids(), vec![7]);
        assert!(r.caught_up(7, 2));
        assert!(!r.caught_up(7, 3), "partition 2 has no primary");
        assert!(!r.caught_up(8, 2), "unknown id");
        // Two primaries during a leader change: both must be caught up.
        r.replicas.push(status(1, 3, true, Status::App, None));
        assert!(!r.caught_up(7, 2));
        assert_eq!(r.primaries(7, 2)[&0].map(|s| s.node), Some(1));
    }
}
