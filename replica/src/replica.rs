//! A partition replica: one Raft, its plog and its engine (mapping §2, §6).
//!
//! Open = open the engine (durable decree D) → open the plog → `Raft::new`, which re-applies
//! `(D, committed]` from the plog; a new leader's blank entry commits the rest. Writes go through
//! admission (validation, fencing by ballot, throttling) and are proposed as one log entry each.

use crate::bulk_load::target::IngestionGate;
use crate::error::{Error, Result};
use crate::maintenance::{self, Maintenance, MaintenanceOptions, MaintenanceStats};
use crate::mutation::{Mutation, MutationResp, RESERVED_KEY_PREFIX};
use crate::network::{NetworkFactory, Router};
use crate::plog::{Plog, PlogOptions};
use crate::raft::TypeConfig;
use crate::state_machine::{EngineStateMachine, StateMachineOptions};
use crate::throttle::WriteThrottling;
use crate::types::{Ballot, Decree, Gpid};
use openraft::network::RaftNetworkFactory;
use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest [`Replica::wait_applied`] and similar waits may take.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// One page of a [`Replica::scan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Key-value pairs in key order.
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where to resume when the page stopped at a limit; `None` when the range is exhausted.
    pub resume_from: Option<Vec<u8>>,
}

/// See [`Replica::digest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaDigest {
    /// The applied decree, `None` if it moved while hashing (or nothing applied).
    pub applied: Option<Decree>,
    /// User keys hashed.
    pub keys: u64,
    /// The hash.
    pub hash: u64,
}

fn user_rows(db: &siltdb::Db, opts: &siltdb::ReadOptions) -> siltdb::DbIterator {
    db.iter(opts)
}

fn scan_engine(
    db: &siltdb::Db,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
    rows_max: usize,
    bytes_max: usize,
) -> Result<ScanPage> {
    let opts = siltdb::ReadOptions {
        lower_bound: Some(start),
        upper_bound: end,
        ..siltdb::ReadOptions::default()
    };
    let mut page = ScanPage::default();
    let mut bytes: usize = 0;
    for item in user_rows(db, &opts) {
        let (k, v) = item?;
        if k.starts_with(RESERVED_KEY_PREFIX) {
            continue;
        }
        if page.rows.len() >= rows_max.max(1) || bytes >= bytes_max {
            page.resume_from = Some(k);
            break;
        }
        bytes = bytes.saturating_add(k.len()).saturating_add(v.len());
        page.rows.push((k, v));
    }
    Ok(page)
}

fn digest_engine(db: &siltdb::Db) -> Result<(u64, u64)> {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut keys: u64 = 0;
    for item in user_rows(db, &siltdb::ReadOptions::default()) {
        let (k, v) = item?;
        if k.starts_with(RESERVED_KEY_PREFIX) {
            continue;
        }
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(&k);
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(&v);
        keys = keys.saturating_add(1);
    }
    Ok((keys, h.digest()))
}

/// How to open a replica.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// The partition.
    pub gpid: Gpid,
    /// This replica server's node id (stable across restarts).
    pub node_id: u64,
    /// The replica directory: engine, plog and checkpoints.
    pub dir: PathBuf,
    /// Engine and checkpoint options (the engine's `fs` is used for every replica file).
    pub state_machine: StateMachineOptions,
    /// Plog options.
    pub plog: PlogOptions,
    /// openraft configuration (see [`ReplicaOptions::default_raft_config`]).
    pub raft: Config,
    /// Pegasus throttling string by request count (empty = off).
    pub throttle_qps: String,
    /// Pegasus throttling string by bytes (empty = off).
    pub throttle_size: String,
    /// Pegasus throttling string of linearizable reads by request count (empty = off).
    pub read_throttle_qps: String,
    /// The periodic checkpoint / plog purge / checkpoint GC task.
    pub maintenance: MaintenanceOptions,
    /// The partition's bulk-load gate: user writes are refused while it says an ingestion is
    /// under way. `None`: no bulk load on this partition.
    pub ingestion_gate: Option<Arc<IngestionGate>>,
}

impl ReplicaOptions {
    /// Options with defaults for partition `gpid`, node `node_id`, directory `dir`.
    pub fn new(gpid: Gpid, node_id: u64, dir: impl Into<PathBuf>) -> Self {
        Self {
            gpid,
            node_id,
            dir: dir.into(),
            state_machine: StateMachineOptions::default(),
            plog: PlogOptions::default(),
            raft: Self::default_raft_config(),
            throttle_qps: String::new(),
            throttle_size: String::new(),
            read_throttle_qps: String::new(),
            maintenance: MaintenanceOptions::default(),
            ingestion_gate: None,
        }
    }

    /// The replica's openraft defaults: snapshots only on demand (each one flushes the
    /// engine), a purge batch of about one segment, a short log tail kept for lagging peers.
    pub fn default_raft_config() -> Config {
        Config {
            cluster_name: "siltdb".into(),
            heartbeat_interval: 50,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 100,
            purge_batch_size: 64,
            ..Config::default()
        }
    }
}

/// One replica of a partition.
pub struct Replica {
    gpid: Gpid,
    id: u64,
    raft: Raft<TypeConfig>,
    sm: EngineStateMachine,
    plog: Plog,
    router: Option<Arc<Router>>,
    throttling: WriteThrottling,
    read_throttling: WriteThrottling,
    maintenance: Maintenance,
    gate: Option<Arc<IngestionGate>>,
}

impl Replica {
    /// Opens (or creates) the replica on the in-process [`Router`] and starts its Raft; must
    /// run inside a tokio runtime.
    pub async fn open(opts: ReplicaOptions, router: Arc<Router>) -> Result<Replica> {
        let network = NetworkFactory::new(Arc::clone(&router), opts.node_id);
        let mut replica = Self::open_with_network(opts, network).await?;
        router.register(replica.id, replica.raft.clone());
        replica.router = Some(router);
        Ok(replica)
    }

    /// Opens (or creates) the replica with any openraft network (e.g. the TCP transport's
    /// [`crate::transport::TcpNetworkFactory`]) and starts its Raft; must run inside a tokio
    /// runtime.
    pub async fn open_with_network<N>(opts: ReplicaOptions, network: N) -> Result<Replica>
    where
        N: RaftNetworkFactory<TypeConfig>,
    {
        let throttling = WriteThrottling::parse(&opts.throttle_qps, &opts.throttle_size)?;
        let read_throttling = WriteThrottling::parse(&opts.read_throttle_qps, "")?;
        let config = opts
            .raft
            .clone()
            .validate()
            .map_err(|e| Error::InvalidArgument(format!("raft config: {e}")))?;
        // Opening the engine and the plog reads (and may recover) files: off the async
        // workers, so a node opening many replicas keeps serving the ones already open.
        let (dir, sm_opts, plog_opts) = (
            opts.dir.clone(),
            opts.state_machine.clone(),
            opts.plog.clone(),
        );
        let (sm, plog) = tokio::task::spawn_blocking(move || -> Result<_> {
            let fs = Arc::clone(&sm_opts.db.fs);
            let (sm, durable) = EngineStateMachine::open(&dir, sm_opts)?;
            let newest_checkpoint = sm.checkpoints().decrees().last().copied();
            let plog = Plog::open_with_checkpoint(
                dir.join("plog"),
                fs,
                plog_opts,
                durable,
                newest_checkpoint,
            )?;
            Ok((sm, plog))
        })
        .await
        .map_err(|e| Error::Closed(format!("replica open task failed: {e}")))??;
        let raft = Raft::new(
            opts.node_id,
            Arc::new(config),
            network,
            plog.clone(),
            sm.clone(),
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        let maintenance = Maintenance::start(raft.clone(), plog.clone(), &opts.maintenance);
        Ok(Replica {
            gpid: opts.gpid,
            id: opts.node_id,
            raft,
            sm,
            plog,
            router: None,
            throttling,
            read_throttling,
            maintenance,
            gate: opts.ingestion_gate.clone(),
        })
    }

    /// Creates the group's membership with the nodes' addresses (once, on one replica of a
    /// new partition). `Ok(false)` when the group was already initialized.
    pub async fn initialize_with(&self, members: BTreeMap<u64, BasicNode>) -> Result<bool> {
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(false),
            Err(e) => Err(Error::Raft(e.to_string())),
        }
    }

    /// Creates the group's membership (once, on one replica of a new partition).
    pub async fn initialize(&self, members: &[u64]) -> Result<()> {
        let m: BTreeMap<u64, BasicNode> = members
            .iter()
            .map(|&id| (id, BasicNode::new(format!("node-{id}"))))
            .collect();
        self.raft
            .initialize(m)
            .await
            .map_err(|e| Error::Raft(e.to_string()))
    }

    /// The partition.
    pub fn gpid(&self) -> Gpid {
        self.gpid
    }

    /// This replica's node id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The openraft handle (for metrics and control by a replica manager).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The plog (inspection and GC).
    pub fn plog(&self) -> &Plog {
        &self.plog
    }

    /// The engine adapter.
    pub fn state_machine(&self) -> &EngineStateMachine {
        &self.sm
    }

    /// The replica's ballot (current term).
    pub fn ballot(&self) -> Ballot {
        Ballot(self.raft.metrics().borrow().current_term)
    }

    /// The primary this replica knows of.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// The last applied decree.
    pub fn applied(&self) -> Option<Decree> {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .map(|l| Decree(l.index))
    }

    /// Write throttling: its counters, and its rules, replaceable while serving
    /// ([`WriteThrottling::reconfigure`]).
    pub fn throttling(&self) -> &WriteThrottling {
        &self.throttling
    }

    /// Read throttling of [`Replica::read`] and [`Replica::scan`] (by request count; the size
    /// rule stays off), like [`Replica::throttling`].
    pub fn read_throttling(&self) -> &WriteThrottling {
        &self.read_throttling
    }

    /// Admits a user read: refused over the reject threshold, delayed over the delay one.
    async fn admit_read(&self) -> Result<()> {
        if let Some(d) = self.read_throttling.admit(0)? {
            tokio::time::sleep(d).await;
        }
        Ok(())
    }

    /// Proposes a user write: validated, fenced by ballot, refused while a bulk-load ingestion
    /// is under way (counted by the gate), throttled, then replicated as one log entry. Returns
    /// once it is committed and applied on this (primary) replica.
    pub async fn write(&self, m: Mutation) -> Result<MutationResp> {
        if m.control.is_some() {
            return Err(Error::InvalidArgument(
                "control mutations go through write_control".into(),
            ));
        }
        self.admit_and_propose(m).await
    }

    /// The user-write path shared by [`Replica::write`] and [`Replica::write_atomic`]: request
    /// checks, the ingestion gate, throttling, then one replicated log entry.
    async fn admit_and_propose(&self, m: Mutation) -> Result<MutationResp> {
        self.check_request(&m)?;
        // The ingestion guard comes before throttling (seed S3): a write that would only be
        // refused after waiting out a throttling delay is refused at once.
        if let Some(gate) = &self.gate {
            gate.admit_user_write()
                .map_err(|_| Error::IngestionInProgress)?;
        }
        if let Some(d) = self.throttling.admit(m.size_bytes())? {
            tokio::time::sleep(d).await;
        }
        self.propose(m).await
    }

    /// Proposes a user read-modify-write ([`crate::pegasus::AtomicOp`]): gated, fenced and
    /// throttled like [`Replica::write`]; the result is decided when the entry applies and
    /// returned in [`MutationResp::atomic`].
    pub async fn write_atomic(
        &self,
        ballot: Option<Ballot>,
        op: crate::pegasus::AtomicOp,
    ) -> Result<MutationResp> {
        let m = Mutation::control(ballot, crate::mutation::ControlOp::Atomic(Box::new(op)));
        self.admit_and_propose(m).await
    }

    /// Proposes a control write (bulk-load ingestion): fenced by ballot, but neither refused by
    /// the ingestion gate nor throttled (seed S3: the ingestion must not wait behind the user
    /// writes it holds back).
    pub async fn write_control(&self, m: Mutation) -> Result<MutationResp> {
        self.check_request(&m)?;
        self.propose(m).await
    }

    fn check_request(&self, m: &Mutation) -> Result<()> {
        m.validate()?;
        let current = self.ballot();
        if let Some(b) = m.ballot {
            if b < current {
                return Err(Error::StaleBallot {
                    request: b,
                    current,
                });
            }
        }
        Ok(())
    }

    async fn propose(&self, m: Mutation) -> Result<MutationResp> {
        match self.raft.client_write(m).await {
            Ok(r) => Ok(r.data),
            Err(e) => match e.forward_to_leader() {
                Some(f) => Err(Error::NotLeader {
                    leader: f.leader_id,
                }),
                None => Err(Error::Raft(e.to_string())),
            },
        }
    }

    /// Reads a key from this replica's engine (may be stale on a secondary).
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.sm.get(key)
    }

    /// A linearizable read on the primary (ReadIndex, mapping §11).
    pub async fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.admit_read().await?;
        self.ensure_linearizable().await?;
        self.get(key)
    }

    /// A linearizable range read on the primary: up to `rows_max` user keys in `[start, end)`
    /// (`end = None`: to the last key) and at most about `bytes_max` bytes. Returns the rows and
    /// the key to resume from when the scan stopped early.
    pub async fn scan(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        rows_max: usize,
        bytes_max: usize,
    ) -> Result<ScanPage> {
        self.admit_read().await?;
        self.ensure_linearizable().await?;
        let db = self.sm.db();
        tokio::task::spawn_blocking(move || scan_engine(&db, start, end, rows_max, bytes_max))
            .await
            .map_err(|e| Error::Closed(format!("scan task failed: {e}")))?
    }

    /// Returns once this replica is the leader and applied everything committed before the
    /// call (openraft's read barrier): what a linearizable read or a consistent backup waits
    /// for.
    pub async fn ensure_linearizable(&self) -> Result<()> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|e| match e.forward_to_leader() {
                Some(f) => Error::NotLeader {
                    leader: f.leader_id,
                },
                None => Error::Raft(e.to_string()),
            })
    }

    /// A digest of this replica's user data (local, not linearizable): xxh3 of every key and
    /// value in order, with the key count and the applied decree read before and after (equal
    /// when nothing was applied meanwhile). For convergence checks.
    pub async fn digest(&self) -> Result<ReplicaDigest> {
        let before = self.applied();
        let db = self.sm.db();
        let (keys, hash) = tokio::task::spawn_blocking(move || digest_engine(&db))
            .await
            .map_err(|e| Error::Closed(format!("digest task failed: {e}")))??;
        let after = self.applied();
        Ok(ReplicaDigest {
            applied: if before == after { after } else { None },
            keys,
            hash,
        })
    }

    /// Waits until this replica applied `decree` (bounded by [`MAX_WAIT`]).
    pub async fn wait_applied(&self, decree: Decree) -> Result<()> {
        self.raft
            .wait(Some(MAX_WAIT))
            .applied_index_at_least(Some(decree.0), "wait_applied")
            .await
            .map(|_| ())
            .map_err(|e| Error::Raft(format!("replica {} waiting for {decree}: {e}", self.id)))
    }

    /// Takes a checkpoint now (an openraft snapshot: flush + hard links), waiting until the
    /// snapshot reaches the applied decree (bounded by [`MAX_WAIT`]).
    pub async fn checkpoint(&self) -> Result<Option<Decree>> {
        // Everything applied when this is called, even if the metrics do not show it yet.
        let target = self.sm.applied_decree().await.max(self.applied());
        maintenance::checkpoint_at(&self.raft, target).await
    }

    /// Purges the plog up to the newest checkpoint (as far as the durable decree and the
    /// duplication floor allow), re-running an earlier purge the floor cut short.
    pub async fn purge_log(&self) -> Result<()> {
        maintenance::purge_log(&self.raft, &self.plog).await
    }

    /// What the periodic maintenance task did so far.
    pub fn maintenance_stats(&self) -> MaintenanceStats {
        self.maintenance.stats()
    }

    /// Stops the Raft and closes the engine (flushing what was applied).
    pub async fn close(mut self) -> Result<()> {
        self.maintenance.stop().await;
        if let Some(router) = &self.router {
            router.unregister(self.id);
        }
        self.raft
            .shutdown()
            .await
            .map_err(|e| Error::Raft(e.to_string()))?;
        // Closing flushes the engine: off the async workers.
        let sm = self.sm.clone();
        tokio::task::spawn_blocking(move || sm.close())
            .await
            .map_err(|e| Error::Closed(format!("replica close task failed: {e}")))?
    }

    /// Stops the Raft and drops everything without flushing the engine: with a fault
    /// filesystem set dead beforehand, this is a crash.
    pub async fn kill(mut self) {
        self.maintenance.stop().await;
        if let Some(router) = &self.router {
            router.unregister(self.id);
        }
        let _ = self.raft.shutdown().await;
    }
}
