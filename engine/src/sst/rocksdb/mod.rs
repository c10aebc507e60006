//! Reading RocksDB's block-based table format (files made by RocksDB's `SstFileWriter` or
//! flushed by a RocksDB database). `docs/format.md` ("Reading RocksDB tables") lists what is read
//! and what is refused. One concept per file:
//!
//! - [`footer`] — legacy and format_version 1..=6 footers, [`footer::BlockHandle`];
//! - [`checksum`] — crc32c, xxHash, xxHash64, XXH3 and the format_version 6 context modifier;
//! - [`compression`] — none, snappy, lz4/lz4hc, zstd;
//! - [`block`] — entries and restarts, delta-encoded index values;
//! - [`index`] — index blocks (binary search and two-level partitioned);
//! - [`metaindex`] — meta block names to handles;
//! - [`properties`] — the properties block;
//! - [`range_del`] — the range-deletion block;
//! - [`table`] — [`RocksTable`], which opens a file and scans it;
//! - [`convert`] — collapsing versions and writing a siltdb table ([`crate::Db::ingest`]
//!   converts RocksDB files this way).
//!
//! Damage is [`crate::Error::Corruption`] naming the file and offset; features siltdb does not
//! read are [`crate::Error::InvalidArgument`] naming the feature.

pub mod block;
pub mod checksum;
pub mod compression;
pub mod convert;
pub mod footer;
pub mod index;
pub mod metaindex;
pub mod properties;
pub mod range_del;
pub mod table;

pub use table::{is_rocksdb_table, RocksEntry, RocksKind, RocksTable};
