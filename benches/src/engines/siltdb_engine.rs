//! siltdb behind the bench [`Engine`] trait.

use super::{BenchCompression, Engine, Settings};
use crate::values::Values;
use siltdb::{
    Compression, Db, IngestOptions, Options, ReadOptions, SstWriter, SstWriterOptions, WriteBatch,
    WriteOptions,
};
use std::path::Path;
use std::time::Duration;

/// A siltdb database.
pub struct Silt {
    db: Db,
    ingest_verify_blocks: bool,
}

impl Silt {
    /// Opens siltdb in `dir` with the matched settings.
    pub fn open(dir: &Path, s: &Settings) -> Silt {
        let opts = Options {
            compression: match s.compression {
                BenchCompression::None => Compression::None,
                BenchCompression::Lz4 => Compression::Lz4,
                BenchCompression::Zstd => Compression::Zstd { level: 3 },
            },
            block_cache_size_bytes: s.cache_bytes,
            ..Options::default()
        };
        Silt {
            db: Db::open(dir, opts).expect("open siltdb"),
            ingest_verify_blocks: s.ingest_verify_blocks,
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl Drop for Silt {
    fn drop(&mut self) {
        let _ = self.db.close();
    }
}

impl Engine for Silt {
    fn name(&self) -> &'static str {
        "siltdb"
    }

    fn write_batch(&self, puts: &[(&[u8], &[u8])], sync: bool) {
        let mut b = WriteBatch::new();
        for (k, v) in puts {
            b.put(k, v);
        }
        let wo = WriteOptions {
            sync,
            ..Default::default()
        };
        self.db.write(b, &wo).expect("write");
    }

    fn get(&self, key: &[u8]) -> bool {
        self.db.get(key).expect("get").is_some()
    }

    fn delete(&self, key: &[u8]) {
        self.db.delete(key).expect("delete");
    }

    fn seek_read(&self, key: &[u8], n: usize) -> usize {
        let ro = ReadOptions {
            lower_bound: Some(key.to_vec()),
            ..Default::default()
        };
        let mut got = 0;
        for item in self.db.iter(&ro).take(n) {
            item.expect("iter");
            got += 1;
        }
        got
    }

    fn scan(&self, reverse: bool) -> u64 {
        let it = self.db.iter(&ReadOptions::default());
        let mut count = 0;
        if reverse {
            for item in it.rev() {
                item.expect("iter");
                count += 1;
            }
        } else {
            for item in it {
                item.expect("iter");
                count += 1;
            }
        }
        count
    }

    fn bulk_load(&self, dir: &Path, n: u64, key: &dyn Fn(u64) -> [u8; 16], values: &Values) {
        let sst = dir.join("bulk.sst");
        let mut wr = SstWriter::create(&sst, &SstWriterOptions::default()).expect("sst");
        for i in 0..n {
            wr.put(key(i), values.get(i)).expect("put");
        }
        wr.finish().expect("finish");
        self.db
            .ingest(
                &[&sst],
                &IngestOptions {
                    move_files: true,
                    verify_blocks: self.ingest_verify_blocks,
                    ..Default::default()
                },
            )
            .expect("ingest");
    }

    fn settle(&self) {
        self.db.flush().expect("flush");
        self.db
            .wait_for_background_work(Duration::from_secs(600))
            .expect("background work settles");
    }

    fn table_bytes(&self) -> u64 {
        self.db
            .property("siltdb.total-sst-size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    fn write_amp(&self) -> Option<f64> {
        Some(self.db.stats().write_amplification())
    }

    fn stats_text(&self) -> Option<String> {
        self.db.property("siltdb.stats")
    }

    fn stall_micros(&self) -> Option<u64> {
        Some(self.db.stats().stall.stalled_micros)
    }
}
