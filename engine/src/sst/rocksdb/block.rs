//! RocksDB blocks: prefix-compressed entries followed by a restart array and a u32 whose low
//! 31 bits count the restarts (bit 31 set = a data-block hash index follows the restarts,
//! which siltdb refuses).
//!
//! An entry is `shared varint32, non_shared varint32, value_len varint32, key delta, value`.
//! In index blocks with delta-encoded values (format_version >= 4) `value_len` is absent and
//! the value is a block handle: two varint64s when `shared == 0`, else one zig-zag varint64 of
//! the size difference to the previous handle (whose end plus a trailer is the offset).

use super::footer::{BlockHandle, BLOCK_TRAILER_BYTES};
use crate::coding::{u32_at, Cursor};

/// One decoded block entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The full key.
    pub key: Vec<u8>,
    /// The value (for delta-encoded index blocks: empty; see `handle`).
    pub value: Vec<u8>,
    /// For delta-encoded index blocks: the decoded block handle.
    pub handle: Option<BlockHandle>,
}

/// How values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueMode {
    /// A `value_len` varint, then the value.
    LengthPrefixed,
    /// Index block values as delta-encoded block handles.
    DeltaHandles,
}

/// Decodes every entry of a block. Errors name the offset within the block.
pub fn entries(data: &[u8], mode: ValueMode) -> Result<Vec<Entry>, (usize, String)> {
    let n = data.len();
    let packed = n
        .checked_sub(4)
        .and_then(|p| u32_at(data, p))
        .ok_or((0, "block shorter than its restart count".to_string()))?;
    if packed & 0x8000_0000 != 0 {
        return Err((
            n - 4,
            "data block hash index (kDataBlockBinaryAndHash) is not supported".into(),
        ));
    }
    let restarts = packed as usize;
    let limit = restarts
        .checked_mul(4)
        .and_then(|r| (n - 4).checked_sub(r))
        .ok_or((n - 4, format!("restart count {restarts} exceeds the block")))?;
    if restarts == 0 && limit > 0 {
        return Err((n - 4, "block has entries but no restart points".into()));
    }
    let mut out = Vec::new();
    let mut c = Cursor::new(&data[..limit]);
    let mut key: Vec<u8> = Vec::new();
    let mut prev: Option<BlockHandle> = None;
    while !c.is_empty() {
        let at = c.pos();
        let bad = |why: &str| (at, why.to_string());
        let shared = c.varint().ok_or_else(|| bad("bad shared length"))? as usize;
        let non_shared = c.varint().ok_or_else(|| bad("bad key length"))? as usize;
        let value_len = match mode {
            ValueMode::LengthPrefixed => {
                Some(c.varint().ok_or_else(|| bad("bad value length"))? as usize)
            }
            ValueMode::DeltaHandles => None,
        };
        if shared > key.len() {
            return Err(bad("shared prefix longer than the previous key"));
        }
        let delta = c
            .bytes(non_shared)
            .ok_or_else(|| bad("key runs past the block"))?;
        key.truncate(shared);
        key.extend_from_slice(delta);
        let (value, handle) = match value_len {
            Some(len) => (
                c.bytes(len)
                    .ok_or_else(|| bad("value runs past the block"))?
                    .to_vec(),
                None,
            ),
            None => {
                let h = match (shared, prev) {
                    (0, _) | (_, None) => {
                        if shared != 0 {
                            return Err(bad("delta-encoded handle without a previous one"));
                        }
                        BlockHandle::decode(&mut c).ok_or_else(|| bad("bad block handle"))?
                    }
                    (_, Some(p)) => {
                        let z = c.varint().ok_or_else(|| bad("bad handle size delta"))?;
                        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
                        let offset = p
                            .offset
                            .checked_add(p.size)
                            .and_then(|o| o.checked_add(BLOCK_TRAILER_BYTES))
                            .ok_or_else(|| bad("handle offset overflows"))?;
                        let size = p
                            .size
                            .checked_add_signed(d)
                            .ok_or_else(|| bad("handle size delta out of range"))?;
                        BlockHandle { offset, size }
                    }
                };
                prev = Some(h);
                (Vec::new(), Some(h))
            }
        };
        out.push(Entry {
            key: key.clone(),
            value,
            handle,
        });
    }
    Ok(out)
}
