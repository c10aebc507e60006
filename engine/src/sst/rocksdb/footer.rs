//! The RocksDB footer: the last 48 (legacy) or 53 bytes of a table.
//!
//! - legacy (magic `0xdb4775248b80fb57`, format_version 0, crc32c): metaindex handle, index
//!   handle (varints, zero-padded to 40 bytes), magic;
//! - format_version 1..=5 (magic `0x88e241b785f4cff7`): checksum type byte, metaindex and index
//!   handles padded to 41 bytes, format_version u32, magic;
//! - format_version >= 6: checksum type byte, extended magic `3e 00 7a 00`, footer checksum u32,
//!   base context checksum u32, metaindex size u32, 24 zero bytes, format_version u32, magic.
//!   The metaindex block ends just before the footer, and the index handle is the metaindex
//!   entry `rocksdb.index`.

use super::checksum::{context_modifier, ChecksumType};
use crate::coding::{u32_at, u64_at, Cursor};
use crate::{Error, Result};
use std::path::Path;

/// Magic number of LevelDB-compatible (legacy) block-based tables.
pub const LEGACY_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// Magic number of block-based tables.
pub const BLOCK_BASED_MAGIC: u64 = 0x88e2_41b7_85f4_cff7;
/// Magic numbers of plain tables and cuckoo tables (recognised only to refuse them by name).
pub const OTHER_TABLE_MAGICS: [(u64, &str); 3] = [
    (0x4f34_23f8_cd7c_b4e4, "legacy plain table"),
    (0x8242_2296_63bf_9564, "plain table"),
    (0x926b_1e2b_ac01_7ae1, "cuckoo table"),
];
/// Size of a legacy footer.
pub const LEGACY_FOOTER_BYTES: usize = 48;
/// Size of a format_version >= 1 footer.
pub const FOOTER_BYTES: usize = 53;
/// Newest format_version read.
pub const MAX_FORMAT_VERSION: u32 = 6;
/// Larger format_version values are damage rather than a newer RocksDB.
pub const MAX_PLAUSIBLE_FORMAT_VERSION: u32 = 63;
/// Size of a block trailer: compression type byte + checksum u32.
pub const BLOCK_TRAILER_BYTES: u64 = 5;
/// The extended magic of a format_version 6 footer (bytes 1..5).
const EXTENDED_MAGIC: [u8; 4] = [0x3e, 0x00, 0x7a, 0x00];

/// Where a block lies in the file (excluding its 5-byte trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// Offset of the block's first byte.
    pub offset: u64,
    /// Size of the block's contents.
    pub size: u64,
}

impl BlockHandle {
    /// Decodes two varint64s.
    pub fn decode(c: &mut Cursor<'_>) -> Option<BlockHandle> {
        Some(BlockHandle {
            offset: c.varint()?,
            size: c.varint()?,
        })
    }
}

/// A decoded footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// The table's block checksum type.
    pub checksum: ChecksumType,
    /// The metaindex block.
    pub metaindex: BlockHandle,
    /// The index block; `None` for format_version >= 6 (found through the metaindex).
    pub index: Option<BlockHandle>,
    /// 0 for a legacy footer.
    pub format_version: u32,
    /// format_version >= 6: entropy mixed into every block checksum; 0 otherwise.
    pub base_context_checksum: u32,
    /// Offset of the footer in the file.
    pub offset: u64,
}

/// True if the last 8 bytes of `tail` are one of RocksDB's table magic numbers.
pub fn has_rocksdb_magic(tail: &[u8]) -> bool {
    let Some(pos) = tail.len().checked_sub(8) else {
        return false;
    };
    let Some(m) = u64_at(tail, pos) else {
        return false;
    };
    m == LEGACY_MAGIC || m == BLOCK_BASED_MAGIC || OTHER_TABLE_MAGICS.iter().any(|(x, _)| *x == m)
}

impl Footer {
    /// Decodes the footer from `tail`, the last `min(file_size, 53)` bytes of a file of
    /// `file_size` bytes.
    pub fn decode(file: &Path, tail: &[u8], file_size: u64) -> Result<Footer> {
        let bad = |off: u64, why: String| Error::corruption(file, off, why);
        let tail_off = file_size.saturating_sub(tail.len() as u64);
        if tail.len() < LEGACY_FOOTER_BYTES {
            return Err(bad(
                tail_off,
                format!("file of {file_size} bytes is too short to be a RocksDB table"),
            ));
        }
        let magic = u64_at(tail, tail.len() - 8).unwrap_or(0);
        if let Some((_, what)) = OTHER_TABLE_MAGICS.iter().find(|(m, _)| *m == magic) {
            return Err(Error::InvalidArgument(format!(
                "{}: RocksDB {what} format is not supported (only block-based tables)",
                file.display()
            )));
        }
        if magic == LEGACY_MAGIC {
            let start = tail.len() - LEGACY_FOOTER_BYTES;
            let offset = tail_off + start as u64;
            let mut c = Cursor::new(&tail[start..tail.len() - 8]);
            let metaindex = BlockHandle::decode(&mut c)
                .ok_or_else(|| bad(offset, "bad metaindex handle in footer".into()))?;
            let index = BlockHandle::decode(&mut c)
                .ok_or_else(|| bad(offset, "bad index handle in footer".into()))?;
            return Ok(Footer {
                checksum: ChecksumType::Crc32c,
                metaindex,
                index: Some(index),
                format_version: 0,
                base_context_checksum: 0,
                offset,
            });
        }
        if magic != BLOCK_BASED_MAGIC {
            return Err(bad(
                file_size.saturating_sub(8),
                format!("bad magic number {magic:#018x}: not a RocksDB table"),
            ));
        }
        if tail.len() < FOOTER_BYTES {
            return Err(bad(tail_off, "file too short for a RocksDB footer".into()));
        }
        let start = tail.len() - FOOTER_BYTES;
        let f = &tail[start..];
        let offset = tail_off + start as u64;
        let format_version = u32_at(f, FOOTER_BYTES - 12).unwrap_or(0);
        if format_version == 0 || format_version > MAX_PLAUSIBLE_FORMAT_VERSION {
            return Err(bad(
                offset,
                format!("implausible format_version {format_version}"),
            ));
        }
        if format_version > MAX_FORMAT_VERSION {
            return Err(Error::InvalidArgument(format!(
                "{}: RocksDB format_version {format_version} is not supported (1..={MAX_FORMAT_VERSION})",
                file.display()
            )));
        }
        let checksum = ChecksumType::from_u8(f[0])
            .ok_or_else(|| bad(offset, format!("unknown checksum type {}", f[0])))?;
        if format_version >= 6 {
            if f[1..5] != EXTENDED_MAGIC {
                return Err(bad(
                    offset,
                    "bad extended magic in format_version 6 footer".into(),
                ));
            }
            let stored = u32_at(f, 5).unwrap_or(0);
            let base = u32_at(f, 9).unwrap_or(0);
            let meta_size = u32_at(f, 13).unwrap_or(0);
            if f[17..41].iter().any(|b| *b != 0) {
                return Err(bad(offset, "non-zero reserved bytes in footer".into()));
            }
            if checksum != ChecksumType::None {
                let mut copy = f.to_vec();
                copy[5..9].fill(0);
                let want = checksum
                    .compute(&copy[..FOOTER_BYTES - 1], copy[FOOTER_BYTES - 1])
                    .wrapping_add(context_modifier(base, offset));
                if want != stored {
                    return Err(bad(
                        offset,
                        format!(
                        "footer checksum mismatch: stored {stored:#010x}, computed {want:#010x}"
                    ),
                    ));
                }
            }
            let meta_off = offset
                .checked_sub(BLOCK_TRAILER_BYTES + u64::from(meta_size))
                .ok_or_else(|| bad(offset, "metaindex size exceeds the file".into()))?;
            return Ok(Footer {
                checksum,
                metaindex: BlockHandle {
                    offset: meta_off,
                    size: u64::from(meta_size),
                },
                index: None,
                format_version,
                base_context_checksum: base,
                offset,
            });
        }
        let mut c = Cursor::new(&f[1..FOOTER_BYTES - 12]);
        let metaindex = BlockHandle::decode(&mut c)
            .ok_or_else(|| bad(offset, "bad metaindex handle in footer".into()))?;
        let index = BlockHandle::decode(&mut c)
            .ok_or_else(|| bad(offset, "bad index handle in footer".into()))?;
        Ok(Footer {
            checksum,
            metaindex,
            index: Some(index),
            format_version,
            base_context_checksum: 0,
            offset,
        })
    }
}
