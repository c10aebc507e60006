//! Where backups are kept: the [`BackupTarget`] trait, its local-directory implementation
//! [`LocalDirTarget`], and [`BackupLocation`], what `--to`/`--from` name (a directory or an
//! `s3://` URL, whose target is [`super::s3::S3Target`]).
//!
//! A target stores objects under relative paths `<backup id>/<partition>/<file>` and
//! `<backup id>/BACKUP_MANIFEST`, `/`-separated, every component a plain name (no `..`, no
//! absolute paths: a path cannot leave the target's root). What a backup needs from a store
//! is small and fits an object store as well as a file system: streamed writes made durable by
//! `finish`, one atomic small write (the manifest, last), streamed reads, listing the top
//! level, and removal of a whole backup.

use super::manifest::is_plain_name;
use super::s3::S3Target;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file being written to a target.
pub trait BackupWriter: Write + Send {
    /// Makes everything written durable; the object is complete only after this.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A store of backups (module docs).
pub trait BackupTarget: Send + Sync {
    /// Where the target is, for messages.
    fn describe(&self) -> String;
    /// The names at the top level (backup ids, complete or not), in no particular order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// A new object at `path` (replacing one left by an earlier attempt).
    fn create(&self, path: &str) -> io::Result<Box<dyn BackupWriter>>;
    /// Reads the object at `path`.
    fn open(&self, path: &str) -> io::Result<Box<dyn Read + Send>>;
    /// The whole object at `path` (`None` when absent), refused when larger than `max_bytes`.
    fn read_small(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>>;
    /// Writes `bytes` at `path` atomically and durably: readers see all of it or nothing.
    fn put_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Makes the listing of everything written under `id` durable (before its manifest).
    fn seal(&self, id: &str) -> io::Result<()>;
    /// Removes the object at `path` (absent: nothing to do).
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Removes everything under `id`.
    fn remove_all(&self, id: &str) -> io::Result<()>;
}

pub(crate) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The components of the relative target path `path`, refused unless every one is a plain
/// name (the one path rule of every target: nothing can leave the target's root).
pub(crate) fn path_components(path: &str) -> io::Result<std::str::Split<'_, char>> {
    if let Some(c) = path.split('/').find(|c| !is_plain_name(c)) {
        return Err(invalid(format!(
            "backup path {path:?}: component {c:?} is not a plain name"
        )));
    }
    Ok(path.split('/'))
}

/// Scheme of an object-store location.
pub const S3_URL_SCHEME: &str = "s3://";

/// What a `--to` or `--from` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupLocation {
    /// A local or mounted directory.
    Dir(PathBuf),
    /// `s3://bucket/optional/prefix`: objects under `prefix` (no leading or trailing `/`,
    /// empty for the bucket's top) in an S3-compatible store.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, `/`-separated plain names, or empty.
        prefix: String,
    },
}

impl BackupLocation {
    /// An `s3://` URL is an S3 location, any other path a directory (as given).
    pub fn parse(p: &Path) -> Result<Self, String> {
        let Some(rest) = p.to_str().and_then(|s| s.strip_prefix(S3_URL_SCHEME)) else {
            return Ok(Self::Dir(p.to_path_buf()));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("{}: the URL names no bucket", p.display()));
        }
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            path_components(prefix).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        Ok(Self::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The target of this location. An S3 one is configured from the environment and listed
    /// once, so that a missing bucket or refused credentials fail here, before anything is
    /// written (blocking: run it off the async threads). A directory is not touched.
    pub fn open(&self) -> Result<Arc<dyn BackupTarget>, String> {
        match self {
            Self::Dir(d) => Ok(Arc::new(LocalDirTarget::new(d.clone()))),
            Self::S3 { bucket, prefix } => {
                let t = S3Target::from_env(bucket, prefix).map_err(|e| e.to_string())?;
                t.check_access().map_err(|e| e.to_string())?;
                Ok(Arc::new(t))
            }
        }
    }
}

/// A directory on a local (or mounted) file system holding backups.
#[derive(Debug, Clone)]
pub struct LocalDirTarget {
    root: PathBuf,
}

impl LocalDirTarget {
    /// The target rooted at `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file system path of the relative `path`, refused unless every component is plain.
    fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let mut out = self.root.clone();
        out.extend(path_components(path)?);
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing ancestors, fsyncing each new entry's parent.
fn create_dir_durable(dir: &Path) -> io::Result<()> {
    siltdb::fs::create_dir_durable(&siltdb::fs::StdFs, dir)
        .map_err(|e| io::Error::other(e.to_string()))
}

struct LocalWriter {
    file: io::BufWriter<std::fs::File>,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BackupWriter for LocalWriter {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let f = self.file.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    }
}

impl BackupTarget for LocalDirTarget {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for e in entries {
            if let Ok(name) = e?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn create(&self, path: &str) -> io::Result<Box<dyn BackupWriter>> {
        let p = self.resolve(path)?;
        if let Some(parent) = p.parent() {
            create_dir_durable(parent)?;
        }
        let file = std::fs::File::create(&p)?;
        Ok(Box::new(LocalWriter {
            file: io::BufWriter::with_capacity(1 << 20, file),
        }))
    }

    fn open(&self, path: &str) -> io::Result<Box<dyn Read + Send>> {
        let f = std::fs::File::open(self.resolve(path)?)?;
        Ok(Box::new(io::BufReader::with_capacity(1 << 20, f)))
    }

    fn read_small(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        let p = self.resolve(path)?;
        let f = match std::fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        f.take(max_bytes.saturating_add(1)).read_to_end(&mut buf)?;
        if buf.len() as u64 > max_bytes {
            return Err(invalid(format!(
                "{}: larger than {max_bytes} bytes",
                p.display()
            )));
        }
        Ok(Some(buf))
    }

    fn put_atomic(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let p = self.resolve(path)?;
        if let Some(parent) = p.parent() {
            create_dir_durable(parent)?;
        }
        siltdb::fs::write_atomic(&siltdb::fs::StdFs, &p, bytes)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn seal(&self, id: &str) -> io::Result<()> {
        let dir = self.resolve(id)?;
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                sync_dir(&e.path())?;
            }
        }
        sync_dir(&dir)?;
        sync_dir(&self.root)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        let p = self.resolve(path)?;
        match std::fs::remove_file(&p) {
            Ok(()) => sync_dir(p.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn remove_all(&self, id: &str) -> io::Result<()> {
        let p = self.resolve(id)?;
        match std::fs::remove_dir_all(&p) {
            Ok(()) => sync_dir(&self.root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_confined_to_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let t = LocalDirTarget::new(tmp.path().join("root"));
        for bad in ["../x", "a/../b", "/etc/passwd", "a//b", ""] {
            assert!(t.create(bad).is_err(), "{bad}");
            assert!(t.open(bad).is_err(), "{bad}");
            assert!(t.put_atomic(bad, b"x").is_err(), "{bad}");
        }
        let mut w = t.create("b1/0/f").unwrap();
        w.write_all(b"hello").unwrap();
        w.finish().unwrap();
        let mut s = String::new();
        t.open("b1/0/f").unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        t.put_atomic("b1/M", b"m").unwrap();
        assert_eq!(t.read_small("b1/M", 10).unwrap(), Some(b"m".to_vec()));
        assert_eq!(t.read_small("b1/none", 10).unwrap(), None);
        assert!(t.read_small("b1/0/f", 2).is_err());
        t.seal("b1").unwrap();
        assert_eq!(t.list().unwrap(), vec!["b1".to_string()]);
        t.remove("b1/M").unwrap();
        t.remove_all("b1").unwrap();
        assert!(t.list().unwrap().is_empty());
    }

    #[test]
    fn locations_are_directories_unless_s3_urls() {
        let p = |s: &str| BackupLocation::parse(Path::new(s));
        assert_eq!(p("/b/t").unwrap(), BackupLocation::Dir("/b/t".into()));
        assert_eq!(p("s3").unwrap(), BackupLocation::Dir("s3".into()));
        let s3 = |b: &str, pre: &str| BackupLocation::S3 {
            bucket: b.into(),
            prefix: pre.into(),
        };
        assert_eq!(p("s3://bk").unwrap(), s3("bk", ""));
        assert_eq!(p("s3://bk/").unwrap(), s3("bk", ""));
        assert_eq!(p("s3://bk/a/b/").unwrap(), s3("bk", "a/b"));
        for bad in ["s3://", "s3:///x", "s3://bk/a//b", "s3://bk/../x"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
