//! Power-loss test (LevelDB fault_injection_test + db_stress "no hole" oracle).
//!
//! A single writer appends a sequential history to a database on a [`FaultFs`]: key `i` gets
//! `value(i)` for i = 0, 1, 2, ..., with earlier keys deleted now and then (point deletes and
//! small range deletes), `sync = true` writes interleaved with `sync = false` ones and a few
//! manual flushes. At a random point the filesystem is armed with `die_after(n)` for a small `n`,
//! so the crash lands wherever the engine happens to be — mid-WAL append, mid-flush, mid-manifest
//! write, mid-compaction. The writer keeps going until a write fails, the Db is dropped and
//! `power_loss` (or `power_loss_torn`) drops every byte and directory entry that was not synced.
//!
//! After reopening (same `FaultFs` instance, faults cleared by the power loss) the test checks:
//! - the recovered contents equal the model state after exactly the first `M` operations, for some
//!   `M` (a prefix of the history: no holes, no wrong values, no resurrected deletes);
//! - `M` covers every operation acknowledged by a `sync = true` write or a successful `flush`.
//!
//! Each seed runs several crash/recover cycles on the same database, continuing the history from
//! the recovered prefix. A failure prints the seed; replay one with `SILT_SEED=<seed>`.
//! `SILT_SOAK=1` runs many more seeds.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siltdb::fs::FaultFs;
use siltdb::{Db, ReadOptions, WriteBatch, WriteOptions};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// `[start, end)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:08}").into_bytes()
}

fn key_number(k: &[u8]) -> u64 {
    std::str::from_utf8(&k[1..]).unwrap().parse().unwrap()
}

/// Deterministic value of key `i` written in crash cycle `cycle` (so a key re-written after a
/// crash is distinguishable from a resurrected old write).
fn value(i: u64, cycle: u32) -> Vec<u8> {
    let len = 10 + (i.wrapping_mul(2654435761) % 300) as usize;
    let mut v = format!("v{i}-c{cycle}-").into_bytes();
    while v.len() < len {
        v.push(b'a' + (v.len() as u8 % 26));
    }
    v
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn apply(model: &mut Model, op: &Op) {
    match op {
        Op::Put(k, v) => {
            model.insert(k.clone(), v.clone());
        }
        Op::Delete(k) => {
            model.remove(k);
        }
        Op::DeleteRange(s, e) => {
            let doomed: Vec<Vec<u8>> = model
                .range(s.clone()..e.clone())
                .map(|(k, _)| k.clone())
                .collect();
            for k in doomed {
                model.remove(&k);
            }
        }
    }
}

/// Keys an operation touches in a model (for incremental diffing).
fn touched(model: &Model, op: &Op) -> Vec<Vec<u8>> {
    match op {
        Op::Put(k, _) | Op::Delete(k) => vec![k.clone()],
        Op::DeleteRange(s, e) => model
            .range(s.clone()..e.clone())
            .map(|(k, _)| k.clone())
            .collect(),
    }
}

/// Finds every `M` in `lo..=hi` such that applying `history[..M]` to `base` gives `actual`.
/// Runs in O(history log n) by tracking the number of keys on which model and actual differ.
fn matching_prefixes(
    base: &Model,
    history: &[Op],
    actual: &Model,
    lo: usize,
    hi: usize,
) -> Vec<usize> {
    let mut model = base.clone();
    let mut diff = 0usize;
    // Keys in either map that differ.
    for (k, v) in actual {
        if model.get(k) != Some(v) {
            diff += 1;
        }
    }
    for k in model.keys() {
        if !actual.contains_key(k) {
            diff += 1;
        }
    }
    let differs = |model: &Model, k: &Vec<u8>| model.get(k) != actual.get(k);
    let mut out = Vec::new();
    if lo == 0 && diff == 0 {
        out.push(0);
    }
    for (i, op) in history.iter().enumerate().take(hi) {
        let keys = touched(&model, op);
        for k in &keys {
            if differs(&model, k) {
                diff -= 1;
            }
        }
        apply(&mut model, op);
        for k in &keys {
            if differs(&model, k) {
                diff += 1;
            }
        }
        let m = i + 1;
        if m >= lo && diff == 0 {
            out.push(m);
        }
    }
    out
}

fn read_all(db: &Db) -> Result<Model, String> {
    let mut out = Model::new();
    for item in db.iter(&ReadOptions::default()) {
        let (k, v) = item.map_err(|e| format!("iterator error after recovery: {e}"))?;
        if let Some((last, _)) = out.last_key_value() {
            if *last >= k {
                return Err(format!(
                    "iterator out of order at {:?}",
                    String::from_utf8_lossy(&k)
                ));
            }
        }
        out.insert(k, v);
    }
    // Reverse iteration must agree.
    let mut rev = Vec::new();
    for item in db.iter(&ReadOptions::default()).rev() {
        let (k, v) = item.map_err(|e| format!("reverse iterator error after recovery: {e}"))?;
        rev.push((k, v));
    }
    rev.reverse();
    let fwd: Vec<_> = out.clone().into_iter().collect();
    if rev != fwd {
        return Err(format!(
            "reverse scan ({} keys) differs from forward scan ({} keys)",
            rev.len(),
            fwd.len()
        ));
    }
    Ok(out)
}

struct Cycle {
    /// Ops that may have been applied (acknowledged ones plus the one that failed).
    history: Vec<Op>,
    /// Every op before this index was acknowledged as durable (sync write or flush).
    durable: usize,
}

/// Writes until the armed filesystem makes a write fail (or a bound is hit).
fn write_until_crash(
    db: &Db,
    fs: &FaultFs,
    rng: &mut StdRng,
    next_key: &mut u64,
    model_keys: &mut Vec<u64>,
    cycle: u32,
) -> Cycle {
    let mut history = Vec::new();
    let mut durable = 0usize;
    let arm_at = rng.gen_range(0..600usize);
    let sync_ratio = rng.gen_range(1..10u32);
    let mut armed = false;
    let mut after_arm = 0usize;
    let mut i = 0usize;
    loop {
        if i == arm_at {
            fs.die_after(rng.gen_range(0..40));
            armed = true;
        }
        if armed {
            after_arm += 1;
            if after_arm > 2_000 {
                break; // the dying filesystem was never touched by a write; crash anyway
            }
        }
        i += 1;
        // Choose an op.
        let r = rng.gen_range(0..100);
        let mut batch = WriteBatch::new();
        let ops: Vec<Op> = if r < 8 && !model_keys.is_empty() {
            let j = model_keys.swap_remove(rng.gen_range(0..model_keys.len()));
            vec![Op::Delete(key(j))]
        } else if r < 10 && *next_key > 5 {
            let s = rng.gen_range(0..*next_key - 3);
            let e = s + rng.gen_range(1..4);
            model_keys.retain(|k| !(s..e).contains(k));
            vec![Op::DeleteRange(key(s), key(e))]
        } else if r < 15 {
            // A multi-op batch: several sequential puts.
            let n = rng.gen_range(2..6);
            (0..n)
                .map(|_| {
                    let k = *next_key;
                    *next_key += 1;
                    model_keys.push(k);
                    Op::Put(key(k), value(k, cycle))
                })
                .collect()
        } else {
            let k = *next_key;
            *next_key += 1;
            model_keys.push(k);
            vec![Op::Put(key(k), value(k, cycle))]
        };
        for op in &ops {
            match op {
                Op::Put(k, v) => batch.put(k, v),
                Op::Delete(k) => batch.delete(k),
                Op::DeleteRange(s, e) => batch.delete_range(s, e),
            }
        }
        let sync = rng.gen_ratio(1, sync_ratio + 1);
        history.extend(ops);
        let r = db.write(
            batch,
            &WriteOptions {
                sync,
                ..Default::default()
            },
        );
        match r {
            Ok(()) => {
                if sync {
                    durable = history.len();
                }
            }
            Err(_) => break, // the failed op stays in `history`: it may or may not survive
        }
        if rng.gen_ratio(1, 150) {
            match db.flush() {
                Ok(()) => durable = history.len(),
                Err(_) => break,
            }
        }
    }
    Cycle { history, durable }
}

fn run_seed(seed: u64) -> Result<String, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("db");
    let fs = FaultFs::new();
    let opts = common::power_loss_options(&fs, &mut rng);
    let cycles = rng.gen_range(2..5u32);
    let mut recovered = Model::new();
    let mut next_key = 0u64;
    let mut live_keys: Vec<u64> = Vec::new();
    let mut summary = Vec::new();
    for cycle in 0..cycles {
        let db = Db::open(&path, opts.clone())
            .map_err(|e| format!("cycle {cycle}: open before writing failed: {e}"))?;
        let c = write_until_crash(&db, &fs, &mut rng, &mut next_key, &mut live_keys, cycle);
        if rng.gen_ratio(3, 4) {
            fs.set_dead(); // crash now: close cannot persist anything more
        }
        drop(db);
        let torn = rng.gen_ratio(1, 2);
        if torn {
            fs.power_loss_torn(rng.gen());
        } else {
            fs.power_loss();
        }
        let db = Db::open(&path, opts.clone()).map_err(|e| {
            format!("cycle {cycle}: reopen after power loss (torn={torn}) failed: {e}")
        })?;
        let actual = read_all(&db).map_err(|e| format!("cycle {cycle}: {e}"))?;
        let found = matching_prefixes(&recovered, &c.history, &actual, 0, c.history.len());
        let Some(&m) = found.last() else {
            let mut expect_all = recovered.clone();
            for op in &c.history {
                apply(&mut expect_all, op);
            }
            let missing: Vec<_> = expect_all
                .keys()
                .filter(|k| !actual.contains_key(*k))
                .take(5)
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            let extra: Vec<_> = actual
                .iter()
                .filter(|(k, v)| expect_all.get(*k) != Some(*v))
                .take(5)
                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                .collect();
            return Err(format!(
                "cycle {cycle} (torn={torn}): recovered state ({} keys) is no prefix of the \
                 history ({} ops, {} durable); vs full history: missing {missing:?}, \
                 unexpected/wrong {extra:?}",
                actual.len(),
                c.history.len(),
                c.durable
            ));
        };
        if m < c.durable {
            return Err(format!(
                "cycle {cycle} (torn={torn}): lost acknowledged durable writes: recovered a \
                 prefix of {m} ops but {} were acknowledged durable (of {} ops)",
                c.durable,
                c.history.len()
            ));
        }
        // Point reads agree with the scan (exercises the get path, blooms, range tombstones).
        for (k, v) in actual.iter().step_by(7) {
            let got = db
                .get(k)
                .map_err(|e| format!("cycle {cycle}: get failed: {e}"))?;
            if got.as_deref() != Some(v.as_slice()) {
                return Err(format!(
                    "cycle {cycle}: get({}) = {:?} disagrees with the scan",
                    String::from_utf8_lossy(k),
                    got.map(|g| String::from_utf8_lossy(&g).into_owned())
                ));
            }
        }
        summary.push(format!("{m}/{}(durable {})", c.history.len(), c.durable));
        // Continue from the recovered prefix.
        let mut model = recovered.clone();
        for op in &c.history[..m] {
            apply(&mut model, op);
        }
        recovered = model;
        live_keys.clear();
        for k in recovered.keys() {
            live_keys.push(key_number(k));
        }
        // Keys past the prefix were lost: continue numbering after the last key the prefix put.
        next_key = c.history[..m]
            .iter()
            .rev()
            .find_map(|op| match op {
                Op::Put(k, _) => Some(
                    std::str::from_utf8(&k[1..])
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                        + 1,
                ),
                _ => None,
            })
            .unwrap_or(next_key_before(&c.history, next_key));
        db.close()
            .map_err(|e| format!("cycle {cycle}: close after recovery failed: {e}"))?;
    }
    Ok(summary.join(" "))
}

/// The first key number the cycle wrote (used when the recovered prefix holds no put).
fn next_key_before(history: &[Op], fallback: u64) -> u64 {
    history
        .iter()
        .find_map(|op| match op {
            Op::Put(k, _) => Some(
                std::str::from_utf8(&k[1..])
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            ),
            _ => None,
        })
        .unwrap_or(fallback)
}

fn check_seed(seed: u64) -> Result<String, String> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| run_seed(seed))) {
        Ok(r) => r,
        Err(p) => {
            let msg = common::panic_message(p.as_ref());
            Err(format!("panicked: {msg}"))
        }
    }
}

fn seeds(default: u64, soak: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("SILT_SEED") {
        return vec![s.parse().expect("SILT_SEED must be a number")];
    }
    let n = if common::soak() { soak } else { default };
    let base: u64 = std::env::var("SILT_SEED_BASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5117_0000);
    (0..n).map(|i| base + i).collect()
}

#[test]
fn power_loss_keeps_a_durable_prefix() {
    let mut failures = Vec::new();
    let list = seeds(20, 1000);
    let started = std::time::Instant::now();
    for seed in &list {
        match check_seed(*seed) {
            Ok(s) => println!("seed {seed}: ok {s}"),
            Err(e) => {
                eprintln!("seed {seed}: FAILED: {e}");
                failures.push(format!("seed {seed}: {e}"));
            }
        }
    }
    println!(
        "{} seeds in {:.1}s, {} failed",
        list.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "power-loss failures (replay with SILT_SEED=<seed>):\n{}",
        failures.join("\n")
    );
}
