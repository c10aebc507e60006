//! `Db::set_options` (issue 24): stall triggers, compaction and delayed-write rates and cache
//! capacity change while the database is open; a bad change is refused whole.

use siltdb::{Db, Error, MutableOptions, Options, SharedResources, WriteBatch, WriteOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn no_slowdown() -> WriteOptions {
    WriteOptions {
        no_slowdown: true,
        ..Default::default()
    }
}

fn put(db: &Db, k: &str, o: &WriteOptions) -> siltdb::Result<()> {
    let mut b = WriteBatch::new();
    b.put(k, vec![b'v'; 100]);
    db.write(b, o)
}

/// L0 files pile up with compaction off (its trigger out of reach) until writes stop; raising
/// the stop trigger releases a stalled writer at once, and lowering the compaction trigger
/// makes compaction drain L0.
#[test]
fn raising_a_trigger_releases_a_stall_and_lowering_one_starts_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Db::open(
            dir.path(),
            Options {
                l0_compaction_trigger: 100,
                l0_slowdown_trigger: 2,
                l0_stop_trigger: 3,
                max_write_stall_ms: 60_000,
                ..Options::default()
            },
        )
        .unwrap(),
    );
    for i in 0..3 {
        put(&db, &format!("k{i}"), &WriteOptions::default()).unwrap();
        db.flush().unwrap();
    }
    assert_eq!(db.stats().files_per_level[0], 3);
    assert!(matches!(
        put(&db, "stopped", &no_slowdown()),
        Err(Error::Stalled(_))
    ));
    // A writer waits in the stop...
    let w = {
        let db = Arc::clone(&db);
        std::thread::spawn(move || {
            let t = Instant::now();
            put(&db, "waiter", &WriteOptions::default()).unwrap();
            t.elapsed()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!w.is_finished(), "the writer should be stopped");
    // ...until the triggers are raised.
    db.set_options(&MutableOptions {
        l0_slowdown_trigger: Some(10),
        l0_stop_trigger: Some(20),
        ..Default::default()
    })
    .unwrap();
    let waited = w.join().unwrap();
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    put(&db, "free", &no_slowdown()).unwrap();
    assert_eq!(db.options().l0_stop_trigger, 20);
    // Compaction was off; a reachable trigger starts it without another write.
    db.set_options(&MutableOptions {
        l0_compaction_trigger: Some(2),
        ..Default::default()
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.stats().files_per_level[0] >= 3 {
        assert!(Instant::now() < deadline, "compaction never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    for k in ["k0", "k1", "k2", "waiter", "free"] {
        assert!(db.get(k).unwrap().is_some(), "{k}");
    }
}

/// A change that would leave the options invalid is refused whole: nothing in it applies.
#[test]
fn an_invalid_change_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let before = db.options();
    let e = db
        .set_options(&MutableOptions {
            delayed_write_rate_bytes: Some(1),
            l0_slowdown_trigger: Some(30),
            l0_stop_trigger: Some(10),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(e.to_string().contains("l0_stop_trigger"), "{e}");
    let after = db.options();
    assert_eq!(
        after.delayed_write_rate_bytes,
        before.delayed_write_rate_bytes
    );
    assert_eq!(after.l0_stop_trigger, before.l0_stop_trigger);
    let e = db
        .set_options(&MutableOptions {
            memtable_size_bytes: Some(0),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}

/// The own block cache resizes; a shared one is refused here (it belongs to the resources), as
/// is a per-database rate on a shared limiter.
#[test]
fn cache_and_rate_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("own"), Options::default()).unwrap();
    for i in 0..2000 {
        put(&db, &format!("key{i:05}"), &WriteOptions::default()).unwrap();
    }
    db.flush().unwrap();
    db.set_options(&MutableOptions {
        block_cache_size_bytes: Some(8 << 10),
        background_write_rate_bytes: Some(64 << 20),
        memtable_size_bytes: Some(1 << 20),
        ..Default::default()
    })
    .unwrap();
    for i in 0..2000 {
        assert!(db.get(format!("key{i:05}")).unwrap().is_some());
    }
    assert_eq!(db.options().block_cache_size_bytes, 8 << 10);
    assert_eq!(db.options().memtable_size_bytes, 1 << 20);
    let r = SharedResources::new(Default::default()).unwrap();
    let shared = Db::open(
        dir.path().join("shared"),
        Options {
            resources: Some(Arc::clone(&r)),
            ..Options::default()
        },
    )
    .unwrap();
    for change in [
        MutableOptions {
            block_cache_size_bytes: Some(1 << 20),
            ..Default::default()
        },
        MutableOptions {
            background_write_rate_bytes: Some(1 << 20),
            ..Default::default()
        },
    ] {
        let e = shared.set_options(&change).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
    shared
        .set_options(&MutableOptions {
            l0_stop_trigger: Some(50),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(shared.options().l0_stop_trigger, 50);
}
