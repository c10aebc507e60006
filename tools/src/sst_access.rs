//! Reading one SST file through the engine's SST reader (`siltdb::Table`, re-exported for tools): open (footer, index,
//! filter and properties are validated), full verification (every block checksum, key order,
//! counts and bounds against the properties), and iteration for `dump`.

use crate::error::{ToolError, ToolResult};
use siltdb::fs::{FileSystem, StdFs};
use siltdb::{InternalIterator, Properties, ReadFlags, Table};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One entry of an SST file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SstEntry {
    /// The user key.
    pub key: Vec<u8>,
    /// Sequence number stored with the entry (0 for files made by `SstWriter`).
    pub seqno: u64,
    /// Put or delete.
    pub kind: siltdb::ValueKind,
    /// The value (empty for deletions).
    pub value: Vec<u8>,
}

/// An open SST file.
pub struct SstFile {
    table: Arc<Table>,
    path: PathBuf,
}

impl SstFile {
    /// Opens `path`, validating its footer and meta blocks.
    pub fn open(path: &Path) -> ToolResult<SstFile> {
        let file = StdFs.open_read(path).map_err(|e| ToolError::io(path, e))?;
        let table = Table::open(file, path.to_path_buf(), None, None)
            .map_err(|e| ToolError::engine(format!("opening {}", path.display()), e))?;
        Ok(SstFile {
            table,
            path: path.to_path_buf(),
        })
    }

    /// The properties block.
    pub fn properties(&self) -> &Properties {
        self.table.properties()
    }

    /// File size in bytes.
    pub fn file_size(&self) -> u64 {
        self.table.file_size()
    }

    /// Smallest and largest user keys (from the properties), `None` for an empty file.
    pub fn key_range(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let p = self.properties();
        if p.num_entries == 0 {
            return None;
        }
        let smallest = siltdb::parse_internal_key(&p.smallest).map(|(k, _, _)| k.to_vec())?;
        let largest = siltdb::parse_internal_key(&p.largest).map(|(k, _, _)| k.to_vec())?;
        Some((smallest, largest))
    }

    /// Reads and checks every block; returns the number of entries.
    pub fn verify(&self) -> ToolResult<u64> {
        self.table
            .verify()
            .map_err(|e| ToolError::engine(format!("verifying {}", self.path.display()), e))
    }

    /// Calls `visit` for the first `limit` entries (all when `None`), in key order.
    pub fn for_each(
        &self,
        limit: Option<u64>,
        mut visit: impl FnMut(&SstEntry) -> ToolResult<()>,
    ) -> ToolResult<()> {
        let flags = ReadFlags {
            verify_checksums: true,
            fill_cache: false,
        };
        let mut it = self.table.iter(flags);
        it.seek_to_first();
        let mut seen = 0u64;
        while it.valid() && limit.is_none_or(|l| seen < l) {
            let Some((key, seqno, kind)) = siltdb::parse_internal_key(it.key()) else {
                return Err(ToolError::engine(
                    format!("reading {}", self.path.display()),
                    siltdb::Error::corruption(&self.path, 0, "malformed internal key"),
                ));
            };
            let entry = SstEntry {
                key: key.to_vec(),
                seqno,
                kind,
                value: it.value().to_vec(),
            };
            visit(&entry)?;
            seen += 1;
            it.next();
        }
        it.status()
            .map_err(|e| ToolError::engine(format!("reading {}", self.path.display()), e))
    }
}
