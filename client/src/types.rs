//! The vocabulary the client shares with the replica layer (which re-exports it): [`Gpid`]
//! names a partition, [`WriteOp`] is one client write, [`IngestCommand`] a bulk-load ingestion
//! (carried inside `ReplicaBulkOp::Ingest`).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A partition: (app id, partition index). The unit of replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gpid {
    /// The table (app) id.
    pub app_id: u32,
    /// The partition index within the table.
    pub partition_index: u32,
}

impl Gpid {
    /// The partition `partition_index` of table `app_id`.
    pub const fn new(app_id: u32, partition_index: u32) -> Self {
        Self {
            app_id,
            partition_index,
        }
    }
}

impl fmt::Display for Gpid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app_id, self.partition_index)
    }
}

/// One client write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Delete every key in `[start, end)`.
    DeleteRange {
        /// First key deleted.
        start: Vec<u8>,
        /// First key kept.
        end: Vec<u8>,
    },
}

/// One SST file named by an [`IngestCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestFile {
    /// Plain file name inside [`IngestCommand::source_dir`] (no separators, no `..`).
    pub name: String,
    /// Expected size in bytes.
    pub size: u64,
    /// Expected CRC-32C of the whole file.
    pub crc32c: u32,
}

/// Bulk-load ingestion as a replicated control write: every replica copies the files from
/// `source_dir` into its own staging directory, verifies size and checksum, and ingests the
/// copies (never moving the originals). `load_id` names the load: a replica that already
/// ingested that load (recorded in the engine with the decree) applies the entry as a no-op,
/// so proposing it again after a timeout never ingests twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestCommand {
    /// Identity of the bulk load (random, chosen when the load starts).
    pub load_id: u64,
    /// Directory holding the verified downloaded files (shared in process).
    pub source_dir: String,
    /// The files, in key order.
    pub files: Vec<IngestFile>,
}
