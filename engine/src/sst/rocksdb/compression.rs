//! RocksDB block compression: the trailer's type byte and the decompressors for the codecs
//! siltdb reads (none, snappy, lz4/lz4hc, zstd). For format_version >= 2, lz4 and zstd blocks
//! start with a varint32 of the decompressed size; snappy carries its own length.

use crate::coding::Cursor;

/// Largest decompressed block accepted (bounds the allocation a damaged size may ask for).
pub const MAX_DECOMPRESSED_BLOCK_BYTES: usize = 256 << 20;

/// Trailer type byte: uncompressed.
pub const NO_COMPRESSION: u8 = 0;
/// Trailer type byte: snappy.
pub const SNAPPY: u8 = 1;
/// Trailer type byte: zlib (refused).
pub const ZLIB: u8 = 2;
/// Trailer type byte: bzip2 (refused).
pub const BZIP2: u8 = 3;
/// Trailer type byte: lz4.
pub const LZ4: u8 = 4;
/// Trailer type byte: lz4hc (same block format as lz4).
pub const LZ4HC: u8 = 5;
/// Trailer type byte: xpress (refused).
pub const XPRESS: u8 = 6;
/// Trailer type byte: zstd.
pub const ZSTD: u8 = 7;
/// Trailer type byte: zstd from before its format was final (read as zstd).
pub const ZSTD_NOT_FINAL: u8 = 0x40;

/// RocksDB's name for a compression type byte.
pub fn name(t: u8) -> String {
    match t {
        NO_COMPRESSION => "none".into(),
        SNAPPY => "snappy".into(),
        ZLIB => "zlib".into(),
        BZIP2 => "bzip2".into(),
        LZ4 => "lz4".into(),
        LZ4HC => "lz4hc".into(),
        XPRESS => "xpress".into(),
        ZSTD | ZSTD_NOT_FINAL => "zstd".into(),
        other => format!("unknown({other:#x})"),
    }
}

/// Why a block could not be decompressed.
#[derive(Debug)]
pub enum DecompressError {
    /// A codec siltdb does not read: the caller reports it as unsupported.
    Unsupported(String),
    /// Damaged compressed bytes or a bad size.
    Corrupt(String),
}

fn sized(data: &[u8]) -> Result<(usize, &[u8]), DecompressError> {
    let mut c = Cursor::new(data);
    let n = c
        .varint()
        .filter(|n| *n <= u64::from(u32::MAX))
        .ok_or_else(|| DecompressError::Corrupt("bad decompressed-size prefix".into()))?
        as usize;
    if n > MAX_DECOMPRESSED_BLOCK_BYTES {
        return Err(DecompressError::Corrupt(format!(
            "decompressed size {n} exceeds {MAX_DECOMPRESSED_BLOCK_BYTES}"
        )));
    }
    Ok((n, &data[c.pos()..]))
}

/// Decompresses a block's contents given its trailer type byte.
pub fn decompress(t: u8, data: &[u8], format_version: u32) -> Result<Vec<u8>, DecompressError> {
    let check_len = |out: Vec<u8>, n: usize| {
        if out.len() == n {
            Ok(out)
        } else {
            Err(DecompressError::Corrupt(format!(
                "decompressed {} bytes, expected {n}",
                out.len()
            )))
        }
    };
    match t {
        NO_COMPRESSION => Ok(data.to_vec()),
        SNAPPY => {
            let n = snap::raw::decompress_len(data)
                .map_err(|e| DecompressError::Corrupt(format!("snappy: {e}")))?;
            if n > MAX_DECOMPRESSED_BLOCK_BYTES {
                return Err(DecompressError::Corrupt(format!(
                    "decompressed size {n} exceeds {MAX_DECOMPRESSED_BLOCK_BYTES}"
                )));
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| DecompressError::Corrupt(format!("snappy: {e}")))
        }
        LZ4 | LZ4HC | ZSTD | ZSTD_NOT_FINAL if format_version < 2 => {
            Err(DecompressError::Unsupported(format!(
                "{} blocks of format_version {format_version} (compression format 1)",
                name(t)
            )))
        }
        LZ4 | LZ4HC => {
            let (n, body) = sized(data)?;
            let out = lz4_flex::block::decompress(body, n)
                .map_err(|e| DecompressError::Corrupt(format!("lz4: {e}")))?;
            check_len(out, n)
        }
        ZSTD | ZSTD_NOT_FINAL => {
            let (n, body) = sized(data)?;
            let out = zstd::bulk::decompress(body, n)
                .map_err(|e| DecompressError::Corrupt(format!("zstd: {e}")))?;
            check_len(out, n)
        }
        ZLIB | BZIP2 | XPRESS => Err(DecompressError::Unsupported(format!(
            "{} compression",
            name(t)
        ))),
        other => Err(DecompressError::Corrupt(format!(
            "unknown compression type {other:#x}"
        ))),
    }
}
