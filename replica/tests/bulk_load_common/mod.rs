//! Shared fixtures for the bulk-load tests: SST files built with `siltdb::SstWriter`, metadata
//! written by hand, a `TestProvider` holding them, and one partition over a real `siltdb::Db`.
#![allow(dead_code)]

use siltdb_replica::bulk_load::download::DownloadManager;
use siltdb_replica::bulk_load::metadata::{encode_hex, BulkLoadMetadata, FileEntry};
use siltdb_replica::bulk_load::metrics::BulkLoadMetrics;
use siltdb_replica::bulk_load::provider::{BulkLoadProvider, TestProvider};
use siltdb_replica::bulk_load::target::{DirectDbTarget, IngestionGate};
use siltdb_replica::bulk_load::{BulkLoadStatus, PartitionBulkLoad, PartitionConfig};
use siltdb_replica::siltdb::{Db, Options, SstWriter, SstWriterOptions};
use siltdb_replica::{Ballot, Gpid};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Key of entry `i` of file `file` of partition `p`: files do not overlap and sort by number.
pub fn key(p: u32, file: usize, i: usize) -> Vec<u8> {
    format!("bulk-p{p}-f{file:03}-k{i:05}").into_bytes()
}

/// Value stored for a key.
pub fn value(key: &[u8]) -> Vec<u8> {
    let mut v = b"value-of-".to_vec();
    v.extend_from_slice(key);
    v.resize(64, b'.');
    v
}

/// One SST of partition `p`: (metadata entry, bytes).
pub fn build_sst(scratch: &Path, p: u32, file: usize, entries: usize) -> (FileEntry, Vec<u8>) {
    let name = format!("{:06}.sst", file + 1);
    let path = scratch.join(format!("p{p}-{name}"));
    let mut writer = SstWriter::create(&path, &SstWriterOptions::default()).unwrap();
    for i in 0..entries {
        let k = key(p, file, i);
        writer.put(&k, value(&k)).unwrap();
    }
    let info = writer.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let entry = FileEntry {
        name,
        size: bytes.len() as u64,
        crc32c: crc32c::crc32c(&bytes),
        smallest_key: encode_hex(&info.smallest_key),
        largest_key: encode_hex(&info.largest_key),
        entries: info.entries,
    };
    (entry, bytes)
}

/// Puts `files` SSTs for partition `p` into `provider` with matching metadata; returns the
/// metadata so tests can tamper with it.
pub fn stage_partition(
    provider: &TestProvider,
    scratch: &Path,
    p: u32,
    files: usize,
    entries: usize,
) -> BulkLoadMetadata {
    let mut listed = Vec::new();
    for f in 0..files {
        let (entry, bytes) = build_sst(scratch, p, f, entries);
        provider.put_file(p, &entry.name, bytes);
        listed.push(entry);
    }
    let metadata = BulkLoadMetadata::new(listed);
    provider.put_metadata(p, metadata.to_json());
    metadata
}

/// One partition's replica: engine, gate, target, driver.
pub struct Replica {
    pub db: Arc<Db>,
    pub target: Arc<DirectDbTarget>,
    pub gate: Arc<IngestionGate>,
    pub partition: Arc<PartitionBulkLoad>,
    pub config: PartitionConfig,
}

pub fn small_options() -> Options {
    Options {
        create_if_missing: true,
        ..Options::default()
    }
}

impl Replica {
    pub fn open(
        root: &Path,
        p: u32,
        options: Options,
        provider: Arc<dyn BulkLoadProvider>,
        downloads: &Arc<DownloadManager>,
    ) -> Replica {
        let replica_dir = root.join(format!("replica-{p}"));
        std::fs::create_dir_all(&replica_dir).unwrap();
        let db = Arc::new(Db::open(replica_dir.join("db"), options).unwrap());
        Self::with_db(db, &replica_dir, p, provider, downloads)
    }

    pub fn with_db(
        db: Arc<Db>,
        replica_dir: &Path,
        p: u32,
        provider: Arc<dyn BulkLoadProvider>,
        downloads: &Arc<DownloadManager>,
    ) -> Replica {
        let gate = IngestionGate::new(downloads.metrics().clone());
        let target = Arc::new(DirectDbTarget::new(
            db.clone(),
            Ballot(1),
            replica_dir.join("checkpoints"),
            gate.clone(),
        ));
        let mut config = PartitionConfig::new(Gpid::new(1, p), replica_dir);
        config.ingest_timeout = Duration::from_secs(60);
        config.ingest_attempt_timeout = Duration::from_secs(5);
        let partition = PartitionBulkLoad::open(
            config.clone(),
            provider,
            target.clone(),
            gate.clone(),
            downloads.clone(),
        )
        .unwrap();
        Replica {
            db,
            target,
            gate,
            partition,
            config,
        }
    }
}

pub fn node(slots: usize) -> Arc<DownloadManager> {
    DownloadManager::new(slots, Arc::new(BulkLoadMetrics::default()))
}

/// Polls until `status` or panics after `wait_max`, printing the progress.
pub fn poll_until(partition: &PartitionBulkLoad, status: BulkLoadStatus, wait_max: Duration) {
    let deadline = Instant::now() + wait_max;
    loop {
        let progress = partition.poll().unwrap();
        if progress.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {wait_max:?} for {status}: {progress:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every key of partition `p` is readable with its value.
pub fn assert_loaded(db: &Db, p: u32, files: usize, entries: usize) {
    for f in 0..files {
        for i in 0..entries {
            let k = key(p, f, i);
            assert_eq!(
                db.get(&k).unwrap(),
                Some(value(&k)),
                "{:?}",
                String::from_utf8_lossy(&k)
            );
        }
    }
}

/// Random-ish u64 without a dependency on test ordering.
pub fn seed() -> u64 {
    std::env::var("SILT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(42)
        })
}

/// True when `SILT_SOAK=1` asks for the long run (the same rule as `common::soak`).
pub fn soak() -> bool {
    std::env::var("SILT_SOAK").is_ok_and(|v| v == "1")
}

pub mod group;
