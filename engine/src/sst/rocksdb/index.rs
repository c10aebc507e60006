//! Index blocks: one entry per data block (or, in a two-level index, per index partition),
//! whose value is the block's handle. Keys (separators; user keys when
//! `rocksdb.index.key.is.user.key` is set) are not needed to scan a table and are ignored.

use super::block::{entries, Entry, ValueMode};
use super::footer::BlockHandle;
use crate::coding::Cursor;

/// The value mode of a table's index blocks.
pub fn value_mode(delta_encoded: bool) -> ValueMode {
    if delta_encoded {
        ValueMode::DeltaHandles
    } else {
        ValueMode::LengthPrefixed
    }
}

/// Decodes an index block into the handles it lists, in order.
pub fn handles(data: &[u8], delta_encoded: bool) -> Result<Vec<BlockHandle>, (usize, String)> {
    let list: Vec<Entry> = entries(data, value_mode(delta_encoded))?;
    list.into_iter()
        .enumerate()
        .map(|(i, e)| match e.handle {
            Some(h) => Ok(h),
            None => BlockHandle::decode(&mut Cursor::new(&e.value))
                .ok_or((0, format!("index entry {i}: bad block handle"))),
        })
        .collect()
}
