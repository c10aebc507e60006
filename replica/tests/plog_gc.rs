//! Plog GC never drops a mutation the engine does not hold durably (mapping §7).

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use siltdb::fs::{FileSystem, StdFs};
use siltdb_replica::durable::DurableMark;
use siltdb_replica::plog::{Plog, PlogOptions};
use siltdb_replica::raft::TypeConfig;
use siltdb_replica::Mutation;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn entry(index: u64) -> Entry<TypeConfig> {
    let mut m = Mutation::new();
    m.put(format!("k{index}"), vec![b'v'; 100]);
    Entry {
        log_id: id(index),
        payload: EntryPayload::Normal(m),
    }
}

fn open(dir: &Path, durable: &Arc<DurableMark>) -> Plog {
    let opts = PlogOptions {
        segment_size_max_bytes: 2 << 10,
        purge_wait_max: Duration::from_millis(200),
        ..PlogOptions::default()
    };
    Plog::open(
        dir,
        Arc::new(StdFs) as Arc<dyn FileSystem>,
        opts,
        Arc::clone(durable),
    )
    .unwrap()
}

async fn indices(plog: &mut Plog) -> Vec<u64> {
    let v = plog.try_get_log_entries(0..).await.unwrap();
    v.iter().map(|e| e.log_id.index).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_is_persisted_and_segments_removed_only_up_to_the_durable_decree() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(DurableMark::new(None));
    let mut plog = open(dir.path(), &durable);
    for i in 0..200 {
        plog.blocking_append([entry(i)]).await.unwrap();
    }
    let segments = plog.stats().segments;
    assert!(segments > 5, "want many segments, got {segments}");

    // A follower's purge ahead of its engine (snapshot not installed yet): hidden at once,
    // nothing dropped from disk.
    plog.purge(id(150)).await.unwrap();
    assert_eq!(indices(&mut plog).await, (151..200).collect::<Vec<_>>());
    let s = plog.stats();
    assert_eq!(s.purged_on_disk, None);
    assert_eq!(s.segments, segments);
    drop(plog);
    // Crash before the engine caught up: the whole log is back.
    let mut plog = open(dir.path(), &durable);
    assert_eq!(indices(&mut plog).await, (0..200).collect::<Vec<_>>());

    // Engine durable at 100: still nothing persisted past it.
    durable.advance(Some(100));
    plog.purge(id(150)).await.unwrap();
    plog.gc().unwrap();
    assert_eq!(plog.stats().purged_on_disk, None);
    assert_eq!(plog.stats().segments, segments);

    // Engine durable at 150: the mark is persisted and covered segments go.
    durable.advance(Some(150));
    plog.gc().unwrap();
    let s = plog.stats();
    assert_eq!(s.purged_on_disk, Some(id(150)));
    assert!(s.segments < segments);
    drop(plog);
    let mut plog = open(dir.path(), &durable);
    assert_eq!(indices(&mut plog).await, (151..200).collect::<Vec<_>>());
    // Every remaining segment file still holds what is above the durable decree: appends
    // continue contiguously.
    plog.blocking_append([entry(200)]).await.unwrap();
    assert_eq!(indices(&mut plog).await, (151..201).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_past_an_undurable_purge_waits_for_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(DurableMark::new(None));
    let mut plog = open(dir.path(), &durable);
    for i in 0..10 {
        plog.blocking_append([entry(i)]).await.unwrap();
    }
    // Snapshot at 50 accepted, not installed: appending 51 would leave a hole on disk.
    plog.purge(id(50)).await.unwrap();
    let err = plog.blocking_append([entry(51)]).await;
    assert!(err.is_err(), "append must not pass an undurable purge");
    // Once the install is durable, the append goes through and the mark is on disk.
    durable.advance(Some(50));
    let mut plog = open(dir.path(), &durable);
    plog.purge(id(50)).await.unwrap();
    plog.blocking_append([entry(51)]).await.unwrap();
    assert_eq!(plog.stats().purged_on_disk, Some(id(50)));
    drop(plog);
    let mut plog = open(dir.path(), &durable);
    assert_eq!(indices(&mut plog).await, vec![51]);
}
