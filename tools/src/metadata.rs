//! `bulk_load_metadata.json` on disk: reading and writing the file in a bulk-load directory, and
//! the size and CRC-32C of the SST files it lists.
//!
//! The format itself (types, validation, limits) has one owner,
//! [`siltdb_client::bulk_load_metadata`] (`docs/format.md`, "Bulk-load metadata"), which the
//! replicas' bulk load reads too; it is re-exported here. `sst-ingest` writes only `NNNNNN.sst`
//! names and accepts only those back ([`BulkLoadMetadata::validate_sst_names`]).

use std::io::Read;
use std::path::Path;

pub use siltdb_client::bulk_load_metadata::{
    is_sst_file_name, sst_file_name, BulkLoadMetadata, FileEntry, Totals, FORMAT_VERSION,
    MAX_FILE_NAME_BYTES, MAX_METADATA_BYTES, METADATA_FILE_NAME,
};

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

/// Reads and validates `dir/bulk_load_metadata.json`: the format's checks, then `NNNNNN.sst`
/// names only.
pub fn read(dir: &Path) -> Result<BulkLoadMetadata, MetadataError> {
    let path = dir.join(METADATA_FILE_NAME);
    let shown = path.display().to_string();
    let io = |source| MetadataError::Io {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(&path).map_err(io)?;
    let mut text = Vec::new();
    // One byte past the bound, so `from_json` sees an oversized file as oversized.
    file.take(MAX_METADATA_BYTES as u64 + 1)
        .read_to_end(&mut text)
        .map_err(io)?;
    let invalid = |message: String| MetadataError::Invalid {
        path: shown.clone(),
        message,
    };
    let metadata = BulkLoadMetadata::from_json(&text).map_err(invalid)?;
    metadata.validate_sst_names().map_err(invalid)?;
    Ok(metadata)
}

/// Writes `dir/bulk_load_metadata.json` atomically and durably ([`siltdb::fs::write_atomic`]):
/// pretty JSON with a trailing newline.
pub fn write(metadata: &BulkLoadMetadata, dir: &Path) -> Result<(), MetadataError> {
    let path = dir.join(METADATA_FILE_NAME);
    let io = |source| MetadataError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut text = metadata.to_json();
    text.push(b'\n');
    siltdb::fs::write_atomic(&siltdb::fs::StdFs, &path, &text).map_err(|e| match e {
        siltdb::Error::Io { source, .. } => io(source),
        other => io(std::io::Error::other(other.to_string())),
    })
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
    fn round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let meta = BulkLoadMetadata::new(vec![
            entry("000001.sst", "00", "10"),
            entry("000002.sst", "11", "ff"),
        ]);
        write(&meta, dir.path()).unwrap();
        let text = std::fs::read(dir.path().join(METADATA_FILE_NAME)).unwrap();
        assert_eq!(text.last(), Some(&b'\n'));
        assert_eq!(read(dir.path()).unwrap(), meta);

        // A safe name that is not `NNNNNN.sst` passes the format but not `sst-ingest`.
        let other = BulkLoadMetadata::new(vec![entry("a.sst", "00", "10")]);
        write(&other, dir.path()).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad file name \"a.sst\""), "{err}");
        let escaping = BulkLoadMetadata::new(vec![entry("../000001.sst", "00", "10")]);
        write(&escaping, dir.path()).unwrap();
        let err = read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("bad file name \"../000001.sst\""), "{err}");
    }
}
