//! The manifest of one backup (`BACKUP_MANIFEST`, JSON; see docs/format.md "Cold backup"):
//! what table it is of, every partition's decree and files with sizes and crc32c. It is
//! written last, atomically: a backup directory without it is incomplete and never restored.

use serde::{Deserialize, Serialize};

/// File name of a backup's manifest, in the backup's directory.
pub const MANIFEST_FILE: &str = "BACKUP_MANIFEST";
/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
/// Largest manifest read (a manifest lists file names and sizes only).
pub const MAX_MANIFEST_SIZE_BYTES: u64 = 64 << 20;

/// One copied file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name inside the partition's directory (one path component).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// crc32c (Castagnoli, unmasked) of the whole file.
    pub crc32c: u32,
}

/// One partition's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionEntry {
    /// The partition index.
    pub partition: u32,
    /// The decree the checkpoint is consistent at.
    pub decree: u64,
    /// The term of that decree's entry.
    pub term: u64,
    /// The node whose replica (the leader's) was copied.
    pub node_id: u64,
    /// The files, by name.
    pub files: Vec<FileEntry>,
}

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// [`MANIFEST_FORMAT_VERSION`].
    pub format_version: u32,
    /// The backup id (its directory name).
    pub backup_id: String,
    /// The table backed up.
    pub table: String,
    /// Its app id.
    pub app_id: u32,
    /// Its partition count.
    pub partition_count: u32,
    /// Its replica count.
    pub replica_count: u32,
    /// When the backup started (Unix ms).
    pub started_unix_ms: u64,
    /// When the last partition was copied (Unix ms).
    pub finished_unix_ms: u64,
    /// Every partition, by index.
    pub partitions: Vec<PartitionEntry>,
}

/// Whether `name` is a single, plain path component (no separator, no `.`/`..`, no NUL).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\\')
        && !name.contains('\0')
}

impl BackupManifest {
    /// Encodes the manifest.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec_pretty(self).map_err(|e| format!("encoding the manifest: {e}"))
    }

    /// Decodes and checks a manifest read from `what`: the format version, one entry per
    /// partition in order, plain file names without repeats.
    pub fn decode(bytes: &[u8], what: &str) -> Result<BackupManifest, String> {
        let m: BackupManifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("{what}: not a backup manifest: {e}"))?;
        if m.format_version != MANIFEST_FORMAT_VERSION {
            return Err(format!(
                "{what}: manifest format {} (this build reads {MANIFEST_FORMAT_VERSION})",
                m.format_version
            ));
        }
        if m.partition_count == 0 || m.partitions.len() != m.partition_count as usize {
            return Err(format!(
                "{what}: {} partition entries for {} partitions",
                m.partitions.len(),
                m.partition_count
            ));
        }
        for (i, p) in m.partitions.iter().enumerate() {
            if p.partition as usize != i {
                return Err(format!("{what}: entry {i} is of partition {}", p.partition));
            }
            let mut names = std::collections::HashSet::new();
            for f in &p.files {
                if !is_plain_name(&f.name) {
                    return Err(format!(
                        "{what}: partition {i} names file {:?}, not a plain file name",
                        f.name
                    ));
                }
                if !names.insert(f.name.as_str()) {
                    return Err(format!("{what}: partition {i} lists {:?} twice", f.name));
                }
            }
        }
        if !is_plain_name(&m.backup_id) {
            return Err(format!("{what}: bad backup id {:?}", m.backup_id));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BackupManifest {
        BackupManifest {
            format_version: MANIFEST_FORMAT_VERSION,
            backup_id: "backup-0000000000001".into(),
            table: "t".into(),
            app_id: 1,
            partition_count: 1,
            replica_count: 3,
            started_unix_ms: 1,
            finished_unix_ms: 2,
            partitions: vec![PartitionEntry {
                partition: 0,
                decree: 9,
                term: 1,
                node_id: 1,
                files: vec![FileEntry {
                    name: "000001.sst".into(),
                    size_bytes: 3,
                    crc32c: 7,
                }],
            }],
        }
    }

    #[test]
    fn a_manifest_round_trips_and_hostile_ones_are_refused() {
        let m = sample();
        assert_eq!(
            BackupManifest::decode(&m.encode().unwrap(), "m").unwrap(),
            m
        );
        for bad in ["../x", "a/b", "", ".."] {
            let mut h = sample();
            h.partitions[0].files[0].name = bad.into();
            let e = BackupManifest::decode(&h.encode().unwrap(), "m").unwrap_err();
            assert!(e.contains("plain file name"), "{e}");
        }
        let mut h = sample();
        h.partition_count = 2;
        assert!(BackupManifest::decode(&h.encode().unwrap(), "m").is_err());
        let mut h = sample();
        h.format_version = 99;
        let e = BackupManifest::decode(&h.encode().unwrap(), "m").unwrap_err();
        assert!(e.contains("format 99"), "{e}");
        assert!(BackupManifest::decode(b"{", "m")
            .unwrap_err()
            .contains("not a backup"));
    }
}
