//! Seed S1: bulk-load state cleared (ballot change, role change) while downloads still run.
//! And the path checks that make a garbage name impossible to use.

mod bulk_load_common;

use bulk_load_common::*;
use rand::{Rng, SeedableRng};
use siltdb_replica::bulk_load::metadata::BulkLoadMetadata;
use siltdb_replica::bulk_load::provider::{Fault, TestProvider};
use siltdb_replica::bulk_load::{BulkLoadError, BulkLoadStatus};
use siltdb_replica::Ballot;
use std::sync::Arc;
use std::time::Duration;

const FILES: usize = 5;
const ENTRIES: usize = 300;
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn s1_ballot_change_while_downloading() {
    let seed = seed();
    eprintln!("SILT_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let iterations = if soak() { 2000 } else { 200 };
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(1024));
    let metadata = stage_partition(&provider, root.path(), 0, FILES, ENTRIES);
    let downloads = node(5);
    let replica = Replica::open(
        root.path(),
        0,
        small_options(),
        provider.clone(),
        &downloads,
    );
    let partition = &replica.partition;
    let dir = partition.bulk_load_dir();
    let mut ballot = 1u64;

    for iteration in 0..iterations {
        let victim = &metadata.files[rng.gen_range(0..FILES)];
        let after_bytes = rng.gen_range(0..victim.size);
        let honor_cancel = rng.gen_bool(0.5);
        let (fault, gate) = Fault::block(after_bytes, honor_cancel);
        provider.set_fault(0, &victim.name, fault);
        partition.start(Ballot(ballot)).unwrap();
        assert!(
            gate.wait_reached(WAIT),
            "iteration {iteration}: never blocked"
        );
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..300)));

        // Release before, during or never (a cancel-honouring fetch wakes on its own); a
        // fetch that ignores cancellation is released from another thread while clear joins.
        let release_delay = Duration::from_micros(rng.gen_range(0..2000));
        let releaser = if honor_cancel && rng.gen_bool(0.5) {
            None
        } else {
            let gate = gate.clone();
            Some(std::thread::spawn(move || {
                std::thread::sleep(release_delay);
                gate.release();
            }))
        };
        if rng.gen_bool(0.5) {
            ballot += 1;
            replica.target.set_ballot(Ballot(ballot));
            partition.on_ballot_change().unwrap();
        } else {
            partition.clear().unwrap();
        }
        // Cleared: every task joined, nothing left on disk, no slot held.
        assert_eq!(partition.status(), BulkLoadStatus::Invalid);
        assert!(
            !dir.exists(),
            "iteration {iteration}: files left after clear"
        );
        assert_eq!(downloads.active(), 0);
        assert_eq!(downloads.metrics().snapshot().downloading, 0);
        if let Some(releaser) = releaser {
            releaser.join().unwrap();
        }
        // A stale task that could still run would recreate the directory here.
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..500)));
        assert!(!dir.exists(), "iteration {iteration}: a stale task wrote");

        provider.clear_fault(0, &victim.name);
        if iteration % 10 == 0 || iteration + 1 == iterations {
            // The restarted load completes with the right bytes.
            partition.start(Ballot(ballot)).unwrap();
            poll_until(partition, BulkLoadStatus::Downloaded, WAIT);
            for file in &metadata.files {
                let local = std::fs::read(dir.join(&file.name)).unwrap();
                assert_eq!(crc32c::crc32c(&local), file.crc32c);
                assert_eq!(local.len() as u64, file.size);
            }
            partition.clear().unwrap();
        }
    }
    // Results of the cancelled sessions arrived and were dropped, not applied.
    partition.poll().unwrap();
    assert!(downloads.metrics().snapshot().stale_results_dropped > 0);

    // Finally a whole load, ingested.
    partition.start(Ballot(ballot)).unwrap();
    poll_until(partition, BulkLoadStatus::Downloaded, WAIT);
    partition.ingest().unwrap();
    assert_eq!(partition.status(), BulkLoadStatus::Succeed);
    assert!(!dir.exists());
    assert_loaded(&replica.db, 0, FILES, ENTRIES);
    let metrics = downloads.metrics().snapshot();
    assert_eq!(metrics.downloading, 0);
    assert_eq!(metrics.ingesting, 0);
    assert_eq!(metrics.succeeded, 1);
}

#[test]
fn stale_ballot_at_ingestion_rolls_back_and_reloads() {
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(4096));
    stage_partition(&provider, root.path(), 0, 3, 100);
    let downloads = node(5);
    let replica = Replica::open(
        root.path(),
        0,
        small_options(),
        provider.clone(),
        &downloads,
    );
    let partition = &replica.partition;
    partition.start(Ballot(1)).unwrap();
    poll_until(partition, BulkLoadStatus::Downloaded, WAIT);
    replica.target.set_ballot(Ballot(2));
    let err = partition.ingest().unwrap_err();
    assert!(matches!(err, BulkLoadError::StaleBallot { .. }), "{err}");
    assert_eq!(partition.status(), BulkLoadStatus::Downloading);
    // The resumed session runs under the new ballot and keeps the verified files.
    let fetches = provider.fetch_count();
    poll_until(partition, BulkLoadStatus::Downloaded, WAIT);
    assert_eq!(
        provider.fetch_count(),
        fetches,
        "verified files were fetched again"
    );
    assert_eq!(partition.progress().session.ballot, 2);
    partition.ingest().unwrap();
    assert_loaded(&replica.db, 0, 3, 100);
}

fn start_with_names(names: &[String]) -> (String, u64, bool) {
    let root = tempfile::tempdir().unwrap();
    let provider = Arc::new(TestProvider::new(4096));
    let mut metadata = stage_partition(&provider, root.path(), 0, names.len(), 10);
    for (file, name) in metadata.files.iter_mut().zip(names) {
        file.name = name.clone();
    }
    let metadata = BulkLoadMetadata::new(metadata.files);
    provider.put_metadata(0, serde_json::to_vec(&metadata).unwrap());
    let downloads = node(5);
    let replica = Replica::open(
        root.path(),
        0,
        small_options(),
        provider.clone(),
        &downloads,
    );
    let err = replica.partition.start(Ballot(1)).unwrap_err();
    assert!(matches!(err, BulkLoadError::Failed(_)), "{err}");
    let progress = replica.partition.poll().unwrap();
    assert_eq!(progress.status, BulkLoadStatus::Failed);
    assert_eq!(downloads.active(), 0);
    let touched = replica.partition.bulk_load_dir().exists();
    (progress.error.unwrap(), provider.fetch_count(), touched)
}

#[test]
fn path_traversal_names_rejected_up_front() {
    let outside = std::env::temp_dir().join(format!("silt-s1-outside-{}.sst", std::process::id()));
    let bad_names = [
        "../x.sst".to_string(),
        outside.display().to_string(),
        "a/b.sst".to_string(),
        "..".to_string(),
        "x".repeat(10 * 1024),
    ];
    for bad in &bad_names {
        let names = vec![
            "000001.sst".to_string(),
            bad.clone(),
            "000003.sst".to_string(),
        ];
        let (error, fetches, touched) = start_with_names(&names);
        assert!(error.contains("file name"), "{bad:.40}: {error}");
        assert!(
            error.len() < 1024,
            "the error repeats a huge name: {} bytes",
            error.len()
        );
        assert_eq!(
            fetches, 0,
            "{bad:.40}: a file was fetched before validation"
        );
        assert!(!touched, "{bad:.40}: the bulk-load directory was created");
        assert!(!outside.exists());
    }
}
