//! Block compression through the public API: lz4 round trips and reopen, per-level compression
//! (flush output, compaction output, a level past the end of the vector), ingestion of lz4 files
//! made by `SstWriter`, damage in lz4 blocks, and files written without lz4 support.

use siltdb::fs::{FileSystem, StdFs};
use siltdb::Table;
use siltdb::{Compression, Db, IngestOptions, Options, ReadOptions, SstWriter, SstWriterOptions};
use std::path::{Path, PathBuf};

fn k(i: u32) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

/// Compressible: a repeated pattern with the key number in it.
fn v(i: u32, round: u32) -> Vec<u8> {
    format!("value-{round}-{i:08}-{}", "abcdefgh".repeat(12)).into_bytes()
}

fn opts(compression: Compression, per_level: Vec<Compression>) -> Options {
    Options {
        compression,
        compression_per_level: per_level,
        memtable_size_bytes: 1 << 20,
        l0_compaction_trigger: 100,
        l0_slowdown_trigger: 200,
        l0_stop_trigger: 300,
        target_file_size_bytes: 256 << 10,
        ..Default::default()
    }
}

/// Compression recorded in the properties of every SST file in `dir`.
fn sst_compressions(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for name in StdFs.list(dir).unwrap() {
        if !name.ends_with(".sst") {
            continue;
        }
        let path = dir.join(&name);
        let file = StdFs.open_read(&path).unwrap();
        let t = Table::open(file, path.clone(), None, None).unwrap();
        out.push((path, t.properties().compression.clone()));
    }
    out.sort();
    out
}

fn check_all(db: &Db, n: u32, round: u32) {
    for i in (0..n).step_by(7) {
        assert_eq!(db.get(k(i)).unwrap(), Some(v(i, round)), "key {i}");
    }
    let mut count = 0;
    for r in db.iter(&ReadOptions::default()) {
        let (key, value) = r.unwrap();
        assert_eq!(key, k(count));
        assert_eq!(value, v(count, round));
        count += 1;
    }
    assert_eq!(count, n);
}

fn sst_bytes(dir: &Path) -> u64 {
    sst_compressions(dir)
        .iter()
        .map(|(p, _)| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn lz4_round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let n = 20_000;
    {
        let db = Db::open(&path, opts(Compression::Lz4, Vec::new())).unwrap();
        for i in 0..n {
            db.put(k(i), v(i, 0)).unwrap();
        }
        db.flush().unwrap();
        check_all(&db, n, 0);
        db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
        check_all(&db, n, 0);
        db.close().unwrap();
    }
    let db = Db::open(&path, opts(Compression::Lz4, Vec::new())).unwrap();
    check_all(&db, n, 0);
    db.close().unwrap();
    drop(db);
    let files = sst_compressions(&path);
    assert!(!files.is_empty());
    assert!(files.iter().all(|(_, c)| c == "lz4"), "{files:?}");
    // 20k values of ~120 B: lz4 must store far less than the raw bytes.
    let raw = u64::from(n) * (v(0, 0).len() as u64 + 16);
    let stored = sst_bytes(&path);
    assert!(stored < raw / 2, "lz4 tables hold {stored} B for {raw} B");
    // Reopened with another compression, the lz4 files stay readable.
    let db = Db::open(&path, opts(Compression::None, Vec::new())).unwrap();
    check_all(&db, n, 0);
}

#[test]
fn per_level_compression_applies_to_flush_and_compaction_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let n = 20_000;
    let per_level = vec![Compression::None, Compression::Lz4];
    // `compression` is ignored once the vector is set.
    let o = || opts(Compression::Zstd { level: 1 }, per_level.clone());
    {
        let db = Db::open(&path, o()).unwrap();
        for i in 0..n {
            db.put(k(i), v(i, 0)).unwrap();
        }
        db.flush().unwrap();
        assert!(db.stats().files_per_level[0] > 0);
        db.close().unwrap();
    }
    // Only L0 files so far: flush writes them uncompressed.
    let files = sst_compressions(&path);
    assert!(files.iter().all(|(_, c)| c == "none"), "{files:?}");
    {
        let db = Db::open(&path, o()).unwrap();
        db.compact_range(None::<&[u8]>, None::<&[u8]>).unwrap();
        let s = db.stats();
        assert_eq!(s.files_per_level[0], 0);
        let level = (1..s.files_per_level.len())
            .find(|&l| s.files_per_level[l] > 0)
            .unwrap();
        assert_eq!(
            (1..s.files_per_level.len())
                .filter(|&l| s.files_per_level[l] > 0)
                .count(),
            1
        );
        // Level 1 and every level past the vector's end use its last entry.
        assert!(level >= 1);
        check_all(&db, n, 0);
        db.close().unwrap();
    }
    // Reopen deletes obsolete tables; every live file was written by compaction.
    drop(Db::open(&path, o()).unwrap());
    let files = sst_compressions(&path);
    assert!(!files.is_empty());
    assert!(files.iter().all(|(_, c)| c == "lz4"), "{files:?}");
    let db = Db::open(&path, o()).unwrap();
    check_all(&db, n, 0);
}

#[test]
fn a_level_past_the_vector_uses_its_last_entry() {
    let o = opts(Compression::None, vec![Compression::None, Compression::Lz4]);
    assert_eq!(o.compression_for_level(0), Compression::None);
    assert_eq!(o.compression_for_level(1), Compression::Lz4);
    assert_eq!(o.compression_for_level(6), Compression::Lz4);
    let o = opts(Compression::Zstd { level: 2 }, Vec::new());
    assert_eq!(o.compression_for_level(0), Compression::Zstd { level: 2 });
    assert_eq!(o.compression_for_level(5), Compression::Zstd { level: 2 });
    // A bad zstd level anywhere in the vector is refused at open.
    let dir = tempfile::tempdir().unwrap();
    let bad = opts(Compression::None, vec![Compression::Zstd { level: 99 }]);
    let e = Db::open(dir.path().join("db"), bad).unwrap_err();
    assert!(e.to_string().contains("compression_per_level"), "{e}");
}

#[test]
fn ingested_lz4_files_keep_their_compression() {
    let dir = tempfile::tempdir().unwrap();
    let sst = dir.path().join("in.sst");
    let n = 5_000;
    let mut w = SstWriter::create(
        &sst,
        &SstWriterOptions {
            compression: Compression::Lz4,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..n {
        w.put(k(i), v(i, 1)).unwrap();
    }
    w.finish().unwrap();
    let path = dir.path().join("db");
    {
        let db = Db::open(&path, opts(Compression::None, Vec::new())).unwrap();
        db.ingest(&[&sst], &IngestOptions::default()).unwrap();
        check_all(&db, n, 1);
        db.close().unwrap();
    }
    let files = sst_compressions(&path);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].1, "lz4");
    let db = Db::open(&path, opts(Compression::None, Vec::new())).unwrap();
    check_all(&db, n, 1);
}

/// Flips one byte in the middle of an lz4 table's data: opening succeeds (the footer and meta
/// blocks are intact), reads of the damaged block return `Error::Corruption` naming the file.
#[test]
fn damaged_lz4_block_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let n = 5_000;
    {
        let db = Db::open(&path, opts(Compression::Lz4, Vec::new())).unwrap();
        for i in 0..n {
            db.put(k(i), v(i, 0)).unwrap();
        }
        db.flush().unwrap();
        db.close().unwrap();
    }
    let files = sst_compressions(&path);
    assert_eq!(files.len(), 1);
    let (sst, _) = &files[0];
    let mut bytes = std::fs::read(sst).unwrap();
    for at in [100, bytes.len() / 4] {
        bytes[at] ^= 0x33;
    }
    std::fs::write(sst, &bytes).unwrap();
    let db = Db::open(&path, opts(Compression::Lz4, Vec::new())).unwrap();
    let e = db
        .iter(&ReadOptions::default())
        .find_map(|r| r.err())
        .expect("the scan reports the damage");
    assert!(e.is_corruption(), "{e}");
    let name = sst.file_name().unwrap().to_string_lossy().into_owned();
    assert!(e.to_string().contains(&name), "{e}");
    // Point reads of keys in the damaged block fail the same way; none panics.
    let mut corrupt = 0;
    for i in 0..n {
        match db.get(k(i)) {
            Ok(_) => {}
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                corrupt += 1;
            }
        }
    }
    assert!(corrupt > 0);
}

/// A table whose bytes are fixed here (written by a build without lz4 support: plain and zstd
/// blocks only) still opens and reads back with this build.
#[test]
fn files_from_before_lz4_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sst_table");
    for seed in ["seed-plain", "seed-zstd-nofilter"] {
        // The committed fuzz seed is `flag byte | table bytes`, written before lz4 existed.
        let data = std::fs::read(corpus.join(seed)).unwrap();
        let sst = dir.path().join(format!("{seed}.sst"));
        std::fs::write(&sst, &data[1..]).unwrap();
        let t = Table::open(StdFs.open_read(&sst).unwrap(), sst.clone(), None, None).unwrap();
        assert!(t.verify().unwrap() > 0, "{seed}");
        let c = t.properties().compression.clone();
        assert!(c == "none" || c.starts_with("zstd"), "{seed}: {c}");
    }
}
