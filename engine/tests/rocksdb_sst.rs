//! Reading RocksDB block-based tables written by RocksDB itself (fixtures made by
//! `tests/fixtures/rocksdb/generate.py`), ingesting them, and refusing damaged copies.

use siltdb::InMemoryFile;
use siltdb::{rocksdb_convert as convert, RocksTable};
use siltdb::{Db, Error, IngestOptions, Options};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rocksdb")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

struct Expected {
    name: String,
    format_version: u32,
    checksum: String,
    entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    tombstones: Vec<(Vec<u8>, Vec<u8>)>,
}

fn expected() -> Vec<Expected> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for (name, f) in v.as_object().unwrap() {
        let entries = f["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (unhex(e[0].as_str().unwrap()), e[1].as_str().map(unhex)))
            .collect();
        let tombstones = f["tombstones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (unhex(e[0].as_str().unwrap()), unhex(e[1].as_str().unwrap())))
            .collect();
        out.push(Expected {
            name: name.clone(),
            format_version: f["format_version"].as_u64().unwrap() as u32,
            checksum: f["checksum"].as_str().unwrap().to_string(),
            entries,
            tombstones,
        });
    }
    assert!(out.len() >= 20, "fixtures missing");
    out
}

fn open_bytes(name: &str, bytes: Vec<u8>) -> siltdb::Result<RocksTable> {
    RocksTable::open(Arc::new(InMemoryFile(bytes)), PathBuf::from(name))
}

type Contents = (Vec<(Vec<u8>, Option<Vec<u8>>)>, Vec<(Vec<u8>, Vec<u8>)>);

fn read_all(t: &RocksTable) -> siltdb::Result<Contents> {
    let mut entries = Vec::new();
    let ts = convert::collapsed(t, |k, v| {
        entries.push((k.to_vec(), v.map(|v| v.to_vec())));
        Ok(())
    })?;
    Ok((entries, ts.into_iter().map(|t| (t.start, t.end)).collect()))
}

#[test]
fn every_fixture_reads_as_expected() {
    for e in expected() {
        let bytes = std::fs::read(dir().join(&e.name)).unwrap();
        let t = open_bytes(&e.name, bytes).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert_eq!(t.footer().format_version, e.format_version, "{}", e.name);
        assert_eq!(t.checksum_name(), e.checksum, "{}", e.name);
        assert_eq!(
            t.format_name(),
            format!(
                "RocksDB block-based table, format_version {}",
                e.format_version
            )
        );
        let (entries, ts) = read_all(&t).unwrap_or_else(|err| panic!("{}: {err}", e.name));
        assert_eq!(entries, e.entries, "{}", e.name);
        assert_eq!(ts, e.tombstones, "{}", e.name);
    }
}

#[test]
fn partitioned_index_has_partitions() {
    let bytes = std::fs::read(dir().join("partitioned_index.sst")).unwrap();
    let t = open_bytes("partitioned_index.sst", bytes).unwrap();
    assert_eq!(t.properties().index_type(), 2);
    assert!(t.data_blocks().unwrap().len() > 4);
}

#[test]
fn db_ingested_file_carries_a_global_seqno() {
    let bytes = std::fs::read(dir().join("db_ingested_global_seqno.sst")).unwrap();
    let t = open_bytes("g.sst", bytes).unwrap();
    assert!(t.properties().external_sst_file_version().is_some());
    assert!(t.properties().global_seqno().is_some());
}

#[test]
fn ingest_every_fixture_and_read_back_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let all = expected();
    {
        let db = Db::open(&path, Options::default()).unwrap();
        // Older data that the ingested deletions and range deletions must hide.
        db.put(b"f012", b"from-db").unwrap();
        db.put(b"m0003", b"from-db").unwrap();
        for e in &all {
            let info = db
                .ingest(&[dir().join(&e.name)], &IngestOptions::default())
                .unwrap_or_else(|err| panic!("{}: {err}", e.name));
            assert_eq!(info.files, 1);
        }
        check(&db, &all);
    }
    let db = Db::open(&path, Options::default()).unwrap();
    check(&db, &all);
    assert_eq!(
        db.get(b"f012").unwrap(),
        None,
        "range deletion hides older data"
    );
    assert_eq!(db.get(b"m0003").unwrap(), None, "deletion hides older data");
}

fn check(db: &Db, all: &[Expected]) {
    // Later ingestions win: compute the final state in ingestion order.
    let mut state = std::collections::BTreeMap::new();
    for e in all {
        for (s, end) in &e.tombstones {
            let doomed: Vec<_> = state
                .range(s.clone()..end.clone())
                .map(|(k, _): (&Vec<u8>, _)| k.clone())
                .collect();
            for k in doomed {
                state.insert(k, None);
            }
        }
        for (k, v) in &e.entries {
            state.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in state {
        assert_eq!(
            db.get(&k).unwrap(),
            v,
            "key {}",
            String::from_utf8_lossy(&k)
        );
    }
}

fn assert_refused(name: &str, bytes: Vec<u8>) {
    let r = open_bytes(name, bytes).and_then(|t| read_all(&t).map(drop));
    match r {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, PathBuf::from(name)),
        other => panic!("{name}: expected corruption, got {other:?}"),
    }
}

#[test]
fn damaged_copies_are_corruption() {
    for name in [
        "codec_none.sst",
        "format_v4.sst",
        "partitioned_index.sst",
        "checksum_xxh3_v6.sst",
    ] {
        let good = std::fs::read(dir().join(name)).unwrap();
        let n = good.len();
        // The first data block, the middle, the footer's checksum-type byte and its magic
        // (a pre-v6 footer's padding is not covered by any check, as in RocksDB).
        for at in [3, n / 2, n - 53, n - 4] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            assert_refused(name, bad);
        }
        for len in [0, 7, 20, n / 2, n - 1] {
            let r = open_bytes(name, good[..len].to_vec()).and_then(|t| read_all(&t).map(drop));
            assert!(r.is_err(), "{name} truncated to {len} read");
        }
    }
}

#[test]
fn every_single_byte_flip_is_an_error_or_unchanged_never_a_panic() {
    let good = std::fs::read(dir().join("checksum_crc32c_v6.sst")).unwrap();
    let want = read_all(&open_bytes("x", good.clone()).unwrap()).unwrap();
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        if let Ok(t) = open_bytes("x", bad) {
            if let Ok(got) = read_all(&t) {
                assert_eq!(got, want, "flip at {at} changed the contents silently");
            }
        }
    }
}

#[test]
fn damaged_rocksdb_file_is_refused_by_ingest_and_db_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), Options::default()).unwrap();
    let mut bytes = std::fs::read(dir().join("codec_snappy.sst")).unwrap();
    bytes[10] ^= 0xff;
    let bad = tmp.path().join("bad.sst");
    std::fs::write(&bad, bytes).unwrap();
    let good = dir().join("format_v2.sst");
    let err = db
        .ingest(&[good, bad], &IngestOptions::default())
        .unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert_eq!(db.get(b"key000001").unwrap(), None, "nothing ingested");
}

#[test]
fn byte_flips_past_the_checksums_never_panic() {
    // Footer checksum type rewritten to "none": every flip reaches the decoders.
    for name in ["format_v4.sst", "db_flushed_range_del.sst"] {
        let good = std::fs::read(dir().join(name)).unwrap();
        let mut input = vec![1u8];
        input.extend_from_slice(&good);
        for at in 1..input.len() {
            for x in [0x01u8, 0xff] {
                let mut bad = input.clone();
                bad[at] ^= x;
                siltdb::fuzzing::rocksdb_table(&bad);
            }
        }
    }
}

#[test]
fn index_with_restart_interval_uses_size_deltas() {
    let bytes = std::fs::read(dir().join("index_restart_interval_8.sst")).unwrap();
    let t = open_bytes("i.sst", bytes).unwrap();
    assert!(t.properties().index_value_is_delta_encoded());
    let blocks = t.data_blocks().unwrap();
    assert!(blocks.len() > 16, "{} blocks", blocks.len());
    for w in blocks.windows(2) {
        assert_eq!(w[1].offset, w[0].offset + w[0].size + 5);
    }
}

#[test]
fn unsupported_codec_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), Options::default()).unwrap();
    let err = db
        .ingest(
            &[dir().join("refused_bzip2.sst")],
            &IngestOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("bzip2"), "{err}");
}
