//! End to end: input records → the `sst-ingest build` layout for 3 partitions → bulk load via
//! the controller into 3 partitions × 3 replicas, ingested as a replicated control write →
//! every key readable on every replica → a learner joining a partition afterwards gets the
//! data from the checkpoint taken after the ingestion (the log holding the ingest entry is
//! purged, and the downloaded files are gone).
//!
//! The replica crate does not depend on `siltdb-tools`; [`write_build_layout`] writes exactly
//! what `sst-ingest build --out <root>/<p>` writes for each partition (`tools/src/sst_build.rs`,
//! `tools/src/metadata.rs`, the format in `client/src/bulk_load_metadata.rs`): `NNNNNN.sst` files from `SstWriter`, split at a target size, and
//! `bulk_load_metadata.json` (pretty JSON and a newline) with name, size, CRC-32C, hex key
//! range and entry count of each file, plus totals.

mod bulk_load_common;

use bulk_load_common::group::*;
use bulk_load_common::node;
use openraft::BasicNode;
use siltdb_replica::bulk_load::metadata::{encode_hex, BulkLoadMetadata, FileEntry};
use siltdb_replica::bulk_load::provider::LocalDirProvider;
use siltdb_replica::bulk_load::{BulkLoadController, BulkLoadStatus, ControllerConfig};
use siltdb_replica::replica::Replica;
use siltdb_replica::siltdb::{SstWriter, SstWriterOptions};
use siltdb_replica::{Decree, Mutation};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 3;
const RECORDS: usize = 3000;
/// `sst-ingest build --target-file-size`: small, so every partition has several files.
const TARGET_FILE_SIZE_BYTES: u64 = 16 << 10;

fn record(i: usize) -> (Vec<u8>, Vec<u8>) {
    let key = format!("user:{:08}", (i * 7919) % 100_000).into_bytes();
    let value = format!("bulk-value-{i}-{}", "v".repeat(i % 13)).into_bytes();
    (key, value)
}

/// Pegasus-style partitioning: a hash of the key modulo the partition count.
fn partition_of(key: &[u8]) -> u32 {
    crc32c::crc32c(key) % PARTITIONS
}

/// What `sst-ingest build --out <root>/<p>` writes for the records of each partition.
fn write_build_layout(root: &Path, records: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for p in 0..PARTITIONS {
        let out = root.join(p.to_string());
        std::fs::create_dir_all(&out).unwrap();
        let mut files = Vec::new();
        let mut writer: Option<(SstWriter, u64)> = None;
        let finish = |w: SstWriter, files: &mut Vec<FileEntry>| {
            let info = w.finish().unwrap();
            let bytes = std::fs::read(&info.path).unwrap();
            assert_eq!(bytes.len() as u64, info.size_bytes);
            files.push(FileEntry {
                name: info
                    .path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                size: info.size_bytes,
                crc32c: crc32c::crc32c(&bytes),
                smallest_key: encode_hex(&info.smallest_key),
                largest_key: encode_hex(&info.largest_key),
                entries: info.entries,
            });
        };
        for (key, value) in records.iter().filter(|(k, _)| partition_of(k) == p) {
            if writer.is_none() {
                let name = format!("{:06}.sst", files.len() + 1);
                let w = SstWriter::create(out.join(name), &SstWriterOptions::default()).unwrap();
                writer = Some((w, 0));
            }
            let (w, estimate) = writer.as_mut().unwrap();
            w.put(key, value).unwrap();
            *estimate += key.len() as u64 + value.len() as u64 + 12;
            if *estimate >= TARGET_FILE_SIZE_BYTES {
                finish(writer.take().unwrap().0, &mut files);
            }
        }
        if let Some((w, _)) = writer.take() {
            finish(w, &mut files);
        }
        assert!(files.len() >= 2, "partition {p} has {} files", files.len());
        let mut text = BulkLoadMetadata::new(files).to_json();
        text.push(b'\n');
        std::fs::write(out.join("bulk_load_metadata.json"), text).unwrap();
    }
}

fn assert_has_all(r: &Replica, p: u32, records: &BTreeMap<Vec<u8>, Vec<u8>>, skip: &[Vec<u8>]) {
    let mut n = 0;
    for (key, value) in records.iter().filter(|(k, _)| partition_of(k) == p) {
        if skip.contains(key) {
            continue;
        }
        let got = r.get(key).unwrap();
        assert_eq!(
            got.as_deref(),
            Some(value.as_slice()),
            "partition {p} replica {} key {}",
            r.id(),
            String::from_utf8_lossy(key)
        );
        n += 1;
    }
    assert!(n > 100, "partition {p} holds only {n} keys");
}

#[test]
fn bulk_load_end_to_end_three_partitions_three_replicas_then_a_learner() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let rt = runtime();
    let records: BTreeMap<Vec<u8>, Vec<u8>> = (0..RECORDS).map(record).collect();
    let provider_root = root.path().join("provider");
    write_build_layout(&provider_root, &records);
    let provider = Arc::new(LocalDirProvider::new(&provider_root));
    let downloads = node(5);
    let groups: Vec<Group> = (0..PARTITIONS)
        .map(|p| Group::open(&rt, root.path(), p, 3, |_| {}, provider.clone(), &downloads))
        .collect();

    // A user write to a key the load also carries, before the load: the load is newer.
    let (overlap_key, overlap_value) = records.iter().next().unwrap();
    let p_overlap = partition_of(overlap_key);
    let g = &groups[p_overlap as usize];
    let mut m = Mutation::new();
    m.put(overlap_key.clone(), b"older user value".to_vec());
    user_write(&rt, &g.primary(&rt), m);

    let controller = BulkLoadController::new(
        groups.iter().map(|g| g.driver.clone()).collect(),
        ControllerConfig::default(),
    );
    controller.start().unwrap();
    let progress = controller.run(Duration::from_secs(60)).unwrap();
    assert_eq!(
        progress.status,
        BulkLoadStatus::Succeed,
        "{:?}",
        progress.error
    );
    assert_eq!(progress.downloaded_bytes(), progress.total_bytes());
    let metrics = downloads.metrics().snapshot();
    assert_eq!(metrics.succeeded, u64::from(PARTITIONS));
    assert_eq!((metrics.downloading, metrics.ingesting), (0, 0));

    for (p, g) in groups.iter().enumerate() {
        assert!(!g.gate.is_ingesting());
        assert!(!g.driver.bulk_load_dir().exists(), "downloads removed");
        for r in &g.replicas {
            assert_has_all(r, p as u32, &records, &[]);
            assert!(staging_dirs(r).is_empty(), "{:?}", staging_dirs(r));
            assert!(
                !r.state_machine().checkpoints().decrees().is_empty(),
                "replica {} of partition {p} checkpointed after the ingestion",
                r.id()
            );
        }
    }
    assert_eq!(
        groups[p_overlap as usize].replicas[0]
            .get(overlap_key)
            .unwrap()
            .as_deref(),
        Some(overlap_value.as_slice())
    );

    // User writes resume, and later writes win over the load on every replica.
    let g = &groups[0];
    let primary = g.primary(&rt);
    let (k0, _) = records.iter().find(|(k, _)| partition_of(k) == 0).unwrap();
    let (k1, _) = records
        .iter()
        .filter(|(k, _)| partition_of(k) == 0)
        .nth(1)
        .unwrap();
    let mut m = Mutation::new();
    m.delete(k0.clone())
        .put(k1.clone(), b"after the load".to_vec());
    let mut last = user_write(&rt, &primary, m);

    // A learner joins partition 0: the ingest entry is purged from the log and the files are
    // gone, so it can only learn the data from the checkpoint.
    let gpid = g.gpid;
    let learner_opts = replica_options(&g.root, gpid, 4, &g.gate, None);
    let learner = Arc::new(
        rt.block_on(Replica::open(learner_opts, g.router.clone()))
            .unwrap(),
    );
    rt.block_on(
        primary
            .raft()
            .add_learner(4, BasicNode::new("node-4"), true),
    )
    .unwrap();
    let mut m = Mutation::new();
    m.put(b"user:after-learner".to_vec(), b"tail".to_vec());
    last = last.max(user_write(&rt, &primary, m));
    rt.block_on(learner.wait_applied(Decree(last))).unwrap();
    let skip = vec![k0.clone(), k1.clone()];
    assert_has_all(&learner, 0, &records, &skip);
    for r in g.replicas.iter().chain([&learner]) {
        rt.block_on(r.wait_applied(Decree(last))).unwrap();
        assert_eq!(r.get(k0).unwrap(), None, "replica {}", r.id());
        assert_eq!(r.get(k1).unwrap().as_deref(), Some(&b"after the load"[..]));
        assert_eq!(
            r.get(b"user:after-learner").unwrap().as_deref(),
            Some(&b"tail"[..])
        );
    }
    assert!(
        !learner.state_machine().checkpoints().decrees().is_empty(),
        "the learner installed a checkpoint"
    );

    drop((controller, primary));
    rt.block_on(Arc::try_unwrap(learner).ok().unwrap().close())
        .unwrap();
    for g in groups {
        g.close(&rt);
    }
    eprintln!("end to end in {:?}", started.elapsed());
}
