//! Iterators over keys with many versions: past a few versions of one key an iterator seeks
//! instead of stepping (`MAX_SEQUENTIAL_SKIPS`), in both directions, under snapshots, with
//! deletions, bounds, and versions spread over the memtable and flushed tables. Every read is
//! checked against a model.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use siltdb::{Db, Options, ReadOptions, Snapshot};
use std::collections::BTreeMap;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// Lower and upper bound of one view.
type Bounds<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn collect(db: &Db, ro: &ReadOptions, reverse: bool) -> Vec<(Vec<u8>, Vec<u8>)> {
    let it = db.iter(ro);
    let out: Result<Vec<_>, _> = if reverse {
        it.rev().collect()
    } else {
        it.collect()
    };
    let mut out = out.expect("iterate");
    if reverse {
        out.reverse();
    }
    out
}

fn expect(model: &Model, lo: Option<&[u8]>, hi: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
    model
        .iter()
        .filter(|(k, _)| {
            lo.is_none_or(|l| k.as_slice() >= l) && hi.is_none_or(|h| k.as_slice() < h)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Checks every direction and a few bounds of one view against its model.
fn check(db: &Db, snap: Option<&Snapshot>, model: &Model, what: &str) {
    let bounds: [Bounds; 4] = [
        (None, None),
        (Some(b"k2"), None),
        (None, Some(b"k2")),
        (Some(b"k1"), Some(b"k3")),
    ];
    for (lo, hi) in bounds {
        let ro = ReadOptions {
            snapshot: snap.cloned(),
            lower_bound: lo.map(<[u8]>::to_vec),
            upper_bound: hi.map(<[u8]>::to_vec),
            ..Default::default()
        };
        let want = expect(model, lo, hi);
        assert_eq!(
            collect(db, &ro, false),
            want,
            "{what}: forward, bounds {lo:?}..{hi:?}"
        );
        assert_eq!(
            collect(db, &ro, true),
            want,
            "{what}: reverse, bounds {lo:?}..{hi:?}"
        );
        // Both ends at once: alternate next and next_back until they meet.
        let mut it = db.iter(&ro);
        let (mut front, mut back) = (Vec::new(), Vec::new());
        while let Some(item) = it.next() {
            front.push(item.expect("next"));
            match it.next_back() {
                Some(item) => back.push(item.expect("next_back")),
                None => break,
            }
        }
        back.reverse();
        front.extend(back);
        assert_eq!(front, want, "{what}: both ends, bounds {lo:?}..{hi:?}");
    }
}

#[test]
fn hot_keys_with_thousands_of_versions_read_like_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut rng = StdRng::seed_from_u64(22);
    let mut model = Model::new();
    let mut views: Vec<(Snapshot, Model)> = Vec::new();
    let ops = if common::soak() { 50_000 } else { 6_000 };
    for i in 0..ops {
        // Four keys in five go to k2: thousands of versions of one key.
        let k = if rng.gen_range(0..5) < 4 {
            "k2".to_string()
        } else {
            format!("k{}", rng.gen_range(0..5))
        };
        if rng.gen_range(0..10) == 0 {
            db.delete(k.as_bytes()).unwrap();
            model.remove(k.as_bytes());
        } else {
            let v = format!("v{i}");
            db.put(k.as_bytes(), v.as_bytes()).unwrap();
            model.insert(k.into_bytes(), v.into_bytes());
        }
        if i % 997 == 500 {
            views.push((db.snapshot(), model.clone()));
        }
        if i == ops / 2 {
            // Half the versions (those the snapshots keep) move to a table.
            db.flush().unwrap();
        }
    }
    check(&db, None, &model, "latest");
    for (n, (snap, m)) in views.iter().enumerate() {
        check(&db, Some(snap), m, &format!("snapshot {n}"));
    }
}

#[test]
fn a_key_newer_than_the_snapshot_thousands_of_times_is_read_at_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put(b"a", b"a0").unwrap();
    db.put(b"b", b"old").unwrap();
    db.put(b"c", b"c0").unwrap();
    let snap = db.snapshot();
    for i in 0..3000 {
        db.put(b"b", format!("new{i}").as_bytes()).unwrap();
    }
    db.delete(b"c").unwrap();
    let at_snap: Model = [("a", "a0"), ("b", "old"), ("c", "c0")]
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let latest: Model = [("a", "a0"), ("b", "new2999")]
        .into_iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    check(&db, Some(&snap), &at_snap, "snapshot before the overwrites");
    check(&db, None, &latest, "latest");
    db.flush().unwrap();
    check(&db, Some(&snap), &at_snap, "snapshot, after a flush");
    check(&db, None, &latest, "latest, after a flush");
}
