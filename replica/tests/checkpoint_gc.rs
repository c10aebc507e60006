//! Checkpoints and their GC: the periodic maintenance task, keeping the newest N, never removing
//! a checkpoint that a transfer (learn) holds, and many write → checkpoint → GC cycles under load
//! (the replica half of S4). Long loops with `SILT_SOAK=1`.

mod common;

use common::*;
use siltdb_replica::maintenance::MaintenanceOptions;
use siltdb_replica::network::Router;
use siltdb_replica::replica::Replica;
use siltdb_replica::Decree;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn checkpoint_dirs(replica_dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(replica_dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            siltdb_replica::checkpoint::parse_checkpoint_name(&name)
        })
        .collect();
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_task_checkpoints_purges_and_collects_while_writes_continue() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let mut o = options(dir.path(), 1, None);
    o.maintenance = MaintenanceOptions {
        interval: Some(Duration::from_millis(40)),
        min_new_decrees: 5,
    };
    o.state_machine.checkpoints_keep = 2;
    let rdir = o.dir.clone();
    let r = open(o, &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    let mut last = 0;
    for i in 0..400 {
        last = write(&r, put(i % 150, i / 150)).await;
        if i % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // A round checkpoints once 5 decrees are new, so the last checkpoint ends within 4 of the
    // last write (exactly at it when the writes stopped right after a round).
    eventually(
        "a checkpoint within min_new_decrees of the last write",
        20,
        || {
            r.maintenance_stats()
                .last_checkpoint
                .is_some_and(|d| d.0 + 5 > last)
        },
    )
    .await;
    let stats = r.maintenance_stats();
    let ck = stats.last_checkpoint.unwrap().0;
    assert!(stats.checkpoints >= 3, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    // GC kept the newest two; the plog was purged up to the newest checkpoint.
    let kept = r.state_machine().checkpoints().decrees();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept.last(), Some(&ck));
    assert_eq!(checkpoint_dirs(&rdir), kept);
    eventually("the plog purged to the newest checkpoint", 20, || {
        r.plog().stats().purged.map(|p| p.index) == Some(ck)
    })
    .await;
    // Nothing new: rounds go on without checkpoints.
    let before = r.maintenance_stats();
    eventually("two idle rounds", 20, || {
        r.maintenance_stats().rounds >= before.rounds + 2
    })
    .await;
    assert_eq!(r.maintenance_stats().checkpoints, before.checkpoints);
    // Close stops and joins the task promptly.
    let t = Instant::now();
    r.close().await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    // The state reopens from the newest checkpoint's engine state plus nothing else.
    let r = open(options(dir.path(), 1, None), &router).await;
    wait_leader(&[&r], None).await;
    for i in 0..150u64 {
        let round = if i < 100 { 2 } else { 1 };
        assert_eq!(r.get(&key(i)).unwrap(), Some(value(i, round)), "key {i}");
    }
    r.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_keeps_the_newest_n_and_never_a_pinned_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let mut o = options(dir.path(), 1, None);
    o.maintenance.interval = None;
    o.state_machine.checkpoints_keep = 2;
    let rdir = o.dir.clone();
    let r = open(o, &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    let mut taken = Vec::new();
    let mut pin = None;
    for round in 0..6 {
        let mut d = 0;
        for i in 0..10 {
            d = write(&r, put(i, round)).await;
        }
        // `checkpoint` targets the applied decree the metrics report, which may trail a reply.
        r.wait_applied(Decree(d)).await.unwrap();
        let ck = r.checkpoint().await.unwrap().unwrap();
        taken.push(ck.0);
        if round == 1 {
            // A reader (a transfer) holds the second checkpoint from here on.
            let (meta, handle) = r.state_machine().checkpoints().newest().unwrap();
            assert_eq!(meta.last_log_id.map(|l| l.index), Some(ck.0));
            pin = Some(handle);
        }
    }
    let pinned = taken[1];
    let mut want = vec![pinned, taken[4], taken[5]];
    want.sort_unstable();
    assert_eq!(r.state_machine().checkpoints().decrees(), want);
    assert_eq!(checkpoint_dirs(&rdir), want);
    assert!(r.state_machine().checkpoints().is_pinned(pinned));
    // The pinned checkpoint is complete and opens as a database on its own.
    let handle = pin.take().unwrap();
    let copy = dir.path().join("copy");
    siltdb_replica::checkpoint::copy_db_dir(&siltdb::fs::StdFs, &handle.dir, &copy).unwrap();
    let db = siltdb::Db::open(&copy, siltdb::Options::default()).unwrap();
    assert_eq!(db.get(key(3)).unwrap(), Some(value(3, 1)));
    db.close().unwrap();
    // Released: the next GC collects it.
    drop(handle);
    assert!(!r.state_machine().checkpoints().is_pinned(pinned));
    let d = write(&r, put(0, 9)).await;
    r.wait_applied(Decree(d)).await.unwrap();
    let newest = r.checkpoint().await.unwrap().unwrap();
    assert_eq!(
        r.state_machine().checkpoints().decrees(),
        vec![taken[5], newest.0]
    );
    assert_eq!(checkpoint_dirs(&rdir), vec![taken[5], newest.0]);
    r.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_being_learned_from_is_never_collected() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let mut rs: Vec<Option<Replica>> = Vec::new();
    for id in 1..=3 {
        let mut o = options(dir.path(), id, None);
        o.maintenance.interval = None;
        o.state_machine.checkpoints_keep = 1;
        rs.push(Some(open(o, &router).await));
    }
    rs[0]
        .as_ref()
        .unwrap()
        .initialize(&[1, 2, 3])
        .await
        .unwrap();
    let live: Vec<&Replica> = rs.iter().flatten().collect();
    let l = wait_leader(&live, None).await;
    let leader_id = rs[l].as_ref().unwrap().id();
    for i in 0..20 {
        write(rs[l].as_ref().unwrap(), put(i, 0)).await;
    }
    // Stop a secondary; write on; checkpoint and purge past it, so it must learn.
    let f = (l + 1) % 3;
    let f_id = rs[f].as_ref().unwrap().id();
    rs[f].take().unwrap().close().await.unwrap();
    let leader = rs[l].as_ref().unwrap();
    for i in 20..60 {
        write(leader, put(i, 0)).await;
    }
    let ck = leader.checkpoint().await.unwrap().unwrap();
    leader.purge_log().await.unwrap();
    eventually("leader log purged", 20, || {
        leader.plog().stats().purged.map(|p| p.index) == Some(ck.0)
    })
    .await;
    router.hold_snapshots();
    let mut o = options(dir.path(), f_id, None);
    o.maintenance.interval = None;
    let back = open(o, &router).await;
    eventually("a snapshot transfer in progress", 20, || {
        router.snapshots_waiting() > 0
    })
    .await;
    let cks = leader.state_machine().checkpoints();
    let held: Vec<u64> = cks
        .decrees()
        .into_iter()
        .filter(|d| cks.is_pinned(*d))
        .collect();
    assert!(!held.is_empty(), "the transfer pins its checkpoint");
    // More checkpoints with keep = 1 while the transfer waits: the held one stays.
    for round in 1..4 {
        for i in 0..10 {
            write(leader, put(i, round)).await;
        }
        leader.checkpoint().await.unwrap();
        let leader_dir = dir.path().join(format!("r{leader_id}"));
        let on_disk = checkpoint_dirs(&leader_dir);
        for d in &held {
            if cks.is_pinned(*d) {
                assert!(on_disk.contains(d), "pinned checkpoint {d} removed");
                let meta =
                    siltdb_replica::checkpoint::read_meta(&siltdb::fs::StdFs, &cks.dir_of(*d))
                        .unwrap();
                assert_eq!(meta.last_log_id.map(|l| l.index), Some(*d));
            }
        }
    }
    router.release_snapshots();
    let last = write(leader, put(500, 0)).await;
    back.wait_applied(Decree(last)).await.unwrap();
    for i in 0..60 {
        let round = if i < 10 { 3 } else { 0 };
        assert_eq!(back.get(&key(i)).unwrap(), Some(value(i, round)), "key {i}");
    }
    // Transfer over: the next GC leaves only the newest.
    eventually("pins released", 20, || {
        cks.decrees().iter().all(|d| !cks.is_pinned(*d))
    })
    .await;
    let d = write(leader, put(501, 0)).await;
    leader.wait_applied(Decree(d)).await.unwrap();
    let newest = leader.checkpoint().await.unwrap().unwrap();
    assert_eq!(cks.decrees(), vec![newest.0]);
    back.close().await.unwrap();
    for r in rs.into_iter().flatten() {
        r.close().await.unwrap();
    }
}

/// S4's replica half: many write → checkpoint → GC → purge cycles while a writer keeps going,
/// then a restart that sees every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_write_checkpoint_gc_cycles_under_load() {
    let cycles = if common::soak() { 500 } else { 25 };
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let mut o = options(dir.path(), 1, None);
    o.maintenance.interval = None;
    o.state_machine.checkpoints_keep = 2;
    let rdir = o.dir.clone();
    let r = Arc::new(open(o, &router).await);
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (r, stop, acked) = (Arc::clone(&r), Arc::clone(&stop), Arc::clone(&acked));
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                write(&r, put(n % 500, n / 500)).await;
                n += 1;
                acked.store(n, Ordering::SeqCst);
            }
        })
    };
    let mut last_ck = 0;
    for c in 0..cycles {
        let ck = r.checkpoint().await.unwrap();
        let ck = ck.expect("writes happened").0;
        assert!(
            ck >= last_ck,
            "cycle {c}: checkpoint went back {last_ck} -> {ck}"
        );
        last_ck = ck;
        r.purge_log().await.unwrap();
        let kept = r.state_machine().checkpoints().decrees();
        assert!(kept.len() <= 2, "cycle {c}: {kept:?}");
        assert_eq!(kept.last(), Some(&ck), "cycle {c}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let n = acked.load(Ordering::SeqCst);
    assert!(n > cycles as u64, "the writer made progress: {n}");
    assert!(checkpoint_dirs(&rdir).len() <= 2);
    let r = Arc::try_unwrap(r).ok().expect("writer joined");
    r.close().await.unwrap();
    let r = open(options(dir.path(), 1, None), &router).await;
    wait_leader(&[&r], None).await;
    for k in 0..500u64.min(n) {
        // The last write to key k was write number k + 500 * j for the largest j with that < n.
        let last_write = k + 500 * ((n - 1 - k) / 500);
        assert_eq!(
            r.get(&key(k)).unwrap(),
            Some(value(k, last_write / 500)),
            "key {k}"
        );
    }
    r.close().await.unwrap();
}

/// `Replica::checkpoint` right after a write's reply covers that write: the target is the state
/// machine's applied decree, not openraft's metrics (published after the apply, so they can
/// trail the reply and be met by an older snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_right_after_a_write_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let r = open(options(dir.path(), 1, None), &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    for i in 0..40 {
        let decree = write(&r, put(i, 0)).await;
        let ck = r.checkpoint().await.unwrap().expect("a checkpoint");
        assert!(ck.0 >= decree, "checkpoint {ck:?} misses write {decree}");
    }
    r.close().await.unwrap();
}
