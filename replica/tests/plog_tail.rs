//! Plog recovery tells a torn tail (the end of the last segment) from damage followed by valid,
//! acknowledged records: the first is cut off, the second fails the open with
//! `Error::Corruption` naming the file and offset instead of silently dropping later records.

use openraft::storage::{RaftLogReader, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use siltdb::fs::{FileSystem, StdFs};
use siltdb_replica::durable::DurableMark;
use siltdb_replica::plog::{Plog, PlogOptions};
use siltdb_replica::raft::TypeConfig;
use siltdb_replica::{Error, Mutation};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn entry(index: u64) -> Entry<TypeConfig> {
    let mut m = Mutation::new();
    m.put(format!("k{index}"), vec![b'v'; 100]);
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(m),
    }
}

fn open(dir: &Path) -> Result<Plog, Error> {
    Plog::open(
        dir,
        Arc::new(StdFs) as Arc<dyn FileSystem>,
        PlogOptions::default(),
        Arc::new(DurableMark::new(None)),
    )
}

/// A plog with entries `0..n` in one segment; returns the segment path.
async fn write_log(dir: &Path, n: u64) -> PathBuf {
    let mut plog = open(dir).unwrap();
    for i in 0..n {
        plog.blocking_append([entry(i)]).await.unwrap();
    }
    drop(plog);
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    assert_eq!(segs.len(), 1, "{segs:?}");
    segs.pop().unwrap()
}

async fn indices(plog: &mut Plog) -> Vec<u64> {
    let v = plog.try_get_log_entries(0..).await.unwrap();
    v.iter().map(|e| e.log_id.index).collect()
}

/// Offset of record `i` (records are all the same size here).
fn record_offset(seg: &Path, n: u64, i: u64) -> usize {
    let len = std::fs::metadata(seg).unwrap().len() as usize;
    let rec = (len - 16) / n as usize;
    16 + rec * i as usize
}

fn expect_corruption(r: Result<Plog, Error>, seg: &Path, offset: usize) {
    let name = seg.file_name().unwrap().to_str().unwrap();
    match r {
        Err(e @ Error::Corruption { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(msg.contains(&format!("offset {offset}")), "{msg}");
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("damage followed by valid records was taken for a torn tail"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_damage_before_valid_records_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_log(dir.path(), 20).await;
    let at = record_offset(&seg, 20, 7);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at + 40] ^= 0x01; // a body byte of record 7
    std::fs::write(&seg, &bytes).unwrap();
    expect_corruption(open(dir.path()), &seg, at);
    // The file is left as it was: nothing acknowledged was cut away.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_length_before_valid_records_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let seg = write_log(dir.path(), 20).await;
    let at = record_offset(&seg, 20, 3);
    let mut bytes = std::fs::read(&seg).unwrap();
    // Over the 256 MiB record limit.
    bytes[at + 4..at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    expect_corruption(open(dir.path()), &seg, at);

    // A length that runs past the end of the file, with valid records after it.
    let dir = tempfile::tempdir().unwrap();
    let seg = write_log(dir.path(), 20).await;
    let at = record_offset(&seg, 20, 5);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at + 4..at + 8].copy_from_slice(&(100u32 << 20).to_le_bytes());
    std::fs::write(&seg, &bytes).unwrap();
    expect_corruption(open(dir.path()), &seg, at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tails_are_cut_and_keep_every_earlier_record() {
    // A zero-filled tail (preallocated or never-written pages).
    let dir = tempfile::tempdir().unwrap();
    let seg = write_log(dir.path(), 20).await;
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&seg, &bytes).unwrap();
    let mut plog = open(dir.path()).unwrap();
    assert!(plog.stats().torn_tail_cut);
    assert_eq!(indices(&mut plog).await, (0..20).collect::<Vec<_>>());
    drop(plog);

    // The last record runs past the end of the file.
    let dir = tempfile::tempdir().unwrap();
    let seg = write_log(dir.path(), 20).await;
    let len = std::fs::metadata(&seg).unwrap().len();
    for cut in [1, 9, 60] {
        let bytes = std::fs::read(&seg).unwrap();
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join(seg.file_name().unwrap());
        std::fs::write(&s, &bytes[..len as usize - cut]).unwrap();
        let mut plog = open(d.path()).unwrap();
        assert!(plog.stats().torn_tail_cut, "cut {cut}");
        assert_eq!(indices(&mut plog).await, (0..19).collect::<Vec<_>>());
        drop(plog);
        // The cut is durable and the log appends after it.
        let mut plog = open(d.path()).unwrap();
        assert!(!plog.stats().torn_tail_cut);
        plog.blocking_append([entry(19)]).await.unwrap();
        assert_eq!(indices(&mut plog).await, (0..20).collect::<Vec<_>>());
    }

    // Damage in the very last record, nothing valid after it: a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let seg = write_log(dir.path(), 20).await;
    let at = record_offset(&seg, 20, 19);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at + 40] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let mut plog = open(dir.path()).unwrap();
    assert!(plog.stats().torn_tail_cut);
    assert_eq!(indices(&mut plog).await, (0..19).collect::<Vec<_>>());
}
