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
pub mod coding;
mod compaction;
mod db;
mod error;
mod filename;
pub mod fs;
pub mod fuzzing;
mod ingest;
pub mod iter;
pub mod key;
pub mod manifest;
mod memtable;
mod options;
mod range_del;
mod resources;
mod skiplist;
mod snapshot;
pub mod sst;
mod sst_writer;
pub mod stall;
mod table_cache;
pub mod wal;
pub mod write_batch;

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

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
