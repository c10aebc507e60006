//! Helpers shared by the replica integration tests.
#![allow(dead_code)]

use siltdb::fs::{FaultFs, FileSystem};
use siltdb_replica::network::Router;
use siltdb_replica::replica::{Replica, ReplicaOptions};
use siltdb_replica::{Error, Gpid, Mutation};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const GPID: Gpid = Gpid::new(1, 0);

pub fn options(dir: &Path, id: u64, fs: Option<FaultFs>) -> ReplicaOptions {
    let mut o = ReplicaOptions::new(GPID, id, dir.join(format!("r{id}")));
    o.state_machine.db.memtable_size_bytes = 256 << 10;
    o.state_machine.db.max_background_jobs = 1;
    if let Some(fs) = fs {
        o.state_machine.db.fs = Arc::new(fs) as Arc<dyn FileSystem>;
    }
    o.plog.segment_size_max_bytes = 16 << 10;
    o
}

pub fn key(i: u64) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

pub fn value(i: u64, round: u64) -> Vec<u8> {
    format!("value-{i}-{round}-{}", "x".repeat((i % 7) as usize * 10)).into_bytes()
}

pub fn put(i: u64, round: u64) -> Mutation {
    let mut m = Mutation::new();
    m.put(key(i), value(i, round));
    m
}

/// Waits until some replica in `rs` is leader and all agree; returns its index in `rs`.
pub async fn wait_leader(rs: &[&Replica], not: Option<u64>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, r) in rs.iter().enumerate() {
            let l = r.leader();
            if l == Some(r.id()) && Some(r.id()) != not {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes through `r`, retrying while the group is electing.
pub async fn write(r: &Replica, m: Mutation) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match r.write(m.clone()).await {
            Ok(resp) => return resp.decree,
            Err(Error::NotLeader { .. }) | Err(Error::Raft(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
}

pub async fn open(opts: ReplicaOptions, router: &Arc<Router>) -> Replica {
    Replica::open(opts, Arc::clone(router))
        .await
        .expect("open replica")
}

/// Crashes `r`: nothing more reaches the disk, the engine is closed on the dead filesystem
/// (releasing its LOCK without writing), the Raft stops, and unsynced data is lost.
pub async fn crash(r: Replica, fs: &FaultFs) {
    fs.set_dead();
    let _ = r.state_machine().close();
    r.kill().await;
    fs.power_loss();
}

/// The plog segment files of the replica in `replica_dir`, oldest first.
pub fn plog_segments(replica_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<_> = std::fs::read_dir(replica_dir.join("plog"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    segs
}

/// True when `SILT_SOAK=1` asks for the long run; any other value (or none) is the short run.
pub fn soak() -> bool {
    std::env::var("SILT_SOAK").is_ok_and(|v| v == "1")
}
