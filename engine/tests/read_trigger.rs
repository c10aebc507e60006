//! Read-triggered compaction: files that reads keep consulting in vain are merged down once
//! the reads have paid about what the compaction costs; nothing is lost or resurrected.

use siltdb::{Db, Options, ReadOptions};
use std::time::Duration;

fn level0(db: &Db) -> usize {
    db.property("siltdb.num-files-at-level0")
        .unwrap()
        .parse()
        .unwrap()
}

/// Two overlapping L0 files (an old one with every key, a newer one with every tenth key
/// deleted or rewritten) that the size trigger never compacts.
fn two_l0_files(enabled: bool) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        l0_compaction_trigger: 100,
        l0_slowdown_trigger: 200,
        l0_stop_trigger: 300,
        read_triggered_compaction: enabled,
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    for i in 0..2000u32 {
        db.put(format!("key{i:06}"), format!("old{i}")).unwrap();
    }
    db.flush().unwrap();
    for i in (0..2000u32).step_by(10) {
        if i.is_multiple_of(20) {
            db.delete(format!("key{i:06}")).unwrap();
        } else {
            db.put(format!("key{i:06}"), format!("new{i}")).unwrap();
        }
    }
    db.flush().unwrap();
    db.wait_for_background_work(Duration::from_secs(60))
        .unwrap();
    assert_eq!(level0(&db), 2);
    (dir, db)
}

fn expected(i: u32) -> Option<Vec<u8>> {
    if i.is_multiple_of(20) {
        None
    } else if i.is_multiple_of(10) {
        Some(format!("new{i}").into_bytes())
    } else {
        Some(format!("old{i}").into_bytes())
    }
}

fn check_all(db: &Db) {
    for i in 0..2000u32 {
        assert_eq!(
            db.get(format!("key{i:06}")).unwrap(),
            expected(i),
            "key {i}"
        );
    }
    let scanned: Vec<_> = db
        .iter(&ReadOptions::default())
        .map(|r| r.unwrap())
        .collect();
    let want: Vec<_> = (0..2000u32)
        .filter_map(|i| expected(i).map(|v| (format!("key{i:06}").into_bytes(), v)))
        .collect();
    assert_eq!(scanned, want);
}

#[test]
fn point_reads_that_pass_through_a_file_compact_it() {
    let (dir, db) = two_l0_files(true);
    // Keys only the older file holds: the newer file is consulted in vain every time. A
    // small file allows 100 wasted reads.
    for round in 0..3u32 {
        for i in (1..2000u32).step_by(10).take(60) {
            let i = i + round;
            assert_eq!(db.get(format!("key{i:06}")).unwrap(), expected(i));
        }
    }
    db.wait_for_background_work(Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        level0(&db),
        0,
        "the L0 files were merged into the base level"
    );
    check_all(&db);
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    check_all(&db);
}

#[test]
fn iterators_over_several_runs_compact_the_newest() {
    let (_dir, db) = two_l0_files(true);
    for i in 0..120u32 {
        let ro = ReadOptions {
            lower_bound: Some(format!("key{:06}", i * 13).into_bytes()),
            ..Default::default()
        };
        let got: Vec<_> = db.iter(&ro).take(5).map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), 5);
    }
    db.wait_for_background_work(Duration::from_secs(60))
        .unwrap();
    assert_eq!(level0(&db), 0);
    check_all(&db);
}

#[test]
fn disabled_or_below_the_allowance_nothing_moves() {
    let (_dir, db) = two_l0_files(false);
    for _ in 0..5 {
        check_all(&db);
    }
    db.wait_for_background_work(Duration::from_secs(60))
        .unwrap();
    assert_eq!(level0(&db), 2, "disabled: reads schedule nothing");

    let (_dir, db) = two_l0_files(true);
    // Keys the newer file answers cost nothing; 99 wasted reads stay under the allowance.
    for i in (0..2000u32).step_by(10) {
        assert_eq!(db.get(format!("key{i:06}")).unwrap(), expected(i));
    }
    for i in (1..2000u32).step_by(10).take(99) {
        assert_eq!(db.get(format!("key{i:06}")).unwrap(), expected(i));
    }
    db.wait_for_background_work(Duration::from_secs(60))
        .unwrap();
    assert_eq!(level0(&db), 2);
}
