//! `sst-ingest db ...`: get/put/delete/scan/stats/checkpoint/compact, binary keys, exit codes.

mod common;
use common::*;
use std::ffi::OsStr;

#[test]
fn put_get_delete_scan_and_missing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db");
    let missing = db(&db_dir, &["get", "a"]).expect_code(1);
    assert!(missing.stderr.contains("no database at"), "{missing:?}");

    db(&db_dir, &["put", "a", "1"]).ok();
    db(&db_dir, &["put", "b", "two words"]).ok();
    db(
        &db_dir,
        &[
            "--key-encoding",
            "hex",
            "--value-encoding",
            "hex",
            "put",
            "00ff",
            "0a5c",
        ],
    )
    .ok();
    assert_eq!(db(&db_dir, &["get", "b"]).ok().stdout, "two words\n");

    let absent = db(&db_dir, &["get", "zzz"]).expect_code(1);
    assert_eq!(absent.stdout, "");
    assert!(absent.stderr.contains("key not found: zzz"), "{absent:?}");

    let scan = db(&db_dir, &["scan"]).ok();
    assert_eq!(scan.stdout, "\\x00\\xff\t\\x0a\\\\\na\t1\nb\ttwo words\n");
    let raw = db(
        &db_dir,
        &["--key-encoding", "hex", "get", "00ff", "--output", "raw"],
    )
    .ok();
    assert_eq!(raw.stdout_bytes, b"\n\\");
    let b64 = db(&db_dir, &["scan", "--output", "base64", "--from", "a"]).ok();
    assert_eq!(b64.stdout, "YQ==\tMQ==\nYg==\tdHdvIHdvcmRz\n");

    db(&db_dir, &["delete", "a"]).ok();
    db(&db_dir, &["get", "a"]).expect_code(1);
    assert_eq!(
        db(&db_dir, &["scan", "--reverse", "--limit", "1"])
            .ok()
            .stdout,
        "b\ttwo words\n"
    );

    let bad = db(&db_dir, &["--key-encoding", "hex", "get", "zz"]).expect_code(2);
    assert!(bad.stderr.contains("invalid hex digit 'z'"), "{bad:?}");
}

#[test]
fn stats_compact_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db");
    for i in 0..50 {
        db(&db_dir, &["put", &format!("k{i:02}"), &format!("v{i}")]).ok();
    }
    db(&db_dir, &["compact"]).ok();
    let stats = db(&db_dir, &["stats"]).ok();
    assert!(!stats.stdout.trim().is_empty(), "{stats:?}");

    let checkpoint = dir.path().join("cp");
    let made = db(&db_dir, &["checkpoint", checkpoint.to_str().unwrap()]).ok();
    assert!(made.stdout.contains("checkpoint written"), "{made:?}");
    assert_eq!(db(&checkpoint, &["get", "k42"]).ok().stdout, "v42\n");
    assert_eq!(db(&checkpoint, &["scan"]).ok().stdout.lines().count(), 50);
    let again = db(&db_dir, &["checkpoint", checkpoint.to_str().unwrap()]).expect_code(3);
    assert!(again.stderr.contains("checkpoint"), "{again:?}");
}

#[test]
fn the_demo_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let out = run([
        OsStr::new("demo"),
        OsStr::new("--rows"),
        OsStr::new("20000"),
        OsStr::new("--dir"),
        p(&demo_dir),
    ])
    .ok();
    for want in [
        "write       20000 puts",
        "build       built",
        "ingest      verified and ingested",
        "read        40000 entries",
        "reopened with 40000 entries",
        "allocator   mimalloc ",
    ] {
        assert!(
            out.stdout.contains(want),
            "demo report lacks {want:?}:\n{}",
            out.stdout
        );
    }
    assert_eq!(
        db(&demo_dir.join("checkpoint"), &["get", "csv:00000100"])
            .ok()
            .stdout,
        "updated, \"100\"\n"
    );
    run([
        OsStr::new("demo"),
        OsStr::new("--rows"),
        OsStr::new("10"),
        OsStr::new("--dir"),
        p(&demo_dir),
    ])
    .expect_code(2);
}
