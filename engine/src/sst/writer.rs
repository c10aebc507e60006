//! Writes one SST file: data blocks, filter, range deletions, properties, index, footer.
//!
//! Output is buffered and appended to the file in chunks of at least [`WRITE_CHUNK_BYTES`], so
//! a flush or compaction issues few large writes; the file is synced once, in
//! [`TableBuilder::finish`]. Layout: `docs/format.md`, "SST file".

use super::block::{
    self, BlockBuilder, COMPRESSION_LZ4, COMPRESSION_NONE, COMPRESSION_ZSTD, DATA_RESTART_INTERVAL,
};
use super::filter;
use super::footer::{BlockHandle, Footer, FORMAT_VERSION};
use super::properties::Properties;
use super::range_del;
use crate::coding;
use crate::fs::WritableFile;
use crate::key::{self, RangeTombstone, ValueKind};
use crate::{Compression, Error, Result};
use std::cmp::Ordering;
use std::path::PathBuf;

/// Pending output is appended to the file once it reaches this size.
pub const WRITE_CHUNK_BYTES: usize = 64 << 10;

/// How to build a table.
#[derive(Debug, Clone)]
pub struct TableBuildOptions {
    /// Target uncompressed data block size.
    pub block_size_bytes: usize,
    /// Bloom filter bits per user key; 0 writes no filter.
    pub bloom_bits_per_key: u32,
    /// Data block compression.
    pub compression: Compression,
    /// Recorded in the properties block (who wrote the file).
    pub creator: String,
}

impl TableBuildOptions {
    /// Takes the table settings of database options for a file written to level 0 (what a
    /// flush writes); see [`TableBuildOptions::for_level`].
    pub fn from_options(o: &crate::Options, creator: &str) -> Self {
        Self::for_level(o, 0, creator)
    }

    /// Takes the table settings of database options for a file written to `level`: the
    /// compression is [`crate::Options::compression_for_level`].
    pub fn for_level(o: &crate::Options, level: usize, creator: &str) -> Self {
        TableBuildOptions {
            block_size_bytes: o.block_size_bytes,
            bloom_bits_per_key: o.bloom_bits_per_key,
            compression: o.compression_for_level(level),
            creator: creator.to_string(),
        }
    }
}

/// What a finished table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// File size in bytes.
    pub file_size: u64,
    /// Point entries.
    pub num_entries: u64,
    /// Range tombstones.
    pub num_range_tombstones: u64,
    /// Smallest internal key, range-tombstone starts included (empty when the table is empty).
    pub smallest: Vec<u8>,
    /// Largest internal key, range-tombstone end sentinels included (empty when empty).
    pub largest: Vec<u8>,
    /// Smallest seqno of any entry or tombstone (0 when empty).
    pub smallest_seqno: u64,
    /// Largest seqno of any entry or tombstone (0 when empty).
    pub largest_seqno: u64,
}

/// Encoded output not yet appended to the file, and the block encoder.
struct BlockSink {
    /// Encoded bytes not yet appended to the file.
    out: Vec<u8>,
    /// Bytes appended to the file plus bytes in `out`.
    offset: u64,
    compressor: Option<Compressor>,
}

/// A data block compressor with its scratch buffers.
enum Compressor {
    /// zstd context, output (`len varint | frame`) and frame scratch.
    Zstd(zstd::bulk::Compressor<'static>, Vec<u8>, Vec<u8>),
    /// Output (`len varint | lz4 block`).
    Lz4(Vec<u8>),
}

impl Compressor {
    /// Compresses `contents` into its output buffer as `len varint | payload` and returns the
    /// block type and the encoded bytes, or `None` when compression failed.
    fn compress(&mut self, contents: &[u8]) -> Option<(u8, &[u8])> {
        match self {
            Compressor::Zstd(zc, zbuf, frame) => {
                zbuf.clear();
                coding::put_varint(zbuf, contents.len() as u64);
                frame.clear();
                frame.reserve(zstd::zstd_safe::compress_bound(contents.len()));
                let n = zc.compress_to_buffer(contents, frame).ok()?;
                zbuf.extend_from_slice(&frame[..n]);
                Some((COMPRESSION_ZSTD, zbuf))
            }
            Compressor::Lz4(buf) => {
                buf.clear();
                coding::put_varint(buf, contents.len() as u64);
                let prefix = buf.len();
                buf.resize(
                    prefix + lz4_flex::block::get_maximum_output_size(contents.len()),
                    0,
                );
                let n = lz4_flex::block::compress_into(contents, &mut buf[prefix..]).ok()?;
                buf.truncate(prefix + n);
                Some((COMPRESSION_LZ4, buf))
            }
        }
    }
}

impl BlockSink {
    /// Appends `contents` as a block to the output buffer, compressing it when allowed and
    /// worthwhile (saves at least 1/8), and returns its handle.
    fn write_block(&mut self, contents: &[u8], allow_compression: bool) -> BlockHandle {
        let offset = self.offset;
        let start = self.out.len();
        let mut stored_len = None;
        if let (true, Some(c)) = (allow_compression, self.compressor.as_mut()) {
            if let Some((ctype, encoded)) = c.compress(contents) {
                if encoded.len() <= contents.len() - contents.len() / 8 {
                    block::append_block(&mut self.out, encoded, ctype);
                    stored_len = Some(encoded.len());
                }
            }
        }
        let stored_len = match stored_len {
            Some(n) => n,
            None => {
                block::append_block(&mut self.out, contents, COMPRESSION_NONE);
                contents.len()
            }
        };
        let written = self.out.len() - start;
        // Pair assertion with the reader's trailer check.
        debug_assert_eq!(written, stored_len + block::BLOCK_TRAILER_LEN);
        self.offset += written as u64;
        BlockHandle {
            offset,
            size: stored_len as u64,
        }
    }
}

/// Streams sorted entries into an SST file.
pub struct TableBuilder {
    file: Box<dyn WritableFile>,
    path: PathBuf,
    opts: TableBuildOptions,
    sink: BlockSink,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    handle_buf: Vec<u8>,
    first_key: Vec<u8>,
    last_key: Vec<u8>,
    key_hashes: filter::HashChunks,
    tombstones: Vec<RangeTombstone>,
    num_entries: u64,
    num_data_blocks: u64,
    seqno_min: u64,
    seqno_max: u64,
    /// The first write error; every later call returns it again.
    error: Option<Error>,
}

impl TableBuilder {
    /// Starts a table in `file` (empty, freshly created); `path` names it in errors.
    pub fn new(file: Box<dyn WritableFile>, path: PathBuf, opts: TableBuildOptions) -> Self {
        let mut error = None;
        let compressor = match opts.compression {
            Compression::None => None,
            Compression::Lz4 => Some(Compressor::Lz4(Vec::new())),
            Compression::Zstd { level } => match zstd::bulk::Compressor::new(level) {
                Ok(c) => Some(Compressor::Zstd(c, Vec::new(), Vec::new())),
                Err(e) => {
                    error = Some(Error::InvalidArgument(format!(
                        "zstd compressor for level {level} ({}): {e}",
                        path.display()
                    )));
                    None
                }
            },
        };
        TableBuilder {
            file,
            path,
            sink: BlockSink {
                out: Vec::with_capacity(WRITE_CHUNK_BYTES + opts.block_size_bytes.min(1 << 20)),
                offset: 0,
                compressor,
            },
            data_block: BlockBuilder::new(DATA_RESTART_INTERVAL),
            index_block: BlockBuilder::new(1),
            handle_buf: Vec::with_capacity(20),
            first_key: Vec::new(),
            last_key: Vec::new(),
            key_hashes: filter::HashChunks::default(),
            tombstones: Vec::new(),
            num_entries: 0,
            num_data_blocks: 0,
            seqno_min: u64::MAX,
            seqno_max: 0,
            error,
            opts,
        }
    }

    fn check_error(&self) -> Result<()> {
        match &self.error {
            Some(e) => Err(e.duplicate()),
            None => Ok(()),
        }
    }

    /// Adds a point entry. Internal keys must be strictly increasing in
    /// [`key::cmp_internal`] order and of kind Put or Delete.
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        self.check_error()?;
        if !block::valid_point_key(ikey) {
            return Err(Error::InvalidArgument(format!(
                "{}: malformed internal key {:?}",
                self.path.display(),
                crate::sst::escape(ikey)
            )));
        }
        if self.num_entries > 0 && key::cmp_internal(&self.last_key, ikey) != Ordering::Less {
            debug_assert!(false, "table keys out of order");
            return Err(Error::InvalidArgument(format!(
                "{}: internal key {} added after {}",
                self.path.display(),
                crate::sst::escape(ikey),
                crate::sst::escape(&self.last_key)
            )));
        }
        let new_user_key =
            self.num_entries == 0 || key::user_key(&self.last_key) != key::user_key(ikey);
        self.push_entry(ikey, value, new_user_key)
    }

    /// [`TableBuilder::add`] for a caller that already guarantees what `add` checks: `ikey`
    /// is a well-formed Put/Delete internal key whose *user key* is strictly greater than the
    /// previous entry's (as [`crate::SstWriter`] checks before building the key). Skips the
    /// re-validation on the bulk-load hot path.
    pub(crate) fn add_next_user_key(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        self.check_error()?;
        debug_assert!(block::valid_point_key(ikey));
        debug_assert!(
            self.num_entries == 0 || key::user_key(&self.last_key) < key::user_key(ikey),
            "user keys must strictly increase"
        );
        self.push_entry(ikey, value, true)
    }

    fn push_entry(&mut self, ikey: &[u8], value: &[u8], new_user_key: bool) -> Result<()> {
        // One block size limit for every compression, enforced here rather than by a reader
        // that would refuse the block later.
        let entry = key::user_key(ikey).len().saturating_add(value.len());
        if entry > block::MAX_ENTRY_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{}: an entry of {entry} bytes (key + value) exceeds the limit of {} bytes",
                self.path.display(),
                block::MAX_ENTRY_BYTES
            )));
        }
        let room = block::MAX_BLOCK_UNCOMPRESSED_BYTES - block::MAX_ENTRY_BYTES;
        if self.data_block.size_estimate().saturating_add(entry + room)
            > block::MAX_BLOCK_UNCOMPRESSED_BYTES
        {
            self.flush_data_block()?;
        }
        if self.opts.bloom_bits_per_key > 0 && new_user_key {
            self.key_hashes.push(filter::hash_key(key::user_key(ikey)));
        }
        if self.num_entries == 0 {
            self.first_key.extend_from_slice(ikey);
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);
        let seq = key::seqno(ikey);
        self.seqno_min = self.seqno_min.min(seq);
        self.seqno_max = self.seqno_max.max(seq);
        self.num_entries += 1;
        self.data_block.add(ikey, value);
        if self.data_block.size_estimate() >= self.opts.block_size_bytes {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// Adds a range tombstone (any order; sorted at finish).
    pub fn add_range_tombstone(&mut self, t: RangeTombstone) {
        if t.start >= t.end {
            return; // an empty range deletes nothing
        }
        self.seqno_min = self.seqno_min.min(t.seq);
        self.seqno_max = self.seqno_max.max(t.seq);
        self.tombstones.push(t);
    }

    /// Bytes written so far plus the pending data block.
    pub fn estimated_size(&self) -> u64 {
        self.sink.offset + self.data_block.size_estimate() as u64
    }

    /// Point entries added.
    pub fn num_entries(&self) -> u64 {
        self.num_entries
    }

    /// True when neither a point entry nor a range tombstone was added.
    pub fn is_empty(&self) -> bool {
        self.num_entries == 0 && self.tombstones.is_empty()
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data_block.is_empty() {
            return Ok(());
        }
        let handle = self.sink.write_block(self.data_block.finish(), true);
        // The index key is the block's last key: every key of the block is <= it.
        self.handle_buf.clear();
        handle.encode_varint(&mut self.handle_buf);
        self.index_block
            .add(self.data_block.last_key(), &self.handle_buf);
        self.data_block.reset();
        self.num_data_blocks += 1;
        self.flush_output(false)
    }

    fn flush_output(&mut self, force: bool) -> Result<()> {
        let out = &mut self.sink.out;
        if out.is_empty() || (!force && out.len() < WRITE_CHUNK_BYTES) {
            return Ok(());
        }
        if let Err(e) = self.file.append(out) {
            let err = Error::io(&self.path, e);
            self.error = Some(err.duplicate());
            return Err(err);
        }
        out.clear();
        Ok(())
    }

    /// Writes the remaining blocks and the footer, syncs the file, and describes the table.
    pub fn finish(mut self) -> Result<TableInfo> {
        self.check_error()?;
        self.flush_data_block()?;
        let data_size = self.sink.offset;

        let filter = if self.opts.bloom_bits_per_key > 0 && !self.key_hashes.is_empty() {
            let contents =
                filter::build_filter_chunks(&self.key_hashes, self.opts.bloom_bits_per_key);
            self.sink.write_block(&contents, false)
        } else {
            BlockHandle::default()
        };

        self.tombstones.sort_by(range_del::cmp_tombstones);
        let range_del = self
            .sink
            .write_block(&range_del::encode(&self.tombstones), false);

        let info = self.table_info();
        let props = Properties {
            num_entries: self.num_entries,
            num_data_blocks: self.num_data_blocks,
            num_range_tombstones: self.tombstones.len() as u64,
            data_size,
            index_size: self.index_block.size_estimate() as u64,
            filter_size: filter.size,
            smallest: info.smallest.clone(),
            largest: info.largest.clone(),
            smallest_seqno: info.smallest_seqno,
            largest_seqno: info.largest_seqno,
            creation_time_secs: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            compression: compression_name(self.opts.compression),
            creator: self.opts.creator.clone(),
            format_version: FORMAT_VERSION,
        };
        let properties = self.sink.write_block(&props.encode(), false);

        let index = self.sink.write_block(self.index_block.finish(), false);

        let footer = Footer {
            filter,
            range_del,
            properties,
            index,
            format_version: FORMAT_VERSION,
        };
        self.sink.out.extend_from_slice(&footer.encode());
        self.sink.offset += super::footer::FOOTER_LEN as u64;
        self.flush_output(true)?;
        self.file.sync().map_err(|e| Error::io(&self.path, e))?;
        debug_assert_eq!(self.file.len(), self.sink.offset);
        Ok(TableInfo {
            file_size: self.sink.offset,
            ..info
        })
    }

    fn table_info(&self) -> TableInfo {
        let mut smallest: Option<Vec<u8>> = (self.num_entries > 0).then(|| self.first_key.clone());
        let mut largest: Option<Vec<u8>> = (self.num_entries > 0).then(|| self.last_key.clone());
        for t in &self.tombstones {
            let start = key::internal_key(&t.start, t.seq, ValueKind::RangeDelete);
            if smallest
                .as_ref()
                .is_none_or(|s| key::cmp_internal(&start, s) == Ordering::Less)
            {
                smallest = Some(start);
            }
            let end = key::range_end_sentinel(&t.end);
            if largest
                .as_ref()
                .is_none_or(|l| key::cmp_internal(&end, l) == Ordering::Greater)
            {
                largest = Some(end);
            }
        }
        let empty = self.is_empty();
        TableInfo {
            file_size: self.sink.offset,
            num_entries: self.num_entries,
            num_range_tombstones: self.tombstones.len() as u64,
            smallest: smallest.unwrap_or_default(),
            largest: largest.unwrap_or_default(),
            smallest_seqno: if empty { 0 } else { self.seqno_min },
            largest_seqno: if empty { 0 } else { self.seqno_max },
        }
    }
}

/// The properties-block name of a compression setting.
pub fn compression_name(c: Compression) -> String {
    match c {
        Compression::None => "none".to_string(),
        Compression::Lz4 => "lz4".to_string(),
        Compression::Zstd { level } => format!("zstd({level})"),
    }
}
