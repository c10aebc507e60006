//! Duplication into a follower that is a real replica group (`GroupSink`): the follower group
//! equals the source through follower primary kills and a source restart; seed S5 against a
//! group; a checkpoint replaces the follower's data; re-shipping is harmless; a bulk-load
//! ingestion stops the duplication in front of it instead of being lost.

mod common;
mod duplication_util;

use common::*;
use duplication_util::*;
use siltdb_replica::duplication::{
    DbFollower, DuplicationSink, FailMode, GroupSink, GroupSinkOptions, SinkError, Status, TestMode,
};
use siltdb_replica::mutation::{ControlOp, IngestCommand, IngestFile, RESERVED_KEY_PREFIX};
use siltdb_replica::network::Router;
use siltdb_replica::replica::{Replica, ReplicaOptions};
use siltdb_replica::siltdb::fs::FaultFs;
use siltdb_replica::siltdb::{Db, ReadOptions, SstWriter, SstWriterOptions};
use siltdb_replica::{Decree, Gpid, Mutation};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FOLLOWER_GPID: Gpid = Gpid::new(2, 0);
const MAX_WAIT: Duration = Duration::from_secs(30);

type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Every user key of `db` with its value, in key order.
fn scan(db: &Db) -> Rows {
    db.iter(&ReadOptions::default())
        .map(|item| item.expect("scan"))
        .filter(|(k, _)| !k.starts_with(RESERVED_KEY_PREFIX))
        .collect()
}

/// The follower: an in-process replica group of `FOLLOWER_GPID` and the sink over it. Each
/// node has its own fault filesystem, so that a kill is a crash of that node alone.
struct FollowerGroup {
    dir: PathBuf,
    router: Arc<Router>,
    sink: Arc<GroupSink>,
    size: usize,
    fs: Mutex<HashMap<u64, FaultFs>>,
}

impl FollowerGroup {
    async fn start(root: &Path, size: u64) -> FollowerGroup {
        let mut opts = GroupSinkOptions::new(root.join("follower-scratch"));
        opts.scratch_db.memtable_size_bytes = 256 << 10;
        // Small follower mutations, so that merging and checkpoint streaming split.
        opts.mutation_ops_max = 8;
        // Shorter than an election: a ship during one fails and the duplicator retries it.
        opts.leader_wait_max = Duration::from_millis(200);
        let g = FollowerGroup {
            dir: root.join("follower-group"),
            router: Router::new(FOLLOWER_GPID),
            sink: Arc::new(GroupSink::new(
                FOLLOWER_GPID,
                tokio::runtime::Handle::current(),
                opts,
            )),
            size: size as usize,
            fs: Mutex::default(),
        };
        for id in 1..=size {
            g.open(id).await;
        }
        let members: Vec<u64> = (1..=size).collect();
        let first = g.sink.replicas().remove(0);
        first.initialize(&members).await.unwrap();
        drop(first);
        g.leader_id().await;
        g
    }

    fn fs(&self, id: u64) -> FaultFs {
        self.fs.lock().unwrap().entry(id).or_default().clone()
    }

    fn options(&self, id: u64) -> ReplicaOptions {
        let mut o = options(&self.dir, id, Some(self.fs(id)));
        o.gpid = FOLLOWER_GPID;
        o
    }

    fn as_sink(&self) -> Arc<dyn DuplicationSink> {
        Arc::clone(&self.sink) as Arc<dyn DuplicationSink>
    }

    /// Opens node `id` (first start or restart) and hands it to the sink.
    async fn open(&self, id: u64) {
        let r = open(self.options(id), &self.router).await;
        self.sink.set_replica(Arc::new(r)).unwrap();
    }

    async fn leader_id(&self) -> u64 {
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            if let Some(r) = self.sink.leader() {
                return r.id();
            }
            assert!(Instant::now() < deadline, "follower group has no primary");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Takes node `id` away from the sink and returns sole ownership of it, once a sink call
    /// in flight has dropped its clone.
    async fn take(&self, id: u64) -> Replica {
        let mut r = self.sink.remove_replica(id).expect("a known replica");
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            match Arc::try_unwrap(r) {
                Ok(r) => return r,
                Err(back) => {
                    assert!(Instant::now() < deadline, "node {id} still in use");
                    r = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    /// Crashes node `id`: nothing more reaches its disk, the engine is dropped unflushed, and
    /// what was not synced is lost.
    async fn kill(&self, id: u64) {
        let r = self.take(id).await;
        let fs = self.fs(id);
        fs.set_dead();
        // Releases the engine's lock; with the disk dead nothing is persisted.
        let _ = r.state_machine().close();
        r.kill().await;
        fs.power_loss();
    }

    /// Writes `m` through the follower's primary, retrying elections (bounded).
    async fn write(&self, m: Mutation) -> u64 {
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            let err = match self.sink.leader() {
                Some(l) => match l.write_control(m.clone()).await {
                    Ok(resp) => return resp.decree,
                    Err(e) => e.to_string(),
                },
                None => "no primary".to_string(),
            };
            assert!(Instant::now() < deadline, "follower write failed: {err}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A barrier write, then every replica's user keys once it applied the barrier.
    async fn converged_scans(&self) -> Vec<(u64, Rows)> {
        let barrier = self.write(Mutation::new()).await;
        let mut out = Vec::new();
        for r in self.sink.replicas() {
            r.wait_applied(Decree(barrier)).await.unwrap();
            out.push((r.id(), scan(&r.state_machine().db())));
        }
        assert_eq!(out.len(), self.size, "every follower replica is running");
        out
    }

    /// Asserts every follower replica holds exactly `want`.
    async fn assert_equal(&self, want: &Rows) {
        for (id, got) in self.converged_scans().await {
            assert_eq!(got.len(), want.len(), "follower replica {id}: key count");
            assert!(
                got == *want,
                "follower replica {id} differs from the source"
            );
        }
    }

    /// The sink's scratch directory holds nothing.
    fn assert_no_scratch(&self, root: &Path) {
        let scratch = root.join("follower-scratch");
        let left: Vec<_> = std::fs::read_dir(&scratch)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "scratch left behind: {left:?}");
    }

    async fn stop(&self) {
        let ids: Vec<u64> = self.sink.replicas().iter().map(|r| r.id()).collect();
        for id in ids {
            self.take(id).await.close().await.unwrap();
        }
    }
}

/// Write `n` of the load: puts, deletes and range deletes over 300 keys.
fn mixed(n: u64) -> Mutation {
    let k = (n * 7) % 300;
    let mut m = Mutation::new();
    match n % 5 {
        0 => {
            m.delete(key(k));
        }
        1 => {
            m.delete_range(key(k), key(k + 3));
        }
        _ => {
            m.put(key(k), value(k, n));
        }
    }
    m
}

/// Writes `mixed(n)` for n = 0, 1, ... on the source until `stop`.
fn spawn_writer(
    source: Arc<Replica>,
    next: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::SeqCst) {
            let n = next.fetch_add(1, Ordering::SeqCst);
            write(&source, mixed(n)).await;
            // Continuous, not flat out: the machine is shared with the follower group.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
}

async fn wait_until(what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + MAX_WAIT;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_group_equals_source_through_primary_kills_and_a_source_restart() {
    let root = tempfile::tempdir().unwrap();
    let group = FollowerGroup::start(root.path(), 3).await;
    let mut env = Env::with_follower(TestMode::Ok, Some(group.as_sink())).await;
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    let next = Arc::new(AtomicU64::new(0));
    let kills = if common::soak() { 8 } else { 2 };
    for round in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = spawn_writer(Arc::clone(env.r()), Arc::clone(&next), Arc::clone(&stop));
        // Shipping under load, then the follower's primary crashes mid-stream.
        let shipped = env.info(id).confirmed_decree;
        env.wait_for(id, "shipping", |i| {
            i.status == Status::Log && i.confirmed_decree > shipped
        })
        .await;
        // The follower's primary crashes; the other two elect a new one while the source
        // writes on and the duplicator meets a group without a primary.
        let leader = group.leader_id().await;
        group.kill(leader).await;
        let new_leader = group.leader_id().await;
        assert_ne!(new_leader, leader, "the crashed primary is gone");
        group.open(leader).await;
        let shipped = env.info(id).confirmed_decree;
        env.wait_for(id, "shipping after the kill", |i| {
            i.confirmed_decree > shipped
        })
        .await;
        stop.store(true, Ordering::SeqCst);
        writer.await.unwrap();
        if round % 3 == 0 {
            // The source restarts too, through its persisted duplication record.
            env.restart().await;
        }
    }
    let last = write(env.r(), mixed(next.fetch_add(1, Ordering::SeqCst))).await;
    env.wait_caught_up(id, last).await;
    let want = scan(&env.r().state_machine().db());
    assert!(want.len() > 100, "the load left {} keys", want.len());
    group.assert_equal(&want).await;
    // Every kill left the group without a primary while the duplicator was shipping.
    let stats = group.sink.stats();
    assert!(
        stats.retries > 0,
        "no follower write met an election: {stats:?}"
    );
    assert_eq!(env.info(id).last_error, None);
    env.stop().await;
    group.stop().await;
}

async fn restart_in_prepare_with_a_group_follower(pre_writes: u64) {
    let root = tempfile::tempdir().unwrap();
    let group = FollowerGroup::start(root.path(), 3).await;
    let mut env = Env::with_follower(TestMode::Reject, Some(group.as_sink())).await;
    for i in 0..pre_writes {
        write(env.r(), put(i, 0)).await;
    }
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    let auth_error = |i: &siltdb_replica::duplication::DuplicationInfo| {
        i.last_error
            .as_deref()
            .is_some_and(|e| e.contains("authentication"))
    };
    env.wait_for(id, "auth error in PREPARE", |i| {
        i.status == Status::Prepare && auth_error(i)
    })
    .await;

    env.restart().await;
    let i = env.info(id);
    assert_eq!(i.status, Status::Prepare);
    assert!(auth_error(&i), "error visible after restart: {i:?}");
    // The sink keeps rejecting: wait for more rejections, not for time.
    let failures = env.control.failures.load(Ordering::Relaxed);
    wait_until("more rejected attempts", || {
        env.control.failures.load(Ordering::Relaxed) >= failures + 2
    })
    .await;
    assert_eq!(env.info(id).status, Status::Prepare, "still blocked");

    let mut last = 0;
    for i in pre_writes..pre_writes + 20 {
        last = write(env.r(), put(i, 1)).await;
    }
    env.control.set(TestMode::Ok);
    env.wait_caught_up(id, last).await;
    let i = env.info(id);
    assert_eq!(i.last_error, None);
    assert!(i.checkpoint_decree >= Some(Decree(1)));
    let want = scan(&env.r().state_machine().db());
    let want_keys: Vec<Vec<u8>> = (0..pre_writes + 20).map(key).collect();
    let got_keys: Vec<Vec<u8>> = want.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(got_keys, want_keys, "the source holds every record");
    group.assert_equal(&want).await;
    env.stop().await;
    group.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s5_restart_in_prepare_with_a_group_follower() {
    restart_in_prepare_with_a_group_follower(30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s5_restart_in_prepare_with_a_group_follower_and_an_empty_table() {
    restart_in_prepare_with_a_group_follower(0).await;
}

/// Runs a blocking sink call off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apply_checkpoint_replaces_the_follower_groups_data() {
    let root = tempfile::tempdir().unwrap();
    let group = FollowerGroup::start(root.path(), 3).await;
    // The source: a single-replica group with a checkpoint.
    let router = Router::new(GPID);
    let src = open(options(&root.path().join("source"), 1, None), &router).await;
    src.initialize(&[1]).await.unwrap();
    wait_leader(&[&src], None).await;
    for i in 0..100 {
        write(&src, put(i, 0)).await;
    }
    let mut m = Mutation::new();
    m.delete(key(10)).delete_range(key(40), key(45));
    write(&src, m).await;
    let ck = src.checkpoint().await.unwrap().expect("a checkpoint");
    let (_, pin) = src.state_machine().checkpoints().newest().unwrap();
    let want = scan(&src.state_machine().db());
    assert_eq!(want.len(), 94);

    // The follower holds keys the checkpoint lacks: above it, below the reserved prefix, and
    // a large one; and stale values of keys it has.
    let mut m = Mutation::new();
    for i in 50..150 {
        m.put(key(i), "stale");
    }
    m.put(&b"\0a"[..], "below the reserved keys")
        .put(vec![0xff; 300], "largest")
        .put(key(10), "deleted at the source");
    group.write(m).await;

    let (sink, dir) = (Arc::clone(&group.sink), pin.dir.clone());
    blocking(move || sink.apply_checkpoint(&dir, Decree(ck.0)))
        .await
        .unwrap();
    group.assert_equal(&want).await;
    group.assert_no_scratch(root.path());

    // A checkpoint that cannot be copied fails before the follower is touched, and leaves no
    // scratch copy behind.
    let (sink, missing) = (Arc::clone(&group.sink), root.path().join("missing"));
    let e = blocking(move || sink.apply_checkpoint(&missing, Decree(7)))
        .await
        .unwrap_err();
    assert!(
        matches!(e, SinkError::Unavailable(ref s) if s.contains("checkpoint at decree 7")),
        "{e}"
    );
    group.assert_equal(&want).await;
    group.assert_no_scratch(root.path());
    drop(pin);
    src.close().await.unwrap();
    group.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reshipping_a_prefix_and_then_the_batch_is_harmless() {
    let root = tempfile::tempdir().unwrap();
    let group = FollowerGroup::start(root.path(), 3).await;
    let model = Arc::new(DbFollower::open(root.path().join("model"), Default::default()).unwrap());
    let batch: Vec<(Decree, Mutation)> = (1..=60).map(|d| (Decree(d), mixed(d))).collect();
    let (sink, b) = (Arc::clone(&group.sink), batch.clone());
    let acked = blocking(move || {
        let prefix = sink.ship(&b[..25])?;
        let once = sink.ship(&b)?;
        let twice = sink.ship(&b)?;
        Ok::<_, SinkError>((prefix, once, twice))
    })
    .await
    .unwrap();
    assert_eq!(acked, (Decree(25), Decree(60), Decree(60)));
    assert_eq!(model.ship(&batch), Ok(Decree(60)));
    let want = scan(&model.db());
    assert!(!want.is_empty());
    group.assert_equal(&want).await;
    model.close().unwrap();
    group.stop().await;
}

/// One SST of `n` keys `bulk-<i>` in `dir`, as the file list of an ingest command.
fn bulk_sst(dir: &Path, n: usize) -> Vec<IngestFile> {
    std::fs::create_dir_all(dir).unwrap();
    let name = "000001.sst";
    let path = dir.join(name);
    let mut w = SstWriter::create(&path, &SstWriterOptions::default()).unwrap();
    for i in 0..n {
        w.put(format!("bulk-{i:05}"), format!("loaded-{i}"))
            .unwrap();
    }
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    vec![IngestFile {
        name: name.into(),
        size: bytes.len() as u64,
        crc32c: crc32c::crc32c(&bytes),
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bulk_load_ingestion_stops_the_duplication_in_front_of_it() {
    let root = tempfile::tempdir().unwrap();
    let group = FollowerGroup::start(root.path(), 1).await;
    let mut env = Env::with_follower(TestMode::Ok, Some(group.as_sink())).await;
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    let mut last = 0;
    for i in 0..20 {
        last = write(env.r(), put(i, 0)).await;
    }
    env.wait_caught_up(id, last).await;

    let load = env.dir.path().join("load");
    let cmd = IngestCommand {
        load_id: 7,
        source_dir: load.to_str().unwrap().to_string(),
        files: bulk_sst(&load, 50),
    };
    let ingest = env
        .r()
        .write_control(Mutation::control(None, ControlOp::Ingest(cmd)))
        .await
        .unwrap()
        .decree;
    assert_eq!(
        env.r().get(b"bulk-00049").unwrap(),
        Some(b"loaded-49".to_vec())
    );
    for i in 20..40 {
        write(env.r(), put(i, 0)).await;
    }
    let error = format!("bulk-load ingestion at decree {ingest} cannot be duplicated");
    let stuck = |i: &siltdb_replica::duplication::DuplicationInfo| {
        i.status == Status::Log
            && i.confirmed_decree == Some(Decree(ingest - 1))
            && i.last_error.as_deref().is_some_and(|e| e.contains(&error))
    };
    env.wait_for(id, "stop in front of the ingestion", stuck)
        .await;

    // Neither SKIP nor a restart takes it past the ingestion.
    env.dups().set_fail_mode(id, FailMode::Skip).unwrap();
    env.restart().await;
    assert!(stuck(&env.info(id)), "after restart: {:?}", env.info(id));
    // Several retry periods (the backoff is at most 50 ms here).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(stuck(&env.info(id)), "{:?}", env.info(id));
    let follower = group.converged_scans().await.remove(0).1;
    let want_before: Rows = (0..20).map(|i| (key(i), value(i, 0))).collect();
    assert_eq!(
        follower, want_before,
        "the follower holds exactly what came before"
    );

    // The way out: a new duplication copies a checkpoint that holds the loaded data.
    env.dups().remove(id).unwrap();
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    let last = write(env.r(), put(40, 0)).await;
    env.wait_caught_up(id, last).await;
    let want = scan(&env.r().state_machine().db());
    assert_eq!(want.len(), 41 + 50);
    group.assert_equal(&want).await;
    env.stop().await;
    group.stop().await;
}
