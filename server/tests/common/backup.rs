//! The backup tests' shared steps (cluster_backup.rs on a directory, backup_s3.rs on S3): what
//! `silt-admin backup` printed, a backup's manifest and checkpoint records read through a
//! [`BackupTarget`], and the whole "backup under writes, restore, compare" scenario.

use super::*;
use siltdb_replica::siltdb::{Db, Options, ReadOptions};
use siltdb_server::backup::{BackupManifest, BackupTarget};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

const RESERVED: &[u8] = b"\0silt/";

/// The backup ids `silt-admin backup` printed, in order.
pub fn printed_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("backup "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The manifest of backup `id` in `t`.
pub fn target_manifest(t: &dyn BackupTarget, id: &str) -> BackupManifest {
    let bytes = t
        .read_small(&format!("{id}/BACKUP_MANIFEST"), 1 << 24)
        .unwrap()
        .expect("the backup has a manifest");
    BackupManifest::decode(&bytes, id).unwrap()
}

/// Every user record of every partition checkpoint of backup `id` in `t`, read with the engine
/// from a copy (opening an engine writes to its directory).
pub fn checkpoint_records(t: &dyn BackupTarget, id: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let m = target_manifest(t, id);
    let scratch = tempfile::tempdir().unwrap();
    let mut all = BTreeMap::new();
    for p in &m.partitions {
        let dst = scratch.path().join(p.partition.to_string());
        std::fs::create_dir_all(&dst).unwrap();
        for f in &p.files {
            let mut bytes = Vec::new();
            t.open(&format!("{id}/{}/{}", p.partition, f.name))
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            std::fs::write(dst.join(&f.name), bytes).unwrap();
        }
        let db = Db::open(&dst, Options::default()).unwrap();
        for item in db.iter(&ReadOptions::default()) {
            let (k, v) = item.unwrap();
            if !k.starts_with(RESERVED) {
                all.insert(k, v);
            }
        }
        db.close().unwrap();
    }
    all
}

/// Every record of `table`, through a fresh layout.
pub async fn table_records(c: &Cluster, table: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    c.client.forget_layout(table);
    c.client
        .scan(table, b"", None, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// `silt-admin tables` of `addr`.
pub fn server_tables(addr: &str) -> String {
    let (ok, out, err) = silt_admin(addr, &["tables"]);
    assert!(ok, "{err}");
    out
}

/// What [`backup_under_writes`] made.
pub struct UnderWrites {
    /// The backup's id.
    pub id: String,
    /// Its checkpoints' records.
    pub snapshot: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Writes [`TABLE`] (puts, overwrites, deletes), then runs `silt-admin backup --to <to>`
/// (environment `env`) while a writer keeps writing, and checks the backup in `target` (the
/// same place as `to`): everything acknowledged before the backup started is in its
/// checkpoints, nothing that was never written is, nor anything deleted before.
pub async fn backup_under_writes(
    c: &Cluster,
    to: &str,
    target: &dyn BackupTarget,
    env: &[(String, String)],
) -> UnderWrites {
    let mut acked_before: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for i in 0..300 {
        let (k, v) = (format!("pre-{i:04}"), format!("v{i}"));
        c.client
            .put(TABLE, k.as_bytes(), v.as_bytes())
            .await
            .unwrap();
        acked_before.insert(k.into_bytes(), v.into_bytes());
    }
    // Overwrites and deletes too: the checkpoint holds the latest of each.
    for i in 0..20 {
        let k = format!("pre-{i:04}");
        c.client
            .put(TABLE, k.as_bytes(), b"rewritten")
            .await
            .unwrap();
        acked_before.insert(k.into_bytes(), b"rewritten".to_vec());
    }
    for i in 20..30 {
        let k = format!("pre-{i:04}");
        c.client.delete(TABLE, k.as_bytes()).await.unwrap();
        acked_before.remove(k.as_bytes());
    }
    let deleted: Vec<Vec<u8>> = (20..30)
        .map(|i| format!("pre-{i:04}").into_bytes())
        .collect();

    // A writer keeps writing during the backup; `attempted` holds every value it ever sent.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let client = Arc::clone(&c.client);
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut attempted = BTreeMap::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (k, v) = (format!("live-{i:06}"), format!("w{i}"));
                attempted.insert(k.clone().into_bytes(), v.clone().into_bytes());
                let _ = client.put(TABLE, k.as_bytes(), v.as_bytes()).await;
                i += 1;
            }
            attempted
        })
    };
    // Let the writer get going, so that the backup runs among its writes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, out, err) = silt_admin_env(&c.addr(1), &["backup", "--table", TABLE, "--to", to], env);
    stop.store(true, Ordering::Relaxed);
    let attempted = writer.await.unwrap();
    assert!(ok, "backup failed: {out}{err}");
    let ids = printed_ids(&out);
    assert_eq!(ids.len(), 1, "{out}");
    let id = ids[0].clone();
    assert!(attempted.len() > 1, "the writer wrote during the backup");

    let m = target_manifest(target, &id);
    assert_eq!(m.table, TABLE);
    assert_eq!(m.partition_count, PARTITIONS);
    assert!(m
        .partitions
        .iter()
        .all(|p| p.decree > 0 && !p.files.is_empty()));
    let snapshot = checkpoint_records(target, &id);
    // Everything acknowledged before the backup started is in its checkpoints...
    for (k, v) in &acked_before {
        assert_eq!(
            snapshot.get(k),
            Some(v),
            "{:?} missing",
            String::from_utf8_lossy(k)
        );
    }
    // ...and nothing that was never written (or was deleted before).
    for (k, v) in &snapshot {
        let known = acked_before.get(k).or_else(|| attempted.get(k));
        assert_eq!(
            known,
            Some(v),
            "{:?} was never written",
            String::from_utf8_lossy(k)
        );
    }
    for k in &deleted {
        assert!(!snapshot.contains_key(k));
    }
    UnderWrites { id, snapshot }
}

/// `silt-admin --addr <addr> restore --from <from> --table <table>` (environment `env`),
/// then checks that `table` equals the backup's checkpoints with [`PARTITIONS`] partitions.
pub async fn restore_equals(
    c: &Cluster,
    addr: &str,
    from: &str,
    table: &str,
    w: &UnderWrites,
    env: &[(String, String)],
) {
    let (ok, out, err) = silt_admin_env(addr, &["restore", "--from", from, "--table", table], env);
    assert!(ok, "restore failed: {out}{err}");
    assert!(out.contains(w.id.as_str()), "{out}");
    // The restored table equals the checkpoints, partition count and all.
    let restored = table_records(c, table).await;
    assert_eq!(restored.len(), w.snapshot.len());
    assert!(
        restored == w.snapshot,
        "the restored table differs from the backup"
    );
    let layout = c.client.layout(table).await.unwrap();
    assert_eq!(layout.partition_count, PARTITIONS);
}
