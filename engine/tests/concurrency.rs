//! Concurrency test: 4 writers on disjoint key prefixes, 2 readers, background flush and
//! compaction running all the time (small memtable, L0 trigger 2).
//!
//! Writer `t` owns prefix `t<t>/`. Every operation is an atomic batch touching a *pair* of keys
//! `t<t>/a/<n>` and `t<t>/b/<n>` the same way (put both with the same value, delete both, or
//! range-delete the same span of both), plus now and then a flush or a `compact_range` of its
//! prefix. Values name their key and a per-writer version counter that only grows. Each writer
//! keeps a `BTreeMap` model of its prefix.
//!
//! Readers, while writers run:
//! - `get`: a present value names the key it was read from; per reader, a key's version never
//!   goes backwards (a delete and re-put writes a higher version);
//! - snapshot scans of a writer's prefix, forward and reverse: the `a` and `b` halves are equal
//!   (batches are atomic and snapshots consistent), and reverse equals forward;
//! - snapshot `get`s agree with the snapshot scan.
//!
//! At the end every prefix equals its writer's model, before and after a reopen.
//! `SILT_SOAK=1` runs 10x more operations; `SILT_SEED=<n>` fixes the seed.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siltdb::{Db, ReadOptions, WriteBatch, WriteOptions};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

const WRITERS: usize = 4;
const KEYS: u32 = 1500;

fn akey(t: usize, n: u32) -> Vec<u8> {
    format!("t{t}/a/{n:05}").into_bytes()
}

fn bkey(t: usize, n: u32) -> Vec<u8> {
    format!("t{t}/b/{n:05}").into_bytes()
}

fn val(t: usize, n: u32, ver: u64, pad: usize) -> Vec<u8> {
    let mut v = format!("{t}:{n}:{ver}:").into_bytes();
    v.resize(v.len() + pad, b'#');
    v
}

/// (writer, key number, version) of a value.
fn parse(v: &[u8]) -> Option<(usize, u32, u64)> {
    let s = std::str::from_utf8(v).ok()?;
    let mut it = s.split(':');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

fn prefix_bounds(t: usize) -> ReadOptions {
    ReadOptions {
        lower_bound: Some(format!("t{t}/").into_bytes()),
        upper_bound: Some(format!("t{t}0").into_bytes()), // '0' follows '/'
        ..Default::default()
    }
}

fn writer(db: &Db, t: usize, seed: u64, ops: usize) -> Model {
    let mut rng = StdRng::seed_from_u64(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut model = Model::new();
    let mut ver = 0u64;
    for _ in 0..ops {
        ver += 1;
        let n = rng.gen_range(0..KEYS);
        let mut batch = WriteBatch::new();
        let r = rng.gen_range(0..100);
        if r < 75 {
            let v = val(t, n, ver, rng.gen_range(0..120));
            batch.put(akey(t, n), &v);
            batch.put(bkey(t, n), &v);
            model.insert(akey(t, n), v.clone());
            model.insert(bkey(t, n), v);
        } else if r < 93 {
            batch.delete(akey(t, n));
            batch.delete(bkey(t, n));
            model.remove(&akey(t, n));
            model.remove(&bkey(t, n));
        } else {
            let end = (n + rng.gen_range(1..30)).min(KEYS);
            batch.delete_range(akey(t, n), akey(t, end));
            batch.delete_range(bkey(t, n), bkey(t, end));
            for m in n..end {
                model.remove(&akey(t, m));
                model.remove(&bkey(t, m));
            }
        }
        let sync = rng.gen_ratio(1, 50);
        db.write(
            batch,
            &WriteOptions {
                sync,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("writer {t}: write failed: {e}"));
        if rng.gen_ratio(1, 700) {
            db.flush()
                .unwrap_or_else(|e| panic!("writer {t}: flush failed: {e}"));
        }
        if rng.gen_ratio(1, 1500) {
            db.compact_range(Some(format!("t{t}/")), Some(format!("t{t}0")))
                .unwrap_or_else(|e| panic!("writer {t}: compact_range failed: {e}"));
        }
    }
    model
}

fn reader(db: &Db, id: usize, seed: u64, done: &AtomicBool, checks: &AtomicUsize) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(1000 + id as u64));
    let mut last_ver: HashMap<Vec<u8>, u64> = HashMap::new();
    while !done.load(Ordering::Acquire) {
        let t = rng.gen_range(0..WRITERS);
        if rng.gen_ratio(3, 4) {
            // Point reads of the latest state.
            for _ in 0..50 {
                let n = rng.gen_range(0..KEYS);
                let k = if rng.gen() { akey(t, n) } else { bkey(t, n) };
                if let Some(v) = db
                    .get(&k)
                    .unwrap_or_else(|e| panic!("reader {id}: get failed: {e}"))
                {
                    let (vt, vn, ver) = parse(&v)
                        .unwrap_or_else(|| panic!("reader {id}: garbage value {v:?} under {k:?}"));
                    assert!(
                        vt == t && vn == n,
                        "reader {id}: {} holds a value of writer {vt} key {vn}",
                        String::from_utf8_lossy(&k)
                    );
                    let prev = last_ver.insert(k.clone(), ver).unwrap_or(0);
                    assert!(
                        ver >= prev,
                        "reader {id}: {} went back from version {prev} to {ver}",
                        String::from_utf8_lossy(&k)
                    );
                }
            }
        } else {
            // A snapshot scan of one prefix, both directions.
            let snap = db.snapshot();
            let opts = ReadOptions {
                snapshot: Some(snap.clone()),
                ..prefix_bounds(t)
            };
            let fwd: Vec<(Vec<u8>, Vec<u8>)> = db
                .iter(&opts)
                .map(|r| r.unwrap_or_else(|e| panic!("reader {id}: scan failed: {e}")))
                .collect();
            let mut rev: Vec<(Vec<u8>, Vec<u8>)> = db
                .iter(&opts)
                .rev()
                .map(|r| r.unwrap_or_else(|e| panic!("reader {id}: reverse scan failed: {e}")))
                .collect();
            rev.reverse();
            assert!(
                fwd == rev,
                "reader {id}: reverse scan of writer {t} ({} keys) differs from forward ({})",
                rev.len(),
                fwd.len()
            );
            assert!(
                fwd.windows(2).all(|w| w[0].0 < w[1].0),
                "reader {id}: scan out of order"
            );
            let mut a = BTreeMap::new();
            let mut b = BTreeMap::new();
            for (k, v) in &fwd {
                let s = String::from_utf8_lossy(k);
                let (half, n) = s[s.find('/').unwrap() + 1..].split_at(1);
                let n: u32 = n[1..].parse().unwrap();
                if half == "a" { &mut a } else { &mut b }.insert(n, v.clone());
            }
            if a != b {
                let diff: Vec<u32> = a
                    .keys()
                    .chain(b.keys())
                    .filter(|n| a.get(n) != b.get(n))
                    .copied()
                    .take(5)
                    .collect();
                panic!(
                    "reader {id}: snapshot {} of writer {t} sees a torn batch: a/b halves differ \
                     at {diff:?} ({} a keys, {} b keys)",
                    snap.seqno(),
                    a.len(),
                    b.len()
                );
            }
            // Snapshot gets agree with the snapshot scan.
            for _ in 0..20 {
                let n = rng.gen_range(0..KEYS);
                let got = db
                    .get_opt(akey(t, n), &opts)
                    .unwrap_or_else(|e| panic!("reader {id}: snapshot get failed: {e}"));
                assert_eq!(
                    got.as_ref(),
                    a.get(&n),
                    "reader {id}: snapshot get of writer {t} key {n} disagrees with the scan"
                );
            }
        }
        checks.fetch_add(1, Ordering::Relaxed);
    }
}

fn check_final(db: &Db, models: &[Model], when: &str) {
    for (t, model) in models.iter().enumerate() {
        let got: Model = db
            .iter(&prefix_bounds(t))
            .map(|r| r.unwrap_or_else(|e| panic!("{when}: scan failed: {e}")))
            .collect();
        if &got != model {
            let missing: Vec<_> = model
                .keys()
                .filter(|k| !got.contains_key(*k))
                .take(5)
                .collect();
            let wrong: Vec<_> = got
                .iter()
                .filter(|(k, v)| model.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .take(5)
                .collect();
            panic!(
                "{when}: writer {t}: {} keys in the db, {} in the model; missing {missing:?}, \
                 extra or wrong {wrong:?}",
                got.len(),
                model.len()
            );
        }
        for (k, v) in model.iter().step_by(11) {
            assert_eq!(db.get(k).unwrap().as_ref(), Some(v), "{when}: get {k:?}");
        }
    }
}

#[test]
fn four_writers_two_readers_with_background_compaction() {
    let seed: u64 = std::env::var("SILT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::random::<u32>() as u64);
    let soak = common::soak();
    let ops = if soak { 60_000 } else { 10_000 };
    println!("seed {seed} (replay with SILT_SEED={seed}), {ops} ops per writer");
    let tmp = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(tmp.path(), common::concurrency_options()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let readers: Vec<_> = (0..2)
        .map(|id| {
            let (db, done, checks) = (Arc::clone(&db), Arc::clone(&done), Arc::clone(&checks));
            std::thread::spawn(move || reader(&db, id, seed, &done, &checks))
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || writer(&db, t, seed, ops))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(if soak { 1800 } else { 180 });
    while !writers.iter().all(|w| w.is_finished()) {
        assert!(Instant::now() < deadline, "seed {seed}: writers hung");
        std::thread::sleep(Duration::from_millis(20));
    }
    let models: Vec<Model> = writers
        .into_iter()
        .map(|w| {
            w.join()
                .unwrap_or_else(|_| panic!("seed {seed}: a writer panicked"))
        })
        .collect();
    done.store(true, Ordering::Release);
    for r in readers {
        r.join()
            .unwrap_or_else(|_| panic!("seed {seed}: a reader panicked (see above)"));
    }
    let stats = db.stats();
    println!(
        "{:.1}s, {} reader checks, {} flushes, {} compactions ({} trivial moves), files per \
         level {:?}",
        started.elapsed().as_secs_f64(),
        checks.load(Ordering::Relaxed),
        stats.flushes,
        stats.compactions,
        stats.trivial_moves,
        stats.files_per_level
    );
    assert!(
        stats.compactions > 0,
        "no compaction ran: the test did not exercise it"
    );
    check_final(&db, &models, &format!("seed {seed}, before reopen"));
    let db = Arc::into_inner(db).unwrap();
    db.close().unwrap();
    let db = Db::open(tmp.path(), common::concurrency_options()).unwrap();
    check_final(&db, &models, &format!("seed {seed}, after reopen"));
    db.close().unwrap();
}
