//! Model test (Pebble's metamorphic style): random operations against siltdb and a `BTreeMap`,
//! under very different option sets, compared after every read. A failure prints the seed and
//! the option set; rerun one with `SILT_MODEL_SEED=<seed>`.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siltdb::{Compression, Db, Options, ReadOptions, WriteBatch, WriteOptions};
use std::collections::BTreeMap;
use std::ops::Bound;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn option_sets() -> Vec<(&'static str, Options)> {
    vec![
        (
            "tiny",
            Options {
                memtable_size_bytes: 2 << 10,
                block_size_bytes: 1,
                block_cache_size_bytes: 0,
                bloom_bits_per_key: 0,
                target_file_size_bytes: 4 << 10,
                max_bytes_for_level_base: 16 << 10,
                l0_compaction_trigger: 2,
                max_open_files: 16,
                ..Options::default()
            },
        ),
        (
            "zstd",
            Options {
                memtable_size_bytes: 32 << 10,
                block_size_bytes: 512,
                compression: Compression::Zstd { level: 3 },
                target_file_size_bytes: 64 << 10,
                max_bytes_for_level_base: 256 << 10,
                ..Options::default()
            },
        ),
        ("defaults", Options::default()),
    ]
}

fn key(rng: &mut StdRng) -> Vec<u8> {
    // A small key space so operations collide; a few long keys.
    let n: u32 = rng.gen_range(0..400);
    if rng.gen_ratio(1, 20) {
        format!("key{n:05}-{}", "x".repeat(rng.gen_range(0..200))).into_bytes()
    } else {
        format!("key{n:05}").into_bytes()
    }
}

fn value(rng: &mut StdRng) -> Vec<u8> {
    let len = if rng.gen_ratio(1, 30) {
        rng.gen_range(1000..5000)
    } else {
        rng.gen_range(0..40)
    };
    (0..len).map(|_| rng.gen()).collect()
}

fn range_of(model: &Model, lo: &Option<Vec<u8>>, hi: &Option<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let lo_b = lo
        .as_ref()
        .map_or(Bound::Unbounded, |l| Bound::Included(l.clone()));
    let hi_b = hi
        .as_ref()
        .map_or(Bound::Unbounded, |h| Bound::Excluded(h.clone()));
    if let (Some(l), Some(h)) = (lo, hi) {
        if l >= h {
            return Vec::new();
        }
    }
    model
        .range((lo_b, hi_b))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn delete_range(model: &mut Model, s: &[u8], e: &[u8]) {
    let doomed: Vec<Vec<u8>> = model
        .range(s.to_vec()..)
        .take_while(|(k, _)| k.as_slice() < e)
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        model.remove(&k);
    }
}

fn trace(step: usize, k: &[u8], what: &str) {
    if let Ok(t) = std::env::var("SILT_MODEL_TRACE") {
        if k == t.as_bytes() {
            eprintln!("step {step}: {} {what}", show(k));
        }
    }
}

fn show(k: &[u8]) -> String {
    String::from_utf8_lossy(&k[..k.len().min(24)]).into_owned()
}

/// Compares two scans and panics with the first difference (not the whole lists).
fn check(got: &[(Vec<u8>, Vec<u8>)], want: &[(Vec<u8>, Vec<u8>)], ctx: String) {
    if got == want {
        return;
    }
    let i = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let g = got.get(i).map(|(k, v)| (show(k), v.len()));
    let w = want.get(i).map(|(k, v)| (show(k), v.len()));
    panic!(
        "{ctx}: lengths got {} want {}; first difference at {i}: got {g:?} want {w:?}",
        got.len(),
        want.len()
    );
}

fn run(seed: u64, name: &str, opts: &Options, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut db = Some(Db::open(dir.path(), opts.clone()).unwrap());
    let mut model = Model::new();
    let mut snaps: Vec<(siltdb::Snapshot, Model)> = Vec::new();
    let ctx = |step: usize, what: &str| format!("seed {seed} options {name} step {step}: {what}");
    for step in 0..steps {
        let d = db.as_ref().unwrap();
        match rng.gen_range(0..100) {
            0..=34 => {
                let (k, v) = (key(&mut rng), value(&mut rng));
                trace(
                    step,
                    &k,
                    &format!("put len {} seq {}", v.len(), d.latest_seqno() + 1),
                );
                d.put(&k, &v).unwrap();
                model.insert(k, v);
            }
            35..=44 => {
                let k = key(&mut rng);
                trace(step, &k, &format!("delete seq {}", d.latest_seqno() + 1));
                d.delete(&k).unwrap();
                model.remove(&k);
            }
            45..=52 => {
                let mut b = WriteBatch::new();
                for _ in 0..rng.gen_range(1..20) {
                    let k = key(&mut rng);
                    trace(
                        step,
                        &k,
                        &format!("batch op near seq {}", d.latest_seqno() + 1),
                    );
                    if rng.gen_bool(0.7) {
                        let v = value(&mut rng);
                        b.put(&k, &v);
                        model.insert(k, v);
                    } else {
                        b.delete(&k);
                        model.remove(&k);
                    }
                }
                d.write(
                    b,
                    &WriteOptions {
                        sync: rng.gen_bool(0.1),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
            53..=55 => {
                let (mut a, mut b) = (key(&mut rng), key(&mut rng));
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                eprintln!(
                    "step {step}: delete_range {}..{} seq {}",
                    show(&a),
                    show(&b),
                    d.latest_seqno() + 1
                );
                d.delete_range(&a, &b).unwrap();
                delete_range(&mut model, &a, &b);
            }
            56..=72 => {
                let k = key(&mut rng);
                assert_eq!(
                    d.get(&k).unwrap(),
                    model.get(&k).cloned(),
                    "{}",
                    ctx(step, "get")
                );
            }
            73..=80 => {
                let lo = rng.gen_bool(0.5).then(|| key(&mut rng));
                let hi = rng.gen_bool(0.5).then(|| key(&mut rng));
                let ro = ReadOptions {
                    lower_bound: lo.clone(),
                    upper_bound: hi.clone(),
                    ..Default::default()
                };
                let want = range_of(&model, &lo, &hi);
                let limit = rng.gen_range(1..60);
                if rng.gen_bool(0.5) {
                    let got: Vec<_> = d.iter(&ro).take(limit).map(|r| r.unwrap()).collect();
                    let w: Vec<_> = want.iter().take(limit).cloned().collect();
                    check(&got, &w, ctx(step, "forward scan"));
                } else {
                    let got: Vec<_> = d.iter(&ro).rev().take(limit).map(|r| r.unwrap()).collect();
                    let w: Vec<_> = want.iter().rev().take(limit).cloned().collect();
                    check(&got, &w, ctx(step, "reverse scan"));
                }
                // Both ends of one iterator meet without crossing.
                let mut it = d.iter(&ro);
                let mut front = Vec::new();
                let mut back = Vec::new();
                loop {
                    let x = if rng.gen_bool(0.5) {
                        it.next().map(|r| (true, r))
                    } else {
                        it.next_back().map(|r| (false, r))
                    };
                    match x {
                        Some((true, r)) => front.push(r.unwrap()),
                        Some((false, r)) => back.push(r.unwrap()),
                        None => break,
                    }
                }
                back.reverse();
                front.extend(back);
                check(&front, &want, ctx(step, "two-ended scan"));
            }
            81..=84 => {
                if snaps.len() > 4 {
                    snaps.remove(0);
                }
                snaps.push((d.snapshot(), model.clone()));
            }
            85..=88 => {
                if let Some((s, m)) = snaps.get(rng.gen_range(0..snaps.len().max(1))) {
                    let k = key(&mut rng);
                    let ro = ReadOptions {
                        snapshot: Some(s.clone()),
                        ..Default::default()
                    };
                    assert_eq!(
                        d.get_opt(&k, &ro).unwrap(),
                        m.get(&k).cloned(),
                        "{}",
                        ctx(step, "snapshot get")
                    );
                    let got: Vec<_> = d.iter(&ro).map(|r| r.unwrap()).collect();
                    let want: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    if got != want {
                        let extra: Vec<_> = got
                            .iter()
                            .filter(|(k, _)| !m.contains_key(k))
                            .take(3)
                            .collect();
                        for (k, _) in extra {
                            eprintln!("{}", d.debug_describe_key(k));
                            eprintln!("extra {}: snapshot get {:?} latest get {:?} latest model {:?} snap seq {}", show(k), d.get_opt(k, &ro).unwrap().map(|v| v.len()), d.get(k).unwrap().map(|v| v.len()), model.get(k).map(|v| v.len()), s.seqno());
                        }
                        eprintln!("{}", d.property("siltdb.stats").unwrap());
                    }
                    check(&got, &want, ctx(step, "snapshot scan"));
                }
            }
            89..=92 => d.flush().unwrap(),
            93..=94 => {
                d.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
            }
            _ => {
                snaps.clear();
                db.take().unwrap().close().unwrap();
                db = Some(Db::open(dir.path(), opts.clone()).unwrap());
            }
        }
    }
    let d = db.as_ref().unwrap();
    let got: Vec<_> = d
        .iter(&ReadOptions::default())
        .map(|r| r.unwrap())
        .collect();
    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    check(
        &got,
        &want,
        format!("seed {seed} options {name}: final scan"),
    );
}

#[test]
fn model_random_ops_under_three_option_sets() {
    let seeds: Vec<u64> = match std::env::var("SILT_MODEL_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) if common::soak() => (0..50).collect(),
        Err(_) => vec![1, 2, 3],
    };
    let steps = if common::soak() { 20_000 } else { 2_500 };
    for (name, opts) in option_sets() {
        for &seed in &seeds {
            eprintln!("model: seed {seed} options {name}");
            run(seed, name, &opts, steps);
        }
    }
}
