//! SST files: sorted, immutable tables of internal keys.
//!
//! A file is a run of data blocks followed by a filter block, a range-deletion block, a
//! properties block, an index block and a fixed-size footer; `docs/format.md` ("SST file")
//! describes every byte. One concept per file:
//!
//! - [`block`] — the block trailer (compression + CRC), [`block::BlockBuilder`], [`block::Block`]
//!   and [`block::BlockIter`] (prefix-compressed entries with restart points);
//! - [`filter`] — the cache-line-local bloom filter;
//! - [`range_del`] — the range-deletion block;
//! - [`properties`] — the properties block;
//! - [`footer`] — [`footer::BlockHandle`] and the footer;
//! - [`writer`] — [`TableBuilder`];
//! - [`reader`] — [`Table`] and [`TableIter`];
//! - [`cache`] — the shared [`BlockCache`].
//!
//! Decoders accept arbitrary bytes: bad input is an [`crate::Error::Corruption`] naming the file
//! and block offset, never a panic or an unbounded allocation. The fuzzing entry points are
//! [`block::decode_block`], [`footer::Footer::decode`], [`properties::Properties::decode`],
//! [`range_del::decode`], [`filter::BloomFilter::decode`] and [`Table::open`] over an
//! [`InMemoryFile`].

pub mod block;
pub mod cache;
pub mod filter;
pub mod footer;
pub mod properties;
pub mod range_del;
pub mod reader;
pub mod rocksdb;
pub mod writer;

#[cfg(test)]
mod tests;

pub use cache::BlockCache;
pub use properties::Properties;
pub use reader::{ReadFlags, Table, TableIter};
pub use writer::{TableBuildOptions, TableBuilder, TableInfo};

use std::io;

/// A read-only file held in memory (tests, fuzzing, small embedded tables).
#[derive(Debug, Clone)]
pub struct InMemoryFile(pub Vec<u8>);

impl crate::fs::RandomAccessFile for InMemoryFile {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

/// A growable in-memory writable file whose contents can be read back (tests, fuzzing).
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug, Clone, Default)]
pub struct SharedBufferFile(pub std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

#[cfg(any(test, feature = "fuzzing"))]
impl crate::fs::WritableFile for SharedBufferFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.0.lock().extend_from_slice(data);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn len(&self) -> u64 {
        self.0.lock().len() as u64
    }
}

/// Printable form of a key for error messages: ASCII as is, other bytes as `\xNN`.
pub(crate) fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}
