//! Faults under a replica: every kind of file operation failing (EIO, ENOSPC) at points across
//! a workload of plog appends, engine flushes, checkpoints and plog GC; and power loss at many
//! crash points. Each case: errors are returned (never a panic or a hang), and after the fault
//! clears and the power comes back, every acknowledged write is there and no key that was never
//! written appears. Prints a table of cases. `SILT_SOAK=1` runs many more points.

mod common;

use common::GPID;
use siltdb::fs::{FaultFs, FaultKind, FileSystem, IoOp};
use siltdb_replica::network::Router;
use siltdb_replica::replica::{Replica, ReplicaOptions};
use siltdb_replica::{Error, Mutation};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes per case.
const WRITES: u64 = 60;
/// A checkpoint + plog purge every this many writes.
const CHECKPOINT_EVERY: u64 = 15;
/// Bound on any single replica call in a faulted run.
const CALL_BOUND: Duration = Duration::from_secs(20);

fn options(dir: &Path, fs: &FaultFs) -> ReplicaOptions {
    let mut o = ReplicaOptions::new(GPID, 1, dir.join("r1"));
    o.state_machine.db.memtable_size_bytes = 64 << 10;
    o.state_machine.db.max_background_jobs = 1;
    o.state_machine.db.fs = Arc::new(fs.clone()) as Arc<dyn FileSystem>;
    o.state_machine.checkpoints_keep = 1;
    o.plog.segment_size_max_bytes = 8 << 10;
    o.maintenance.interval = None;
    o.raft.heartbeat_interval = 20;
    o.raft.election_timeout_min = 60;
    o.raft.election_timeout_max = 120;
    o
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(400, b'a' + (i % 26) as u8);
    v
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CALL_BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung for {CALL_BOUND:?}"))
}

async fn wait_leader(r: &Replica) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.leader() != Some(r.id()) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// What a faulted run did.
#[derive(Default)]
struct Outcome {
    acked: BTreeMap<u64, u64>,
    attempted: u64,
    failed: bool,
}

/// Opens a fresh replica, arms the fault with `arm` once it leads, runs the workload until the
/// first error. Returns the acknowledged writes (key → decree).
async fn faulted_run(dir: &Path, fs: &FaultFs, arm: impl FnOnce(&FaultFs)) -> Outcome {
    let router = Router::new(GPID);
    let r = bounded("open", Replica::open(options(dir, fs), Arc::clone(&router)))
        .await
        .expect("open before any fault");
    bounded("initialize", r.initialize(&[1])).await.unwrap();
    assert!(wait_leader(&r).await, "no leader before any fault");
    arm(fs);
    let mut out = Outcome::default();
    for i in 0..WRITES {
        out.attempted = i + 1;
        let mut m = Mutation::new();
        m.put(key(i), value(i));
        match bounded("write", r.write(m)).await {
            Ok(resp) => {
                out.acked.insert(i, resp.decree);
            }
            Err(Error::NotLeader { .. }) | Err(_) => {
                out.failed = true;
                break;
            }
        }
        if (i + 1) % CHECKPOINT_EVERY == 0 {
            let ok = bounded("checkpoint", r.checkpoint()).await.is_ok()
                && bounded("purge", r.purge_log()).await.is_ok();
            if !ok {
                out.failed = true;
                break;
            }
        }
    }
    // Crash: nothing more reaches the disk; the engine is dropped without a flush.
    fs.set_dead();
    let _ = r.state_machine().close();
    bounded("kill", r.kill()).await;
    out
}

/// Power comes back: unsynced data is gone, faults are cleared. Reopens and checks.
async fn recover_and_verify(dir: &Path, fs: &FaultFs, out: &Outcome, case: &str) {
    fs.power_loss();
    let router = Router::new(GPID);
    let r = bounded(
        "reopen",
        Replica::open(options(dir, fs), Arc::clone(&router)),
    )
    .await
    .unwrap_or_else(|e| panic!("{case}: reopen failed: {e}"));
    assert!(wait_leader(&r).await, "{case}: no leader after recovery");
    // A new write commits after everything before it, so all committed entries are applied.
    let mut m = Mutation::new();
    m.put(b"marker".to_vec(), b"1".to_vec());
    bounded("marker write", r.write(m))
        .await
        .unwrap_or_else(|e| panic!("{case}: write after recovery failed: {e}"));
    for i in 0..WRITES {
        let got = r.get(&key(i)).unwrap();
        if out.acked.contains_key(&i) {
            assert_eq!(
                got,
                Some(value(i)),
                "{case}: acknowledged write of key {i} lost"
            );
        } else if i >= out.attempted {
            assert_eq!(got, None, "{case}: key {i} was never written");
        } else if let Some(v) = got {
            assert_eq!(v, value(i), "{case}: key {i} holds a wrong value");
        }
    }
    bounded("close", r.close())
        .await
        .unwrap_or_else(|e| panic!("{case}: close after recovery failed: {e}"));
}

/// Counts the calls of every kind a clean run of the workload makes after the leader is up.
async fn census() -> HashMap<IoOp, u64> {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let before = std::sync::Mutex::new(HashMap::new());
    let out = faulted_run(dir.path(), &fs, |fs| {
        *before.lock().unwrap() = IoOp::ALL
            .iter()
            .map(|op| (*op, fs.op_count(*op)))
            .collect::<HashMap<_, _>>();
    })
    .await;
    assert!(!out.failed && out.acked.len() as u64 == WRITES);
    let before = before.into_inner().unwrap();
    IoOp::ALL
        .iter()
        .map(|op| (*op, fs.op_count(*op) - before[op]))
        .collect()
}

/// Up to `k` points spread evenly over `1..=n`, both ends included.
fn points(n: u64, k: u64) -> Vec<u64> {
    if n == 0 {
        return Vec::new();
    }
    let k = k.max(2);
    let mut v: Vec<u64> = (0..k).map(|j| 1 + j * (n - 1) / (k - 1)).collect();
    v.dedup();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_kind_failing_loses_nothing_acknowledged() {
    let counts = census().await;
    let per_kind = if common::soak() { 12 } else { 3 };
    println!(
        "{:<10} {:>6} {:>7} {:>6} {:>8} {:>7}",
        "op", "calls", "fault", "cases", "errored", "acked"
    );
    let mut total = 0;
    for op in IoOp::ALL {
        let n = counts[&op];
        for kind in [FaultKind::Eio, FaultKind::Enospc] {
            let (mut cases, mut errored, mut acked) = (0, 0, 0);
            for nth in points(n, per_kind) {
                let dir = tempfile::tempdir().unwrap();
                let fs = FaultFs::new();
                let out = faulted_run(dir.path(), &fs, |fs| fs.fail_nth(op, nth, kind)).await;
                let case = format!("{op:?} #{nth} {kind:?}");
                recover_and_verify(dir.path(), &fs, &out, &case).await;
                cases += 1;
                errored += u64::from(out.failed);
                acked += out.acked.len();
            }
            println!(
                "{:<10} {n:>6} {:>7} {cases:>6} {errored:>8} {acked:>7}",
                format!("{op:?}"),
                format!("{kind:?}")
            );
            total += cases;
        }
    }
    println!("{total} cases, all recovered with every acknowledged write");
    // The workload really exercises plog append, sync, rollover and GC.
    for op in [
        IoOp::Create,
        IoOp::Append,
        IoOp::Sync,
        IoOp::Rename,
        IoOp::Remove,
        IoOp::SyncDir,
    ] {
        assert!(
            counts[&op] > 0,
            "the workload never called {op:?}: {counts:?}"
        );
    }
    assert!(total >= 30, "{total} cases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_at_many_crash_points_loses_no_committed_write() {
    let counts = census().await;
    let mutating: u64 = counts
        .iter()
        .filter(|(op, _)| **op != IoOp::Read)
        .map(|(_, n)| n)
        .sum();
    let k = if common::soak() { 300 } else { 24 };
    let (mut crashed, mut acked) = (0, 0);
    for after in points(mutating, k) {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let out = faulted_run(dir.path(), &fs, |fs| fs.die_after(after)).await;
        recover_and_verify(
            dir.path(),
            &fs,
            &out,
            &format!("power loss after {after} calls"),
        )
        .await;
        crashed += u64::from(out.failed);
        acked += out.acked.len();
    }
    println!(
        "{} crash points over {mutating} mutating calls: {crashed} cut the workload short, \
         {acked} acknowledged writes verified after power loss",
        points(mutating, k).len()
    );
    assert!(crashed > 0, "no crash point hit the workload");
}
