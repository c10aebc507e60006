//! Criterion micro-benchmarks of siltdb's hot paths: block encode/decode and seek, bloom
//! build/probe, write-batch encoding, WAL append (no sync), memtable insert/get (through a Db
//! with the WAL off), SST point lookups (cached and uncached), and iterator steps.
//!
//! `cargo bench -p siltdb-benches --bench engine`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use siltdb::iter::InternalIterator;
use siltdb::key::{internal_key, seek_key, ValueKind};
use siltdb::sst::block::{BlockBuilder, BlockIter};
use siltdb::sst::filter::{build_filter, hash_key, BloomFilter};
use siltdb::sst::{ReadFlags, Table};
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
    let block = Arc::new(siltdb::sst::block::Block::new(data).expect("block"));
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

criterion_group!(
    benches,
    block_benches,
    bloom_benches,
    write_benches,
    read_benches
);
criterion_main!(benches);
