//! Duplication survives restarts in every status (seed S5).

mod common;
mod duplication_util;

use common::*;
use duplication_util::*;
use siltdb_replica::duplication::{store, DuplicationRecord, FailMode, Status, TestMode};
use siltdb_replica::Decree;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn restart_in_prepare(pre_writes: u64) {
    let mut env = Env::new(TestMode::Reject).await;
    for i in 0..pre_writes {
        write(env.r(), put(i, 0)).await;
    }
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    env.wait_for(id, "auth error in PREPARE", |i| {
        i.status == Status::Prepare
            && i.last_error
                .as_deref()
                .is_some_and(|e| e.contains("authentication"))
    })
    .await;

    env.restart().await;
    let i = env.info(id);
    assert_eq!(i.status, Status::Prepare);
    assert!(
        i.last_error
            .as_deref()
            .is_some_and(|e| e.contains("authentication")),
        "error visible after restart: {i:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
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
    env.assert_follower_equal(pre_writes + 20);
    for k in 0..pre_writes + 20 {
        assert!(env.follower.get(&key(k)).unwrap().is_some(), "key {k}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s5_restart_in_prepare_does_not_crash() {
    restart_in_prepare(30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s5_restart_in_prepare_does_not_crash_with_an_empty_table() {
    restart_in_prepare(0).await;
}

/// A record as a crash could leave it: any status, decrees possibly absent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resumes_from_a_record_in_every_status_with_absent_decrees() {
    let mut env = Env::new(TestMode::Ok).await;
    for i in 0..10 {
        write(env.r(), put(i, 0)).await;
    }
    let rdir = store::dir_of(&replica_dir(env.dir.path()));
    let fs = siltdb::fs::StdFs;
    for (n, status) in [
        Status::Init,
        Status::Prepare,
        Status::App,
        Status::Log,
        Status::Pause,
    ]
    .into_iter()
    .enumerate()
    {
        env.stop().await;
        let mut rec = DuplicationRecord::new(n as u64 + 1, REMOTE, FailMode::Slow);
        rec.status = status;
        store::save(&fs, &rdir, &rec).unwrap();
        env.restart().await;
        let id = rec.id;
        if status == Status::Pause {
            assert_eq!(env.info(id).status, Status::Pause);
            env.dups().start(id).unwrap();
        }
        let d = write(env.r(), put(100 + n as u64, 0)).await;
        env.wait_caught_up(id, d).await;
        env.dups().remove(id).unwrap();
    }
    env.assert_follower_equal(10);
    env.assert_follower_equal_range(100, 105);
    env.stop().await;
}

/// Restarts at random points of a running duplication, in each status, with and without writes
/// in flight; the follower converges every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_in_every_status_with_and_without_writes_in_flight() {
    let rounds: u64 = if common::soak() { 6 } else { 2 };
    let mut env = Env::new(TestMode::Ok).await;
    let keys = Arc::new(AtomicU64::new(0));
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    for round in 0..rounds {
        for (target, in_flight) in [
            (Status::Prepare, false),
            (Status::Prepare, true),
            (Status::App, false),
            (Status::App, true),
            (Status::Log, false),
            (Status::Log, true),
            (Status::Pause, false),
            (Status::Pause, true),
        ] {
            drive_to(&mut env, id, target).await;
            let stop = Arc::new(AtomicBool::new(false));
            let writer = in_flight.then(|| {
                let r = Arc::clone(env.r());
                let (stop, keys) = (Arc::clone(&stop), Arc::clone(&keys));
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let k = keys.fetch_add(1, Ordering::SeqCst);
                        // Writes racing the stop may fail; equality is checked against the
                        // source, so only committed writes matter.
                        let _ = r.write(put(k, round)).await;
                    }
                })
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(d) = env.dups.take() {
                tokio::task::block_in_place(move || drop(d));
            }
            stop.store(true, Ordering::SeqCst);
            if let Some(w) = writer {
                w.await.unwrap();
            }
            env.restart().await;
            assert_eq!(env.info(id).status, target, "resumed in {target}");
            env.control.set(TestMode::Ok);
            if target == Status::Pause {
                env.dups().start(id).unwrap();
            }
            let k = keys.fetch_add(1, Ordering::SeqCst);
            let d = write(env.r(), put(k, round)).await;
            env.wait_caught_up(id, d).await;
            env.assert_follower_equal(keys.load(Ordering::SeqCst));
        }
    }
    env.stop().await;
}

/// Brings duplication `id` to `target` by rewriting its persisted status while stopped (APP
/// and PREPARE are otherwise too short to hit) or by operator commands.
async fn drive_to(env: &mut Env, id: u64, target: Status) {
    match target {
        Status::Pause => {
            env.wait_for(id, "LOG", |i| i.status == Status::Log).await;
            env.dups().pause(id).unwrap();
        }
        Status::Log => env.wait_for(id, "LOG", |i| i.status == Status::Log).await,
        _ => {
            env.control.set(TestMode::Fail);
            if let Some(d) = env.dups.take() {
                tokio::task::block_in_place(move || drop(d));
            }
            let fs = siltdb::fs::StdFs;
            let rdir = store::dir_of(&replica_dir(env.dir.path()));
            let mut rec = store::load_all(&fs, &rdir)
                .unwrap()
                .into_iter()
                .find(|r| r.id == id)
                .unwrap();
            rec.status = target;
            store::save(&fs, &rdir, &rec).unwrap();
            env.open_dups();
        }
    }
}
