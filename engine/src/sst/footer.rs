//! Block handles and the fixed-size footer at the end of every SST file.
//!
//! ```text
//! footer (80 bytes) := filter handle | range-del handle | properties handle | index handle
//!                      (each: offset u64 LE | size u64 LE)
//!                      | format_version u32 LE | masked crc32c u32 LE of bytes 0..68
//!                      | magic u64 LE
//! ```
//!
//! See `docs/format.md`, "Footer".

use crate::coding::{self, Cursor};

/// Total footer length in bytes.
pub const FOOTER_LEN: usize = 80;
/// The SST format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Magic number closing every SST file: the ASCII bytes `siltSST1` read as a u64 LE.
pub const MAGIC: u64 = u64::from_le_bytes(*b"siltSST1");

/// Where a block lives: `offset` of its first byte and `size` of its contents (excluding the
/// 5-byte trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// File offset of the block.
    pub offset: u64,
    /// Length of the block contents, trailer excluded.
    pub size: u64,
}

impl BlockHandle {
    /// Appends the varint encoding (`offset varint | size varint`) used in index entries.
    pub fn encode_varint(&self, out: &mut Vec<u8>) {
        coding::put_varint(out, self.offset);
        coding::put_varint(out, self.size);
    }

    /// Decodes an index-entry value; `None` when malformed or followed by extra bytes.
    pub fn decode_varint(data: &[u8]) -> Option<BlockHandle> {
        let mut c = Cursor::new(data);
        let offset = c.varint()?;
        let size = c.varint()?;
        c.is_empty().then_some(BlockHandle { offset, size })
    }

    /// End of the block on disk, trailer included (`None` on overflow).
    pub fn end_with_trailer(&self) -> Option<u64> {
        self.offset
            .checked_add(self.size)?
            .checked_add(super::block::BLOCK_TRAILER_LEN as u64)
    }
}

/// The decoded footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Filter block; size 0 when the file has no filter.
    pub filter: BlockHandle,
    /// Range-deletion block.
    pub range_del: BlockHandle,
    /// Properties block.
    pub properties: BlockHandle,
    /// Index block.
    pub index: BlockHandle,
    /// Format version (always [`FORMAT_VERSION`] once decoded).
    pub format_version: u32,
}

impl Footer {
    /// Encodes the footer (exactly [`FOOTER_LEN`] bytes).
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut out = Vec::with_capacity(FOOTER_LEN);
        for h in [self.filter, self.range_del, self.properties, self.index] {
            out.extend_from_slice(&h.offset.to_le_bytes());
            out.extend_from_slice(&h.size.to_le_bytes());
        }
        out.extend_from_slice(&self.format_version.to_le_bytes());
        let crc = coding::crc32c_masked(&[&out]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        let mut fixed = [0u8; FOOTER_LEN];
        fixed.copy_from_slice(&out);
        fixed
    }

    /// Decodes and validates a footer; the error is the reason it is rejected.
    pub fn decode(data: &[u8]) -> Result<Footer, String> {
        if data.len() != FOOTER_LEN {
            return Err(format!(
                "footer is {} bytes, expected {FOOTER_LEN}",
                data.len()
            ));
        }
        let magic = coding::u64_at(data, 72).unwrap_or(0);
        if magic != MAGIC {
            return Err(format!(
                "bad magic number {magic:#018x}: not a siltdb SST file"
            ));
        }
        let stored = coding::u32_at(data, 68).unwrap_or(0);
        let actual = coding::crc32c_masked(&[&data[..68]]);
        if stored != actual {
            return Err(format!(
                "footer checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"
            ));
        }
        let format_version = coding::u32_at(data, 64).unwrap_or(0);
        if format_version != FORMAT_VERSION {
            return Err(format!(
                "unsupported SST format version {format_version} (this build reads {FORMAT_VERSION})"
            ));
        }
        let handle = |i: usize| BlockHandle {
            offset: coding::u64_at(data, 16 * i).unwrap_or(0),
            size: coding::u64_at(data, 16 * i + 8).unwrap_or(0),
        };
        Ok(Footer {
            filter: handle(0),
            range_del: handle(1),
            properties: handle(2),
            index: handle(3),
            format_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flip_rejected() {
        let f = Footer {
            filter: BlockHandle { offset: 1, size: 2 },
            range_del: BlockHandle { offset: 3, size: 4 },
            properties: BlockHandle { offset: 5, size: 6 },
            index: BlockHandle {
                offset: 7,
                size: u64::MAX,
            },
            format_version: FORMAT_VERSION,
        };
        let bytes = f.encode();
        assert_eq!(Footer::decode(&bytes), Ok(f));
        for i in 0..FOOTER_LEN {
            let mut b = bytes;
            b[i] ^= 0x10;
            assert!(Footer::decode(&b).is_err(), "flip at {i}");
        }
        assert!(Footer::decode(&bytes[1..]).is_err());
        let h = BlockHandle {
            offset: 300,
            size: 7,
        };
        let mut v = Vec::new();
        h.encode_varint(&mut v);
        assert_eq!(BlockHandle::decode_varint(&v), Some(h));
        v.push(0);
        assert_eq!(BlockHandle::decode_varint(&v), None);
    }
}
