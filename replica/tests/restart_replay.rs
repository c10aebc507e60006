//! Restart: engine durable decree D, then plog replay from D+1; crashes through the fault FS;
//! torn plog tails; stale-ballot fencing.

mod common;

use common::*;
use siltdb::fs::FaultFs;
use siltdb_replica::network::Router;
use siltdb_replica::{Ballot, Decree, Error};
use std::io::Write;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_without_flush_replays_the_plog_from_the_durable_decree() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let router = Router::new(GPID);
    let r = open(options(dir.path(), 1, Some(fs.clone())), &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    let mut last = 0;
    for i in 0..120 {
        last = write(&r, put(i, 0)).await;
        if i == 50 {
            r.state_machine().flush().unwrap();
        }
    }
    let durable = r.state_machine().durable_decree().expect("flushed once");
    assert!(durable < last, "durable {durable} must lag applied {last}");
    // Crash: nothing more reaches the disk, unsynced data vanishes.
    crash(r, &fs).await;

    let r = open(options(dir.path(), 1, Some(fs.clone())), &router).await;
    assert_eq!(r.state_machine().durable_decree(), Some(durable));
    wait_leader(&[&r], None).await;
    r.wait_applied(Decree(last)).await.unwrap();
    for i in 0..120 {
        assert_eq!(r.get(&key(i)).unwrap(), Some(value(i, 0)), "key {i}");
    }
    // And it keeps working.
    write(&r, put(500, 1)).await;
    assert_eq!(r.read(&key(500)).await.unwrap(), Some(value(500, 1)));
    r.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_plog_tail_is_cut_and_acknowledged_writes_survive() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let fs = FaultFs::new();
    let r = open(options(dir.path(), 1, Some(fs.clone())), &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    let mut last = 0;
    for i in 0..40 {
        last = write(&r, put(i, 0)).await;
    }
    crash(r, &fs).await;
    // A torn, never-acknowledged record at the end of the newest segment.
    let segs = plog_segments(&dir.path().join("r1"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(segs.last().unwrap())
        .unwrap();
    f.write_all(&[0x5a, 0, 0, 0, 200, 0, 0, 0, 1, 2, 3])
        .unwrap();
    drop(f);

    let r = open(options(dir.path(), 1, Some(fs.clone())), &router).await;
    assert!(r.plog().stats().torn_tail_cut);
    wait_leader(&[&r], None).await;
    r.wait_applied(Decree(last)).await.unwrap();
    for i in 0..40 {
        assert_eq!(r.get(&key(i)).unwrap(), Some(value(i, 0)), "key {i}");
    }
    r.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_close_and_reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let r = open(options(dir.path(), 1, None), &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    for i in 0..30 {
        write(&r, put(i, 0)).await;
    }
    let ck = r.checkpoint().await.unwrap();
    assert!(ck.is_some());
    r.purge_log().await.unwrap();
    for i in 30..60 {
        write(&r, put(i, 0)).await;
    }
    r.close().await.unwrap();
    let r = open(options(dir.path(), 1, None), &router).await;
    wait_leader(&[&r], None).await;
    for i in 0..60 {
        assert_eq!(r.read(&key(i)).await.unwrap(), Some(value(i, 0)), "key {i}");
    }
    r.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_ballot_is_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let r = open(options(dir.path(), 1, None), &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    let current = r.ballot();
    assert!(current >= Ballot(1));
    let mut m = put(1, 0);
    m.ballot = Some(Ballot(current.0 - 1));
    match r.write(m).await {
        Err(Error::StaleBallot {
            request,
            current: c,
        }) => {
            assert_eq!(request, Ballot(current.0 - 1));
            assert_eq!(c, current);
        }
        other => panic!("expected a stale-ballot refusal, got {other:?}"),
    }
    assert_eq!(r.get(&key(1)).unwrap(), None);
    let mut m = put(1, 0);
    m.ballot = Some(current);
    r.write(m).await.unwrap();
    assert_eq!(r.get(&key(1)).unwrap(), Some(value(1, 0)));
    r.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_plog_segment_the_engine_still_needs_fails_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let fs = FaultFs::new();
    let r = open(options(dir.path(), 1, Some(fs.clone())), &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    for i in 0..600 {
        write(&r, put(i, 0)).await;
    }
    // Crash without a flush: the engine's durable decree is far behind the log.
    crash(r, &fs).await;
    let segs = plog_segments(&dir.path().join("r1"));
    assert!(segs.len() >= 3, "{segs:?}");
    let mut bytes = std::fs::read(&segs[1]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&segs[1], &bytes).unwrap();
    let name = segs[1].file_name().unwrap().to_str().unwrap().to_string();
    match siltdb_replica::replica::Replica::open(options(dir.path(), 1, Some(fs)), router).await {
        Err(e @ Error::Corruption { .. }) => {
            assert!(e.to_string().contains(&name), "{e}");
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("opened over a damaged segment the engine still needs"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_everything_range_keeps_the_replicas_own_bookkeeping() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let r = open(options(dir.path(), 1, None), &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    for i in 0..50 {
        write(&r, put(i, 0)).await;
    }
    let mut m = siltdb_replica::Mutation::new();
    m.delete_range(Vec::new(), vec![0xff; 8]);
    let d = write(&r, m).await;
    for i in 0..50 {
        assert_eq!(r.get(&key(i)).unwrap(), None, "key {i}");
    }
    let db = r.state_machine().db();
    assert!(db
        .get(siltdb_replica::state_machine::MEMBERSHIP_KEY)
        .unwrap()
        .is_some());
    drop(db);
    r.close().await.unwrap();
    // Membership and the applied decree survived: the replica leads again and resumes.
    let r = open(options(dir.path(), 1, None), &router).await;
    wait_leader(&[&r], None).await;
    r.wait_applied(Decree(d)).await.unwrap();
    write(&r, put(7, 1)).await;
    assert_eq!(r.read(&key(7)).await.unwrap(), Some(value(7, 1)));
    assert_eq!(r.get(&key(8)).unwrap(), None);
    r.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_before_acknowledged_records_in_the_last_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(GPID);
    let fs = FaultFs::new();
    let r = open(options(dir.path(), 1, Some(fs.clone())), &router).await;
    r.initialize(&[1]).await.unwrap();
    wait_leader(&[&r], None).await;
    for i in 0..40 {
        write(&r, put(i, 0)).await;
    }
    crash(r, &fs).await;
    // One flipped byte early in the newest segment; every later record was acknowledged.
    let segs = plog_segments(&dir.path().join("r1"));
    let last = segs.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let at = bytes.len() / 4;
    bytes[at] ^= 0xff;
    std::fs::write(last, &bytes).unwrap();
    let name = last.file_name().unwrap().to_str().unwrap().to_string();
    match siltdb_replica::replica::Replica::open(options(dir.path(), 1, Some(fs)), router).await {
        Err(e @ Error::Corruption { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&name) && msg.contains("offset"), "{msg}");
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("cut acknowledged records off as if they were a torn tail"),
    }
    // Nothing was cut off the file.
    assert_eq!(std::fs::read(last).unwrap(), bytes);
}
