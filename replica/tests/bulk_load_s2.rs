//! Seed S2: a file named in the metadata is missing at the provider (or has the wrong size or
//! checksum, or arrives truncated or corrupt). That partition fails naming the file; the other
//! partitions are unaffected; the failing partition's downloads are cancelled and joined and
//! its directory cleaned; reads and writes are still served.

mod bulk_load_common;

use bulk_load_common::*;
use siltdb_replica::bulk_load::provider::{Fault, TestProvider};
use siltdb_replica::bulk_load::{BulkLoadController, BulkLoadStatus, ControllerConfig};
use std::sync::Arc;
use std::time::Duration;

const PARTITIONS: u32 = 3;
const FILES: usize = 5;
const ENTRIES: usize = 200;
const BAD: u32 = 1;
const BAD_FILE: &str = "000003.sst";

#[derive(Debug, Clone, Copy)]
enum Case {
    Missing,
    WrongSize,
    WrongChecksum,
    Truncated,
    Corrupt,
}

fn run_case(case: Case) {
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(2048));
    let mut bad_metadata = None;
    for p in 0..PARTITIONS {
        let metadata = stage_partition(&provider, root.path(), p, FILES, ENTRIES);
        if p == BAD {
            bad_metadata = Some(metadata);
        }
    }
    let mut metadata = bad_metadata.unwrap();
    match case {
        Case::Missing => provider.set_fault(BAD, BAD_FILE, Fault::Drop),
        Case::WrongSize => metadata.files[2].size += 1,
        Case::WrongChecksum => metadata.files[2].crc32c ^= 1,
        Case::Truncated => provider.set_fault(BAD, BAD_FILE, Fault::Truncate(100)),
        Case::Corrupt => provider.set_fault(BAD, BAD_FILE, Fault::Corrupt(200)),
    }
    let metadata = siltdb_replica::bulk_load::metadata::BulkLoadMetadata::new(metadata.files);
    provider.put_metadata(BAD, metadata.to_json());

    let downloads = node(5);
    let replicas: Vec<Replica> = (0..PARTITIONS)
        .map(|p| {
            Replica::open(
                root.path(),
                p,
                small_options(),
                provider.clone(),
                &downloads,
            )
        })
        .collect();
    for r in &replicas {
        r.target.user_put(b"user-before", b"1").unwrap();
    }
    let controller = BulkLoadController::new(
        replicas.iter().map(|r| r.partition.clone()).collect(),
        ControllerConfig::default(),
    );
    controller.start().unwrap();
    let table = controller.run(Duration::from_secs(30)).unwrap();
    assert_eq!(table.status, BulkLoadStatus::Failed, "{case:?}: {table:?}");
    let error = table.error.clone().unwrap();
    assert!(
        error.contains(BAD_FILE) && error.contains("1.1"),
        "{case:?}: {error}"
    );

    // The failing partition: FAILED naming the file and why, directory gone, nothing past
    // the bad file fetched.
    let bad = &replicas[BAD as usize];
    let progress = bad.partition.progress();
    assert_eq!(progress.status, BulkLoadStatus::Failed);
    let reason = progress.error.unwrap();
    assert!(reason.contains(BAD_FILE), "{case:?}: {reason}");
    let expected_words = match case {
        Case::Missing => "missing",
        Case::WrongSize | Case::Truncated => "wrong size",
        Case::WrongChecksum | Case::Corrupt => "wrong checksum",
    };
    assert!(reason.contains(expected_words), "{case:?}: {reason}");
    assert!(
        !bad.partition.bulk_load_dir().exists(),
        "{case:?}: not cleaned"
    );
    let later = provider
        .fetch_offsets()
        .into_iter()
        .filter(|(p, name, _)| *p == BAD && name.as_str() > BAD_FILE)
        .count();
    assert_eq!(later, 0, "{case:?}: files after the failure were fetched");

    // The others are unaffected: they finish downloading and verifying, and wait.
    for p in (0..PARTITIONS).filter(|p| *p != BAD) {
        let r = &replicas[p as usize];
        poll_until(
            &r.partition,
            BulkLoadStatus::Downloaded,
            Duration::from_secs(30),
        );
    }
    // Reads and writes are served everywhere.
    for r in &replicas {
        assert!(!r.gate.is_ingesting());
        r.target.user_put(b"user-after", b"2").unwrap();
        assert_eq!(r.db.get(b"user-before").unwrap(), Some(b"1".to_vec()));
        assert_eq!(r.db.get(b"user-after").unwrap(), Some(b"2".to_vec()));
    }
    // Cancelling the table cleans the others up; every task has been joined.
    let table = controller.cancel(true).unwrap();
    assert_eq!(table.status, BulkLoadStatus::Canceled);
    for r in &replicas {
        assert!(!r.partition.bulk_load_dir().exists());
    }
    let metrics = downloads.metrics().snapshot();
    assert_eq!(metrics.downloading, 0);
    assert_eq!(metrics.failed, 1);
    assert_eq!(downloads.active(), 0);
}

#[test]
fn s2_missing_file_fails_partition_cleanly() {
    run_case(Case::Missing);
}

#[test]
fn s2_wrong_size_fails_partition_cleanly() {
    run_case(Case::WrongSize);
}

#[test]
fn s2_wrong_checksum_fails_partition_cleanly() {
    run_case(Case::WrongChecksum);
}

#[test]
fn s2_truncated_file_fails_partition_cleanly() {
    run_case(Case::Truncated);
}

#[test]
fn s2_corrupt_file_fails_partition_cleanly() {
    run_case(Case::Corrupt);
}

#[test]
fn s2_missing_metadata_fails_partition_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(2048));
    let downloads = node(5);
    let r = Replica::open(
        root.path(),
        0,
        small_options(),
        provider.clone(),
        &downloads,
    );
    let err = r.partition.start(siltdb_replica::Ballot(1)).unwrap_err();
    assert!(err.to_string().contains("bulk_load_metadata.json"), "{err}");
    assert_eq!(r.partition.status(), BulkLoadStatus::Failed);
    assert_eq!(downloads.active(), 0);
    r.target.user_put(b"k", b"v").unwrap();
}
