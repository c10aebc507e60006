//! `bulk_load_metadata.json`: the manifest of one partition's SST files built for bulk load
//! (`docs/format.md`, "Bulk-load metadata"). The one definition of the format: `sst-ingest build`
//! writes it (`siltdb_tools::metadata` adds the file I/O), `sst-ingest verify`/`ingest` and the
//! replicas' bulk load (`siltdb_replica::bulk_load::metadata`, a re-export of this module) read it.
//!
//! ```json
//! { "format_version": 1,
//!   "files": [ { "name": "000001.sst", "size": 4194304, "crc32c": 2882339316,
//!                "smallest_key": "6b3030", "largest_key": "6b3939", "entries": 1000 } ],
//!   "totals": { "files": 1, "entries": 1000, "bytes": 4194304 } }
//! ```
//!
//! `crc32c` is the CRC-32C (Castagnoli) of the whole file as a JSON number; keys are lowercase
//! hex; files are listed in key order and do not overlap.
//!
//! Metadata comes from outside the cluster, so it is hostile input: [`BulkLoadMetadata::from_json`]
//! bounds its size and validates every file name ([`validate_file_name`]), key range and total
//! **before** any file is touched (seed S1: a garbage name must never become a path). The names
//! `sst-ingest` writes are stricter still, `NNNNNN.sst` ([`is_sst_file_name`]).

use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// Name of the metadata file inside a partition's directory.
pub const METADATA_FILE_NAME: &str = "bulk_load_metadata.json";
/// The format version written and understood here.
pub const FORMAT_VERSION: u32 = 1;
/// Longest file name accepted, in bytes (the usual file-system limit).
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// Largest metadata document accepted.
pub const MAX_METADATA_BYTES: usize = 64 << 20;
/// Most files one partition's load may list.
pub const MAX_FILES: usize = 100_000;

/// One SST file of a partition's bulk load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the partition's directory (validated by [`validate_file_name`]).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32C (Castagnoli) of the whole file.
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

/// The whole metadata document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkLoadMetadata {
    /// Always [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The files, in key order, not overlapping.
    pub files: Vec<FileEntry>,
    /// Sums over `files`.
    pub totals: Totals,
}

impl BulkLoadMetadata {
    /// Metadata for `files` with totals computed.
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

    /// Parses and validates a metadata document. The fuzzing entry point: never panics.
    pub fn from_json(text: &[u8]) -> Result<Self, String> {
        if text.len() > MAX_METADATA_BYTES {
            return Err(format!("metadata larger than {MAX_METADATA_BYTES} bytes"));
        }
        let metadata: BulkLoadMetadata =
            serde_json::from_slice(text).map_err(|e| format!("invalid metadata JSON: {e}"))?;
        metadata.validate()?;
        Ok(metadata)
    }

    /// The document as pretty JSON (no trailing newline; the file `sst-ingest` writes adds one).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs of strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Checks version, names (unique, safe), hex keys, key order, and totals.
    pub fn validate(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.files.len() > MAX_FILES {
            return Err(format!("more than {MAX_FILES} files listed"));
        }
        let mut names = std::collections::HashSet::new();
        let mut previous_largest: Option<Vec<u8>> = None;
        for file in &self.files {
            validate_file_name(&file.name)?;
            if !names.insert(file.name.as_str()) {
                return Err(format!("file {} is listed twice", file.name));
            }
            let smallest = decode_hex(&file.smallest_key)
                .ok_or_else(|| format!("{}: smallest_key is not hex", file.name))?;
            let largest = decode_hex(&file.largest_key)
                .ok_or_else(|| format!("{}: largest_key is not hex", file.name))?;
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
        let sum = |field: fn(&FileEntry) -> u64| {
            self.files
                .iter()
                .try_fold(0u64, |a, f| a.checked_add(field(f)))
        };
        let (Some(entries), Some(bytes)) = (sum(|f| f.entries), sum(|f| f.size)) else {
            return Err("the files' entries or sizes overflow a 64-bit total".into());
        };
        let expected = Totals {
            files: self.files.len() as u64,
            entries,
            bytes,
        };
        if expected != self.totals {
            return Err(format!(
                "totals {:?} do not match the files listed {:?}",
                self.totals, expected
            ));
        }
        Ok(())
    }

    /// Checks that every file is named `NNNNNN.sst` ([`is_sst_file_name`]): the names
    /// `sst-ingest` writes and the only ones it accepts back.
    pub fn validate_sst_names(&self) -> Result<(), String> {
        match self.files.iter().find(|f| !is_sst_file_name(&f.name)) {
            Some(file) => Err(format!(
                "bad file name {:?} (expected NNNNNN.sst)",
                file.name
            )),
            None => Ok(()),
        }
    }
}

/// Rejects any name that could leave the partition's directory or is unreasonably long:
/// empty, longer than [`MAX_FILE_NAME_BYTES`], containing `/`, `\` or NUL, `.` or `..`, or a
/// name that is not a single plain path component (absolute paths included).
pub fn validate_file_name(name: &str) -> Result<(), String> {
    let shown: String = name.chars().take(64).collect();
    if name.is_empty() {
        return Err("bad file name: empty".into());
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(format!(
            "bad file name {shown:?}...: {} bytes (at most {MAX_FILE_NAME_BYTES})",
            name.len()
        ));
    }
    if name.contains(['/', '\\', '\0']) {
        return Err(format!(
            "bad file name {shown:?}: contains a path separator or NUL"
        ));
    }
    if name == "." || name == ".." || name.contains("..") {
        return Err(format!("bad file name {shown:?}: contains \"..\""));
    }
    let mut components = Path::new(name).components();
    let single_normal =
        matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none();
    if !single_normal {
        return Err(format!("bad file name {shown:?}: not a plain file name"));
    }
    Ok(())
}

/// True for the names `sst-ingest` writes: six or more ASCII digits, then `.sst`, at most
/// [`MAX_FILE_NAME_BYTES`] bytes. Every such name also passes [`validate_file_name`].
pub fn is_sst_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".sst") else {
        return false;
    };
    name.len() <= MAX_FILE_NAME_BYTES && stem.len() >= 6 && stem.bytes().all(|b| b.is_ascii_digit())
}

/// The name of the `index`-th file (1-based): `000001.sst`.
pub fn sst_file_name(index: u64) -> String {
    format!("{index:06}.sst")
}

/// `dir/name` after [`validate_file_name`], checked to stay directly under `dir`.
pub fn resolve_under(dir: &Path, name: &str) -> Result<PathBuf, String> {
    validate_file_name(name)?;
    let path = dir.join(name);
    // Pair assertion with the name check: the joined path's parent must be `dir` itself.
    if path.parent() != Some(dir) {
        return Err(format!(
            "file name {name:?} resolves outside {}",
            dir.display()
        ));
    }
    Ok(path)
}

/// Lowercase or uppercase hex to bytes; `None` when not hex.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect()
}

/// Bytes to lowercase hex.
pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, smallest: &str, largest: &str) -> FileEntry {
        FileEntry {
            name: name.into(),
            size: 10,
            crc32c: 1,
            smallest_key: smallest.into(),
            largest_key: largest.into(),
            entries: 2,
        }
    }

    #[test]
    fn names_that_escape_or_are_huge_are_rejected() {
        for bad in [
            "",
            ".",
            "..",
            "../x.sst",
            "a/b.sst",
            "/etc/passwd",
            "x\\y",
            "a\0b",
            "x..sst",
        ] {
            assert!(validate_file_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_file_name(&"a".repeat(10 * 1024)).is_err());
        assert!(validate_file_name("000001.sst").is_ok());
        let dir = Path::new("/data/p1/bulk_load");
        assert_eq!(
            resolve_under(dir, "000001.sst").unwrap(),
            dir.join("000001.sst")
        );
        assert!(resolve_under(dir, "../000001.sst").is_err());
    }

    #[test]
    fn sst_names() {
        assert!(is_sst_file_name("000001.sst"));
        assert!(is_sst_file_name("1234567.sst"));
        for bad in [
            "1.sst",
            "../000001.sst",
            "000001.sst/",
            "00000a.sst",
            "000001.log",
            "",
        ] {
            assert!(!is_sst_file_name(bad), "{bad}");
        }
        let longest = format!("{}.sst", "1".repeat(MAX_FILE_NAME_BYTES - 4));
        assert!(is_sst_file_name(&longest) && validate_file_name(&longest).is_ok());
        assert!(!is_sst_file_name(&format!("1{longest}")));
        assert_eq!(sst_file_name(7), "000007.sst");

        let meta = BulkLoadMetadata::new(vec![entry("000001.sst", "00", "10")]);
        assert!(meta.validate_sst_names().is_ok());
        let other = BulkLoadMetadata::new(vec![entry("a.sst", "00", "10")]);
        assert!(other.validate().is_ok());
        assert!(other
            .validate_sst_names()
            .unwrap_err()
            .contains("bad file name \"a.sst\""));
    }

    #[test]
    fn round_trip_and_validation() {
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
        assert_eq!(BulkLoadMetadata::from_json(&meta.to_json()).unwrap(), meta);
        let mut overlapping = meta.clone();
        overlapping.files[1].smallest_key = "10".into();
        assert!(overlapping.validate().unwrap_err().contains("overlaps"));
        let escaping = BulkLoadMetadata::new(vec![entry("../000001.sst", "00", "10")]);
        assert!(escaping.validate().is_err());
        let mut wrong_totals = meta.clone();
        wrong_totals.totals.bytes += 1;
        assert!(wrong_totals.validate().unwrap_err().contains("totals"));
        let mut overflow = meta;
        overflow.files[0].size = u64::MAX;
        assert!(overflow.validate().unwrap_err().contains("overflow"));
        assert!(BulkLoadMetadata::from_json(b"{not json").is_err());
        assert_eq!(decode_hex("0aFF"), Some(vec![10, 255]));
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(encode_hex(&[1, 171]), "01ab");
    }

    #[test]
    fn totals_that_overflow_are_rejected_not_a_panic() {
        // Found by the tools_metadata fuzz target (fuzz/corpus/tools_metadata/totals-sum-overflow.json).
        let text = include_bytes!("../../fuzz/corpus/tools_metadata/totals-sum-overflow.json");
        let err = BulkLoadMetadata::from_json(text).unwrap_err();
        assert!(err.contains("overflow"), "{err}");
    }

    #[test]
    fn the_documented_layout_parses() {
        // The example of docs/format.md, byte for byte as `sst-ingest build` writes it.
        let meta = BulkLoadMetadata::new(vec![FileEntry {
            name: "000001.sst".into(),
            size: 4194304,
            crc32c: 2882339316,
            smallest_key: "6b3030".into(),
            largest_key: "6b3939".into(),
            entries: 1000,
        }]);
        let text = String::from_utf8(meta.to_json()).unwrap();
        assert!(text.starts_with("{\n  \"format_version\": 1,\n  \"files\": [\n    {\n      \"name\": \"000001.sst\",\n      \"size\": 4194304,\n      \"crc32c\": 2882339316,"), "{text}");
        assert!(text.ends_with("\"totals\": {\n    \"files\": 1,\n    \"entries\": 1000,\n    \"bytes\": 4194304\n  }\n}"), "{text}");
    }
}
