//! RocksDB (rust-rocksdb, built from source) behind the bench [`Engine`] trait (feature `peers`).

use super::{BenchCompression, Engine, Settings};
use crate::values::Values;
use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, IngestExternalFileOptions, Options, SstFileWriter,
    WriteBatch, WriteOptions, DB,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// A RocksDB database.
pub struct Rocks {
    db: DB,
    opts: Options,
}

impl Rocks {
    /// Opens RocksDB in `dir` with the matched settings: LRU block cache, 10 bits/key bloom,
    /// 64 MiB memtables, dynamic level sizes, two background jobs.
    pub fn open(dir: &Path, s: &Settings) -> Rocks {
        let cache = Cache::new_lru_cache(s.cache_bytes);
        let mut bo = BlockBasedOptions::default();
        bo.set_block_cache(&cache);
        bo.set_bloom_filter(10.0, false);
        let mut o = Options::default();
        o.create_if_missing(true);
        o.set_block_based_table_factory(&bo);
        o.set_compression_type(match s.compression {
            BenchCompression::None => DBCompressionType::None,
            BenchCompression::Lz4 => DBCompressionType::Lz4,
            BenchCompression::Zstd => DBCompressionType::Zstd,
        });
        o.set_write_buffer_size(64 << 20);
        o.set_level_compaction_dynamic_level_bytes(true);
        o.set_max_background_jobs(2);
        let db = DB::open(&o, dir).expect("open rocksdb");
        Rocks { db, opts: o }
    }

    fn int_property(&self, name: &str) -> u64 {
        self.db.property_int_value(name).ok().flatten().unwrap_or(0)
    }
}

impl Engine for Rocks {
    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn write_batch(&self, puts: &[(&[u8], &[u8])], sync: bool) {
        let mut b = WriteBatch::default();
        for (k, v) in puts {
            b.put(k, v);
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(b, &wo).expect("write");
    }

    fn get(&self, key: &[u8]) -> bool {
        self.db.get_pinned(key).expect("get").is_some()
    }

    fn delete(&self, key: &[u8]) {
        self.db.delete(key).expect("delete");
    }

    fn seek_read(&self, key: &[u8], n: usize) -> usize {
        let mut it = self.db.raw_iterator();
        it.seek(key);
        let mut got = 0;
        while got < n && it.valid() {
            let _ = (it.key(), it.value());
            got += 1;
            it.next();
        }
        it.status().expect("iter");
        got
    }

    fn scan(&self, reverse: bool) -> u64 {
        let mut it = self.db.raw_iterator();
        let mut count = 0;
        if reverse {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        while it.valid() {
            let _ = (it.key(), it.value());
            count += 1;
            if reverse {
                it.prev();
            } else {
                it.next();
            }
        }
        it.status().expect("iter");
        count
    }

    fn bulk_load(&self, dir: &Path, n: u64, key: &dyn Fn(u64) -> [u8; 16], values: &Values) {
        let path = dir.join("bulk-rocksdb.sst");
        let mut w = SstFileWriter::create(&self.opts);
        w.open(&path).expect("sst open");
        for i in 0..n {
            w.put(key(i), values.get(i)).expect("sst put");
        }
        w.finish().expect("sst finish");
        let mut io = IngestExternalFileOptions::default();
        io.set_move_files(true);
        self.db
            .ingest_external_file_opts(&io, vec![path])
            .expect("ingest");
    }

    fn settle(&self) {
        self.db.flush().expect("flush");
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let busy = self.int_property("rocksdb.num-running-compactions")
                + self.int_property("rocksdb.num-running-flushes")
                + self.int_property("rocksdb.compaction-pending")
                + self.int_property("rocksdb.mem-table-flush-pending");
            if busy == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn table_bytes(&self) -> u64 {
        self.int_property("rocksdb.total-sst-files-size")
    }

    fn write_amp(&self) -> Option<f64> {
        None
    }
}
