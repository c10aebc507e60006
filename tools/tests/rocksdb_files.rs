//! `sst-ingest inspect`, `dump` and `ingest` on SST files written by RocksDB (the engine's
//! fixtures, `engine/tests/fixtures/rocksdb`).

mod common;

use common::{db, p, run};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures/rocksdb")
        .join(name)
}

#[test]
fn inspect_names_the_rocksdb_format() {
    let r = run(["inspect".as_ref(), p(&fixture("checksum_xxh3_v6.sst"))]).ok();
    assert!(
        r.stdout
            .contains("RocksDB block-based table, format_version 6"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("checksum:            xxh3"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("entries:             60"), "{}", r.stdout);
    let r = run(["inspect".as_ref(), p(&fixture("format_v3.sst"))]).ok();
    assert!(
        r.stdout
            .contains("RocksDB block-based table, format_version 3"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("compression:         Snappy"),
        "{}",
        r.stdout
    );
}

#[test]
fn dump_prints_rocksdb_entries() {
    let r = run(["dump".as_ref(), p(&fixture("puts_deletes_large_empty.sst"))]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "m0000", "a deletion prints the key alone");
    assert_eq!(lines[1], "m0001\tv1");
    assert!(lines.contains(&"m0007\t"), "empty value");
    let r = run(["dump".as_ref(), p(&fixture("db_flushed_range_del.sst"))]).ok();
    assert!(
        r.stdout.contains("# range deletion [f010, f020)"),
        "{}",
        r.stdout
    );
}

#[test]
fn ingest_loose_rocksdb_files_then_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dbdir = tmp.path().join("db");
    let r = run([
        "ingest".as_ref(),
        "--db".as_ref(),
        p(&dbdir),
        p(&fixture("codec_zstd.sst")),
        p(&fixture("db_flushed_range_del.sst")),
    ])
    .ok();
    assert!(r.stdout.contains("ingested 2 file(s)"), "{}", r.stdout);
    let got = db(&dbdir, &["get", "key000042"]).ok();
    assert!(got.stdout.contains("value-000042-"), "{}", got.stdout);
    let got = db(&dbdir, &["get", "f015"]).ok();
    assert!(got.stdout.contains("after-range-delete"), "{}", got.stdout);
}

#[test]
fn ingest_of_a_damaged_rocksdb_file_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(fixture("codec_lz4.sst")).unwrap();
    bytes[5] ^= 0x10;
    let bad = tmp.path().join("bad.sst");
    std::fs::write(&bad, bytes).unwrap();
    let r = run([
        "ingest".as_ref(),
        "--db".as_ref(),
        p(&tmp.path().join("db")),
        p(&bad),
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("corruption"), "{}", r.stderr);
}
