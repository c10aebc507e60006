//! [`RocksTable`]: opens a RocksDB block-based table and scans its entries.

use super::block::{entries, ValueMode};
use super::checksum::{context_modifier, ChecksumType};
use super::compression::{self, DecompressError};
use super::footer::{BlockHandle, Footer, BLOCK_TRAILER_BYTES, FOOTER_BYTES};
use super::properties::{
    RocksProperties, INDEX_BINARY_SEARCH, INDEX_BINARY_SEARCH_WITH_FIRST_KEY, INDEX_HASH_SEARCH,
    INDEX_TWO_LEVEL,
};
use super::{index, metaindex, range_del};
use crate::fs::RandomAccessFile;
use crate::key::{RangeTombstone, SeqNo, TRAILER_LEN};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Largest block read from a RocksDB table (bounds the allocation a damaged handle may ask for).
pub const MAX_ROCKSDB_BLOCK_BYTES: u64 = 256 << 20;
/// The only comparator siltdb's order matches.
pub const BYTEWISE_COMPARATOR: &str = "leveldb.BytewiseComparator";

/// What a RocksDB internal key records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RocksKind {
    /// kTypeValue (0x1).
    Value,
    /// kTypeDeletion (0x0).
    Deletion,
    /// kTypeSingleDeletion (0x7): read as a deletion.
    SingleDeletion,
}

/// One point entry of a RocksDB table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocksEntry {
    /// The user key.
    pub key: Vec<u8>,
    /// The sequence number written in the key.
    pub seq: SeqNo,
    /// What the entry records.
    pub kind: RocksKind,
    /// The value (empty for deletions).
    pub value: Vec<u8>,
}

/// An open RocksDB block-based table.
pub struct RocksTable {
    file: std::sync::Arc<dyn RandomAccessFile>,
    path: PathBuf,
    footer: Footer,
    props: RocksProperties,
    index: BlockHandle,
    range_del: Option<BlockHandle>,
}

impl std::fmt::Debug for RocksTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksTable")
            .field("path", &self.path)
            .field("footer", &self.footer)
            .finish()
    }
}

/// True if `file` ends with a RocksDB table magic number.
pub fn is_rocksdb_table(file: &dyn RandomAccessFile) -> bool {
    let size = file.size();
    if size < 8 {
        return false;
    }
    let mut m = [0u8; 8];
    file.read_at(size - 8, &mut m).is_ok() && super::footer::has_rocksdb_magic(&m)
}

impl RocksTable {
    /// Opens the table: footer, metaindex, properties; checks that it is a table siltdb can
    /// read (bytewise comparator, a binary-search or two-level index).
    pub fn open(file: std::sync::Arc<dyn RandomAccessFile>, path: PathBuf) -> Result<RocksTable> {
        let size = file.size();
        let tail_len = size.min(FOOTER_BYTES as u64);
        let mut tail = vec![0u8; tail_len as usize];
        file.read_at(size - tail_len, &mut tail)
            .map_err(|e| Error::io(&path, e))?;
        let footer = Footer::decode(&path, &tail, size)?;
        let mut t = RocksTable {
            file,
            path,
            footer: footer.clone(),
            props: RocksProperties::default(),
            index: BlockHandle::default(),
            range_del: None,
        };
        let meta_raw = t.read_block(footer.metaindex)?;
        let meta = metaindex::decode(t.entries_of(&meta_raw, footer.metaindex)?)
            .map_err(|e| t.bad(footer.metaindex.offset, e))?;
        let props_h = *meta.get(metaindex::PROPERTIES_BLOCK).ok_or_else(|| {
            t.bad(
                footer.metaindex.offset,
                "metaindex has no properties block".into(),
            )
        })?;
        let props_raw = t.read_block(props_h)?;
        t.props = RocksProperties::from_entries(t.entries_of(&props_raw, props_h)?);
        t.index = match footer.index {
            Some(h) => h,
            None => *meta.get(metaindex::INDEX_BLOCK).ok_or_else(|| {
                t.bad(
                    footer.metaindex.offset,
                    "metaindex has no rocksdb.index entry".into(),
                )
            })?,
        };
        t.range_del = meta.get(metaindex::RANGE_DEL_BLOCK).copied();
        if let Some(c) = t.props.comparator() {
            if c != BYTEWISE_COMPARATOR {
                return Err(Error::InvalidArgument(format!(
                    "{}: comparator {c} is not supported (only {BYTEWISE_COMPARATOR})",
                    t.path.display()
                )));
            }
        }
        match t.props.index_type() {
            INDEX_BINARY_SEARCH | INDEX_TWO_LEVEL => {}
            other => {
                let what = match other {
                    INDEX_HASH_SEARCH => "hash search".to_string(),
                    INDEX_BINARY_SEARCH_WITH_FIRST_KEY => "binary search with first key".into(),
                    n => format!("unknown ({n})"),
                };
                return Err(Error::InvalidArgument(format!(
                    "{}: RocksDB index type {what} is not supported",
                    t.path.display()
                )));
            }
        }
        Ok(t)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The decoded footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The properties block.
    pub fn properties(&self) -> &RocksProperties {
        &self.props
    }

    /// A one-line description, e.g. `RocksDB block-based table, format_version 6`.
    pub fn format_name(&self) -> String {
        if self.footer.format_version == 0 {
            "RocksDB block-based table (legacy footer), format_version 0".into()
        } else {
            format!(
                "RocksDB block-based table, format_version {}",
                self.footer.format_version
            )
        }
    }

    /// The checksum type's name.
    pub fn checksum_name(&self) -> &'static str {
        self.footer.checksum.name()
    }

    fn bad(&self, offset: u64, why: String) -> Error {
        Error::corruption(&self.path, offset, why)
    }

    /// Reads, verifies and decompresses the block at `h`.
    fn read_block(&self, h: BlockHandle) -> Result<Vec<u8>> {
        let end = h
            .offset
            .checked_add(h.size)
            .and_then(|e| e.checked_add(BLOCK_TRAILER_BYTES))
            .filter(|e| *e <= self.footer.offset)
            .ok_or_else(|| {
                self.bad(
                    h.offset,
                    format!("block handle (size {}) runs past the data", h.size),
                )
            })?;
        if h.size > MAX_ROCKSDB_BLOCK_BYTES {
            return Err(self.bad(h.offset, format!("block of {} bytes is too large", h.size)));
        }
        let mut buf = vec![0u8; (end - h.offset) as usize];
        self.file
            .read_at(h.offset, &mut buf)
            .map_err(|e| Error::io(&self.path, e))?;
        let n = h.size as usize;
        let t = buf[n];
        let stored = u32::from_le_bytes([buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4]]);
        if self.footer.checksum != ChecksumType::None {
            let want = self
                .footer
                .checksum
                .compute(&buf[..n], t)
                .wrapping_add(context_modifier(
                    self.footer.base_context_checksum,
                    h.offset,
                ));
            if want != stored {
                return Err(self.bad(
                    h.offset,
                    format!(
                    "block checksum mismatch ({}): stored {stored:#010x}, computed {want:#010x}",
                    self.footer.checksum.name()
                ),
                ));
            }
        }
        buf.truncate(n);
        if t == compression::NO_COMPRESSION {
            return Ok(buf);
        }
        compression::decompress(t, &buf, self.footer.format_version).map_err(|e| match e {
            DecompressError::Unsupported(what) => Error::InvalidArgument(format!(
                "{}: block at offset {}: {what} is not supported",
                self.path.display(),
                h.offset
            )),
            DecompressError::Corrupt(why) => self.bad(h.offset, why),
        })
    }

    fn entries_of(&self, data: &[u8], h: BlockHandle) -> Result<Vec<super::block::Entry>> {
        entries(data, ValueMode::LengthPrefixed)
            .map_err(|(at, why)| self.bad(h.offset, format!("{why} (at byte {at} of the block)")))
    }

    fn index_handles(&self, h: BlockHandle) -> Result<Vec<BlockHandle>> {
        let data = self.read_block(h)?;
        index::handles(&data, self.props.index_value_is_delta_encoded()).map_err(|(at, why)| {
            self.bad(
                h.offset,
                format!("index block: {why} (at byte {at} of the block)"),
            )
        })
    }

    /// Handles of every data block, in key order (through the partitions of a two-level index).
    pub fn data_blocks(&self) -> Result<Vec<BlockHandle>> {
        let top = self.index_handles(self.index)?;
        if self.props.index_type() != INDEX_TWO_LEVEL {
            return Ok(top);
        }
        let mut out = Vec::new();
        for p in top {
            out.extend(self.index_handles(p)?);
        }
        Ok(out)
    }

    /// The range deletions, with RocksDB's sequence numbers.
    pub fn range_tombstones(&self) -> Result<Vec<RangeTombstone>> {
        let Some(h) = self.range_del else {
            return Ok(Vec::new());
        };
        let data = self.read_block(h)?;
        range_del::decode(self.entries_of(&data, h)?).map_err(|why| self.bad(h.offset, why))
    }

    /// Calls `f` with every point entry in order (user key ascending, seqno descending).
    /// Merge operands and other entry kinds are refused with [`Error::InvalidArgument`]; keys
    /// out of order are [`Error::Corruption`]. Returns the number of entries.
    pub fn scan(&self, mut f: impl FnMut(RocksEntry) -> Result<()>) -> Result<u64> {
        let mut prev: Option<(Vec<u8>, u64)> = None;
        let mut count = 0u64;
        for h in self.data_blocks()? {
            let data = self.read_block(h)?;
            for e in self.entries_of(&data, h)? {
                let Some(split) = e.key.len().checked_sub(TRAILER_LEN) else {
                    return Err(
                        self.bad(h.offset, "data block key shorter than its trailer".into())
                    );
                };
                let trailer = u64::from_le_bytes(e.key[split..].try_into().unwrap_or([0u8; 8]));
                let kind = match (trailer & 0xff) as u8 {
                    0x1 => RocksKind::Value,
                    0x0 => RocksKind::Deletion,
                    0x7 => RocksKind::SingleDeletion,
                    0x2 => {
                        return Err(Error::InvalidArgument(format!(
                            "{}: block at offset {} holds a merge operand (key \"{}\"); \
                             merge operands are not supported",
                            self.path.display(),
                            h.offset,
                            crate::sst::escape(&e.key[..split])
                        )))
                    }
                    k => {
                        return Err(Error::InvalidArgument(format!(
                            "{}: block at offset {} holds an entry of RocksDB value type {k:#x}, \
                             which is not supported",
                            self.path.display(),
                            h.offset
                        )))
                    }
                };
                let user = &e.key[..split];
                let seq = trailer >> 8;
                if let Some((pk, ps)) = &prev {
                    let ordered = match pk.as_slice().cmp(user) {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Equal => *ps > seq,
                        std::cmp::Ordering::Greater => false,
                    };
                    if !ordered {
                        return Err(self.bad(
                            h.offset,
                            format!(
                                "keys out of order: \"{}\" after \"{}\"",
                                crate::sst::escape(user),
                                crate::sst::escape(pk)
                            ),
                        ));
                    }
                }
                prev = Some((user.to_vec(), seq));
                count += 1;
                f(RocksEntry {
                    key: user.to_vec(),
                    seq,
                    kind,
                    value: e.value,
                })?;
            }
        }
        Ok(count)
    }
}
