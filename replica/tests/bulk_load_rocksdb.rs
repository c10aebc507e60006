//! The bulk-load path ingests SST files written by RocksDB (the engine's RocksDB fixtures)
//! listed in `bulk_load_metadata.json`, and they survive a reopen.

mod bulk_load_common;

use bulk_load_common::*;
use siltdb_replica::bulk_load::metadata::{encode_hex, BulkLoadMetadata, FileEntry};
use siltdb_replica::bulk_load::provider::TestProvider;
use siltdb_replica::bulk_load::BulkLoadStatus;
use siltdb_replica::siltdb::{Db, Options};
use siltdb_replica::Ballot;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../engine/tests/fixtures/rocksdb")
            .join(name),
    )
    .unwrap()
}

#[test]
fn rocksdb_files_in_bulk_load_metadata_are_ingested() {
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(1024));
    // Two RocksDB files with disjoint keys: "f000".."f039" (DB-flushed, range deletion) and
    // "key000000".."key000119" (SstFileWriter, zstd).
    let files = [
        ("000001.sst", "db_flushed_range_del.sst", "f000", "f039", 31),
        (
            "000002.sst",
            "codec_zstd.sst",
            "key000000",
            "key000119",
            120,
        ),
    ];
    let mut listed = Vec::new();
    for (name, src, lo, hi, entries) in files {
        let bytes = fixture(src);
        listed.push(FileEntry {
            name: name.into(),
            size: bytes.len() as u64,
            crc32c: crc32c::crc32c(&bytes),
            smallest_key: encode_hex(lo.as_bytes()),
            largest_key: encode_hex(hi.as_bytes()),
            entries,
        });
        provider.put_file(0, name, bytes);
    }
    provider.put_metadata(0, BulkLoadMetadata::new(listed).to_json());
    let downloads = node(2);
    let replica = Replica::open(root.path(), 0, small_options(), provider, &downloads);
    replica.target.user_put(b"f012", b"older").unwrap();
    replica.partition.start(Ballot(1)).unwrap();
    poll_until(
        &replica.partition,
        BulkLoadStatus::Downloaded,
        Duration::from_secs(30),
    );
    replica.partition.ingest().unwrap();
    assert_eq!(replica.partition.status(), BulkLoadStatus::Succeed);
    let check = |db: &Db| {
        assert_eq!(
            db.get(b"key000042").unwrap().as_deref(),
            Some(&b"value-000042-value-0"[..])
        );
        assert_eq!(
            db.get(b"f015").unwrap().as_deref(),
            Some(&b"after-range-delete"[..])
        );
        assert_eq!(db.get(b"f005").unwrap().as_deref(), Some(&b"new5"[..]));
        assert_eq!(db.get(b"f030").unwrap(), None, "deleted in the file");
        assert_eq!(
            db.get(b"f012").unwrap(),
            None,
            "range deletion hides older data"
        );
    };
    check(&replica.db);
    let db_dir = root.path().join("replica-0").join("db");
    drop(replica);
    let db = Db::open(&db_dir, Options::default()).unwrap();
    check(&db);
}
