//! # siltdb — an embedded LSM key-value engine
//!
//! siltdb stores byte-string keys and values in a log-structured merge tree: writes go to a
//! write-ahead log and a memtable, memtables are flushed to sorted SST files, and leveled
//! compaction keeps the files few and the space overhead low. Reads see a consistent snapshot;
//! iterators run both ways with bounds. Checkpoints, external SST ingestion and flush metadata
//! (durable tags) support a replication layer on top.
//!
//! ```
//! use siltdb::{Db, Options, WriteBatch, WriteOptions, ReadOptions};
//! # fn main() -> siltdb::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = Db::open(dir.path(), Options::default())?;
//! db.put(b"hello", b"world")?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"a", b"1");
//! batch.delete(b"hello");
//! db.write(batch, &WriteOptions::default())?;
//! assert_eq!(db.get(b"a")?.as_deref(), Some(&b"1"[..]));
//! assert_eq!(db.get(b"hello")?, None);
//! for item in db.iter(&ReadOptions::default()) {
//!     let (k, v) = item?;
//!     println!("{:?} = {:?}", k, v);
//! }
//! db.close()?;
//! # Ok(()) }
//! ```
//!
//! The on-disk formats are described byte by byte in `docs/format.md`.

#![warn(missing_docs)]

pub mod checkpoint;
mod coding;
mod compaction;
mod db;
mod error;
mod filename;
pub mod fs;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod ingest;
mod iter;
mod key;
mod manifest;
mod memtable;
mod options;
mod range_del;
mod resources;
mod skiplist;
mod snapshot;
mod sst;
mod sst_writer;
mod stall;
mod table_cache;
mod wal;
pub mod write_batch;

// The contract (`shared/API.md`).
pub use checkpoint::{read_checkpoint_meta, CheckpointInfo, CheckpointMeta};
pub use compaction::{CompactionFilter, FilterDecision};
pub use db::{Db, DbIterator, Stats};
pub use error::{Error, Result};
pub use fs::FileSystem;
pub use ingest::{CancelToken, IngestInfo, IngestOptions};
pub use options::{Compression, MutableOptions, Options, ReadOptions, WriteOptions};
pub use resources::{SharedResources, SharedResourcesOptions};
pub use snapshot::Snapshot;
pub use sst_writer::{SstInfo, SstWriter, SstWriterOptions};
pub use write_batch::WriteBatch;

// What the tools (`sst-ingest inspect/dump`, RocksDB SST reading), the benches and the format
// tests need of the internals, by name: reading one SST file, internal keys, the WAL reader.
// Everything else stays private, so an internal change is no API break.
pub use iter::InternalIterator;
pub use key::{internal_key, parse as parse_internal_key, seek_key, ValueKind, MAX_SEQNO};
pub use sst::block::{
    Block, BlockBuilder, BlockIter, MAX_BLOCK_UNCOMPRESSED_BYTES, MAX_ENTRY_BYTES,
};
pub use sst::filter::{
    build_filter as build_bloom_filter, hash_key as bloom_hash_key, BloomFilter,
};
pub use sst::rocksdb::{
    convert as rocksdb_convert, is_rocksdb_table, RocksEntry, RocksKind, RocksTable,
};
pub use sst::{InMemoryFile, Properties, ReadFlags, Table};
pub use wal::{read_log, LogRead, LogWriter};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
