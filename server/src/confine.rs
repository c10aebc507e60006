//! Confined paths: a bulk-load source named by a request must not lead the server outside
//! the directory the operator allowed (`--bulk-load-root`).
//!
//! Layer: node infrastructure (read by [`crate::bulk_load`]).
//!
//! Always refused: a relative path and any `..` component. With a root: the source, after
//! resolving symlinks, must lie under the root (also resolved), and so must every partition
//! directory and file inside it (a symlink inside the source cannot point outside). The file
//! names a partition's metadata lists are checked separately, as single path components
//! (`siltdb_replica::bulk_load::metadata::resolve_under`). Without a root any absolute path
//! without `..` is allowed (compatibility; the server warns at start).

use std::path::{Component, Path, PathBuf};

/// Most entries of a source directory checked for symlink escapes (partition directories and
/// their files together); a larger source is refused.
pub const MAX_SOURCE_ENTRIES: usize = 1_000_000;

/// The path to read `source` from, or why it is refused.
pub fn confine_source(root: Option<&Path>, source: &Path) -> Result<PathBuf, String> {
    if !source.is_absolute() {
        return Err(format!(
            "source directory {} is not an absolute path",
            source.display()
        ));
    }
    if source.components().any(|c| c == Component::ParentDir) {
        return Err(format!(
            "source directory {} contains `..`: path traversal refused",
            source.display()
        ));
    }
    let Some(root) = root else {
        return Ok(source.to_path_buf());
    };
    let root = root
        .canonicalize()
        .map_err(|e| format!("bulk-load root {}: {e}", root.display()))?;
    let real = source
        .canonicalize()
        .map_err(|e| format!("source directory {}: {e}", source.display()))?;
    let outside = |p: &Path| {
        format!(
            "{} resolves outside the bulk-load root {}: refused",
            p.display(),
            root.display()
        )
    };
    if !real.starts_with(&root) {
        return Err(outside(source));
    }
    let mut seen = 0usize;
    let mut check = |p: &Path| -> Result<(), String> {
        seen += 1;
        if seen > MAX_SOURCE_ENTRIES {
            return Err(format!(
                "source directory {} holds more than {MAX_SOURCE_ENTRIES} entries",
                source.display()
            ));
        }
        let r = p
            .canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        if r.starts_with(&root) {
            Ok(())
        } else {
            Err(outside(p))
        }
    };
    let list = |dir: &Path| -> Result<Vec<PathBuf>, String> {
        std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .map(|e| {
                e.map(|e| e.path())
                    .map_err(|e| format!("{}: {e}", dir.display()))
            })
            .collect()
    };
    for part in list(&real)? {
        check(&part)?;
        if part.is_dir() {
            for file in list(&part)? {
                check(&file)?;
            }
        }
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_relative_and_symlink_escapes_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("root");
        let outside = base.path().join("outside");
        std::fs::create_dir_all(root.join("load/0")).unwrap();
        std::fs::create_dir_all(outside.join("0")).unwrap();
        std::fs::write(root.join("load/0/a.sst"), b"x").unwrap();
        std::fs::write(outside.join("secret"), b"x").unwrap();

        let ok = confine_source(Some(&root), &root.join("load")).unwrap();
        assert_eq!(ok, root.join("load").canonicalize().unwrap());
        assert!(confine_source(None, &root.join("load")).is_ok());

        let dotdot = root.join("load/../../outside");
        for r in [Some(root.as_path()), None] {
            let e = confine_source(r, &dotdot).unwrap_err();
            assert!(e.contains("traversal"), "{e}");
        }
        assert!(confine_source(None, Path::new("rel/dir")).is_err());
        let e = confine_source(Some(&root), &outside).unwrap_err();
        assert!(e.contains("outside the bulk-load root"), "{e}");

        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let e = confine_source(Some(&root), &root.join("link")).unwrap_err();
        assert!(e.contains("outside the bulk-load root"), "{e}");
        std::os::unix::fs::symlink(outside.join("secret"), root.join("load/0/b.sst")).unwrap();
        let e = confine_source(Some(&root), &root.join("load")).unwrap_err();
        assert!(e.contains("b.sst"), "{e}");
    }
}
