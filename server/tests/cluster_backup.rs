//! Cold backup and restore through the binaries: `silt-admin backup` of a table under
//! concurrent writes restored with `silt-admin restore` into a new table equal to the backup's
//! checkpoints (every write acknowledged before the backup started is there, nothing that was
//! never written is); a damaged or incomplete backup is refused and no table is created;
//! retention keeps exactly the newest N complete backups; a restore of an older backup's
//! directory gives that backup's data.

mod common;

use common::*;
use siltdb_client::backup::{BackupReply, BackupRequest};
use siltdb_replica::siltdb::{Db, Options, ReadOptions};
use siltdb_server::backup::{complete_backups, BackupManifest, LocalDirTarget};
use siltdb_server::proto::{ClientRequest, ClientResponse};
use siltdb_server::ServerError;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const RESERVED: &[u8] = b"\0silt/";

/// The backup ids `silt-admin backup` printed, in order.
fn printed_ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("backup "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn manifest(root: &Path, id: &str) -> BackupManifest {
    let bytes = std::fs::read(root.join(id).join("BACKUP_MANIFEST")).unwrap();
    BackupManifest::decode(&bytes, id).unwrap()
}

/// Every user record of every partition checkpoint of backup `id`, read with the engine from
/// a copy (opening an engine writes to its directory).
fn checkpoint_records(root: &Path, id: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let m = manifest(root, id);
    let scratch = tempfile::tempdir().unwrap();
    let mut all = BTreeMap::new();
    for p in &m.partitions {
        let src = root.join(id).join(p.partition.to_string());
        let dst = scratch.path().join(p.partition.to_string());
        std::fs::create_dir_all(&dst).unwrap();
        for f in &p.files {
            std::fs::copy(src.join(&f.name), dst.join(&f.name)).unwrap();
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

async fn table_records(c: &Cluster, table: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    c.client.forget_layout(table);
    c.client
        .scan(table, b"", None, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn server_tables(addr: &str) -> String {
    let (ok, out, err) = silt_admin(addr, &["tables"]);
    assert!(ok, "{err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_writes_restores_to_its_checkpoints() {
    let c = Cluster::start(3).await;
    let root = tempfile::tempdir().unwrap();
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
    let dir = root.path().to_str().unwrap().to_string();
    let (ok, out, err) = silt_admin(&c.addr(1), &["backup", "--table", TABLE, "--to", &dir]);
    stop.store(true, Ordering::Relaxed);
    let attempted = writer.await.unwrap();
    assert!(ok, "backup failed: {out}{err}");
    let ids = printed_ids(&out);
    assert_eq!(ids.len(), 1, "{out}");
    let id = &ids[0];
    assert!(attempted.len() > 1, "the writer wrote during the backup");

    let m = manifest(root.path(), id);
    assert_eq!(m.table, TABLE);
    assert_eq!(m.partition_count, PARTITIONS);
    assert!(m
        .partitions
        .iter()
        .all(|p| p.decree > 0 && !p.files.is_empty()));
    let snapshot = checkpoint_records(root.path(), id);
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

    let (ok, out, err) = silt_admin(
        &c.addr(2),
        &["restore", "--from", &dir, "--table", "restored"],
    );
    assert!(ok, "restore failed: {out}{err}");
    assert!(out.contains(id.as_str()), "{out}");
    // The restored table equals the checkpoints, partition count and all.
    let restored = table_records(&c, "restored").await;
    assert_eq!(restored.len(), snapshot.len());
    assert!(
        restored == snapshot,
        "the restored table differs from the backup"
    );
    let layout = c.client.layout("restored").await.unwrap();
    assert_eq!(layout.partition_count, PARTITIONS);
    assert_eq!(layout.replica_count, 3);
    assert_ne!(layout.app_id, c.layout.app_id);
    // The source is untouched and a restore into an existing table is refused.
    assert!(table_records(&c, TABLE).await.len() >= snapshot.len());
    let (ok, _, err) = silt_admin(
        &c.addr(1),
        &["restore", "--from", &dir, "--table", "restored"],
    );
    assert!(!ok && err.contains("exists"), "{err}");

    // Only a partition's leader stages its checkpoint: the followers redirect.
    let prepare = ClientRequest::Backup(BackupRequest::Prepare {
        table: TABLE.into(),
        partition: 0,
    });
    let mut followers = 0;
    for id in 1..=3 {
        match c.client.call(&c.addr(id), &prepare).await.unwrap() {
            ClientResponse::Backup(BackupReply::Prepared { session, .. }) => {
                let release = ClientRequest::Backup(BackupRequest::Release { session });
                c.client.call(&c.addr(id), &release).await.unwrap();
            }
            ClientResponse::Error(ServerError::NotLeader { .. }) => followers += 1,
            other => panic!("node {id}: {other:?}"),
        }
    }
    assert!(followers >= 2, "{followers} followers refused");
}

/// A damaged file (one flipped byte, then a truncation) and an incomplete backup are
/// refused with the file named, and no table is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_incomplete_backup_is_refused() {
    let c = Cluster::start(1).await;
    for i in 0..200 {
        let k = format!("k{i:04}");
        c.client
            .put(TABLE, k.as_bytes(), &[7u8; 100])
            .await
            .unwrap();
    }
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap().to_string();
    let (ok, out, err) = silt_admin(&c.addr(1), &["backup", "--table", TABLE, "--to", &dir]);
    assert!(ok, "{out}{err}");
    let id = printed_ids(&out).remove(0);
    let m = manifest(root.path(), &id);
    let (p, f) = m
        .partitions
        .iter()
        .find_map(|p| {
            p.files
                .iter()
                .find(|f| f.name.ends_with(".sst"))
                .map(|f| (p, f))
        })
        .expect("some partition has a table file");
    let path: PathBuf = root
        .path()
        .join(&id)
        .join(p.partition.to_string())
        .join(&f.name);
    let good = std::fs::read(&path).unwrap();

    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&path, &bad).unwrap();
    let (ok, out, err) = silt_admin(&c.addr(1), &["restore", "--from", &dir, "--table", "r1"]);
    assert!(!ok, "a damaged backup was restored: {out}");
    assert!(err.contains(&f.name) && err.contains("damaged"), "{err}");
    assert!(err.contains("crc32c"), "{err}");
    assert!(
        !server_tables(&c.addr(1)).contains("r1"),
        "a table was created"
    );

    std::fs::write(&path, &good[..good.len() - 1]).unwrap();
    let (ok, _, err) = silt_admin(&c.addr(1), &["restore", "--from", &dir, "--table", "r1"]);
    assert!(
        !ok && err.contains(&f.name) && err.contains("bytes"),
        "{err}"
    );
    assert!(!server_tables(&c.addr(1)).contains("r1"));

    // Without its manifest the backup is incomplete: never restored.
    std::fs::write(&path, &good).unwrap();
    let manifest_path = root.path().join(&id).join("BACKUP_MANIFEST");
    let manifest_bytes = std::fs::read(&manifest_path).unwrap();
    std::fs::remove_file(&manifest_path).unwrap();
    let (ok, _, err) = silt_admin(&c.addr(1), &["restore", "--from", &dir, "--table", "r1"]);
    assert!(!ok && err.contains("no complete backup"), "{err}");
    assert!(!server_tables(&c.addr(1)).contains("r1"));

    // The server serves only its own staged files, by name, to a session it opened.
    let read = |session: u64, file: &str| {
        ClientRequest::Backup(BackupRequest::Read {
            session,
            file: file.to_string(),
            offset: 0,
            len_max: 16,
        })
    };
    let prepare = ClientRequest::Backup(BackupRequest::Prepare {
        table: TABLE.into(),
        partition: 0,
    });
    let ClientResponse::Backup(BackupReply::Prepared { session, files, .. }) =
        c.client.call(&c.addr(1), &prepare).await.unwrap()
    else {
        panic!("prepare failed");
    };
    for bad in ["../../tables/t.json", "/etc/passwd", "nope.sst"] {
        match c
            .client
            .call(&c.addr(1), &read(session, bad))
            .await
            .unwrap()
        {
            ClientResponse::Error(ServerError::InvalidArgument(m)) => {
                assert!(m.contains("has no file"), "{m}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    match c
        .client
        .call(&c.addr(1), &read(session, &files[0].name))
        .await
        .unwrap()
    {
        ClientResponse::Backup(BackupReply::Chunk(b)) => {
            assert_eq!(b.len() as u64, files[0].size_bytes.min(16))
        }
        other => panic!("{other:?}"),
    }
    let release = ClientRequest::Backup(BackupRequest::Release { session });
    assert!(matches!(
        c.client.call(&c.addr(1), &release).await.unwrap(),
        ClientResponse::Backup(BackupReply::Released)
    ));
    match c
        .client
        .call(&c.addr(1), &read(session, &files[0].name))
        .await
        .unwrap()
    {
        ClientResponse::Error(ServerError::InvalidArgument(m)) => {
            assert!(m.contains("no backup session"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    let staged = c.procs[0].dir.join("data").join("backup_sessions");
    assert_eq!(
        std::fs::read_dir(&staged).map_or(0, |d| d.count()),
        0,
        "staged files left"
    );

    // Repaired, the same backup restores.
    std::fs::write(&manifest_path, &manifest_bytes).unwrap();
    let (ok, out, err) = silt_admin(&c.addr(1), &["restore", "--from", &dir, "--table", "r1"]);
    assert!(ok, "{out}{err}");
    assert_eq!(table_records(&c, "r1").await.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_exactly_the_newest_complete_backups() {
    let c = Cluster::start(1).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap().to_string();
    let a = c.addr(1);
    // An incomplete backup (a crash before its manifest) older than every other.
    let incomplete = root.path().join("backup-0000000000000005");
    std::fs::create_dir_all(incomplete.join("0")).unwrap();
    std::fs::write(incomplete.join("0").join("000001.sst"), b"partial").unwrap();

    c.client.put(TABLE, b"gen", b"1").await.unwrap();
    let (ok, out, err) = silt_admin(&a, &["backup", "--table", TABLE, "--to", &dir]);
    assert!(ok, "{err}");
    let first = printed_ids(&out).remove(0);
    c.client.put(TABLE, b"gen", b"2").await.unwrap();
    let (ok, out, err) = silt_admin(
        &a,
        &["backup", "--table", TABLE, "--to", &dir, "--keep", "5"],
    );
    assert!(ok, "{err}");
    let second = printed_ids(&out).remove(0);

    // One backup's directory restores that backup; the root restores its newest.
    let first_dir = root.path().join(&first);
    let (ok, _, err) = silt_admin(
        &a,
        &[
            "restore",
            "--from",
            first_dir.to_str().unwrap(),
            "--table",
            "old",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        c.client.get("old", b"gen").await.unwrap(),
        Some(b"1".to_vec())
    );
    let (ok, _, err) = silt_admin(&a, &["restore", "--from", &dir, "--table", "new"]);
    assert!(ok, "{err}");
    assert_eq!(
        c.client.get("new", b"gen").await.unwrap(),
        Some(b"2".to_vec())
    );

    // The policy: three more backups, keep 2.
    let (ok, out, err) = silt_admin(
        &a,
        &[
            "backup",
            "--table",
            TABLE,
            "--to",
            &dir,
            "--interval",
            "200ms",
            "--count",
            "3",
            "--keep",
            "2",
        ],
    );
    assert!(ok, "{out}{err}");
    let ids = printed_ids(&out);
    assert_eq!(ids.len(), 3, "{out}");
    let left: Vec<String> = complete_backups(&LocalDirTarget::new(root.path()))
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, ids[1..].to_vec(), "{out}");
    let names: BTreeSet<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.contains("backup-0000000000000005"),
        "the incomplete backup was removed"
    );
    assert!(!names.contains(&first) && !names.contains(&second));
    assert_eq!(names.len(), 3, "{names:?}");

    // A backup of a missing table fails and leaves nothing.
    let (ok, _, err) = silt_admin(&a, &["backup", "--table", "missing", "--to", &dir]);
    assert!(!ok && err.contains("missing"), "{err}");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 3);

    // Bad policy flags are refused.
    for bad in [
        &["--keep", "0"][..],
        &["--interval", "soon"],
        &["--count", "2"],
    ] {
        let mut args = vec!["backup", "--table", TABLE, "--to", &dir];
        args.extend_from_slice(bad);
        let (ok, _, err) = silt_admin(&a, &args);
        assert!(!ok && !err.is_empty(), "{bad:?}");
    }
}
