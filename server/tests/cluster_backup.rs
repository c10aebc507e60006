//! Cold backup and restore through the binaries: `silt-admin backup` of a table under
//! concurrent writes restored with `silt-admin restore` into a new table equal to the backup's
//! checkpoints (every write acknowledged before the backup started is there, nothing that was
//! never written is); a damaged or incomplete backup is refused and no table is created;
//! retention keeps exactly the newest N complete backups; a restore of an older backup's
//! directory gives that backup's data.

mod common;

use common::backup::*;
use common::*;
use siltdb_client::backup::{BackupReply, BackupRequest};
use siltdb_server::backup::{complete_backups, LocalDirTarget};
use siltdb_server::proto::{ClientRequest, ClientResponse};
use siltdb_server::ServerError;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_writes_restores_to_its_checkpoints() {
    let c = Cluster::start(3).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap().to_string();
    let target = LocalDirTarget::new(root.path());
    let w = backup_under_writes(&c, &dir, &target, &[]).await;
    let snapshot = &w.snapshot;
    restore_equals(&c, &c.addr(2), &dir, "restored", &w, &[]).await;
    let layout = c.client.layout("restored").await.unwrap();
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
    let m = target_manifest(&LocalDirTarget::new(root.path()), &id);
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
