//! fjall behind the bench [`Engine`] trait (feature `peers`).

use super::{BenchCompression, Engine, Settings};
use crate::values::Values;
use fjall::config::{CompressionPolicy, FilterPolicy, FilterPolicyEntry};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use std::path::Path;
use std::time::{Duration, Instant};

/// A fjall database with one keyspace.
pub struct Fjall {
    db: Database,
    ks: Keyspace,
}

impl Fjall {
    /// Opens fjall in `dir` with the matched settings (fjall has only LZ4: `--compression lz4`
    /// compresses its data blocks, `--compression zstd` leaves it uncompressed).
    pub fn open(dir: &Path, s: &Settings) -> Fjall {
        let data = match s.compression {
            BenchCompression::Lz4 => CompressionType::Lz4,
            BenchCompression::None | BenchCompression::Zstd => CompressionType::None,
        };
        let db = Database::builder(dir)
            .cache_size(s.cache_bytes as u64)
            .worker_threads(2)
            .open()
            .expect("open fjall");
        let ks = db
            .keyspace("bench", || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(64 << 20)
                    .data_block_compression_policy(CompressionPolicy::all(data))
                    .index_block_compression_policy(CompressionPolicy::all(CompressionType::None))
                    .filter_policy(FilterPolicy::all(FilterPolicyEntry::Bloom(
                        fjall::config::BloomConstructionPolicy::BitsPerKey(10.0),
                    )))
            })
            .expect("keyspace");
        Fjall { db, ks }
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall"
    }

    fn write_batch(&self, puts: &[(&[u8], &[u8])], sync: bool) {
        if puts.len() == 1 && !sync {
            self.ks.insert(puts[0].0, puts[0].1).expect("insert");
            return;
        }
        let mut b = self.db.batch();
        for (k, v) in puts {
            b.insert(&self.ks, *k, *v);
        }
        if sync {
            b = b.durability(Some(PersistMode::SyncData));
        }
        b.commit().expect("commit");
    }

    fn get(&self, key: &[u8]) -> bool {
        self.ks.get(key).expect("get").is_some()
    }

    fn delete(&self, key: &[u8]) {
        self.ks.remove(key).expect("remove");
    }

    fn seek_read(&self, key: &[u8], n: usize) -> usize {
        let mut got = 0;
        for g in self.ks.range(key..).take(n) {
            g.into_inner().expect("iter");
            got += 1;
        }
        got
    }

    fn scan(&self, reverse: bool) -> u64 {
        let mut count = 0;
        if reverse {
            for g in self.ks.iter().rev() {
                g.into_inner().expect("iter");
                count += 1;
            }
        } else {
            for g in self.ks.iter() {
                g.into_inner().expect("iter");
                count += 1;
            }
        }
        count
    }

    fn bulk_load(&self, _dir: &Path, n: u64, key: &dyn Fn(u64) -> [u8; 16], values: &Values) {
        let mut ing = self.ks.start_ingestion().expect("ingestion");
        for i in 0..n {
            ing.write(key(i).to_vec(), values.get(i).to_vec())
                .expect("write");
        }
        ing.finish().expect("finish");
    }

    fn settle(&self) {
        self.ks.rotate_memtable_and_wait().expect("flush");
        let deadline = Instant::now() + Duration::from_secs(600);
        // Quiet for a while: no flush outstanding and no compaction running.
        let mut quiet_since = Instant::now();
        while Instant::now() < deadline {
            if self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0 {
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() > Duration::from_millis(500) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn table_bytes(&self) -> u64 {
        self.ks.disk_space()
    }

    fn write_amp(&self) -> Option<f64> {
        None
    }
}
