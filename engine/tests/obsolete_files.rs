//! Files a compaction made obsolete while a reader still pinned them are deleted once the
//! reader lets go, even when no further flush or compaction ever runs (a read-only spell).

use siltdb::{Db, Options, ReadOptions};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn tables(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sst"))
        .collect()
}

fn fill(db: &Db, round: u32) {
    for i in 0..2000u32 {
        db.put(format!("key{i:06}"), format!("round {round} value {i}"))
            .unwrap();
    }
    db.flush().unwrap();
}

#[test]
fn a_pinned_compaction_input_is_deleted_soon_after_its_last_reader_drops() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    fill(&db, 0);
    fill(&db, 1);
    let before = tables(dir.path());
    assert_eq!(before.len(), 2, "two flushes, two tables: {before:?}");

    // The iterator pins the version holding both tables.
    let mut it = db.iter(&ReadOptions::default());
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.0, b"key000000");
    db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
    db.wait_for_background_work(Duration::from_secs(30))
        .unwrap();
    let pinned = tables(dir.path());
    assert!(
        before.is_subset(&pinned),
        "the pinned inputs stay while the iterator lives: {before:?} vs {pinned:?}"
    );
    // The pinned view still reads the old files.
    assert_eq!(it.count(), 1999);

    // The iterator is gone (consumed); nothing else is written or compacted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = tables(dir.path());
        if now.is_disjoint(&before) {
            assert!(!now.is_empty(), "the compaction's output remains");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "obsolete tables still on disk 10 s after their last reader: {now:?} (inputs {before:?})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in [0u32, 1234, 1999] {
        let got = db.get(format!("key{i:06}")).unwrap().unwrap();
        assert_eq!(got, format!("round 1 value {i}").into_bytes());
    }
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.iter(&ReadOptions::default()).count(), 2000);
}
