//! External SST ingestion: visibility and precedence, snapshot isolation, all-or-nothing,
//! interleaving with writes against a model, and liveness at the L0 stop trigger (seed S3).

use siltdb::{
    Db, Error, IngestOptions, Options, ReadOptions, SstWriter, SstWriterOptions, WriteOptions,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn k(i: u64) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

fn build(path: &Path, keys: impl Iterator<Item = u64>, tag: &str) -> PathBuf {
    let mut w = SstWriter::create(path, &SstWriterOptions::default()).unwrap();
    for i in keys {
        w.put(k(i), format!("{tag}{i}")).unwrap();
    }
    w.finish().unwrap();
    path.to_path_buf()
}

#[test]
fn visibility_precedence_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    for i in 0..100 {
        db.put(k(i), format!("old{i}")).unwrap();
    }
    let snap = db.snapshot();
    let f = build(&dir.path().join("a.sst"), 50..150, "ing");
    let info = db.ingest(&[&f], &IngestOptions::default()).unwrap();
    assert_eq!(info.files, 1);
    assert_eq!(info.entries, 100);
    // Ingested data wins over older writes (the memtable was flushed first).
    assert_eq!(db.get(k(60)).unwrap(), Some(b"ing60".to_vec()));
    assert_eq!(db.get(k(10)).unwrap(), Some(b"old10".to_vec()));
    assert_eq!(db.get(k(120)).unwrap(), Some(b"ing120".to_vec()));
    // A snapshot from before does not see it.
    let ro = ReadOptions {
        snapshot: Some(snap.clone()),
        ..Default::default()
    };
    assert_eq!(db.get_opt(k(60), &ro).unwrap(), Some(b"old60".to_vec()));
    assert_eq!(db.get_opt(k(120), &ro).unwrap(), None);
    assert_eq!(db.iter(&ro).count(), 100);
    // Later writes win over it.
    db.put(k(70), b"new70").unwrap();
    assert_eq!(db.get(k(70)).unwrap(), Some(b"new70".to_vec()));
    let all: Vec<_> = db
        .iter(&ReadOptions::default())
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(all.len(), 150);
    // Survives reopen and compaction.
    db.close().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
    assert_eq!(db.get(k(60)).unwrap(), Some(b"ing60".to_vec()));
    assert_eq!(db.get(k(70)).unwrap(), Some(b"new70".to_vec()));
    assert_eq!(db.iter(&ReadOptions::default()).count(), 150);
    // The source file was copied, not moved.
    assert!(f.exists());
}

#[test]
fn all_or_nothing_with_a_corrupt_missing_or_overlapping_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    let a = build(&dir.path().join("a.sst"), 0..100, "a");
    let b = build(&dir.path().join("b.sst"), 100..200, "b");
    let c = build(&dir.path().join("c.sst"), 150..250, "c");
    let bad = build(&dir.path().join("bad.sst"), 300..400, "x");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&bad, bytes).unwrap();
    let before: Vec<_> = std::fs::read_dir(dir.path().join("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(matches!(
        db.ingest(&[&a, &b, &bad], &IngestOptions::default()),
        Err(Error::Corruption { .. })
    ));
    assert!(db
        .ingest(
            &[&a, &dir.path().join("missing.sst")],
            &IngestOptions::default()
        )
        .is_err());
    assert!(matches!(
        db.ingest(&[&a, &b, &c], &IngestOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        db.get(k(5)).unwrap(),
        None,
        "nothing of a failed ingestion is visible"
    );
    let after: Vec<_> = std::fs::read_dir(dir.path().join("db"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        before.len(),
        after.len(),
        "no stray files: {before:?} vs {after:?}"
    );
    let info = db
        .ingest(
            &[&b, &a],
            &IngestOptions {
                move_files: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(info.files, 2);
    assert!(!a.exists() && !b.exists(), "move_files removes the sources");
    assert_eq!(db.iter(&ReadOptions::default()).count(), 200);
}

/// `verify_blocks = false` (RocksDB's default check): the first and last blocks and the
/// metadata are still checked; damage in a middle block is found when that block is read,
/// as `Error::Corruption`, never as wrong data. The full check (the default) refuses it up front.
#[test]
fn metadata_only_verification_checks_the_ends_and_defers_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    let cheap = IngestOptions {
        verify_blocks: false,
        ..Default::default()
    };
    // A clean file ingests either way.
    let good = build(&dir.path().join("good.sst"), 0..2000, "g");
    assert_eq!(db.ingest(&[&good], &cheap).unwrap().entries, 2000);
    assert_eq!(db.get(k(1500)).unwrap(), Some(b"g1500".to_vec()));
    // Damage in the first block: refused even by the cheap check.
    let first = build(&dir.path().join("first.sst"), 3000..5000, "f");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    assert!(matches!(
        db.ingest(&[&first], &cheap),
        Err(Error::Corruption { .. })
    ));
    // Damage in a middle block: the full check refuses it; the cheap one ingests it and the
    // damaged block reads as corruption.
    let mid = build(&dir.path().join("mid.sst"), 6000..8000, "m");
    let mut bytes = std::fs::read(&mid).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0xff;
    std::fs::write(&mid, &bytes).unwrap();
    assert!(matches!(
        db.ingest(&[&mid], &IngestOptions::default()),
        Err(Error::Corruption { .. })
    ));
    assert_eq!(db.get(k(6000)).unwrap(), None);
    db.ingest(&[&mid], &cheap).unwrap();
    assert_eq!(db.get(k(6000)).unwrap(), Some(b"m6000".to_vec()));
    assert_eq!(db.get(k(7999)).unwrap(), Some(b"m7999".to_vec()));
    let scanned: Vec<_> = db.iter(&ReadOptions::default()).collect();
    assert!(
        scanned
            .iter()
            .any(|r| matches!(r, Err(Error::Corruption { .. }))),
        "the damaged middle block must surface as corruption"
    );
}

#[test]
fn ingestion_interleaved_with_writes_matches_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("db"),
        Options {
            memtable_size_bytes: 16 << 10,
            l0_compaction_trigger: 2,
            ..Options::default()
        },
    )
    .unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut x = 7u64;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for round in 0..40u64 {
        for _ in 0..50 {
            let i = rnd(2000);
            if rnd(5) == 0 {
                db.delete(k(i)).unwrap();
                model.remove(&k(i));
            } else {
                let v = format!("w{round}-{i}").into_bytes();
                db.put(k(i), &v).unwrap();
                model.insert(k(i), v);
            }
        }
        let start = rnd(1900);
        let len = rnd(100) + 1;
        let p = build(
            &dir.path().join(format!("r{round}.sst")),
            start..start + len,
            &format!("i{round}-"),
        );
        db.ingest(&[&p], &IngestOptions::default()).unwrap();
        for i in start..start + len {
            model.insert(k(i), format!("i{round}-{i}").into_bytes());
        }
        if round % 10 == 9 {
            db.close().unwrap();
        }
        let got: Vec<_> = db
            .iter(&ReadOptions::default())
            .filter_map(|r| r.ok())
            .collect();
        if round % 10 == 9 {
            // closed: reopen and compare there
            let db2 = Db::open(dir.path().join("db"), Options::default()).unwrap();
            let got: Vec<_> = db2
                .iter(&ReadOptions::default())
                .map(|r| r.unwrap())
                .collect();
            let want: Vec<_> = model.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
            assert!(got == want, "round {round}: after reopen");
            drop(db2);
            return;
        }
        let want: Vec<_> = model.iter().map(|(a, b)| (a.clone(), b.clone())).collect();
        assert!(
            got == want,
            "round {round}: {} vs {} entries",
            got.len(),
            want.len()
        );
    }
}

fn stop_opts() -> Options {
    Options {
        memtable_size_bytes: 4 << 10,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 3,
        l0_stop_trigger: 4,
        background_write_rate_bytes: 256 << 10,
        max_write_stall_ms: 30_000,
        ..Options::default()
    }
}

#[test]
fn ingest_at_the_l0_stop_trigger_completes_or_is_busy_in_bound() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path().join("db"), stop_opts()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 1_000_000u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = db.put(k(i), vec![1u8; 200]);
                i += 1;
            }
        })
    };
    let mut done = 0;
    for r in 0..10u64 {
        let p = build(
            &dir.path().join(format!("s{r}.sst")),
            r * 100..r * 100 + 100,
            "s",
        );
        let started = Instant::now();
        let res = db.ingest(
            &[&p],
            &IngestOptions {
                timeout: Duration::from_secs(20),
                ..Default::default()
            },
        );
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "ingestion took {:?}",
            started.elapsed()
        );
        match res {
            Ok(_) => done += 1,
            Err(e) => assert!(e.is_retryable(), "unexpected error {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(done > 0, "no ingestion completed");
    eprintln!(
        "ingest under stop trigger: {done}/10 completed, stats: {:?}",
        db.stats().stall
    );
}

#[test]
fn stacked_ingestions_on_an_idle_db_never_strand_writers() {
    // Pebble #320: ingestions pile L0 past the stop trigger; the next write must complete.
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 3,
        l0_stop_trigger: 4,
        ..Options::default()
    };
    let db = Db::open(dir.path().join("db"), opts).unwrap();
    for r in 0..8u64 {
        // Overlapping ranges force L0 placement.
        let p = build(
            &dir.path().join(format!("o{r}.sst")),
            0..500,
            &format!("r{r}-"),
        );
        db.ingest(&[&p], &IngestOptions::default()).unwrap();
    }
    let started = Instant::now();
    db.write(
        {
            let mut b = siltdb::WriteBatch::new();
            b.put(b"after", b"x");
            b
        },
        &WriteOptions::default(),
    )
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(db.get(k(10)).unwrap(), Some(b"r7-10".to_vec()));
    // Manual flush and checkpoint complete in bound too.
    db.flush().unwrap();
    db.checkpoint(dir.path().join("cp")).unwrap();
}
