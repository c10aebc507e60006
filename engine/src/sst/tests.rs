//! Table-level tests: writer + reader against a sorted `Vec` model.

use super::*;
use crate::iter::InternalIterator;
use crate::key::{self, RangeTombstone, ValueKind, MAX_SEQNO};
use crate::Compression;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
use std::path::PathBuf;
use std::sync::Arc;

type Model = Vec<(Vec<u8>, Vec<u8>)>;

fn opts(block: usize, compression: Compression, bloom: u32) -> TableBuildOptions {
    TableBuildOptions {
        block_size_bytes: block,
        bloom_bits_per_key: bloom,
        compression,
        creator: "test".into(),
    }
}

fn build(
    model: &Model,
    tombstones: &[RangeTombstone],
    o: TableBuildOptions,
) -> (Vec<u8>, TableInfo) {
    let buf = SharedBufferFile::default();
    let mut b = TableBuilder::new(Box::new(buf.clone()), PathBuf::from("test.sst"), o);
    for (k, v) in model {
        b.add(k, v).unwrap();
    }
    for t in tombstones {
        b.add_range_tombstone(t.clone());
    }
    let info = b.finish().unwrap();
    let bytes = buf.0.lock().clone();
    assert_eq!(info.file_size, bytes.len() as u64);
    (bytes, info)
}

fn open(
    bytes: Vec<u8>,
    cache: Option<Arc<BlockCache>>,
    g: Option<u64>,
) -> crate::Result<Arc<Table>> {
    Table::open(
        Arc::new(InMemoryFile(bytes)),
        PathBuf::from("test.sst"),
        cache,
        g,
    )
}

fn random_model(seed: u64, n: usize, value_max: usize) -> Model {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut m: Model = (0..n)
        .map(|_| {
            let len = rng.gen_range(1..10);
            let u: Vec<u8> = (0..len).map(|_| rng.gen_range(b'a'..b'h')).collect();
            let kind = if rng.gen_bool(0.2) {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let k = key::internal_key(&u, rng.gen_range(1..1000), kind);
            // Repetitive values so zstd has something to do.
            let v = vec![rng.gen_range(b'0'..b'3'); rng.gen_range(0..value_max)];
            (k, v)
        })
        .collect();
    m.sort_by(|a, b| key::cmp_internal(&a.0, &b.0));
    m.dedup_by(|a, b| a.0 == b.0);
    m
}

fn collect_forward(it: &mut TableIter) -> Model {
    let mut out = Vec::new();
    it.seek_to_first();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.next();
    }
    it.status().unwrap();
    out
}

fn collect_backward(it: &mut TableIter) -> Model {
    let mut out = Vec::new();
    it.seek_to_last();
    while it.valid() {
        out.push((it.key().to_vec(), it.value().to_vec()));
        it.prev();
    }
    it.status().unwrap();
    out.reverse();
    out
}

fn current(it: &TableIter) -> Option<Vec<u8>> {
    it.valid().then(|| it.key().to_vec())
}

/// Checks iteration, seeks and gets of `t` against `model` (keys as exposed).
fn check_against_model(t: &Arc<Table>, model: &Model, seed: u64) {
    let flags = ReadFlags::default();
    let mut it = t.iter(flags);
    assert_eq!(&collect_forward(&mut it), model);
    assert_eq!(&collect_backward(&mut it), model);

    let mut rng = StdRng::seed_from_u64(seed);
    let mut targets: Vec<Vec<u8>> = model.iter().map(|(k, _)| k.clone()).collect();
    for _ in 0..300 {
        let len = rng.gen_range(0..10);
        let u: Vec<u8> = (0..len).map(|_| rng.gen_range(b'a'..b'i')).collect();
        targets.push(key::seek_key(&u, rng.gen_range(0..1200)));
        targets.push(key::internal_key(
            &u,
            rng.gen_range(0..1200),
            ValueKind::Delete,
        ));
    }
    if let Some((k, _)) = model.get(model.len() / 2) {
        targets.push(key::seek_key(key::user_key(k), MAX_SEQNO));
        targets.push(key::internal_key(key::user_key(k), 0, ValueKind::Delete));
    }
    for target in &targets {
        let ge = model
            .iter()
            .find(|(k, _)| key::cmp_internal(k, target) != Ordering::Less);
        it.seek(target);
        assert_eq!(current(&it), ge.map(|(k, _)| k.clone()), "seek");
        if let Some((k, v)) = ge {
            assert_eq!(it.value(), &v[..]);
            // Step both ways from a seek.
            it.prev();
            let pos = model.iter().position(|(m, _)| m == k).unwrap();
            let before = pos.checked_sub(1).map(|p| model[p].0.clone());
            assert_eq!(current(&it), before, "prev after seek");
        }
        let le = model
            .iter()
            .rev()
            .find(|(k, _)| key::cmp_internal(k, target) != Ordering::Greater);
        it.seek_for_prev(target);
        assert_eq!(current(&it), le.map(|(k, _)| k.clone()), "seek_for_prev");
        if le.is_some() {
            it.next();
            let pos = model
                .iter()
                .position(|(m, _)| key::cmp_internal(m, target) == Ordering::Greater);
            assert_eq!(
                current(&it),
                pos.map(|p| model[p].0.clone()),
                "next after seek_for_prev"
            );
        }

        let expect_get = ge.filter(|(k, _)| key::user_key(k) == key::user_key(target));
        assert_eq!(t.get(target, flags).unwrap(), expect_get.cloned(), "get");
    }
    for (k, _) in model {
        assert!(t.may_contain(key::user_key(k)));
    }
    it.status().unwrap();
}

#[test]
fn round_trip_against_model() {
    let configs = [
        (1, Compression::None, 10),
        (1, Compression::Zstd { level: 3 }, 0),
        (256, Compression::Zstd { level: 1 }, 10),
        (4096, Compression::None, 10),
        (4096, Compression::Zstd { level: 3 }, 10),
        (1 << 20, Compression::None, 5),
        (1, Compression::Lz4, 0),
        (256, Compression::Lz4, 10),
        (4096, Compression::Lz4, 10),
    ];
    for (i, (block, compression, bloom)) in configs.into_iter().enumerate() {
        let model = random_model(i as u64, 600, 100);
        let (bytes, info) = build(&model, &[], opts(block, compression, bloom));
        assert_eq!(info.num_entries, model.len() as u64);
        assert_eq!(info.smallest, model[0].0);
        assert_eq!(info.largest, model.last().unwrap().0);
        let cache = (i % 2 == 0).then(|| BlockCache::new(1 << 20));
        let t = open(bytes, cache.clone(), None).unwrap();
        assert_eq!(t.verify().unwrap(), model.len() as u64);
        let p = t.properties();
        assert_eq!(p.num_entries, model.len() as u64);
        assert_eq!(p.compression, writer::compression_name(compression));
        assert_eq!(p.format_version, footer::FORMAT_VERSION);
        if block == 1 {
            assert_eq!(p.num_data_blocks, model.len() as u64);
        }
        assert_eq!(p.filter_size == 0, bloom == 0);
        check_against_model(&t, &model, i as u64 + 100);
        if let Some(c) = cache {
            assert!(c.usage_bytes() > 0);
        }
        // Offsets grow with the key.
        let a = t.approximate_offset_of(&model[0].0);
        let b = t.approximate_offset_of(&model[model.len() - 1].0);
        assert!(a <= b && b <= t.file_size());
        assert_eq!(
            t.approximate_offset_of(&key::internal_key(b"zzzz", 0, ValueKind::Put)),
            p.data_size
        );
    }
}

#[test]
fn zstd_shrinks_compressible_blocks() {
    let model: Model = (0..2000u32)
        .map(|i| {
            (
                key::internal_key(format!("key{i:06}").as_bytes(), 1, ValueKind::Put),
                vec![b'x'; 100],
            )
        })
        .collect();
    let (plain, _) = build(&model, &[], opts(4096, Compression::None, 10));
    let (packed, _) = build(&model, &[], opts(4096, Compression::Zstd { level: 3 }, 10));
    assert!(
        packed.len() * 4 < plain.len(),
        "{} vs {}",
        packed.len(),
        plain.len()
    );
    let t = open(packed, None, None).unwrap();
    check_against_model(&t, &model, 5);
}

#[test]
fn lz4_shrinks_compressible_blocks() {
    let model: Model = (0..2000u32)
        .map(|i| {
            (
                key::internal_key(format!("key{i:06}").as_bytes(), 1, ValueKind::Put),
                vec![b'x'; 100],
            )
        })
        .collect();
    let (plain, _) = build(&model, &[], opts(4096, Compression::None, 10));
    let (packed, _) = build(&model, &[], opts(4096, Compression::Lz4, 10));
    assert!(
        packed.len() * 3 < plain.len(),
        "{} vs {}",
        packed.len(),
        plain.len()
    );
    let t = open(packed, None, None).unwrap();
    assert_eq!(t.properties().compression, "lz4");
    check_against_model(&t, &model, 6);
}

/// Flips bytes inside the lz4 data blocks and recomputes the checksums, so the damage reaches
/// the lz4 decoder (with checksums kept, the CRC catches it first): every outcome is `Ok` or
/// `Corruption`, and a damaged length field is always reported.
#[test]
fn lz4_block_damage_is_corruption() {
    let model = random_model(8, 300, 200);
    let (bytes, _) = build(&model, &[], opts(1024, Compression::Lz4, 0));
    let t = open(bytes.clone(), None, None).unwrap();
    assert_eq!(t.properties().compression, "lz4");
    let data_size = t.properties().data_size as usize;
    drop(t);
    // The first data block starts at offset 0 and is compressed (repetitive values).
    assert_eq!(bytes[0] & 0x80, 0x80, "first block's length varint");
    let mut reported = 0;
    for i in (0..data_size).step_by(3) {
        let mut b = bytes.clone();
        b[i] ^= 0x5a;
        assert!(
            exercise(b.clone(), &model, true),
            "flip at {i} went unnoticed"
        );
        crate::fuzzing::fix_checksums(&mut b);
        if exercise(b.clone(), &model, true) {
            reported += 1;
        }
        exercise(b, &model, false);
    }
    assert!(reported > 0, "no damage past the CRC was reported");
    // A changed uncompressed length never decodes: the block must fill exactly that length.
    for x in [0x01u8, 0x02, 0x7f] {
        let mut b = bytes.clone();
        b[0] ^= x;
        crate::fuzzing::fix_checksums(&mut b);
        assert!(
            exercise(b, &model, true),
            "length change {x:#x} went unnoticed"
        );
    }
}

#[test]
fn global_seqno_patches_every_key() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut users: Vec<Vec<u8>> = (0..400)
        .map(|_| {
            (0..rng.gen_range(1..6))
                .map(|_| rng.gen_range(b'a'..b'f'))
                .collect()
        })
        .collect();
    users.sort();
    users.dedup();
    let stored: Model = users
        .iter()
        .map(|u| {
            let kind = if u.len() % 3 == 0 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            (key::internal_key(u, 0, kind), u.clone())
        })
        .collect();
    let ts = vec![RangeTombstone {
        start: b"b".to_vec(),
        end: b"c".to_vec(),
        seq: 0,
    }];
    let (bytes, _) = build(&stored, &ts, opts(64, Compression::None, 10));
    let g = 500;
    let patched: Model = stored
        .iter()
        .map(|(k, v)| {
            (
                key::internal_key(
                    key::user_key(k),
                    g,
                    ValueKind::from_u8(key::kind_byte(k)).unwrap(),
                ),
                v.clone(),
            )
        })
        .collect();
    let t = open(bytes.clone(), Some(BlockCache::new(1 << 20)), Some(g)).unwrap();
    assert_eq!(t.range_tombstones()[0].seq, g);
    assert_eq!(t.properties().smallest_seqno, g);
    assert_eq!(t.properties().largest_seqno, g);
    assert_eq!(key::seqno(&t.properties().smallest), g);
    assert_eq!(t.verify().unwrap(), stored.len() as u64);
    check_against_model(&t, &patched, 12);
    // Exactly at, just above and just below the global seqno.
    let u = key::user_key(&patched[3].0);
    let flags = ReadFlags::default();
    assert!(t.get(&key::seek_key(u, g), flags).unwrap().is_some());
    assert!(t.get(&key::seek_key(u, g + 1), flags).unwrap().is_some());
    assert!(t.get(&key::seek_key(u, g - 1), flags).unwrap().is_none());
    assert!(open(bytes, None, Some(MAX_SEQNO + 1)).is_err());
}

#[test]
fn range_tombstones_and_properties_round_trip() {
    let model: Model = [("d", 5), ("e", 6), ("f", 7)]
        .iter()
        .map(|(u, s)| {
            (
                key::internal_key(u.as_bytes(), *s, ValueKind::Put),
                b"v".to_vec(),
            )
        })
        .collect();
    let ts = vec![
        RangeTombstone {
            start: b"x".to_vec(),
            end: b"y".to_vec(),
            seq: 9,
        },
        RangeTombstone {
            start: b"b".to_vec(),
            end: b"e".to_vec(),
            seq: 3,
        },
        RangeTombstone {
            start: b"b".to_vec(),
            end: b"c".to_vec(),
            seq: 8,
        },
    ];
    let (bytes, info) = build(&model, &ts, opts(4096, Compression::None, 10));
    assert_eq!(info.num_range_tombstones, 3);
    assert_eq!(
        info.smallest,
        key::internal_key(b"b", 8, ValueKind::RangeDelete)
    );
    assert_eq!(info.largest, key::range_end_sentinel(b"y"));
    assert_eq!((info.smallest_seqno, info.largest_seqno), (3, 9));
    let t = open(bytes, None, None).unwrap();
    let got = t.range_tombstones();
    assert_eq!(got.len(), 3);
    assert_eq!((got[0].start.as_slice(), got[0].seq), (&b"b"[..], 8));
    assert_eq!((got[1].start.as_slice(), got[1].seq), (&b"b"[..], 3));
    assert_eq!(got[2].start, b"x");
    let p = t.properties();
    assert_eq!(p.smallest, info.smallest);
    assert_eq!(p.largest, info.largest);
    assert_eq!(p.num_range_tombstones, 3);
    assert_eq!((p.smallest_seqno, p.largest_seqno), (3, 9));
    assert_eq!(p.creator, "test");
    assert!(p.creation_time_secs > 1_600_000_000);
    assert_eq!(t.verify().unwrap(), 3);

    // Tombstones only: no data blocks, no filter.
    let (bytes, info) = build(&vec![], &ts, opts(4096, Compression::None, 10));
    assert_eq!(info.num_entries, 0);
    let t = open(bytes, None, None).unwrap();
    assert_eq!(t.properties().num_data_blocks, 0);
    assert_eq!(t.range_tombstones().len(), 3);
    assert_eq!(t.verify().unwrap(), 0);
    let mut it = t.iter(ReadFlags::default());
    it.seek_to_first();
    assert!(!it.valid());
    it.seek_to_last();
    assert!(!it.valid());
    it.status().unwrap();

    // Completely empty table.
    let (bytes, info) = build(&vec![], &[], opts(4096, Compression::None, 10));
    assert!(info.smallest.is_empty());
    let t = open(bytes, None, None).unwrap();
    assert_eq!(
        t.get(&key::seek_key(b"a", 1), ReadFlags::default())
            .unwrap(),
        None
    );
}

#[test]
fn builder_rejects_bad_keys() {
    let buf = SharedBufferFile::default();
    let mut b = TableBuilder::new(
        Box::new(buf),
        PathBuf::from("x.sst"),
        opts(4096, Compression::None, 10),
    );
    assert!(b.is_empty());
    assert!(matches!(
        b.add(b"short", b""),
        Err(crate::Error::InvalidArgument(_))
    ));
    let mut rd = key::internal_key(b"a", 1, ValueKind::Put);
    rd[1] = ValueKind::RangeDelete as u8;
    assert!(b.add(&rd, b"").is_err());
    b.add(&key::internal_key(b"a", 1, ValueKind::Put), b"1")
        .unwrap();
    assert_eq!(b.num_entries(), 1);
    assert!(b.estimated_size() > 0);
}

/// Opens, verifies, iterates both ways and looks up keys in `bytes`: every outcome is `Ok` or
/// `Corruption`, never a panic. Returns whether any corruption was reported.
fn exercise(bytes: Vec<u8>, model: &Model, verify_checksums: bool) -> bool {
    let flags = ReadFlags {
        verify_checksums,
        fill_cache: true,
    };
    let t = match open(bytes, Some(BlockCache::new(1 << 16)), None) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.is_corruption(), "{e}");
            return true;
        }
    };
    let mut corrupt = false;
    if let Err(e) = t.verify() {
        assert!(e.is_corruption(), "{e}");
        corrupt = true;
    }
    let mut it = t.iter(flags);
    it.seek_to_first();
    let mut steps = 0;
    while it.valid() && steps < 10_000 {
        let _ = key::cmp_internal(it.key(), &model[0].0);
        it.next();
        steps += 1;
    }
    it.seek_to_last();
    while it.valid() && steps < 20_000 {
        it.prev();
        steps += 1;
    }
    for (k, _) in model.iter().step_by(7) {
        it.seek(k);
        it.seek_for_prev(k);
        if let Err(e) = t.get(k, flags) {
            assert!(e.is_corruption(), "{e}");
            corrupt = true;
        }
    }
    if let Err(e) = it.status() {
        assert!(e.is_corruption(), "{e}");
        corrupt = true;
    }
    corrupt
}

#[test]
fn corruption_never_panics() {
    let model = random_model(3, 40, 12);
    let ts = vec![RangeTombstone {
        start: b"b".to_vec(),
        end: b"d".to_vec(),
        seq: 4,
    }];
    for compression in [
        Compression::None,
        Compression::Zstd { level: 1 },
        Compression::Lz4,
    ] {
        let (bytes, _) = build(&model, &ts, opts(128, compression, 10));
        assert!(!exercise(bytes.clone(), &model, true));
        // Every byte of the file is covered by a block CRC or the footer CRC, so every flip is
        // detected by open or verify.
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x41;
            assert!(
                exercise(b.clone(), &model, true),
                "flip at {i} went unnoticed"
            );
            exercise(b, &model, false);
        }
        for len in 0..bytes.len() {
            let b = bytes[..len].to_vec();
            assert!(
                open(b.clone(), None, None).is_err(),
                "truncation to {len} opened"
            );
            exercise(b, &model, false);
        }
    }
}

#[test]
fn random_garbage_never_panics() {
    let model = random_model(4, 30, 8);
    let (bytes, _) = build(&model, &[], opts(64, Compression::None, 10));
    let mut rng = StdRng::seed_from_u64(99);
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..rng.gen_range(1..6) {
            let p = rng.gen_range(0..b.len());
            b[p] = rng.gen();
        }
        // Recompute nothing: without checksum verification garbage reaches the decoders.
        exercise(b, &model, false);
    }
}
