//! Names of the files in a database directory.

use std::path::{Path, PathBuf};

/// What a file in the database directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Wal(u64),
    Table(u64),
    Manifest(u64),
    Current,
    Lock,
    Temp,
    Other,
}

/// `dir/NNNNNN.log`
pub(crate) fn wal_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:06}.log"))
}

/// `dir/NNNNNN.sst`
pub(crate) fn table_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:06}.sst"))
}

/// `dir/MANIFEST-NNNNNN`
pub(crate) fn manifest_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(manifest_name(n))
}

/// `MANIFEST-NNNNNN`
pub(crate) fn manifest_name(n: u64) -> String {
    format!("MANIFEST-{n:06}")
}

/// `dir/CURRENT`
pub(crate) fn current_path(dir: &Path) -> PathBuf {
    dir.join("CURRENT")
}

/// `dir/LOCK`
pub(crate) fn lock_path(dir: &Path) -> PathBuf {
    dir.join("LOCK")
}

/// Classifies a directory entry by name.
pub(crate) fn parse(name: &str) -> FileKind {
    if name == "CURRENT" {
        return FileKind::Current;
    }
    if name == "LOCK" {
        return FileKind::Lock;
    }
    if name.ends_with(".tmp") {
        return FileKind::Temp;
    }
    if let Some(n) = name.strip_prefix("MANIFEST-") {
        return n.parse().map_or(FileKind::Other, FileKind::Manifest);
    }
    if let Some(n) = name.strip_suffix(".log") {
        return n.parse().map_or(FileKind::Other, FileKind::Wal);
    }
    if let Some(n) = name.strip_suffix(".sst") {
        return n.parse().map_or(FileKind::Other, FileKind::Table);
    }
    FileKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names_round_trip() {
        let d = Path::new("/d");
        assert_eq!(
            parse(wal_path(d, 7).file_name().unwrap().to_str().unwrap()),
            FileKind::Wal(7)
        );
        assert_eq!(parse("000012.sst"), FileKind::Table(12));
        assert_eq!(parse(&manifest_name(3)), FileKind::Manifest(3));
        assert_eq!(parse("CURRENT"), FileKind::Current);
        assert_eq!(parse("x.sst.tmp"), FileKind::Temp);
        assert_eq!(parse("junk.sst"), FileKind::Other);
    }
}
