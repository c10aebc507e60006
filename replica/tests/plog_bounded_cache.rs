//! The plog keeps only a bounded tail of entries in memory: older entries are read back from the
//! segment files (checksummed) for openraft's range reads (replication, apply) and for
//! duplication, before and after a reopen, with purge, truncation and the duplication retain
//! floor still working — and damage found on such a read is `Corruption` naming file and offset.

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use siltdb::fs::{FileSystem, StdFs};
use siltdb_replica::durable::DurableMark;
use siltdb_replica::plog::cache::CacheLimits;
use siltdb_replica::plog::{Plog, PlogOptions};
use siltdb_replica::raft::TypeConfig;
use siltdb_replica::types::Decree;
use siltdb_replica::Mutation;
use std::path::Path;
use std::sync::Arc;

const CACHE: CacheLimits = CacheLimits {
    entries_max: 64,
    bytes_max: 16 << 10,
};
const ENTRIES: u64 = 3000;

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    let mut m = Mutation::new();
    // Sizes vary so record offsets are not a simple multiple.
    let len = 100 + (index as usize * 37) % 400;
    m.put(format!("k{index}"), vec![(index % 251) as u8; len]);
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(m),
    }
}

fn open(dir: &Path, durable: &Arc<DurableMark>) -> Plog {
    let opts = PlogOptions {
        segment_size_max_bytes: 64 << 10,
        cache: CACHE,
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

fn assert_bounded(plog: &Plog) {
    let s = plog.stats();
    assert!(s.cached_bytes <= CACHE.bytes_max, "{s:?}");
    assert!(s.cached_entries <= CACHE.entries_max, "{s:?}");
}

async fn expect_range(plog: &mut Plog, from: u64, to: u64, term_of: impl Fn(u64) -> u64) {
    let want: Vec<_> = (from..to).map(|i| entry(term_of(i), i)).collect();
    let got = plog.try_get_log_entries(from..to).await.unwrap();
    assert_eq!(got, want, "plog read [{from}, {to})");
    // openraft's replication tasks read through a separate reader.
    let mut reader = plog.get_log_reader().await;
    let got = reader.try_get_log_entries(from..to).await.unwrap();
    assert_eq!(got, want, "reader read [{from}, {to})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_under_the_cap_and_old_entries_read_back_from_segments() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(DurableMark::new(None));
    let mut plog = open(dir.path(), &durable);
    for i in (0..ENTRIES).step_by(10) {
        plog.blocking_append((i..i + 10).map(|j| entry(1, j)))
            .await
            .unwrap();
        assert_bounded(&plog);
    }
    let s = plog.stats();
    let disk_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "{ENTRIES} entries, {disk_bytes} bytes on disk; held in memory: {} entries, {} bytes \
         (cap {} bytes) + index {} bytes",
        s.cached_entries, s.cached_bytes, CACHE.bytes_max, s.index_bytes
    );
    assert_eq!(s.entries, ENTRIES as usize);
    assert!(s.segments > 10, "{s:?}");
    assert!(disk_bytes > 50 * CACHE.bytes_max);
    expect_range(&mut plog, 0, ENTRIES, |_| 1).await;
    expect_range(&mut plog, 5, 17, |_| 1).await;
    expect_range(&mut plog, ENTRIES - 100, ENTRIES, |_| 1).await;
    // Reads do not pull old entries into memory past the cap.
    assert_bounded(&plog);

    // Truncation and overwrite (a new leader): the index points at the new records.
    plog.truncate(LogId::new(CommittedLeaderId::new(1, 1), 2900))
        .await
        .unwrap();
    plog.blocking_append((2900..2950).map(|j| entry(2, j)))
        .await
        .unwrap();
    let term_of = |i: u64| if i >= 2900 { 2 } else { 1 };
    expect_range(&mut plog, 2800, 2950, term_of).await;
    assert!(plog
        .try_get_log_entries(2950..3000)
        .await
        .unwrap()
        .is_empty());
    drop(plog);

    // Reopen: loaded bounded, everything still readable.
    let mut plog = open(dir.path(), &durable);
    assert_bounded(&plog);
    assert_eq!(plog.stats().entries, 2950);
    expect_range(&mut plog, 0, 2950, term_of).await;

    // Purge still hides and, once durable, removes segments.
    durable.advance(Some(2000));
    let segments = plog.stats().segments;
    plog.purge(LogId::new(CommittedLeaderId::new(1, 1), 1999))
        .await
        .unwrap();
    let s = plog.stats();
    assert!(s.segments < segments, "{s:?}");
    assert_eq!(s.entries, 950);
    assert!(plog.try_get_log_entries(0..2000).await.unwrap().is_empty());
    expect_range(&mut plog, 2000, 2950, term_of).await;
    drop(plog);
    let mut plog = open(dir.path(), &durable);
    expect_range(&mut plog, 2000, 2950, term_of).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplication_retain_floor_keeps_old_entries_on_disk_not_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(DurableMark::new(None));
    let mut plog = open(dir.path(), &durable);
    // Duplication confirmed up to 99: the plog must keep 100.. for it.
    plog.retain().set(Some(Decree(100)));
    for i in (0..ENTRIES).step_by(50) {
        plog.blocking_append((i..i + 50).map(|j| entry(1, j)))
            .await
            .unwrap();
    }
    durable.advance(Some(ENTRIES - 1));
    plog.purge(LogId::new(CommittedLeaderId::new(1, 1), ENTRIES - 1))
        .await
        .unwrap();
    let s = plog.stats();
    assert_eq!(s.purged.map(|p| p.index), Some(99));
    assert_eq!(s.entries, (ENTRIES - 100) as usize);
    assert_bounded(&plog);
    // What duplication reads next (ReplicaSource::read uses this range read).
    expect_range(&mut plog, 100, 400, |_| 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_under_an_evicted_entry_is_corruption_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(DurableMark::new(None));
    let mut plog = open(dir.path(), &durable);
    for i in 0..200 {
        plog.blocking_append([entry(1, i)]).await.unwrap();
    }
    // The first segment: entry 0's record starts right after the 16-byte header.
    let mut segs: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    let first = &segs[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[16 + 20] ^= 0x40;
    std::fs::write(first, &bytes).unwrap();
    let err = plog
        .try_get_log_entries(0..5)
        .await
        .unwrap_err()
        .to_string();
    let name = first.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name), "{err}");
    assert!(err.contains("offset 16"), "{err}");
    assert!(err.contains("checksum"), "{err}");
    // The cached tail is unaffected.
    expect_range(&mut plog, 190, 200, |_| 1).await;
}
