//! `verify`: a bulk-load directory against its metadata, and every SST on its own.
//!
//! Checks, naming the file in every problem: the metadata parses and is consistent (names,
//! key order, totals); every listed file exists with the listed size and CRC-32C; no `.sst`
//! file in the directory is unlisted; and each SST opens, every block checksum verifies, keys
//! are strictly increasing, and its entry count and key range match the metadata.

use crate::error::{ToolError, ToolResult};
use crate::metadata::{self, BulkLoadMetadata, FileEntry};
use crate::progress::Progress;
use crate::sst_access::SstFile;
use std::path::Path;

/// The result of verifying a directory.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The metadata that was checked.
    pub metadata: BulkLoadMetadata,
    /// One line per problem, each naming its file; empty when everything is fine.
    pub problems: Vec<String>,
}

/// Verifies `dir`. `deep`: also open and read every SST (otherwise size and checksum only).
pub fn verify_dir(dir: &Path, deep: bool, progress: &Progress) -> ToolResult<VerifyReport> {
    if !dir.is_dir() {
        return Err(ToolError::NotFound(format!(
            "{}: not a directory",
            dir.display()
        )));
    }
    let metadata = metadata::read(dir)?;
    let mut problems = Vec::new();
    let bar = progress.bytes(metadata.totals.bytes, "verifying");
    for entry in &metadata.files {
        check_file(dir, entry, deep, &mut problems);
        bar.inc(entry.size);
    }
    bar.finish_and_clear();
    problems.extend(unlisted_files(dir, &metadata)?);
    Ok(VerifyReport { metadata, problems })
}

fn check_file(dir: &Path, entry: &FileEntry, deep: bool, problems: &mut Vec<String>) {
    let path = dir.join(&entry.name);
    let name = &entry.name;
    match metadata::file_size_and_crc32c(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(format!("{name}: missing (listed in the metadata)"));
            return;
        }
        Err(e) => {
            problems.push(format!("{name}: cannot read: {e}"));
            return;
        }
        Ok((size, crc)) => {
            if size != entry.size {
                problems.push(format!(
                    "{name}: size {size} bytes, metadata says {}",
                    entry.size
                ));
            }
            if crc != entry.crc32c {
                problems.push(format!(
                    "{name}: crc32c {crc:#010x}, metadata says {:#010x}",
                    entry.crc32c
                ));
            }
        }
    }
    if deep {
        if let Err(problem) = check_contents(&path, entry) {
            problems.push(format!("{name}: {problem}"));
        }
    }
}

/// Opens and reads the whole SST; compares what it holds with the metadata.
fn check_contents(path: &Path, entry: &FileEntry) -> Result<(), String> {
    let sst = SstFile::open(path).map_err(|e| e.to_string())?;
    let entries = sst.verify().map_err(|e| e.to_string())?;
    if entries != entry.entries {
        return Err(format!(
            "holds {entries} entries, metadata says {}",
            entry.entries
        ));
    }
    let (smallest, largest) = sst.key_range().unwrap_or_default();
    if hex::encode(&smallest) != entry.smallest_key || hex::encode(&largest) != entry.largest_key {
        return Err(format!(
            "key range {}..={} differs from the metadata's {}..={}",
            hex::encode(&smallest),
            hex::encode(&largest),
            entry.smallest_key,
            entry.largest_key
        ));
    }
    Ok(())
}

/// `.sst` files present in `dir` but not listed in the metadata.
fn unlisted_files(dir: &Path, metadata: &BulkLoadMetadata) -> ToolResult<Vec<String>> {
    let listed: std::collections::HashSet<&str> =
        metadata.files.iter().map(|f| f.name.as_str()).collect();
    let mut problems = Vec::new();
    for item in std::fs::read_dir(dir).map_err(|e| ToolError::io(dir, e))? {
        let item = item.map_err(|e| ToolError::io(dir, e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.ends_with(".sst") && !listed.contains(name.as_str()) {
            problems.push(format!("{name}: present but not listed in the metadata"));
        }
    }
    problems.sort();
    Ok(problems)
}
