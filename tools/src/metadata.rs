//! `bulk_load_metadata.json`: the manifest of a directory of SST files built for bulk load.
//!
//! This is the layout the replica's bulk load reads (and `sst-ingest verify`/`ingest` check):
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "files": [
//!     { "name": "000001.sst", "size": 4194304, "crc32c": 2882339316,
//!       "smallest_key": "6b3030", "largest_key": "6b3939", "entries": 1000 }
//!   ],
//!   "totals": { "files": 1, "entries": 1000, "bytes": 4194304 }
//! }
//! ```
//!
//! `crc32c` is the CRC-32C (Castagnoli) of the whole file as a JSON number; keys are lowercase
//! hex. Files are listed in key order and do not overlap. File names are `NNNNNN.sst` (six or
//! more digits) and nothing else, so a name can never reach outside the directory.

use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;

/// Name of the metadata file inside a bulk-load directory.
pub const METADATA_FILE_NAME: &str = "bulk_load_metadata.json";
/// The format version this tool writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Longest file name accepted (a bound against hostile metadata).
pub const FILE_NAME_BYTES_MAX: usize = 64;
/// Largest metadata file read (a bound against hostile metadata).
pub const METADATA_BYTES_MAX: u64 = 64 << 20;

/// One SST file of a bulk load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the directory, `NNNNNN.sst`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32C of the whole file.
    pub crc32c: u32,
    /// Smallest key, lowercase hex.
    pub smallest_key: String,
    /// Largest key, lowercase hex.
    pub largest_key: String,
    /// Number of entries.
    pub entries: u64,
}

/// Sums over all files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Number of files.
    pub files: u64,
    /// Entries in all files.
    pub entries: u64,
    /// Bytes in all files.
    pub bytes: u64,
}

/// The whole metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkLoadMetadata {
    /// Always [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The files, in key order.
    pub files: Vec<FileEntry>,
    /// Sums over `files`.
    pub totals: Totals,
}

/// Why a metadata file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The metadata file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON does not parse or does not have the expected shape.
    #[error("{path}: invalid metadata: {message}")]
    Invalid {
        /// The metadata file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl BulkLoadMetadata {
    /// Metadata for `files`, with totals computed.
    pub fn new(files: Vec<FileEntry>) -> Self {
        // Saturating: `validate` rejects totals that overflow, so a forged file list can never
        // wrap around to match small totals.
        let totals = Totals {
            files: files.len() as u64,
            entries: files.iter().fold(0u64, |a, f| a.saturating_add(f.entries)),
            bytes: files.iter().fold(0u64, |a, f| a.saturating_add(f.size)),
        };
        BulkLoadMetadata {
            format_version: FORMAT_VERSION,
            files,
            totals,
        }
    }

    /// Checks the invariants: version, file names, hex keys, key order, totals.
    pub fn validate(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ));
        }
        let mut previous_largest: Option<Vec<u8>> = None;
        let mut names = std::collections::HashSet::new();
        for file in &self.files {
            if !is_valid_file_name(&file.name) {
                return Err(format!(
                    "bad file name {:?} (expected NNNNNN.sst)",
                    file.name
                ));
            }
            if !names.insert(file.name.as_str()) {
                return Err(format!("file {} is listed twice", file.name));
            }
            let smallest = hex::decode(&file.smallest_key)
                .map_err(|e| format!("{}: smallest_key is not hex: {e}", file.name))?;
            let largest = hex::decode(&file.largest_key)
                .map_err(|e| format!("{}: largest_key is not hex: {e}", file.name))?;
            if smallest > largest {
                return Err(format!("{}: smallest_key > largest_key", file.name));
            }
            if previous_largest.as_ref().is_some_and(|p| *p >= smallest) {
                return Err(format!(
                    "{}: key range overlaps or precedes the previous file",
                    file.name
                ));
            }
            previous_largest = Some(largest);
        }
        let checked_sum = |field: fn(&FileEntry) -> u64| {
            self.files
                .iter()
                .try_fold(0u64, |a, f| a.checked_add(field(f)))
        };
        if checked_sum(|f| f.entries).is_none() || checked_sum(|f| f.size).is_none() {
            return Err("the files' entries or sizes overflow a 64-bit total".into());
        }
        let expected = BulkLoadMetadata::new(self.files.clone()).totals;
        if expected != self.totals {
            return Err(format!(
                "totals {:?} do not match the files listed {:?}",
                self.totals, expected
            ));
        }
        Ok(())
    }

    /// Reads and validates `dir/bulk_load_metadata.json`.
    pub fn read(dir: &Path) -> Result<Self, MetadataError> {
        let path = dir.join(METADATA_FILE_NAME);
        let shown = path.display().to_string();
        let io = |source| MetadataError::Io {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let mut text = Vec::new();
        file.take(METADATA_BYTES_MAX + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        let invalid = |message: String| MetadataError::Invalid {
            path: shown.clone(),
            message,
        };
        if text.len() as u64 > METADATA_BYTES_MAX {
            return Err(invalid(format!("larger than {METADATA_BYTES_MAX} bytes")));
        }
        BulkLoadMetadata::from_json(&text).map_err(invalid)
    }

    /// Parses and validates metadata from JSON bytes. The fuzzing entry point: never panics.
    pub fn from_json(text: &[u8]) -> Result<Self, String> {
        let metadata: BulkLoadMetadata = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        metadata.validate()?;
        Ok(metadata)
    }

    /// Writes `dir/bulk_load_metadata.json` atomically and durably ([`siltdb::fs::write_atomic`]).
    pub fn write(&self, dir: &Path) -> Result<(), MetadataError> {
        let path = dir.join(METADATA_FILE_NAME);
        let io = |source| MetadataError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| io(e.into()))?;
        text.push(b'\n');
        siltdb::fs::write_atomic(&siltdb::fs::StdFs, &path, &text).map_err(|e| match e {
            siltdb::Error::Io { source, .. } => io(source),
            other => io(std::io::Error::other(other.to_string())),
        })
    }
}

/// True for `NNNNNN.sst` names: six or more ASCII digits, then `.sst`, bounded length.
pub fn is_valid_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".sst") else {
        return false;
    };
    name.len() <= FILE_NAME_BYTES_MAX && stem.len() >= 6 && stem.bytes().all(|b| b.is_ascii_digit())
}

/// The name of the `index`-th file (1-based): `000001.sst`.
pub fn file_name(index: u64) -> String {
    format!("{index:06}.sst")
}

/// Size and CRC-32C of a whole file, streamed.
pub fn file_size_and_crc32c(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut crc = 0u32;
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        crc = crc32c::crc32c_append(crc, &buffer[..n]);
        size += n as u64;
    }
    Ok((size, crc))
}

#[cfg(test)]
mod tests {

    #[test]
    fn totals_that_overflow_are_rejected_not_a_panic() {
        // Found by the tools_metadata fuzz target (fuzz/corpus/tools_metadata/totals-sum-overflow.json).
        let text = include_bytes!("../../fuzz/corpus/tools_metadata/totals-sum-overflow.json");
        let err = BulkLoadMetadata::from_json(text).unwrap_err();
        assert!(err.contains("overflow"), "{err}");
    }

    use super::*;

    fn entry(name: &str, smallest: &str, largest: &str) -> FileEntry {
        FileEntry {
            name: name.to_string(),
            size: 10,
            crc32c: 1,
            smallest_key: smallest.to_string(),
            largest_key: largest.to_string(),
            entries: 2,
        }
    }

    #[test]
    fn names() {
        assert!(is_valid_file_name("000001.sst"));
        assert!(is_valid_file_name("1234567.sst"));
        for bad in [
            "1.sst",
            "../000001.sst",
            "000001.sst/",
            "00000a.sst",
            "000001.log",
            "",
        ] {
            assert!(!is_valid_file_name(bad), "{bad}");
        }
        assert_eq!(file_name(7), "000007.sst");
    }

    #[test]
    fn round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let meta = BulkLoadMetadata::new(vec![
            entry("000001.sst", "00", "10"),
            entry("000002.sst", "11", "ff"),
        ]);
        assert_eq!(
            meta.totals,
            Totals {
                files: 2,
                entries: 4,
                bytes: 20
            }
        );
        meta.write(dir.path()).unwrap();
        assert_eq!(BulkLoadMetadata::read(dir.path()).unwrap(), meta);

        let overlapping = BulkLoadMetadata::new(vec![
            entry("000001.sst", "00", "10"),
            entry("000002.sst", "10", "ff"),
        ]);
        assert!(overlapping.validate().unwrap_err().contains("overlaps"));
        let escaping = BulkLoadMetadata::new(vec![entry("../000001.sst", "00", "10")]);
        assert!(escaping.validate().is_err());
        let mut wrong_totals = meta.clone();
        wrong_totals.totals.entries += 1;
        assert!(wrong_totals.validate().unwrap_err().contains("totals"));
    }
}
