//! Real replica groups for the bulk-load tests: one partition = a `Router`, 1..3 `Replica`s
//! sharing the partition's ingestion gate, a `ReplicaGroupTarget` over them, and the
//! partition's bulk-load driver. The tests drive it from plain threads; the replicas run on a
//! tokio runtime owned by the test.

use siltdb_replica::bulk_load::download::DownloadManager;
use siltdb_replica::bulk_load::provider::BulkLoadProvider;
use siltdb_replica::bulk_load::replica_target::ReplicaGroupTarget;
use siltdb_replica::bulk_load::target::IngestionGate;
use siltdb_replica::bulk_load::{PartitionBulkLoad, PartitionConfig};
use siltdb_replica::network::Router;
use siltdb_replica::replica::{Replica, ReplicaOptions};
use siltdb_replica::siltdb::fs::FileSystem;
use siltdb_replica::{Error, Gpid, Mutation};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bound on elections, writes and catch-up in these tests.
pub const MAX_GROUP_WAIT: Duration = Duration::from_secs(20);

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One partition's replica group and its bulk-load driver.
pub struct Group {
    pub gpid: Gpid,
    pub root: PathBuf,
    pub router: Arc<Router>,
    pub gate: Arc<IngestionGate>,
    pub replicas: Vec<Arc<Replica>>,
    pub target: Arc<ReplicaGroupTarget>,
    pub driver: Arc<PartitionBulkLoad>,
    pub config: PartitionConfig,
}

pub fn replica_options(
    root: &Path,
    gpid: Gpid,
    id: u64,
    gate: &Arc<IngestionGate>,
    fs: Option<Arc<dyn FileSystem>>,
) -> ReplicaOptions {
    let mut o = ReplicaOptions::new(gpid, id, root.join(format!("r{id}")));
    o.state_machine.db.memtable_size_bytes = 256 << 10;
    o.state_machine.db.max_background_jobs = 1;
    if let Some(fs) = fs {
        o.state_machine.db.fs = fs;
    }
    o.plog.segment_size_max_bytes = 64 << 10;
    o.ingestion_gate = Some(gate.clone());
    o
}

impl Group {
    /// Opens `members` replicas of partition `p` under `root/p<p>/`, initializes the group,
    /// waits for a primary, and opens the driver (its files under `root/p<p>/bulk`).
    pub fn open(
        rt: &tokio::runtime::Runtime,
        root: &Path,
        p: u32,
        members: u64,
        tune: impl Fn(&mut ReplicaOptions),
        provider: Arc<dyn BulkLoadProvider>,
        downloads: &Arc<DownloadManager>,
    ) -> Group {
        let gpid = Gpid::new(1, p);
        let root = root.join(format!("p{p}"));
        let router = Router::new(gpid);
        let gate = IngestionGate::new(downloads.metrics().clone());
        let mut replicas = Vec::new();
        for id in 1..=members {
            let mut o = replica_options(&root, gpid, id, &gate, None);
            tune(&mut o);
            replicas.push(Arc::new(
                rt.block_on(Replica::open(o, router.clone())).unwrap(),
            ));
        }
        let ids: Vec<u64> = (1..=members).collect();
        rt.block_on(replicas[0].initialize(&ids)).unwrap();
        let target = Arc::new(ReplicaGroupTarget::new(
            replicas.clone(),
            rt.handle().clone(),
            gate.clone(),
        ));
        let config = driver_config(gpid, &root);
        let driver = PartitionBulkLoad::open(
            config.clone(),
            provider,
            target.clone(),
            gate.clone(),
            downloads.clone(),
        )
        .unwrap();
        let group = Group {
            gpid,
            root,
            router,
            gate,
            replicas,
            target,
            driver,
            config,
        };
        group.primary(rt);
        group
    }

    /// Restarts the bulk-load driver as a process restart would: the old one is dropped (which
    /// cancels and joins its download), then a new one recovers the persisted state.
    pub fn restart_driver(
        self,
        provider: Arc<dyn BulkLoadProvider>,
        downloads: &Arc<DownloadManager>,
    ) -> Group {
        self.restart_driver_with(provider, downloads, |_| {})
    }

    /// [`Group::restart_driver`] with the driver's configuration changed by `tune`.
    pub fn restart_driver_with(
        self,
        provider: Arc<dyn BulkLoadProvider>,
        downloads: &Arc<DownloadManager>,
        tune: impl FnOnce(&mut PartitionConfig),
    ) -> Group {
        let Group { driver, .. } = &self;
        assert_eq!(Arc::strong_count(driver), 1, "the driver is still shared");
        let Group {
            gpid,
            root,
            router,
            gate,
            replicas,
            target,
            driver,
            mut config,
        } = self;
        drop(driver);
        tune(&mut config);
        let driver = PartitionBulkLoad::open(
            config.clone(),
            provider,
            target.clone(),
            gate.clone(),
            downloads.clone(),
        )
        .unwrap();
        Group {
            gpid,
            root,
            router,
            gate,
            replicas,
            target,
            driver,
            config,
        }
    }

    /// The primary, once every live replica agrees on it.
    pub fn primary(&self, rt: &tokio::runtime::Runtime) -> Arc<Replica> {
        wait_primary(rt, &self.replicas)
    }

    /// Closes every replica (the driver and target must be dropped by the caller first or
    /// hold the last other references).
    pub fn close(self, rt: &tokio::runtime::Runtime) {
        let Group {
            replicas,
            target,
            driver,
            ..
        } = self;
        drop(driver);
        drop(target);
        for r in replicas {
            match Arc::try_unwrap(r) {
                Ok(r) => rt.block_on(r.close()).unwrap(),
                Err(_) => panic!("a replica is still referenced at close"),
            }
        }
    }
}

pub fn driver_config(gpid: Gpid, root: &Path) -> PartitionConfig {
    let mut config = PartitionConfig::new(gpid, root.join("bulk"));
    config.ingest_timeout = Duration::from_secs(60);
    config.ingest_attempt_timeout = Duration::from_secs(10);
    config
}

pub fn wait_primary(rt: &tokio::runtime::Runtime, replicas: &[Arc<Replica>]) -> Arc<Replica> {
    let deadline = Instant::now() + MAX_GROUP_WAIT;
    loop {
        let leaders: Vec<_> = replicas.iter().map(|r| r.leader()).collect();
        if let Some(r) = replicas.iter().find(|r| r.leader() == Some(r.id())) {
            if leaders.iter().all(|l| *l == Some(r.id())) {
                return r.clone();
            }
        }
        assert!(Instant::now() < deadline, "no primary: {leaders:?}");
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    }
}

/// A user write through `r`, retried while the group elects; the decree it applied at.
pub fn user_write(rt: &tokio::runtime::Runtime, r: &Replica, m: Mutation) -> u64 {
    let deadline = Instant::now() + MAX_GROUP_WAIT;
    loop {
        match rt.block_on(r.write(m.clone())) {
            Ok(resp) => return resp.decree,
            Err(Error::NotLeader { .. } | Error::Raft(_)) if Instant::now() < deadline => {
                rt.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
            }
            Err(e) => panic!("user write failed: {e}"),
        }
    }
}

/// Names of `ingest.*` staging directories left in a replica directory.
pub fn staging_dirs(replica: &Replica) -> Vec<String> {
    let dir = replica
        .state_machine()
        .db()
        .path()
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ingest."))
        .collect()
}
