//! Checkpoints under load and write stalls (seed S6), with I/O errors, independence from the
//! source, durable tags, and many write → checkpoint → meta → open → remove cycles (seed S4).

mod common;

use siltdb::fs::{FaultFs, FaultKind, IoOp};
use siltdb::{read_checkpoint_meta, Db, Error, Options, ReadOptions, WriteOptions};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A batch carrying a write tag (the replica's decree).
fn tagged(tag: u64, key: Option<&[u8]>) -> siltdb::WriteBatch {
    let mut b = siltdb::WriteBatch::new();
    if let Some(key) = key {
        b.put(key, b"v");
    }
    b.set_tag(tag);
    b
}

/// Number of `.sst` files in a database directory.
fn count_ssts(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".sst")
        })
        .count()
}

fn k(i: u64) -> Vec<u8> {
    format!("key{i:010}").into_bytes()
}

fn stall_opts() -> Options {
    Options {
        memtable_size_bytes: 4 << 10,
        max_immutable_memtables: 1,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 3,
        l0_stop_trigger: 4,
        target_file_size_bytes: 16 << 10,
        max_bytes_for_level_base: 64 << 10,
        background_write_rate_bytes: 2 << 20,
        max_write_stall_ms: 60_000,
        ..Options::default()
    }
}

/// Every key present is a prefix 0..n of the sequential history.
fn prefix_len(db: &Db) -> u64 {
    let keys: Vec<Vec<u8>> = db
        .iter(&ReadOptions::default())
        .map(|r| r.unwrap().0)
        .collect();
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            key,
            &k(i as u64),
            "checkpoint is not a prefix of the history at {i}"
        );
    }
    keys.len() as u64
}

#[test]
fn checkpoint_under_stall() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path().join("db"), stall_opts()).unwrap());
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, acked, stop) = (db.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match db.put(k(i), vec![b'v'; 100]) {
                    Ok(()) => {
                        i += 1;
                        acked.store(i, Ordering::Release);
                    }
                    Err(Error::Stalled(_)) => continue,
                    Err(e) => panic!("writer: {e}"),
                }
            }
        })
    };
    let rounds = if common::soak() { 100 } else { 12 };
    let mut stalls_seen = 0;
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(20));
        let before = acked.load(Ordering::Acquire);
        if db.stats().stall.stops + db.stats().stall.slowdowns > 0 {
            stalls_seen += 1;
        }
        let cp = dir.path().join(format!("cp{round}"));
        let started = Instant::now();
        let info = db.checkpoint(&cp).expect("checkpoint under stall");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "checkpoint took {:?}",
            started.elapsed()
        );
        let meta = read_checkpoint_meta(&cp).unwrap();
        assert_eq!(meta.seqno, info.seqno);
        let c = Db::open(&cp, Options::default()).unwrap();
        let n = prefix_len(&c);
        assert!(
            n >= before,
            "checkpoint holds {n} writes, {before} were acknowledged before it"
        );
        c.close().unwrap();
        siltdb::checkpoint::remove(&cp).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = acked.load(Ordering::Acquire);
    let cp = dir.path().join("final");
    db.checkpoint(&cp).unwrap();
    let c = Db::open(&cp, Options::default()).unwrap();
    assert_eq!(
        prefix_len(&c),
        total,
        "a checkpoint after writers stop holds everything"
    );
    eprintln!("checkpoint_under_stall: {rounds} checkpoints, {total} writes, stalls observed in {stalls_seen} rounds");
}

#[test]
fn checkpoint_io_error_leaves_nothing_and_next_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let db = Db::open(
        dir.path().join("db"),
        Options {
            fs: Arc::new(fs.clone()),
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..1000 {
        db.put(k(i), b"v").unwrap();
    }
    db.flush().unwrap();
    fs.fail_nth(IoOp::Link, 1, FaultKind::Eio);
    let cp = dir.path().join("cp");
    assert!(db.checkpoint(&cp).is_err());
    assert!(!cp.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "only the db dir remains: {leftovers:?}");
    fs.fail_nth(IoOp::Sync, 1, FaultKind::Enospc);
    assert!(db.checkpoint(&cp).is_err() || cp.exists());
    if cp.exists() {
        std::fs::remove_dir_all(&cp).unwrap();
    }
    db.put(b"after", b"x").unwrap();
    db.checkpoint(&cp).unwrap();
    let c = Db::open(&cp, Options::default()).unwrap();
    assert_eq!(c.get(b"after").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(c.iter(&ReadOptions::default()).count(), 1001);
    assert!(matches!(db.checkpoint(&cp), Err(Error::InvalidArgument(_))));
}

#[test]
fn checkpoint_is_independent_of_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("db");
    let db = Db::open(
        &src,
        Options {
            memtable_size_bytes: 8 << 10,
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..3000 {
        db.put(k(i), format!("v{i}")).unwrap();
    }
    let cp = dir.path().join("cp");
    db.checkpoint(&cp).unwrap();
    db.delete_range(k(0), k(3000)).unwrap();
    db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
    db.close().unwrap();
    drop(db);
    std::fs::remove_dir_all(&src).unwrap();
    let c = Db::open(&cp, Options::default()).unwrap();
    for i in (0..3000).step_by(7) {
        assert_eq!(c.get(k(i)).unwrap(), Some(format!("v{i}").into_bytes()));
    }
}

#[test]
fn durable_tags_survive_reopen_power_loss_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let opts = Options {
        fs: Arc::new(fs.clone()),
        ..Options::default()
    };
    let path = dir.path().join("db");
    let db = Db::open(&path, opts.clone()).unwrap();
    assert_eq!(db.durable_tag(), None);
    for tag in 1..=50u64 {
        let wo = WriteOptions {
            disable_wal: true,
            ..Default::default()
        };
        db.write(tagged(tag, Some(&k(tag))), &wo).unwrap();
        if tag == 30 {
            db.flush().unwrap();
        }
    }
    assert_eq!(db.durable_tag(), Some(30));
    // Power loss: the unflushed (WAL-less) tags 31..50 are gone, 30 stays durable.
    fs.set_dead();
    drop(db);
    fs.power_loss();
    let db = Db::open(&path, opts.clone()).unwrap();
    assert_eq!(db.durable_tag(), Some(30));
    assert!(db.get(k(30)).unwrap().is_some());
    db.write(tagged(51, Some(&k(51))), &WriteOptions::default())
        .unwrap();
    let cp = dir.path().join("cp");
    let info = db.checkpoint(&cp).unwrap();
    assert_eq!(info.durable_tag, Some(51));
    // read_checkpoint_meta works while the checkpoint is open elsewhere (no LOCK taken).
    let c = Db::open(&cp, Options::default()).unwrap();
    let meta = read_checkpoint_meta(&cp).unwrap();
    assert_eq!(meta.durable_tag, Some(51));
    assert_eq!(meta.seqno, info.seqno);
    drop(c);
    db.close().unwrap();
    let db = Db::open(&path, opts).unwrap();
    assert_eq!(db.durable_tag(), Some(51));
}

#[test]
fn many_checkpoint_cycles_run_clean() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("db"),
        Options {
            memtable_size_bytes: 16 << 10,
            ..Options::default()
        },
    )
    .unwrap();
    let cycles = if common::soak() { 2000 } else { 200 };
    let mut next = 0u64;
    for cycle in 0..cycles {
        for _ in 0..20 {
            db.write(tagged(next + 1, Some(&k(next))), &WriteOptions::default())
                .unwrap();
            next += 1;
        }
        let cp = dir.path().join(format!("checkpoint.{next}"));
        db.checkpoint(&cp).unwrap();
        let meta = read_checkpoint_meta(&cp).unwrap();
        assert_eq!(meta.durable_tag, Some(next), "cycle {cycle}");
        {
            let c = Db::open(&cp, Options::default()).unwrap();
            assert!(c.get(k(next - 1)).unwrap().is_some());
        }
        // GC: keep the newest two.
        let all = siltdb::checkpoint::list(dir.path()).unwrap();
        for old in all.iter().take(all.len().saturating_sub(2)) {
            siltdb::checkpoint::remove(old).unwrap();
        }
    }
    assert_eq!(siltdb::checkpoint::list(dir.path()).unwrap().len(), 2);
}

#[test]
fn a_tag_without_data_becomes_durable_on_flush() {
    // The replica layer advances its durable decree with entries that carry no user data.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path, Options::default()).unwrap();
    db.put(b"k", b"v").unwrap();
    let wo = WriteOptions {
        disable_wal: true,
        ..Default::default()
    };
    db.write(tagged(7, None), &wo).unwrap();
    db.flush().unwrap();
    assert_eq!(db.durable_tag(), Some(7));
    db.write(tagged(8, None), &WriteOptions::default()).unwrap();
    db.flush().unwrap();
    assert_eq!(db.durable_tag(), Some(8));
    let before = count_ssts(&path);
    db.close().unwrap();
    let db = Db::open(&path, Options::default()).unwrap();
    assert_eq!(db.durable_tag(), Some(8));
    let after = count_ssts(&path);
    assert_eq!(before, after, "a tag-only flush writes no SST");
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn tag_zero_is_a_real_tag() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.write(tagged(0, Some(b"a")), &WriteOptions::default())
        .unwrap();
    db.flush().unwrap();
    assert_eq!(db.durable_tag(), Some(0));
}
