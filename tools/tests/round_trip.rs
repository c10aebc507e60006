//! CSV, TSV and JSONL -> build -> verify -> ingest -> get/scan, through the binary.

mod common;
use common::*;

fn load(
    format: &str,
    name: &str,
    text: &str,
    extra: &[&str],
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), name, text);
    let bulk = dir.path().join("bulk");
    let built = build(format, &[&input], &bulk, extra).ok();
    assert!(built.stdout.contains("built 1 file(s)"), "{built:?}");
    assert_eq!(entries(&bulk), ["000001.sst", "bulk_load_metadata.json"]);
    run([std::ffi::OsStr::new("verify"), p(&bulk)]).ok();
    let db_dir = dir.path().join("db");
    let ingested = run([
        std::ffi::OsStr::new("ingest"),
        std::ffi::OsStr::new("--db"),
        p(&db_dir),
        p(&bulk),
    ])
    .ok();
    assert!(
        ingested.stdout.contains("ingested 1 file(s)"),
        "{ingested:?}"
    );
    (dir, db_dir)
}

#[test]
fn csv_round_trip_with_quoting() {
    let text = "key,value\r\nb,\"two, with comma\"\r\na,1\r\n\"c\nd\",\"say \"\"hi\"\"\"\r\n";
    let (_dir, db_dir) = load("csv", "data.csv", text, &["--header"]);
    assert_eq!(db(&db_dir, &["get", "a"]).ok().stdout, "1\n");
    assert_eq!(db(&db_dir, &["get", "b"]).ok().stdout, "two, with comma\n");
    let scan = db(&db_dir, &["scan"]).ok();
    assert_eq!(
        scan.stdout,
        "a\t1\nb\ttwo, with comma\nc\\x0ad\tsay \"hi\"\n"
    );
    assert_eq!(
        db(&db_dir, &["get", "c\nd", "--output", "raw"]).ok().stdout,
        "say \"hi\""
    );
}

#[test]
fn tsv_round_trip() {
    let text = "k2\tv2\nk1\t\"tab\there\"\nk3\t\n";
    let (_dir, db_dir) = load("tsv", "data.tsv", text, &[]);
    let scan = db(&db_dir, &["scan"]).ok();
    assert_eq!(scan.stdout, "k1\ttab\\x09here\nk2\tv2\nk3\t\n");
}

#[test]
fn jsonl_round_trip_with_hex_and_base64() {
    let text = "{\"key\":\"ff00\",\"value\":\"aGVsbG8=\"}\n\n{\"value\":\"d29ybGQ=\",\"key\":\"01\",\"ts\":5}\n";
    let (_dir, db_dir) = load(
        "jsonl",
        "data.jsonl",
        text,
        &["--key-encoding", "hex", "--value-encoding", "base64"],
    );
    assert_eq!(
        db(&db_dir, &["--key-encoding", "hex", "get", "ff00"])
            .ok()
            .stdout,
        "hello\n"
    );
    let scan = db(&db_dir, &["scan", "--output", "hex"]).ok();
    assert_eq!(scan.stdout, "01\t776f726c64\nff00\t68656c6c6f\n");
    let scan = db(&db_dir, &["scan"]).ok();
    assert_eq!(scan.stdout, "\\x01\tworld\n\\xff\\x00\thello\n");
}

#[test]
fn unsorted_input_with_duplicates_last_wins() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.csv", "z,1\nm,1\na,1\nm,2\n");
    let b = write(dir.path(), "b.csv", "a,2\nq,1\nm,3\n");
    let bulk = dir.path().join("bulk");
    let built = build("csv", &[&a, &b], &bulk, &[]).ok();
    assert!(built.stdout.contains("4 entries"), "{built:?}");
    assert!(built.stdout.contains("3 duplicates dropped"), "{built:?}");
    let dump = run([std::ffi::OsStr::new("dump"), p(&bulk.join("000001.sst"))]).ok();
    assert_eq!(dump.stdout, "a\t2\nm\t3\nq\t1\nz\t1\n");

    let strict = dir.path().join("strict");
    let failed = build("csv", &[&a, &b], &strict, &["--fail-on-duplicate"]).expect_code(2);
    assert!(
        failed.stderr.contains(&format!(
            "{}:1: duplicate key \"a\" (hex 61), first seen at {}:3",
            b.display(),
            a.display()
        )),
        "{failed:?}"
    );
    assert!(!strict.exists());
}

#[test]
fn input_larger_than_the_memory_budget_spills_and_splits() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 20_000u64;
    let mut text = String::new();
    for r in 0..rows {
        let i = r * 7919 % rows;
        text.push_str(&format!("key{i:06},value-{i}-{}\n", "x".repeat(40)));
    }
    text.push_str("key000007,final\n");
    let input = write(dir.path(), "big.csv", &text);
    let bulk = dir.path().join("bulk");
    let built = build(
        "csv",
        &[&input],
        &bulk,
        &[
            "--memory-budget",
            "64KiB",
            "--target-file-size",
            "256KiB",
            "--compression",
            "zstd",
        ],
    )
    .ok();
    let runs: u64 = built
        .stdout
        .split(", ")
        .find_map(|part| part.strip_suffix(" sort runs spilled)\n"))
        .and_then(|n| n.parse().ok())
        .expect("runs in summary");
    assert!(runs > 10, "expected many sort runs: {built:?}");
    let files = entries(&bulk);
    assert!(files.len() > 3, "expected several SST files: {files:?}");
    assert_eq!(files[0], "000001.sst");
    run([std::ffi::OsStr::new("verify"), p(&bulk)]).ok();

    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bulk.join("bulk_load_metadata.json")).unwrap())
            .unwrap();
    assert_eq!(meta["totals"]["entries"], rows);
    assert_eq!(meta["totals"]["files"], files.len() as u64 - 1);
    assert_eq!(meta["files"][0]["smallest_key"], hex::encode("key000000"));

    let db_dir = dir.path().join("db");
    run([
        std::ffi::OsStr::new("ingest"),
        std::ffi::OsStr::new("--db"),
        p(&db_dir),
        p(&bulk),
        std::ffi::OsStr::new("--move"),
    ])
    .ok();
    assert!(!bulk.exists(), "--move removes the bulk-load directory");
    assert_eq!(db(&db_dir, &["get", "key000007"]).ok().stdout, "final\n");
    let scan = db(
        &db_dir,
        &["scan", "--from", "key000100", "--to", "key000103"],
    )
    .ok();
    assert_eq!(scan.stdout.lines().count(), 3);
    assert!(scan.stdout.starts_with("key000100\tvalue-100-"));
    let reverse = db(&db_dir, &["scan", "--reverse", "--limit", "2"]).ok();
    let keys: Vec<&str> = reverse
        .stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(keys, ["key019999", "key019998"]);
    assert_eq!(
        db(&db_dir, &["scan"]).ok().stdout.lines().count() as u64,
        rows
    );
}

#[test]
fn inspect_shows_properties() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "d.csv", "b,2\na,1\n");
    let bulk = dir.path().join("bulk");
    build("csv", &[&input], &bulk, &[]).ok();
    let out = run([std::ffi::OsStr::new("inspect"), p(&bulk.join("000001.sst"))]).ok();
    for want in [
        "entries:             2",
        "smallest key:        a",
        "largest key:         b",
        "data blocks:         1",
        "creator:             SstWriter",
    ] {
        assert!(
            out.stdout.contains(want),
            "missing {want:?} in {}",
            out.stdout
        );
    }
    let dump = run([
        std::ffi::OsStr::new("dump"),
        p(&bulk.join("000001.sst")),
        std::ffi::OsStr::new("--limit"),
        std::ffi::OsStr::new("1"),
    ])
    .ok();
    assert_eq!(dump.stdout, "a\t1\n");
}

#[test]
fn empty_input_builds_an_empty_bulk_load() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "empty.csv", "key,value\n");
    let bulk = dir.path().join("bulk");
    build("csv", &[&input], &bulk, &["--header"]).ok();
    assert_eq!(entries(&bulk), ["bulk_load_metadata.json"]);
    run([std::ffi::OsStr::new("verify"), p(&bulk)]).ok();
}

#[test]
fn lz4_build_ingests_and_reads_back() {
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!("key{i:05},value-{i}-{}\n", "y".repeat(60)));
    }
    let (dir, db_dir) = load("csv", "lz4.csv", &text, &["--compression", "lz4"]);
    let sst = dir.path().join("bulk").join("000001.sst");
    let out = run([std::ffi::OsStr::new("inspect"), p(&sst)]).ok();
    assert!(
        out.stdout.contains("compression:         lz4"),
        "{}",
        out.stdout
    );
    let raw_len = text.len() as u64;
    let size = std::fs::metadata(&sst).unwrap().len();
    assert!(
        size < raw_len / 2,
        "lz4 file {size} B for {raw_len} B of input"
    );
    assert_eq!(
        db(&db_dir, &["get", "key01234"]).ok().stdout,
        format!("value-1234-{}\n", "y".repeat(60))
    );
}
