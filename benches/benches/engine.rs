//! Criterion micro-benchmarks of siltdb's hot paths: block encode/decode and seek, bloom
//! build/probe, write-batch encoding, WAL append (no sync, and synced with 8 writers sharing
//! group commits), memtable insert/get (through a Db with the WAL off), SST point lookups
//! (cached and uncached), iterator steps, the replica's mutation log (plog) append, and scans and
//! compactions over 20k mutually overlapping range tombstones (`delete_range("", cutoff)`), with
//! the process's peak RSS printed after them.
//!
//! `cargo bench -p siltdb-benches --bench engine`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use siltdb::{
    bloom_hash_key as hash_key, build_bloom_filter as build_filter, internal_key, seek_key,
    BlockBuilder, BlockIter, BloomFilter, InternalIterator, ReadFlags, Table, ValueKind,
};
use siltdb::{Db, Options, ReadOptions, SstWriter, SstWriterOptions, WriteBatch, WriteOptions};
use std::sync::Arc;

fn k(i: u64) -> Vec<u8> {
    format!("{i:016}").into_bytes()
}

fn block_benches(c: &mut Criterion) {
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..40u64)
        .map(|i| (internal_key(&k(i), i + 1, ValueKind::Put), vec![b'v'; 100]))
        .collect();
    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("encode_4k", |b| {
        b.iter(|| {
            let mut bb = BlockBuilder::new(16);
            for (key, v) in &entries {
                bb.add(key, v);
            }
            black_box(bb.finish().len())
        })
    });
    let mut bb = BlockBuilder::new(16);
    for (key, v) in &entries {
        bb.add(key, v);
    }
    let data = bb.finish().to_vec();
    let block = Arc::new(siltdb::Block::new(data).expect("block"));
    g.bench_function("scan_4k", |b| {
        b.iter(|| {
            let mut it = BlockIter::new(block.clone());
            it.seek_to_first();
            let mut n = 0;
            while it.valid() {
                n += it.value().len();
                it.next();
            }
            black_box(n)
        })
    });
    g.throughput(Throughput::Elements(1));
    let target = seek_key(&k(27), u64::MAX >> 8);
    g.bench_function("seek", |b| {
        b.iter(|| {
            let mut it = BlockIter::new(block.clone());
            it.seek(black_box(&target));
            black_box(it.valid())
        })
    });
    g.finish();
}

fn bloom_benches(c: &mut Criterion) {
    let hashes: Vec<u64> = (0..10_000u64).map(|i| hash_key(&k(i))).collect();
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(hashes.len() as u64));
    g.bench_function("build_10k_keys", |b| {
        b.iter(|| black_box(build_filter(&hashes, 10).len()))
    });
    let filter = BloomFilter::decode(build_filter(&hashes, 10)).expect("filter");
    g.throughput(Throughput::Elements(1));
    let probe = k(1_000_000);
    g.bench_function("probe_miss", |b| {
        b.iter(|| black_box(filter.may_contain(black_box(&probe))))
    });
    g.finish();
}

fn write_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("write");
    let value = vec![b'x'; 100];
    g.throughput(Throughput::Elements(100));
    g.bench_function("batch_encode_100", |b| {
        b.iter(|| {
            let mut wb = WriteBatch::new();
            for i in 0..100 {
                wb.put(k(i), &value);
            }
            black_box(wb.approximate_size())
        })
    });
    g.throughput(Throughput::Elements(1));
    for (name, disable_wal) in [("put_wal_nosync", false), ("put_memtable_only", true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), Options::default()).expect("open");
        let wo = WriteOptions {
            disable_wal,
            ..Default::default()
        };
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let mut wb = WriteBatch::new();
                wb.put(k(i), &value);
                db.write(wb, &wo).expect("write");
            })
        });
    }
    // Synced writes from 8 threads: one fdatasync per group commit. Each sample runs `iters`
    // writes split over the threads; the time is the wall clock of the whole sample.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    let next = std::sync::atomic::AtomicU64::new(0);
    g.sample_size(10);
    g.bench_function("put_sync_group_commit_x8", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            std::thread::scope(|s| {
                for t in 0..8u64 {
                    let (db, next, value) = (&db, &next, &value);
                    s.spawn(move || {
                        let wo = WriteOptions {
                            sync: true,
                            ..Default::default()
                        };
                        for _ in 0..(iters / 8 + u64::from(t < iters % 8)) {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let mut wb = WriteBatch::new();
                            wb.put(k(i), value);
                            db.write(wb, &wo).expect("write");
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    g.finish();
}

/// The replica's mutation log: one entry carrying one 100-byte put, framed and appended with
/// its fsync (what a Raft append costs on the leader before it replies).
fn plog_benches(c: &mut Criterion) {
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
    use siltdb_replica::plog::{format, segment::Segments};
    use siltdb_replica::raft::TypeConfig;
    use siltdb_replica::Mutation;

    let dir = tempfile::tempdir().expect("tempdir");
    let fs: Arc<dyn siltdb::fs::FileSystem> = Arc::new(siltdb::fs::StdFs);
    let (mut segs, _) = Segments::open(fs, dir.path(), 32 << 20, None, None, Default::default())
        .expect("plog open");
    let mut g = c.benchmark_group("plog");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    let mut decree = 0u64;
    let mut buf = Vec::new();
    g.bench_function("append_synced_1_put", |b| {
        b.iter(|| {
            decree += 1;
            let mut m = Mutation::new();
            m.put(k(decree), vec![b'v'; 100]);
            let entry = Entry::<TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), decree),
                payload: EntryPayload::Normal(m),
            };
            buf.clear();
            format::encode_record(&mut buf, &entry, None, 0);
            segs.append(&buf, Some(decree)).expect("append");
        })
    });
    g.finish();
}

fn read_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 100_000u64;
    // Memtable gets.
    let db = Db::open(dir.path().join("db"), Options::default()).expect("open");
    for i in 0..n {
        db.put(k(i), [b'v'; 100]).expect("put");
    }
    let mut g = c.benchmark_group("read");
    let mut x = 1u64;
    g.bench_function("memtable_get", |b| {
        b.iter(|| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            black_box(db.get(k(x % n)).expect("get"))
        })
    });
    db.flush().expect("flush");
    g.bench_function("sst_get_cached", |b| {
        b.iter(|| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            black_box(db.get(k(x % n)).expect("get"))
        })
    });
    g.bench_function("iter_next", |b| {
        b.iter_batched(
            || db.iter(&ReadOptions::default()),
            |mut it| {
                for _ in 0..100 {
                    black_box(it.next());
                }
            },
            BatchSize::SmallInput,
        )
    });
    // Uncached SST point lookups straight on a table.
    let path = dir.path().join("t.sst");
    let mut w = SstWriter::create(&path, &SstWriterOptions::default()).expect("sst");
    for i in 0..n {
        w.put(k(i), [b'v'; 100]).expect("put");
    }
    w.finish().expect("finish");
    let file = siltdb::fs::FileSystem::open_read(&siltdb::fs::StdFs, &path).expect("open");
    let table = Table::open(file, path.clone(), None, None).expect("table");
    let flags = ReadFlags::default();
    g.bench_function("sst_get_uncached", |b| {
        b.iter(|| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            black_box(table.get(&seek_key(&k(x % n), 1), flags).expect("get"))
        })
    });
    g.bench_function("table_iter_next", |b| {
        b.iter_batched(
            || {
                let mut it = table.iter(flags);
                it.seek_to_first();
                it
            },
            |mut it| {
                for _ in 0..100 {
                    it.next();
                }
                black_box(it.valid())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Peak resident set size of this process in KiB (`VmHWM`), 0 where unavailable.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// 20k `delete_range("", cutoff)` calls with growing cutoffs: every tombstone overlaps all the
/// others, so a fragment per tombstone holding every covering seqno would be quadratic.
fn range_del_benches(c: &mut Criterion) {
    let n = 20_000u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options {
        memtable_size_bytes: 256 << 20,
        ..Options::default()
    };
    let db = Db::open(dir.path().join("db"), opts).expect("open");
    for i in 0..100 {
        db.put(format!("k{i:04}"), [b'v'; 100]).expect("put");
    }
    for i in 1..=n {
        db.delete_range("", format!("c{i:06}"))
            .expect("delete_range");
    }
    let before = peak_rss_kib();
    let mut g = c.benchmark_group("range_del");
    g.sample_size(10);
    let scan = |db: &Db| db.iter(&ReadOptions::default()).count();
    g.bench_function("scan_20k_overlapping_memtable", |b| {
        b.iter(|| black_box(scan(&db)))
    });
    db.flush().expect("flush");
    g.bench_function("scan_20k_overlapping_sst", |b| {
        b.iter(|| black_box(scan(&db)))
    });
    // A snapshot keeps the tombstones (and their stripes) alive through every compaction.
    let snap = db.snapshot();
    g.bench_function("compact_20k_overlapping_with_snapshot", |b| {
        b.iter(|| {
            db.compact_range(None::<&[u8]>, None::<&[u8]>)
                .expect("compact")
        })
    });
    g.finish();
    drop(snap);
    eprintln!(
        "range_del: peak RSS {} KiB after writing {n} tombstones, {} KiB after the scans and \
         compactions",
        before,
        peak_rss_kib()
    );
}

criterion_group!(
    benches,
    range_del_benches,
    block_benches,
    bloom_benches,
    write_benches,
    read_benches,
    plog_benches
);
criterion_main!(benches);
