//! Cold backup and restore in an S3-compatible store: moto's `moto_server` on 127.0.0.1
//! (tests/common/moto.rs; without it each test prints SKIPPED and returns, unless
//! `SILT_REQUIRE_S3=1`). [`S3Target`] itself (writes visible only once finished, small and
//! multipart, listing, removal, path rule, errors naming bucket and key), then through the
//! binaries: a backup under writes to `s3://bucket/prefix` restores to its checkpoints;
//! retention keeps exactly N there; a damaged object is refused by name; bad credentials, no
//! credentials and a missing bucket fail cleanly with nothing written. One test times backup
//! and restore of the same table to S3 and to a directory (printed).

mod common;

use common::backup::*;
use common::moto::Moto;
use common::*;
use siltdb_client::WriteOp;
use siltdb_server::backup::{complete_backups, BackupTarget, LocalDirTarget, S3Target};
use std::io::{Read, Write};
use std::time::Instant;

const BUCKET: &str = "silt-backups";

fn s3_target(m: &Moto, prefix: &str) -> S3Target {
    S3Target::from_builder(m.builder(), BUCKET, prefix).unwrap()
}

fn read_all(t: &dyn BackupTarget, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    t.open(path).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// The target's own contract against a real S3 API, from a blocking thread as the admin runs
/// it.
#[test]
fn s3_target_writes_reads_lists_and_removes() {
    let Some(m) = Moto::start("s3_target_writes_reads_lists_and_removes", None) else {
        return;
    };
    m.create_bucket(BUCKET);
    let t = s3_target(&m, "unit/root");
    assert_eq!(t.describe(), format!("s3://{BUCKET}/unit/root"));
    assert!(t.list().unwrap().is_empty());
    t.check_access().unwrap();

    // A small object: one PUT at finish, invisible before.
    let mut w = t.create("backup-1/0/small").unwrap();
    w.write_all(b"hello ").unwrap();
    w.write_all(b"s3").unwrap();
    assert_eq!(t.read_small("backup-1/0/small", 100).unwrap(), None);
    w.finish().unwrap();
    assert_eq!(read_all(&t, "backup-1/0/small"), b"hello s3");

    // A large one: a multipart upload (parts of 8 MiB), invisible until completed.
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut w = t.create("backup-1/0/big").unwrap();
    for c in big.chunks(1 << 20) {
        w.write_all(c).unwrap();
    }
    let e = t
        .open("backup-1/0/big")
        .err()
        .expect("not visible before finish");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(
        e.to_string()
            .contains(&format!("s3://{BUCKET}/unit/root/backup-1/0/big")),
        "{e}"
    );
    w.finish().unwrap();
    assert!(
        read_all(&t, "backup-1/0/big") == big,
        "multipart object differs"
    );
    // Replaced by a second write (an earlier attempt's leftover).
    let mut w = t.create("backup-1/0/small").unwrap();
    w.write_all(b"again").unwrap();
    w.finish().unwrap();
    assert_eq!(read_all(&t, "backup-1/0/small"), b"again");
    // An unfinished writer leaves nothing, large or small.
    for (name, len) in [("dropped-big", 9usize << 20), ("dropped-small", 10)] {
        let mut w = t.create(&format!("backup-1/0/{name}")).unwrap();
        w.write_all(&vec![1u8; len]).unwrap();
        drop(w);
        assert_eq!(
            t.read_small(&format!("backup-1/0/{name}"), 1 << 30)
                .unwrap(),
            None
        );
    }

    t.put_atomic("backup-1/BACKUP_MANIFEST", b"m").unwrap();
    assert_eq!(
        t.read_small("backup-1/BACKUP_MANIFEST", 1).unwrap(),
        Some(b"m".to_vec())
    );
    let e = t.read_small("backup-1/0/small", 2).unwrap_err();
    assert!(e.to_string().contains("larger than 2 bytes"), "{e}");
    t.seal("backup-1").unwrap();
    assert!(t.seal("..").is_err());

    // Listing: the top level of the prefix only; removal: exactly one backup's objects.
    t.put_atomic("backup-10/0/f", b"x").unwrap();
    t.put_atomic("stray", b"x").unwrap();
    s3_target(&m, "unit/other")
        .put_atomic("backup-9/0/f", b"x")
        .unwrap();
    let mut names = t.list().unwrap();
    names.sort();
    assert_eq!(names, ["backup-1", "backup-10", "stray"]);
    t.remove("backup-1/BACKUP_MANIFEST").unwrap();
    t.remove("backup-1/BACKUP_MANIFEST").unwrap();
    t.remove_all("backup-1").unwrap();
    t.remove_all("backup-1").unwrap();
    let mut names = t.list().unwrap();
    names.sort();
    assert_eq!(names, ["backup-10", "stray"]);
    assert_eq!(read_all(&t, "backup-10/0/f"), b"x");
    assert_eq!(s3_target(&m, "unit").list().unwrap().len(), 2);
    for bad in ["../x", "a/../b", "/etc/passwd", "a//b", ""] {
        assert!(t.create(bad).is_err(), "{bad}");
        assert!(t.open(bad).is_err(), "{bad}");
        assert!(t.put_atomic(bad, b"x").is_err(), "{bad}");
        assert!(t.remove_all(bad).is_err(), "{bad}");
    }

    // A missing bucket is named.
    let e = S3Target::from_builder(m.builder(), "no-such-bucket", "p")
        .unwrap()
        .check_access()
        .unwrap_err();
    assert!(e.to_string().contains("s3://no-such-bucket/p"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_writes_to_s3_restores_to_its_checkpoints() {
    let Some(m) = Moto::start(
        "a_backup_under_writes_to_s3_restores_to_its_checkpoints",
        None,
    ) else {
        return;
    };
    m.create_bucket(BUCKET);
    let c = Cluster::start(3).await;
    let url = format!("s3://{BUCKET}/backups/t");
    let target = s3_target(&m, "backups/t");
    let env = m.env();
    let w = backup_under_writes(&c, &url, &target, &env).await;
    restore_equals(&c, &c.addr(2), &url, "restored", &w, &env).await;
    // One backup's URL restores that backup.
    restore_equals(&c, &c.addr(3), &format!("{url}/{}", w.id), "one", &w, &env).await;
}

/// Puts `n` records of `value_bytes` into [`TABLE`] in batches.
async fn fill(c: &Cluster, n: usize, value_bytes: usize) {
    for start in (0..n).step_by(500) {
        let ops = (start..(start + 500).min(n))
            .map(|i| WriteOp::Put {
                key: format!("k{i:08}").into_bytes(),
                value: vec![(i % 251) as u8; value_bytes],
            })
            .collect();
        c.client.batch(TABLE, ops).await.unwrap();
    }
}

/// The same table backed up and restored through a directory and through S3 (moto), timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_times_s3_and_directory() {
    let Some(m) = Moto::start("backup_and_restore_times_s3_and_directory", None) else {
        return;
    };
    m.create_bucket(BUCKET);
    let c = Cluster::start(1).await;
    let (records, value_bytes) = (40_000, 1_000);
    fill(&c, records, value_bytes).await;
    let a = c.addr(1);
    let env = m.env();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_str().unwrap().to_string();
    let url = format!("s3://{BUCKET}/timed");
    let mut figures = Vec::new();
    for (name, to) in [("directory", &dir), ("s3 (moto)", &url)] {
        let t0 = Instant::now();
        let (ok, out, err) =
            silt_admin_env(&a, &["backup", "--table", TABLE, "--to", to.as_str()], &env);
        let backup = t0.elapsed();
        assert!(ok, "{out}{err}");
        let table = format!("r{}", figures.len());
        let t0 = Instant::now();
        let (ok, out, err) = silt_admin_env(
            &a,
            &["restore", "--from", to.as_str(), "--table", &table],
            &env,
        );
        let restore = t0.elapsed();
        assert!(ok, "{out}{err}");
        assert_eq!(table_records(&c, &table).await.len(), records);
        figures.push((name, backup, restore));
    }
    let bytes: u64 = complete_backups(&LocalDirTarget::new(root.path()))
        .unwrap()
        .iter()
        .flat_map(|(_, m)| m.partitions.iter().flat_map(|p| p.files.iter()))
        .map(|f| f.size_bytes)
        .sum();
    for (name, backup, restore) in &figures {
        println!(
            "backup timing: {records} records of {value_bytes} B ({bytes} backup bytes) to {name}: \
             backup {:.2} s, restore {:.2} s",
            backup.as_secs_f64(),
            restore.as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_s3_keeps_exactly_the_newest_complete_backups() {
    let Some(m) = Moto::start(
        "retention_on_s3_keeps_exactly_the_newest_complete_backups",
        None,
    ) else {
        return;
    };
    m.create_bucket(BUCKET);
    let c = Cluster::start(1).await;
    let a = c.addr(1);
    let env = m.env();
    let url = format!("s3://{BUCKET}/ret");
    let target = s3_target(&m, "ret");
    // An incomplete backup (a crash before its manifest) older than every other.
    target
        .put_atomic("backup-0000000000000005/0/000001.sst", b"partial")
        .unwrap();

    c.client.put(TABLE, b"gen", b"1").await.unwrap();
    let (ok, out, err) = silt_admin_env(&a, &["backup", "--table", TABLE, "--to", &url], &env);
    assert!(ok, "{err}");
    let first = printed_ids(&out).remove(0);
    c.client.put(TABLE, b"gen", b"2").await.unwrap();
    // The policy: three more backups, keep 2.
    let (ok, out, err) = silt_admin_env(
        &a,
        &[
            "backup",
            "--table",
            TABLE,
            "--to",
            &url,
            "--interval",
            "200ms",
            "--count",
            "3",
            "--keep",
            "2",
        ],
        &env,
    );
    assert!(ok, "{out}{err}");
    let ids = printed_ids(&out);
    assert_eq!(ids.len(), 3, "{out}");
    assert!(out.contains("removed backup"), "{out}");
    let left: Vec<String> = complete_backups(&target)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, ids[1..].to_vec(), "{out}");
    let mut names = target.list().unwrap();
    names.sort();
    let mut want = vec!["backup-0000000000000005".to_string()];
    want.extend_from_slice(&ids[1..]);
    assert_eq!(names, want, "the incomplete backup stays, the old ones go");
    assert!(!names.contains(&first) && !names.contains(&ids[0]));
    // Nothing of a removed backup is left under its id.
    assert!(t_is_empty(&target, &ids[0]));

    let (ok, _, err) = silt_admin_env(
        &a,
        &[
            "restore",
            "--from",
            &format!("{url}/{}", ids[1]),
            "--table",
            "r",
        ],
        &env,
    );
    assert!(ok, "{err}");
    assert_eq!(
        c.client.get("r", b"gen").await.unwrap(),
        Some(b"2".to_vec())
    );
}

/// Whether nothing is stored under `id`.
fn t_is_empty(t: &S3Target, id: &str) -> bool {
    t.with_prefix(&format!("{}/{id}", t.prefix()))
        .unwrap()
        .list()
        .unwrap()
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_s3_object_is_refused_by_name() {
    let Some(m) = Moto::start("a_damaged_s3_object_is_refused_by_name", None) else {
        return;
    };
    m.create_bucket(BUCKET);
    let c = Cluster::start(1).await;
    fill(&c, 200, 100).await;
    let a = c.addr(1);
    let env = m.env();
    let url = format!("s3://{BUCKET}/dmg");
    let target = s3_target(&m, "dmg");
    let (ok, out, err) = silt_admin_env(&a, &["backup", "--table", TABLE, "--to", &url], &env);
    assert!(ok, "{out}{err}");
    let id = printed_ids(&out).remove(0);
    let man = target_manifest(&target, &id);
    let (p, f) = man
        .partitions
        .iter()
        .find_map(|p| {
            p.files
                .iter()
                .find(|f| f.name.ends_with(".sst"))
                .map(|f| (p, f))
        })
        .expect("some partition has a table file");
    let path = format!("{id}/{}/{}", p.partition, f.name);
    let good = read_all(&target, &path);
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    target.put_atomic(&path, &bad).unwrap();
    let (ok, out, err) = silt_admin_env(&a, &["restore", "--from", &url, "--table", "r1"], &env);
    assert!(!ok, "a damaged backup was restored: {out}");
    assert!(
        err.contains(&format!("s3://{BUCKET}/dmg/{path}")) && err.contains("damaged"),
        "{err}"
    );
    assert!(err.contains("crc32c"), "{err}");
    assert!(!server_tables(&a).contains("r1"), "a table was created");

    // Repaired, it restores.
    target.put_atomic(&path, &good).unwrap();
    let (ok, out, err) = silt_admin_env(&a, &["restore", "--from", &url, "--table", "r1"], &env);
    assert!(ok, "{out}{err}");
    assert_eq!(table_records(&c, "r1").await.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_or_a_missing_bucket_fail_cleanly() {
    // moto's signature checking (INITIAL_NO_AUTH_ACTION_COUNT with an IAM user's key) refused
    // object_store's correctly signed requests too (SignatureDoesNotMatch for the right key),
    // so a wrong secret is not tested here; every other refusal is.
    let Some(m) = Moto::start("bad_credentials_or_a_missing_bucket_fail_cleanly", None) else {
        return;
    };
    m.create_bucket(BUCKET);
    let c = Cluster::start(1).await;
    c.client.put(TABLE, b"k", b"v").await.unwrap();
    let a = c.addr(1);
    let url = format!("s3://{BUCKET}/p");
    let top = S3Target::from_builder(m.builder(), BUCKET, "").unwrap();
    let backup = |env: &[(String, String)], to: &str| {
        silt_admin_env(&a, &["backup", "--table", TABLE, "--to", to], env)
    };

    // No credentials at all: refused before any request.
    let none: Vec<(String, String)> = m
        .env()
        .into_iter()
        .filter(|(k, _)| !k.contains("ACCESS_KEY"))
        .collect();
    let (ok, _, err) = backup(&none, &url);
    assert!(!ok && err.contains("no AWS credentials"), "{err}");
    // A missing bucket, and a URL without one.
    let right = m.env();
    let (ok, _, err) = backup(&right, "s3://no-such-bucket/p");
    assert!(!ok && err.contains("s3://no-such-bucket/p"), "{err}");
    let (ok, _, err) = backup(&right, "s3:///p");
    assert!(!ok && err.contains("no bucket"), "{err}");
    assert!(top.list().unwrap().is_empty(), "something was written");
    assert!(
        !server_tables(&a).contains("restored"),
        "a table was created"
    );

    // The right key pair works.
    let (ok, out, err) = backup(&right, &url);
    assert!(ok, "{out}{err}");
    assert_eq!(top.list().unwrap(), ["p"]);
    let (ok, _, err) = silt_admin_env(
        &a,
        &["restore", "--from", &url, "--table", "restored"],
        &right,
    );
    assert!(ok, "{err}");
    assert_eq!(
        c.client.get("restored", b"k").await.unwrap(),
        Some(b"v".to_vec())
    );
}
