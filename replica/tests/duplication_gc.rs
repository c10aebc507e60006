//! Duplication and the plog: GC keeps what a lagging duplication needs, SKIP skips an
//! unreadable range and counts it, and the follower equals the source after load with random
//! follower failures.

mod common;
mod duplication_util;

use common::*;
use duplication_util::*;
use siltdb::fs::{FileSystem, StdFs};
use siltdb_replica::checkpoint::CheckpointHandle;
use siltdb_replica::duplication::source::ReadOutcome;
use siltdb_replica::duplication::{
    DbFollower, DuplicationSink, DuplicationSource, Duplications, FailMode, Status, TestMode,
};
use siltdb_replica::plog::RetainFrom;
use siltdb_replica::{Decree, Mutation};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plog_gc_keeps_what_a_lagging_duplication_needs() {
    let mut env = Env::new(TestMode::Ok).await;
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    let mut last = 0;
    for i in 0..20 {
        last = write(env.r(), put(i, 0)).await;
    }
    env.wait_caught_up(id, last).await;
    let confirmed = env.info(id).confirmed_decree.unwrap();

    // The follower goes away; the source keeps writing, checkpointing and purging.
    env.control.set(TestMode::Fail);
    for i in 20..200 {
        last = write(env.r(), put(i, 0)).await;
    }
    let ck = env.r().checkpoint().await.unwrap().expect("a checkpoint");
    env.r().purge_log().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    env.r().plog().gc().unwrap();
    let stats = env.r().plog().stats();
    assert!(
        stats.purged.is_none_or(|p| p.index <= confirmed.0),
        "purged past the confirmed {confirmed}: {stats:?}"
    );
    assert_eq!(env.info(id).confirmed_decree, Some(confirmed), "lagging");
    assert!(env.info(id).lag_decrees.unwrap() >= 180);

    // Back: it catches up from the plog alone (no new checkpoint copy).
    env.control.set(TestMode::Ok);
    env.wait_caught_up(id, last).await;
    assert!(env.info(id).metrics.confirmed_mutations >= 180);
    env.assert_follower_equal_range(0, 200);

    // The purge the floor cut short re-runs once the floor moved, with no new checkpoint.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        env.r().purge_log().await.unwrap();
        let stats = env.r().plog().stats();
        if stats.purged.map(|p| p.index) == Some(ck.0)
            && stats.purged_on_disk.map(|p| p.index) == Some(ck.0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cut-short purge never re-ran: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Once confirmed, the floor moves and a later purge drops the old decrees.
    for i in 200..220 {
        last = write(env.r(), put(i, 0)).await;
    }
    env.wait_caught_up(id, last).await;
    env.r().checkpoint().await.unwrap();
    env.r().purge_log().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while env
        .r()
        .plog()
        .stats()
        .purged
        .is_none_or(|p| p.index <= confirmed.0)
    {
        assert!(Instant::now() < deadline, "purge never advanced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplication_past_its_lag_limit_stops_holding_the_plog_and_says_so() {
    let mut env = Env::new(TestMode::Ok).await;
    // Reopen the duplications with a small lag limit.
    if let Some(d) = env.dups.take() {
        tokio::task::block_in_place(move || drop(d));
    }
    env.opts.lag_max_decrees = 50;
    env.open_dups();
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    let mut last = 0;
    for i in 0..20 {
        last = write(env.r(), put(i, 0)).await;
    }
    env.wait_caught_up(id, last).await;
    let confirmed = env.info(id).confirmed_decree.unwrap();

    // The follower stalls for good; the source writes far past the lag limit.
    env.control.set(TestMode::Fail);
    for i in 20..200 {
        write(env.r(), put(i, 0)).await;
    }
    let ck = env.r().checkpoint().await.unwrap().expect("a checkpoint");
    // The log is purged to the checkpoint (in memory and on disk) despite the duplication.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        env.r().purge_log().await.unwrap();
        env.r().plog().gc().unwrap();
        let stats = env.r().plog().stats();
        if stats.purged_on_disk.is_some_and(|p| p.index == ck.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a stalled duplication held the plog: {stats:?} (confirmed {confirmed})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // And the status says why.
    let info = env.info(id);
    let err = info.last_error.clone().unwrap_or_default();
    assert!(err.contains("lag limit of 50 decrees"), "{info:?}");
    assert_eq!(info.confirmed_decree, Some(confirmed));

    // The follower is back, but what it needs is gone: SLOW waits with the error visible.
    env.control.set(TestMode::Ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let err = env.info(id).last_error.unwrap_or_default();
        if err.contains("unreadable") {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", env.info(id));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(env.info(id).confirmed_decree, Some(confirmed));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_equals_source_after_load_with_random_follower_failures() {
    let mut env = Env::new(TestMode::RandomFail(30)).await;
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    let modes = [
        TestMode::RandomFail(30),
        TestMode::Partial(3),
        TestMode::Stall,
        TestMode::RandomFail(60),
        TestMode::Ok,
    ];
    let mut last = 0;
    for n in 0..400u64 {
        if n % 40 == 0 {
            env.control.set(modes[(n / 40) as usize % modes.len()]);
        }
        let k = (n * 7) % 150;
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
        last = write(env.r(), m).await;
    }
    env.control.set(TestMode::Ok);
    env.wait_caught_up(id, last).await;
    assert!(
        env.control
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    env.assert_follower_equal(160);
    env.stop().await;
}

/// A source whose decrees 30..=40 are unreadable (a damaged plog file of 4096 bytes).
struct GappySource {
    empty: PathBuf,
}

const GAP: (u64, u64) = (30, 40);
const APPLIED: u64 = 100;

impl DuplicationSource for GappySource {
    fn applied(&self) -> Option<Decree> {
        Some(Decree(APPLIED))
    }
    fn checkpoint(&self, _min: Decree) -> siltdb_replica::Result<(Decree, CheckpointHandle)> {
        Ok((Decree(10), CheckpointHandle::unpinned(self.empty.clone())))
    }
    fn read(&self, from: Decree, to: Decree) -> siltdb_replica::Result<ReadOutcome> {
        if (GAP.0..=GAP.1).contains(&from.0) {
            return Ok(ReadOutcome::Gap {
                next: Some(Decree(GAP.1 + 1)),
                bytes: 4096,
            });
        }
        let end = if from.0 < GAP.0 {
            to.0.min(GAP.0 - 1)
        } else {
            to.0
        };
        Ok(ReadOutcome::Mutations(
            (from.0..=end).map(|d| (Decree(d), put(d, 0))).collect(),
        ))
    }
    fn retain(&self) -> Arc<RetainFrom> {
        Arc::new(RetainFrom::default())
    }
}

fn gappy(dir: &std::path::Path, follower: &Arc<DbFollower>) -> Duplications {
    let empty = dir.join("empty-checkpoint");
    std::fs::create_dir_all(&empty).unwrap();
    let sink = Arc::clone(follower) as Arc<dyn DuplicationSink>;
    Duplications::open(
        &dir.join("src"),
        Arc::new(StdFs) as Arc<dyn FileSystem>,
        Arc::new(GappySource { empty }),
        Arc::new(move |name| (name == REMOTE).then(|| Arc::clone(&sink))),
        dup_options(),
    )
    .unwrap()
}

async fn wait_info(
    dups: &Duplications,
    id: u64,
    pred: impl Fn(&siltdb_replica::duplication::DuplicationInfo) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let i = dups.query(id).unwrap();
        if pred(&i) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out: {i:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_mode_skip_skips_an_unreadable_plog_range_and_reports_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let follower =
        Arc::new(DbFollower::open(dir.path().join("f"), siltdb::Options::default()).unwrap());
    let dups = gappy(dir.path(), &follower);
    let id = dups.add(REMOTE, FailMode::Slow).unwrap();
    // SLOW: stuck right before the gap, with the error visible.
    wait_info(&dups, id, |i| {
        i.confirmed_decree == Some(Decree(GAP.0 - 1))
            && i.last_error
                .as_deref()
                .is_some_and(|e| e.contains("unreadable"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        dups.query(id).unwrap().confirmed_decree,
        Some(Decree(GAP.0 - 1))
    );

    dups.set_fail_mode(id, FailMode::Skip).unwrap();
    wait_info(&dups, id, |i| i.confirmed_decree == Some(Decree(APPLIED))).await;
    let i = dups.query(id).unwrap();
    assert_eq!(i.status, Status::Log);
    assert_eq!(i.metrics.files_skipped, 1);
    assert_eq!(i.metrics.bytes_skipped, 4096);
    assert_eq!(i.lag_decrees, Some(0));
    for d in 11..=APPLIED {
        let skipped = (GAP.0..=GAP.1).contains(&d);
        assert_eq!(
            follower.get(&key(d)).unwrap().is_some(),
            !skipped,
            "decree {d}"
        );
    }
    // Pause and remove through the operator API.
    dups.pause(id).unwrap();
    assert_eq!(dups.query(id).unwrap().status, Status::Pause);
    assert!(dups.pause(id).is_err(), "pause twice is rejected");
    dups.remove(id).unwrap();
    assert!(dups.query(id).is_err());
    assert!(dups.list().is_empty());
    tokio::task::block_in_place(move || drop(dups));
}

/// Overwrites the middle of `path` with garbage (a real corruption, not a torn tail).
fn corrupt_middle(path: &std::path::Path) -> u64 {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(path, &bytes).unwrap();
    bytes.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fail_mode_skip_skips_a_corrupt_plog_segment_after_restart() {
    let mut env = Env::new(TestMode::Ok).await;
    let id = env.dups().add(REMOTE, FailMode::Slow).unwrap();
    let mut decree_of = Vec::new();
    for i in 0..20 {
        decree_of.push(write(env.r(), put(i, 0)).await);
    }
    env.wait_caught_up(id, decree_of[19]).await;
    let confirmed = env.info(id).confirmed_decree.unwrap();
    // The follower goes away while the source writes several plog segments, all flushed into
    // the engine (durable), kept on disk only for the lagging duplication.
    env.control.set(TestMode::Fail);
    for i in 20..700 {
        decree_of.push(write(env.r(), put(i, 0)).await);
    }
    // A checkpoint covers it all too (the maintenance task takes them periodically).
    env.r().checkpoint().await.unwrap();
    env.stop().await;
    let segs = plog_segments(&replica_dir(env.dir.path()));
    assert!(segs.len() >= 3, "{segs:?}");
    let damaged = &segs[1];
    let damaged_bytes = corrupt_middle(damaged);
    let damaged_name = damaged.file_name().unwrap().to_str().unwrap().to_string();

    // The engine and the checkpoint hold everything the damaged file held: the replica opens, the log restarts
    // after the damage, and the source still serves every key.
    env.restart().await;
    let lost = env.r().plog().lost().cloned().expect("damage reported");
    assert!(lost.files[0].contains(&damaged_name), "{lost:?}");
    assert_eq!(lost.bytes, damaged_bytes);
    assert!(!damaged.exists(), "the damaged segment is purged");
    for i in 0..700 {
        assert_eq!(env.r().get(&key(i)).unwrap(), Some(value(i, 0)), "key {i}");
    }

    // SLOW: the follower is back, but the duplication waits before the gap, error visible.
    env.control.set(TestMode::Ok);
    env.wait_for(id, "stuck at the gap", |i| {
        i.confirmed_decree == Some(confirmed)
            && i.last_error
                .as_deref()
                .is_some_and(|e| e.contains("unreadable"))
    })
    .await;
    // SKIP: jumps the damage, counts its bytes, ships the rest.
    env.dups().set_fail_mode(id, FailMode::Skip).unwrap();
    let last = write(env.r(), put(700, 0)).await;
    env.wait_caught_up(id, last).await;
    let info = env.info(id);
    assert_eq!(info.metrics.files_skipped, 1, "{info:?}");
    assert_eq!(info.metrics.bytes_skipped, damaged_bytes, "{info:?}");
    for (i, d) in decree_of.iter().enumerate() {
        let on_follower = env.follower.get(&key(i as u64)).unwrap();
        if *d <= confirmed.0 || *d > lost.upto.index {
            assert_eq!(on_follower, Some(value(i as u64, 0)), "key {i} decree {d}");
        } else {
            assert_eq!(
                on_follower, None,
                "key {i} decree {d} was in the skipped range"
            );
        }
    }
    env.stop().await;
}
