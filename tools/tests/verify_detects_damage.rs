//! `verify` (and `ingest`, which verifies first) catch a truncated file, a flipped byte, a
//! missing file, an unlisted file and tampered metadata, naming each bad file.

mod common;
use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// A bulk-load directory with several SST files.
fn bulk_dir(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!("k{i:05},{}\n", "v".repeat(50)));
    }
    let input = write(dir, "in.csv", text);
    let bulk = dir.join("bulk");
    build("csv", &[&input], &bulk, &["--target-file-size", "64KiB"]).ok();
    assert!(entries(&bulk).len() >= 4, "{:?}", entries(&bulk));
    run([OsStr::new("verify"), p(&bulk)]).ok();
    bulk
}

fn verify_fails(bulk: &Path, wants: &[&str]) {
    let failed = run([OsStr::new("verify"), p(bulk)]).expect_code(1);
    for want in wants {
        assert!(
            failed.stderr.contains(want),
            "stderr lacks {want:?}: {failed:?}"
        );
    }
    let db_dir = bulk.parent().unwrap().join("db");
    let refused = run([
        OsStr::new("ingest"),
        OsStr::new("--db"),
        p(&db_dir),
        p(bulk),
    ])
    .expect_code(1);
    assert!(refused.stderr.contains(wants[0]), "{refused:?}");
    assert!(!db_dir.join("CURRENT").exists(), "nothing ingested");
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let bulk = bulk_dir(dir.path());
    let path = bulk.join("000002.sst");
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 100).unwrap();
    verify_fails(&bulk, &["000002.sst: size", "000002.sst: crc32c"]);
}

#[test]
fn flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let bulk = bulk_dir(dir.path());
    let path = bulk.join("000003.sst");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    // The whole-file checksum and the block checksum both catch it.
    verify_fails(&bulk, &["000003.sst: crc32c", "000003.sst: verifying"]);
    let shallow = run([OsStr::new("verify"), OsStr::new("--shallow"), p(&bulk)]).expect_code(1);
    assert!(shallow.stderr.contains("000003.sst: crc32c"), "{shallow:?}");
}

#[test]
fn missing_and_unlisted_files() {
    let dir = tempfile::tempdir().unwrap();
    let bulk = bulk_dir(dir.path());
    std::fs::rename(bulk.join("000001.sst"), bulk.join("000099.sst")).unwrap();
    verify_fails(
        &bulk,
        &["000001.sst: missing", "000099.sst: present but not listed"],
    );
}

#[test]
fn tampered_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let bulk = bulk_dir(dir.path());
    let meta_path = bulk.join("bulk_load_metadata.json");
    let text = std::fs::read_to_string(&meta_path).unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["files"][1]["entries"] = serde_json::json!(1);
    meta["totals"]["entries"] = serde_json::json!(
        meta["totals"]["entries"].as_u64().unwrap() - meta["files"][1]["entries"].as_u64().unwrap()
            + 1
    );
    // Keep totals consistent so the per-file content check is what fails.
    let sum: u64 = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["entries"].as_u64().unwrap())
        .sum();
    meta["totals"]["entries"] = serde_json::json!(sum);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    verify_fails(&bulk, &["000002.sst: holds"]);

    meta["files"][0]["name"] = serde_json::json!("../000001.sst");
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    verify_fails(&bulk, &["bad file name \"../000001.sst\""]);

    std::fs::remove_file(&meta_path).unwrap();
    let failed = run([OsStr::new("verify"), p(&bulk)]).expect_code(4);
    assert!(
        failed.stderr.contains("bulk_load_metadata.json"),
        "{failed:?}"
    );
}
