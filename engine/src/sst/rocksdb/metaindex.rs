//! The metaindex block: meta block name -> block handle (`rocksdb.properties`,
//! `rocksdb.range_del`, filter blocks, and for format_version >= 6 `rocksdb.index`).

use super::block::Entry;
use super::footer::BlockHandle;
use crate::coding::Cursor;
use std::collections::BTreeMap;

/// Metaindex name of the properties block.
pub const PROPERTIES_BLOCK: &str = "rocksdb.properties";
/// Metaindex name of the range-deletion block.
pub const RANGE_DEL_BLOCK: &str = "rocksdb.range_del";
/// Metaindex name of the index block (format_version >= 6).
pub const INDEX_BLOCK: &str = "rocksdb.index";

/// Decodes metaindex entries into a map; a bad handle is an error naming the entry.
pub fn decode(entries: Vec<Entry>) -> Result<BTreeMap<String, BlockHandle>, String> {
    let mut out = BTreeMap::new();
    for e in entries {
        let name = String::from_utf8_lossy(&e.key).into_owned();
        let mut c = Cursor::new(&e.value);
        let h = BlockHandle::decode(&mut c)
            .ok_or_else(|| format!("bad block handle for meta block {name}"))?;
        out.insert(name, h);
    }
    Ok(out)
}
