//! RocksDB block checksums: crc32c (masked), xxHash32, xxHash64 (low 32 bits) and XXH3 (low 32
//! bits, with the block-type byte mixed in), plus the format_version 6 context modifier.

use xxhash_rust::{xxh3::xxh3_64, xxh32::Xxh32, xxh64::Xxh64};

/// Multiplier RocksDB uses to mix the last byte into an XXH3 checksum.
const XXH3_LAST_BYTE_PRIME: u32 = 0x6b90_83d9;

/// The checksum type named by a table's footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    /// No checksum (type 0); blocks are not verified.
    None,
    /// Masked CRC32C (type 1).
    Crc32c,
    /// xxHash32, seed 0 (type 2).
    XxHash,
    /// Low 32 bits of xxHash64, seed 0 (type 3).
    XxHash64,
    /// Low 32 bits of XXH3-64 of the block, xor the type byte times a prime (type 4).
    Xxh3,
}

impl ChecksumType {
    /// Decodes the footer's type byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => ChecksumType::None,
            1 => ChecksumType::Crc32c,
            2 => ChecksumType::XxHash,
            3 => ChecksumType::XxHash64,
            4 => ChecksumType::Xxh3,
            _ => return None,
        })
    }

    /// RocksDB's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::None => "none",
            ChecksumType::Crc32c => "crc32c",
            ChecksumType::XxHash => "xxhash",
            ChecksumType::XxHash64 => "xxhash64",
            ChecksumType::Xxh3 => "xxh3",
        }
    }

    /// The checksum of `data` followed by `last_byte` (the block trailer's compression type).
    pub fn compute(self, data: &[u8], last_byte: u8) -> u32 {
        match self {
            ChecksumType::None => 0,
            ChecksumType::Crc32c => crate::coding::crc32c_masked(&[data, &[last_byte]]),
            ChecksumType::XxHash => {
                let mut h = Xxh32::new(0);
                h.update(data);
                h.update(&[last_byte]);
                h.digest()
            }
            ChecksumType::XxHash64 => {
                let mut h = Xxh64::new(0);
                h.update(data);
                h.update(&[last_byte]);
                h.digest() as u32
            }
            ChecksumType::Xxh3 => {
                (xxh3_64(data) as u32) ^ u32::from(last_byte).wrapping_mul(XXH3_LAST_BYTE_PRIME)
            }
        }
    }
}

/// format_version >= 6: the value added to a block's checksum so that a block copied to another
/// offset (or file) fails verification. Zero when the base is zero.
pub fn context_modifier(base_context_checksum: u32, offset: u64) -> u32 {
    if base_context_checksum == 0 {
        return 0;
    }
    base_context_checksum ^ (offset as u32).wrapping_add((offset >> 32) as u32)
}
