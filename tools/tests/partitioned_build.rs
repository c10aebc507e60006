//! `sst-ingest build --partitions N`, through the binary: every record lands in exactly the
//! partition `xxh3_64(key) % N` names, each partition directory verifies on its own, and a
//! partition no key hashes to gets a metadata document with no files.

mod common;
use common::*;
use siltdb_client::partition_of;
use siltdb_tools::metadata::{self, BulkLoadMetadata};
use siltdb_tools::sst_access::SstFile;
use std::collections::BTreeMap;
use std::path::Path;

/// Key-value pairs in key order.
type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// Every (key, value) of every SST of `dir`, checking the metadata on the way.
fn read_partition(dir: &Path) -> (BulkLoadMetadata, Rows) {
    let metadata = metadata::read(dir).expect("metadata");
    metadata.validate().expect("valid metadata");
    let mut rows = Vec::new();
    for f in &metadata.files {
        let sst = SstFile::open(&dir.join(&f.name)).expect("open sst");
        sst.for_each(None, |e| {
            rows.push((e.key.clone(), e.value.clone()));
            Ok(())
        })
        .expect("read sst");
    }
    (metadata, rows)
}

#[test]
fn build_splits_records_by_the_server_partition_function() {
    const PARTITIONS: u32 = 5;
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let mut expected = BTreeMap::new();
    for i in 0..3000u32 {
        let key = format!("key:{:05}", (i * 7919) % 20_000);
        let value = format!("value-{i}");
        text.push_str(&format!("{key},{value}\n"));
        expected.insert(key.into_bytes(), value.into_bytes());
    }
    let input = write(dir.path(), "data.csv", text);
    let out = dir.path().join("bulk");
    let built = build(
        "csv",
        &[&input],
        &out,
        &[
            "--partitions",
            &PARTITIONS.to_string(),
            "--target-file-size",
            "8KiB",
        ],
    )
    .ok();
    assert!(built.stdout.contains("in 5 partitions"), "{built:?}");
    let names: Vec<String> = (0..PARTITIONS).map(|p| p.to_string()).collect();
    assert_eq!(entries(&out), names);

    let mut seen = BTreeMap::new();
    for p in 0..PARTITIONS {
        let pdir = out.join(p.to_string());
        let (metadata, rows) = read_partition(&pdir);
        assert!(metadata.files.len() >= 2, "partition {p}: {metadata:?}");
        assert_eq!(metadata.totals.entries, rows.len() as u64);
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
        for (key, value) in rows {
            assert_eq!(partition_of(&key, PARTITIONS), p);
            assert!(seen.insert(key, value).is_none(), "a key in two partitions");
        }
        run([std::ffi::OsStr::new("verify"), p_os(&pdir)]).ok();
    }
    assert_eq!(seen, expected);
}

fn p_os(path: &Path) -> &std::ffi::OsStr {
    path.as_os_str()
}

#[test]
fn a_partition_without_keys_gets_an_empty_metadata_and_bad_counts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "data.csv", "a,1\nb,2\nc,3\n");
    let out = dir.path().join("bulk");
    build("csv", &[&input], &out, &["--partitions", "16"]).ok();
    let mut entries_total = 0;
    let mut empty = 0;
    for p in 0..16 {
        let (metadata, rows) = read_partition(&out.join(p.to_string()));
        entries_total += metadata.totals.entries;
        if metadata.files.is_empty() {
            empty += 1;
            assert_eq!(metadata.totals.entries, 0);
        }
        assert_eq!(rows.len(), metadata.totals.entries as usize);
    }
    assert_eq!(entries_total, 3);
    assert!(empty >= 13, "{empty}");

    let refused = build(
        "csv",
        &[&input],
        &dir.path().join("zero"),
        &["--partitions", "0"],
    );
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(!dir.path().join("zero").exists());
}
