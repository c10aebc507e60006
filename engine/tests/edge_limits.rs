//! Engine edges: WAL replay refuses sequence numbers above the 56-bit maximum with
//! `Corruption` naming the log; one block size limit for every compression, enforced when the
//! block is written (an entry too large for any readable block is refused up front with a clear
//! error, and many entries never make a block the reader would refuse).

use siltdb::fs::{FileSystem, StdFs};
use siltdb::MAX_SEQNO;
use siltdb::{read_log, LogWriter};
use siltdb::{
    Compression, Db, Error, IngestOptions, Options, SstWriter, SstWriterOptions, WriteBatch,
    WriteOptions,
};
use siltdb::{MAX_BLOCK_UNCOMPRESSED_BYTES, MAX_ENTRY_BYTES};
use std::path::{Path, PathBuf};

fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// A database whose WAL's last batch (3 puts) starts at `first_seq`; returns the WAL path.
fn db_with_last_batch_at(dir: &Path, first_seq: u64) -> PathBuf {
    let db = Db::open(dir, Options::default()).unwrap();
    db.put("a", "1").unwrap();
    let mut b = WriteBatch::new();
    b.put("x", "1");
    b.put("y", "2");
    b.put("z", "3");
    db.write(b, &WriteOptions::default()).unwrap();
    drop(db); // no close: the writes stay in the WAL only
    let wals = wal_files(dir);
    let wal = wals.last().unwrap().clone();
    let data = std::fs::read(&wal).unwrap();
    let log = read_log(&data);
    assert!(log.corruption.is_none() && log.torn_tail.is_none());
    let mut records: Vec<Vec<u8>> = log.records.into_iter().map(|(_, r)| r).collect();
    assert!(records.len() >= 2, "{} records", records.len());
    let last = records.last_mut().unwrap();
    assert_eq!(u32::from_le_bytes(last[8..12].try_into().unwrap()), 3);
    last[..8].copy_from_slice(&first_seq.to_le_bytes());
    let file = StdFs.create(&wal).unwrap();
    let mut w = LogWriter::new(file, wal.clone());
    for r in &records {
        w.add_record(r).unwrap();
    }
    w.sync().unwrap();
    wal
}

#[test]
fn wal_replay_refuses_seqnos_above_the_56_bit_maximum() {
    // The batch's last record would get MAX_SEQNO + 1.
    let dir = tempfile::tempdir().unwrap();
    let wal = db_with_last_batch_at(dir.path(), MAX_SEQNO - 1);
    let name = wal.file_name().unwrap().to_str().unwrap().to_string();
    match Db::open(dir.path(), Options::default()) {
        Err(e @ Error::Corruption { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&name), "{msg}");
            assert!(msg.contains("56-bit"), "{msg}");
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("replayed seqnos above the maximum"),
    }
    // Far above it (a seqno no u64 sum check catches).
    let dir = tempfile::tempdir().unwrap();
    db_with_last_batch_at(dir.path(), 1 << 60);
    assert!(matches!(
        Db::open(dir.path(), Options::default()),
        Err(Error::Corruption { .. })
    ));
    // Exactly up to the maximum replays; the next write finds the seqnos exhausted.
    let dir = tempfile::tempdir().unwrap();
    db_with_last_batch_at(dir.path(), MAX_SEQNO - 2);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(
        db.get("z")
            .unwrap()
            .map(|v| AsRef::<[u8]>::as_ref(&v).to_vec()),
        Some(b"3".to_vec())
    );
    assert!(matches!(db.put("k", "v"), Err(Error::InvalidArgument(_))));
}

fn zstd_writer(path: &Path, block_size_bytes: usize) -> SstWriter {
    let opts = SstWriterOptions {
        block_size_bytes,
        compression: Compression::Zstd { level: 1 },
        ..SstWriterOptions::default()
    };
    SstWriter::create(path, &opts).unwrap()
}

/// Compressible but not constant.
fn value(len: usize, salt: u8) -> Vec<u8> {
    (0..len).map(|i| (i / 4096) as u8 ^ salt).collect()
}

#[test]
fn an_entry_above_the_block_limit_is_refused_when_written() {
    const { assert!(MAX_ENTRY_BYTES < MAX_BLOCK_UNCOMPRESSED_BYTES) };
    let dir = tempfile::tempdir().unwrap();
    let big = value(MAX_ENTRY_BYTES, 1); // key + value over the limit by the key's length
    let mut w = zstd_writer(&dir.path().join("big.sst"), 4096);
    match w.put("k", &big) {
        Err(Error::InvalidArgument(m)) => {
            assert!(m.contains(&MAX_ENTRY_BYTES.to_string()), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let db = Db::open(
        dir.path().join("db"),
        Options {
            compression: Compression::Zstd { level: 1 },
            ..Options::default()
        },
    )
    .unwrap();
    match db.put("k", &big) {
        Err(Error::InvalidArgument(m)) => {
            assert!(m.contains(&MAX_ENTRY_BYTES.to_string()), "{m}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut b = WriteBatch::new();
    b.put("small", "v");
    b.delete_range(&big[..], "z");
    assert!(matches!(
        db.write(b, &WriteOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    // Nothing of a refused batch was written; the database keeps working.
    assert_eq!(db.get("small").unwrap(), None);
    db.put("k", "v").unwrap();
    db.flush().unwrap();
    assert_eq!(
        db.get("k")
            .unwrap()
            .map(|v| AsRef::<[u8]>::as_ref(&v).to_vec()),
        Some(b"v".to_vec())
    );
    db.close().unwrap();
}

#[test]
fn many_entries_never_make_a_block_the_reader_refuses() {
    // A block size option above the limit: the writer cuts blocks at the limit instead.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.sst");
    let mut w = zstd_writer(&path, 256 << 20);
    let n = MAX_BLOCK_UNCOMPRESSED_BYTES / (1 << 20) + 6;
    for i in 0..n {
        w.put(format!("k{i:03}"), value(1 << 20, i as u8)).unwrap();
    }
    w.finish().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    db.ingest(&[&path], &IngestOptions::default()).unwrap();
    for i in [0, n / 2, n - 1] {
        let got = db.get(format!("k{i:03}")).unwrap().unwrap();
        assert_eq!(
            AsRef::<[u8]>::as_ref(&got),
            value(1 << 20, i as u8).as_slice(),
            "k{i:03}"
        );
    }
    db.close().unwrap();
}
