//! Many databases on one `SharedResources` (issue 24): one block cache, one pool of background
//! threads, one rate limiter and one write-buffer budget, however many databases are open.

mod common;

use siltdb::{Db, Options, ReadOptions, SharedResources, SharedResourcesOptions, WriteOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn resources(budget: usize, cache: usize) -> Arc<SharedResources> {
    SharedResources::new(SharedResourcesOptions {
        block_cache_size_bytes: cache,
        background_jobs: 2,
        background_write_rate_bytes: 0,
        write_buffer_size_bytes: budget,
    })
    .unwrap()
}

fn key(db: usize, i: usize) -> Vec<u8> {
    format!("db{db:03}-key{i:08}").into_bytes()
}

fn value(db: usize, i: usize) -> Vec<u8> {
    let mut v = format!("value-{db}-{i}-").into_bytes();
    v.resize(200, b'v');
    v
}

fn wait_until(what: &str, bound: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Names of this process's threads (Linux); None elsewhere.
fn thread_names() -> Option<Vec<String>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect(),
    )
}

/// Threads a database starts for itself when it owns its background work (`silt-flush-N`,
/// `silt-bg-N`; the pool's are `silt-pool-*`).
fn per_database_threads() -> Option<usize> {
    thread_names().map(|names| {
        names
            .iter()
            .filter(|n| n.starts_with("silt-flush-") || n.starts_with("silt-bg-"))
            .count()
    })
}

/// 32 databases with memtables far larger than the budget: the budget, not the memtable size,
/// decides when memtables freeze, so memtable bytes across all of them stay bounded; every
/// database serves its data before and after reopen; the pool's thread count does not grow
/// with the number of databases.
#[test]
fn budget_bounds_memtables_across_databases_and_threads_stay_fixed() {
    const DBS: usize = 32;
    const KEYS: usize = 600;
    const BUDGET: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let r = resources(BUDGET, 1 << 20);
    assert_eq!(r.background_threads(), 3);
    let dbs: Vec<Db> = (0..DBS)
        .map(|d| {
            Db::open(
                dir.path().join(format!("db{d}")),
                common::shared_resources_options(&r, 64 << 20),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(r.databases(), DBS);
    // Every test of this binary uses shared resources: no database started a thread of its
    // own; the pool's three serve all 32.
    if let Some(n) = per_database_threads() {
        assert_eq!(n, 0, "per-database threads: {:?}", thread_names());
    }
    let mut peak = 0;
    for i in 0..KEYS {
        for (d, db) in dbs.iter().enumerate() {
            db.put(key(d, i), value(d, i)).unwrap();
            peak = peak.max(r.write_buffer_usage());
        }
    }
    // 32 × 600 × ~230 B ≈ 4.4 MB written into 64 MiB memtables: without the budget nothing
    // would have been flushed. The stop at twice the budget is the hard bound.
    assert!(peak <= 2 * BUDGET + (64 << 10), "peak {peak}");
    let flushed: u64 = dbs.iter().map(|db| db.stats().flushes).sum();
    assert!(flushed > 0, "the budget never froze a memtable");
    for (d, db) in dbs.iter().enumerate() {
        for i in (0..KEYS).step_by(37) {
            assert_eq!(db.get(key(d, i)).unwrap(), Some(value(d, i)));
        }
    }
    for db in &dbs {
        db.close().unwrap();
    }
    assert_eq!(r.databases(), 0);
    assert_eq!(
        r.write_buffer_usage(),
        0,
        "closed databases released their memtables"
    );
    drop(dbs);
    // Reopen on fresh resources: everything acknowledged is there.
    drop(r);
    let r = resources(BUDGET, 1 << 20);
    for d in 0..DBS {
        let db = Db::open(
            dir.path().join(format!("db{d}")),
            common::shared_resources_options(&r, 64 << 20),
        )
        .unwrap();
        let n = db.iter(&ReadOptions::default()).count();
        assert_eq!(n, KEYS, "db{d}");
        assert_eq!(db.get(key(d, KEYS - 1)).unwrap(), Some(value(d, KEYS - 1)));
        db.close().unwrap();
    }
}

/// An idle database holding the largest memtable is frozen and flushed by the pool when the
/// budget is hit by another database's writes: an idle replica cannot pin the budget.
#[test]
fn idle_database_with_the_largest_memtable_is_flushed_for_the_budget() {
    const BUDGET: usize = 2 << 20;
    let dir = tempfile::tempdir().unwrap();
    let r = resources(BUDGET, 1 << 20);
    let idle = Db::open(
        dir.path().join("idle"),
        common::shared_resources_options(&r, 64 << 20),
    )
    .unwrap();
    let busy = Db::open(
        dir.path().join("busy"),
        common::shared_resources_options(&r, 64 << 20),
    )
    .unwrap();
    // The idle database takes most of the budget, then stops writing.
    let mut i = 0;
    while r.write_buffer_usage() < BUDGET / 8 * 6 {
        idle.put(key(0, i), value(0, i)).unwrap();
        i += 1;
    }
    let idle_keys = i;
    assert_eq!(idle.stats().flushes, 0);
    // The busy one writes a little: the budget is crossed, the idle one is the largest.
    let mut j = 0;
    wait_until("the idle database's flush", Duration::from_secs(60), || {
        busy.put(key(1, j), value(1, j)).unwrap();
        j += 1;
        idle.stats().flushes > 0
    });
    assert_eq!(
        idle.property("siltdb.cur-size-active-mem-table").as_deref(),
        Some("0")
    );
    assert_eq!(idle.stats().files_per_level.iter().sum::<usize>(), 1);
    for k in (0..idle_keys).step_by(101) {
        assert_eq!(idle.get(key(0, k)).unwrap(), Some(value(0, k)));
    }
    idle.close().unwrap();
    busy.close().unwrap();
}

/// One block cache serves every database: reads of two databases fill one cache, whose usage
/// stays within its capacity; shrinking the capacity at run time evicts at once.
#[test]
fn one_block_cache_for_every_database() {
    let dir = tempfile::tempdir().unwrap();
    let r = resources(64 << 20, 256 << 10);
    let dbs: Vec<Db> = (0..2)
        .map(|d| {
            Db::open(
                dir.path().join(format!("db{d}")),
                common::shared_resources_options(&r, 256 << 10),
            )
            .unwrap()
        })
        .collect();
    for (d, db) in dbs.iter().enumerate() {
        for i in 0..3000 {
            db.put(key(d, i), value(d, i)).unwrap();
        }
        db.flush().unwrap();
    }
    assert_eq!(r.block_cache_usage(), 0);
    for (d, db) in dbs.iter().enumerate() {
        for i in 0..3000 {
            assert_eq!(db.get(key(d, i)).unwrap(), Some(value(d, i)));
        }
    }
    let used = r.block_cache_usage();
    assert!(used > 0 && used <= 256 << 10, "usage {used}");
    r.set_block_cache_capacity(16 << 10);
    assert_eq!(r.block_cache_capacity(), 16 << 10);
    assert!(r.block_cache_usage() <= 16 << 10);
    // Still correct with the small cache.
    for (d, db) in dbs.iter().enumerate() {
        assert_eq!(db.get(key(d, 1234)).unwrap(), Some(value(d, 1234)));
    }
    for db in &dbs {
        db.close().unwrap();
    }
}

/// Writers of several databases on one pool, with small memtables and stall triggers: the one
/// pool keeps every database's flushes and compactions going; synced writes survive reopen.
#[test]
fn one_pool_keeps_many_stalled_databases_moving() {
    const DBS: usize = 6;
    const KEYS: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let r = resources(4 << 20, 1 << 20);
    let opts = |r: &Arc<SharedResources>| Options {
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 4,
        l0_stop_trigger: 6,
        target_file_size_bytes: 64 << 10,
        max_write_stall_ms: 60_000,
        ..common::shared_resources_options(r, 32 << 10)
    };
    let dbs: Vec<Arc<Db>> = (0..DBS)
        .map(|d| Arc::new(Db::open(dir.path().join(format!("db{d}")), opts(&r)).unwrap()))
        .collect();
    let handles: Vec<_> = dbs
        .iter()
        .enumerate()
        .map(|(d, db)| {
            let db = Arc::clone(db);
            std::thread::spawn(move || {
                let sync = WriteOptions {
                    sync: true,
                    ..Default::default()
                };
                for i in 0..KEYS {
                    let mut b = siltdb::WriteBatch::new();
                    b.put(key(d, i), value(d, i));
                    let o = if i % 500 == 0 {
                        &sync
                    } else {
                        &WriteOptions::default()
                    };
                    db.write(b, o).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for db in &dbs {
        let s = db.stats();
        assert!(s.flushes > 0 && s.compactions > 0, "{s:?}");
        db.close().unwrap();
    }
    drop(dbs);
    for d in 0..DBS {
        let db = Db::open(dir.path().join(format!("db{d}")), opts(&r)).unwrap();
        assert_eq!(db.iter(&ReadOptions::default()).count(), KEYS);
        db.close().unwrap();
    }
}

/// Dropping a database without closing it, and dropping the resources while a database is
/// still open, both shut down cleanly (the database keeps the resources alive; the pool is
/// joined when the last handle goes).
#[test]
fn drop_orders_are_clean() {
    let dir = tempfile::tempdir().unwrap();
    let r = resources(1 << 20, 1 << 20);
    let db = Db::open(
        dir.path().join("a"),
        common::shared_resources_options(&r, 64 << 10),
    )
    .unwrap();
    for i in 0..2000 {
        db.put(key(0, i), value(0, i)).unwrap();
    }
    drop(r);
    drop(db);
    let r = resources(1 << 20, 1 << 20);
    let db = Db::open(
        dir.path().join("a"),
        common::shared_resources_options(&r, 64 << 10),
    )
    .unwrap();
    assert_eq!(db.iter(&ReadOptions::default()).count(), 2000);
}
