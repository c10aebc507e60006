//! `Db::durable_tag` never waits on a manifest fsync: every replica apply reads it, and a flush
//! holds the manifest lock across its manifest sync. With the sync stalled (FaultFs holds it),
//! `durable_tag` still answers at once, with the tag made durable before.

use siltdb::fs::FaultFs;
use siltdb::{Db, Options, WriteBatch, WriteOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn tagged_put(db: &Db, key: &str, tag: u64) {
    let mut b = WriteBatch::new();
    b.put(key, "v");
    b.set_tag(tag);
    db.write(b, &WriteOptions::default()).unwrap();
}

#[test]
fn durable_tag_returns_while_a_manifest_sync_is_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let opts = Options {
        fs: Arc::new(fs.clone()),
        ..Options::default()
    };
    let db = Arc::new(Db::open(dir.path(), opts).unwrap());
    tagged_put(&db, "a", 7);
    db.flush().unwrap();
    assert_eq!(db.durable_tag(), Some(7));

    tagged_put(&db, "b", 9);
    // Every manifest sync now waits (up to 20 s) until released: a slow disk.
    fs.hold_syncs("MANIFEST", Duration::from_secs(20));
    let flusher = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || db.flush())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs.held_syncs() == 0 {
        assert!(
            Instant::now() < deadline,
            "the flush never reached its manifest sync"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let tag = db.durable_tag();
    let waited = t.elapsed();
    assert_eq!(
        fs.held_syncs(),
        1,
        "the manifest sync must still be stalled"
    );
    assert!(
        waited < Duration::from_secs(2),
        "durable_tag waited {waited:?} on the stalled manifest sync"
    );
    // The flush in progress is not durable yet.
    assert_eq!(tag, Some(7));
    fs.release_syncs();
    flusher.join().unwrap().unwrap();
    assert_eq!(db.durable_tag(), Some(9));
}
