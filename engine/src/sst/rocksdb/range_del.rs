//! The range-deletion block: keys are internal keys `start ++ (seq << 8 | 0x0F)`, values the
//! exclusive end user keys.

use super::block::Entry;
use crate::key::{RangeTombstone, TRAILER_LEN};

/// Kind byte of a range deletion in a RocksDB internal key.
pub const RANGE_DELETION_KIND: u8 = 0x0F;

/// Decodes the block's entries into tombstones (with RocksDB's sequence numbers); an error
/// names the bad entry.
pub fn decode(entries: Vec<Entry>) -> Result<Vec<RangeTombstone>, String> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let Some(split) = e.key.len().checked_sub(TRAILER_LEN) else {
            return Err(format!("range deletion {i}: key shorter than its trailer"));
        };
        let trailer = u64::from_le_bytes(e.key[split..].try_into().unwrap_or([0; 8]));
        if trailer & 0xff != u64::from(RANGE_DELETION_KIND) {
            return Err(format!(
                "range deletion {i}: kind {:#x} is not a range deletion",
                trailer & 0xff
            ));
        }
        out.push(RangeTombstone {
            start: e.key[..split].to_vec(),
            end: e.value,
            seq: trailer >> 8,
        });
    }
    Ok(out)
}
