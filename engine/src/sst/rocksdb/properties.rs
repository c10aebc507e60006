//! The properties block: property name -> value. Integer properties are varint64, except
//! `rocksdb.external_sst_file.global_seqno` (fixed64, rewritable in place), and
//! `rocksdb.block.based.table.index.type` and `rocksdb.external_sst_file.version` (fixed32).

use super::block::Entry;
use crate::coding::{u32_at, u64_at, Cursor};
use std::collections::BTreeMap;

/// The properties of a RocksDB table that siltdb reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RocksProperties {
    /// Every property, raw.
    pub raw: BTreeMap<String, Vec<u8>>,
}

/// Index type: binary search over one index block.
pub const INDEX_BINARY_SEARCH: u32 = 0;
/// Index type: binary search plus a prefix hash (refused).
pub const INDEX_HASH_SEARCH: u32 = 1;
/// Index type: two-level (partitioned) index.
pub const INDEX_TWO_LEVEL: u32 = 2;
/// Index type: binary search with each block's first key (refused).
pub const INDEX_BINARY_SEARCH_WITH_FIRST_KEY: u32 = 3;

impl RocksProperties {
    /// Builds the map from the properties block's entries.
    pub fn from_entries(entries: Vec<Entry>) -> Self {
        RocksProperties {
            raw: entries
                .into_iter()
                .map(|e| (String::from_utf8_lossy(&e.key).into_owned(), e.value))
                .collect(),
        }
    }

    /// A varint64 property.
    pub fn varint(&self, name: &str) -> Option<u64> {
        let v = self.raw.get(name)?;
        Cursor::new(v).varint()
    }

    /// A string property.
    pub fn string(&self, name: &str) -> Option<String> {
        self.raw
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// `rocksdb.num.entries`.
    pub fn num_entries(&self) -> Option<u64> {
        self.varint("rocksdb.num.entries")
    }

    /// `rocksdb.num.range-deletions`.
    pub fn num_range_deletions(&self) -> Option<u64> {
        self.varint("rocksdb.num.range-deletions")
    }

    /// `rocksdb.format.version`.
    pub fn format_version(&self) -> Option<u64> {
        self.varint("rocksdb.format.version")
    }

    /// `rocksdb.compression` (the codec name RocksDB configured).
    pub fn compression(&self) -> Option<String> {
        self.string("rocksdb.compression")
    }

    /// `rocksdb.comparator`.
    pub fn comparator(&self) -> Option<String> {
        self.string("rocksdb.comparator")
    }

    /// `rocksdb.index.key.is.user.key` (index keys lack the 8-byte trailer).
    pub fn index_key_is_user_key(&self) -> bool {
        self.varint("rocksdb.index.key.is.user.key").unwrap_or(0) != 0
    }

    /// `rocksdb.index.value.is.delta.encoded`.
    pub fn index_value_is_delta_encoded(&self) -> bool {
        self.varint("rocksdb.index.value.is.delta.encoded")
            .unwrap_or(0)
            != 0
    }

    /// `rocksdb.block.based.table.index.type` (fixed32; absent = binary search).
    pub fn index_type(&self) -> u32 {
        self.raw
            .get("rocksdb.block.based.table.index.type")
            .and_then(|v| u32_at(v, 0))
            .unwrap_or(INDEX_BINARY_SEARCH)
    }

    /// `rocksdb.external_sst_file.version` (fixed32), present in SstFileWriter output.
    pub fn external_sst_file_version(&self) -> Option<u32> {
        self.raw
            .get("rocksdb.external_sst_file.version")
            .and_then(|v| u32_at(v, 0))
    }

    /// `rocksdb.external_sst_file.global_seqno` (fixed64).
    pub fn global_seqno(&self) -> Option<u64> {
        self.raw
            .get("rocksdb.external_sst_file.global_seqno")
            .and_then(|v| u64_at(v, 0))
    }
}
