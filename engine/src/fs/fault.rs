//! A fault-injecting filesystem for tests: error injection and simulated power loss.
//!
//! `FaultFs` wraps the real filesystem (files live in a real directory, usually a tempdir) and
//! keeps, for every file written through it, how many bytes were covered by a successful sync, and
//! for every directory, which entries were created/renamed/linked since its last `sync_dir`.
//!
//! [`FaultFs::power_loss`] then does what a machine losing power would do under the strictest
//! reading of POSIX: directory operations not made durable by `sync_dir` are undone (in reverse
//! order), and every file is cut back to its synced length (optionally keeping a random torn part
//! of the unsynced tail). Removals are treated as durable at once (a conservative simplification:
//! the engine never relies on a removal being undone).
//!
//! Error injection: `fail_nth(op, n, kind)` fails the n-th next call of `op` with EIO or ENOSPC;
//! `fail_from_nth` keeps failing from then on. `die_after(n)` makes every mutating call fail after
//! `n` more of them, which is how tests crash the engine at arbitrary points (mid-flush, mid-manifest
//! write) before calling `power_loss`.

use super::{FileLock, FileSystem, RandomAccessFile, StdFs, WritableFile};
use parking_lot::{Condvar, Mutex};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kinds of filesystem calls, for counting and targeting faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoOp {
    /// `create` / `open_append`.
    Create,
    /// `WritableFile::append`.
    Append,
    /// `WritableFile::sync`.
    Sync,
    /// `rename`.
    Rename,
    /// `link`.
    Link,
    /// `remove` / `remove_dir_all`.
    Remove,
    /// `sync_dir`.
    SyncDir,
    /// `open_read` and `read_at`.
    Read,
    /// `create_dir_all`.
    CreateDir,
}

impl IoOp {
    /// Every kind, for building fault matrices.
    pub const ALL: [IoOp; 9] = [
        IoOp::Create,
        IoOp::Append,
        IoOp::Sync,
        IoOp::Rename,
        IoOp::Link,
        IoOp::Remove,
        IoOp::SyncDir,
        IoOp::Read,
        IoOp::CreateDir,
    ];

    fn mutating(self) -> bool {
        !matches!(self, IoOp::Read)
    }
}

/// The error an injected fault returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `EIO`.
    Eio,
    /// `ENOSPC`.
    Enospc,
}

impl FaultKind {
    fn error(self, op: IoOp, path: &Path) -> io::Error {
        let code = match self {
            FaultKind::Eio => libc::EIO,
            FaultKind::Enospc => libc::ENOSPC,
        };
        let os = io::Error::from_raw_os_error(code);
        io::Error::new(
            os.kind(),
            format!("injected {op:?} fault on {}: {os}", path.display()),
        )
    }
}

#[derive(Debug)]
struct Rule {
    op: IoOp,
    countdown: u64,
    kind: FaultKind,
    sticky: bool,
}

#[derive(Debug)]
enum DirOp {
    Created(PathBuf),
    Renamed {
        from: PathBuf,
        to: PathBuf,
        prior: Option<Vec<u8>>,
    },
}

#[derive(Debug, Default, Clone, Copy)]
struct FileState {
    len: u64,
    synced_len: u64,
}

#[derive(Debug, Default)]
struct State {
    files: HashMap<PathBuf, FileState>,
    dir_ops: HashMap<PathBuf, Vec<DirOp>>,
    rules: Vec<Rule>,
    counts: HashMap<IoOp, u64>,
    injected: u64,
    dead: bool,
    die_after: Option<u64>,
    /// Syncs of files whose name starts with this prefix wait, at most the duration, until
    /// released ([`FaultFs::hold_syncs`]).
    hold: Option<(String, Duration)>,
    /// Syncs waiting on `hold` right now.
    held: usize,
}

/// A [`FileSystem`] that injects errors and simulates power loss. Cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
    /// Wakes syncs waiting on a hold.
    released: Arc<Condvar>,
}

fn dir_of(p: &Path) -> PathBuf {
    super::parent_dir(p)
}

impl FaultFs {
    /// A fault filesystem over the real one, with no faults armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the `n`-th next call (1-based) of `op` with `kind`, once.
    pub fn fail_nth(&self, op: IoOp, n: u64, kind: FaultKind) {
        self.state.lock().rules.push(Rule {
            op,
            countdown: n.max(1),
            kind,
            sticky: false,
        });
    }

    /// Fails the `n`-th next call of `op` and every later one, until [`FaultFs::clear_faults`].
    pub fn fail_from_nth(&self, op: IoOp, n: u64, kind: FaultKind) {
        self.state.lock().rules.push(Rule {
            op,
            countdown: n.max(1),
            kind,
            sticky: true,
        });
    }

    /// Disarms every fault rule and revives a dead filesystem (unsynced data is kept).
    pub fn clear_faults(&self) {
        let mut s = self.state.lock();
        s.rules.clear();
        s.dead = false;
        s.die_after = None;
    }

    /// After `n` more mutating calls, every mutating call fails with EIO (a crash in progress).
    pub fn die_after(&self, n: u64) {
        self.state.lock().die_after = Some(n);
    }

    /// Makes every mutating call fail with EIO from now on.
    pub fn set_dead(&self) {
        self.state.lock().dead = true;
    }

    /// True once the filesystem is dead.
    pub fn is_dead(&self) -> bool {
        self.state.lock().dead
    }

    /// Calls of `op` seen so far.
    pub fn op_count(&self, op: IoOp) -> u64 {
        self.state.lock().counts.get(&op).copied().unwrap_or(0)
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    /// Simulates power loss: undoes unsynced directory operations, cuts files to their synced
    /// length, clears all faults. Call after the Db using it was dropped (or while it is dead).
    pub fn power_loss(&self) {
        self.power_loss_inner(None);
    }

    /// Like [`FaultFs::power_loss`] but keeps a random part of each unsynced tail, with garbage
    /// bytes in place of some of it (a torn write), chosen by `seed`.
    pub fn power_loss_torn(&self, seed: u64) {
        self.power_loss_inner(Some(seed));
    }

    fn power_loss_inner(&self, torn_seed: Option<u64>) {
        let mut s = self.state.lock();
        let mut rng = torn_seed.map(|x| x | 1);
        let mut next = move || {
            rng.as_mut().map(|x| {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                *x
            })
        };
        let dir_ops = std::mem::take(&mut s.dir_ops);
        for (_, ops) in dir_ops {
            for op in ops.into_iter().rev() {
                match op {
                    DirOp::Created(p) => {
                        let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
                        s.files.remove(&p);
                    }
                    DirOp::Renamed { from, to, prior } => {
                        if std::fs::rename(&to, &from).is_ok() {
                            rekey(&mut s.files, &to, &from);
                        }
                        if let Some(bytes) = prior {
                            let _ = std::fs::write(&to, bytes);
                        }
                    }
                }
            }
        }
        for (path, st) in s.files.drain() {
            if st.len <= st.synced_len {
                continue;
            }
            let Ok(f) = std::fs::OpenOptions::new().write(true).open(&path) else {
                continue;
            };
            let keep = match next() {
                Some(r) => st.synced_len + r % (st.len - st.synced_len + 1),
                None => st.synced_len,
            };
            let _ = f.set_len(keep);
            if let Some(r) = next() {
                // Scribble over the last few kept unsynced bytes: a torn final sector.
                if keep > st.synced_len && r % 2 == 0 {
                    use std::os::unix::fs::FileExt;
                    let n = (keep - st.synced_len).min(7);
                    let _ = f.write_at(&[0xA5; 7][..n as usize], keep - n);
                }
            }
        }
        s.rules.clear();
        s.dead = false;
        s.die_after = None;
    }

    fn check(&self, op: IoOp, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        *s.counts.entry(op).or_insert(0) += 1;
        if op.mutating() {
            if s.dead {
                s.injected += 1;
                return Err(FaultKind::Eio.error(op, path));
            }
            if let Some(n) = s.die_after.as_mut() {
                if *n == 0 {
                    s.dead = true;
                    s.injected += 1;
                    return Err(FaultKind::Eio.error(op, path));
                }
                *n -= 1;
            }
        }
        let mut fire = None;
        s.rules.retain_mut(|r| {
            if r.op != op || fire.is_some() {
                return true;
            }
            r.countdown -= 1;
            if r.countdown == 0 {
                fire = Some(r.kind);
                if r.sticky {
                    r.countdown = 1;
                    return true;
                }
                return false;
            }
            true
        });
        if let Some(kind) = fire {
            s.injected += 1;
            return Err(kind.error(op, path));
        }
        Ok(())
    }

    /// From now on every `WritableFile::sync` of a file whose name starts with `prefix` waits
    /// until [`FaultFs::release_syncs`] (or at most `max`, then proceeds): a stalled disk, for
    /// tests of what must not wait on a sync.
    pub fn hold_syncs(&self, prefix: &str, max: Duration) {
        self.state.lock().hold = Some((prefix.to_string(), max));
    }

    /// Ends [`FaultFs::hold_syncs`]: waiting syncs proceed.
    pub fn release_syncs(&self) {
        self.state.lock().hold = None;
        self.released.notify_all();
    }

    /// Syncs waiting on [`FaultFs::hold_syncs`] right now.
    pub fn held_syncs(&self) -> usize {
        self.state.lock().held
    }

    fn wait_if_held(&self, path: &Path) {
        let mut s = self.state.lock();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(max) = s
            .hold
            .as_ref()
            .filter(|(prefix, _)| name.starts_with(prefix.as_str()))
            .map(|(_, max)| *max)
        else {
            return;
        };
        let deadline = Instant::now() + max;
        s.held += 1;
        while s.hold.is_some() {
            if self.released.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        s.held -= 1;
    }

    fn note_dir_op(&self, dir: PathBuf, op: DirOp) {
        self.state.lock().dir_ops.entry(dir).or_default().push(op);
    }
}

fn rekey(files: &mut HashMap<PathBuf, FileState>, from: &Path, to: &Path) {
    let moved: Vec<PathBuf> = files
        .keys()
        .filter(|p| p.starts_with(from))
        .cloned()
        .collect();
    for p in moved {
        if let Some(st) = files.remove(&p) {
            let rest = p.strip_prefix(from).unwrap_or(Path::new(""));
            files.insert(to.join(rest), st);
        }
    }
}

struct FaultWritable {
    fs: FaultFs,
    path: PathBuf,
    inner: Box<dyn WritableFile>,
}

impl WritableFile for FaultWritable {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.fs.check(IoOp::Append, &self.path)?;
        self.inner.append(data)?;
        let len = self.inner.len();
        let mut s = self.fs.state.lock();
        s.files.entry(self.path.clone()).or_default().len = len;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.fs.wait_if_held(&self.path);
        self.fs.check(IoOp::Sync, &self.path)?;
        self.inner.sync()?;
        let len = self.inner.len();
        let mut s = self.fs.state.lock();
        let st = s.files.entry(self.path.clone()).or_default();
        st.len = len;
        st.synced_len = len;
        Ok(())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

struct FaultRandom {
    fs: FaultFs,
    path: PathBuf,
    inner: Arc<dyn RandomAccessFile>,
}

impl RandomAccessFile for FaultRandom {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.fs.check(IoOp::Read, &self.path)?;
        self.inner.read_at(offset, buf)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

impl FileSystem for FaultFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check(IoOp::Create, path)?;
        let existed = path.exists();
        let inner = StdFs.create(path)?;
        {
            let mut s = self.state.lock();
            s.files.insert(path.to_path_buf(), FileState::default());
        }
        if !existed {
            self.note_dir_op(dir_of(path), DirOp::Created(path.to_path_buf()));
        }
        Ok(Box::new(FaultWritable {
            fs: self.clone(),
            path: path.to_path_buf(),
            inner,
        }))
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check(IoOp::Create, path)?;
        let inner = StdFs.open_append(path)?;
        let len = inner.len();
        {
            let mut s = self.state.lock();
            s.files.entry(path.to_path_buf()).or_insert(FileState {
                len,
                synced_len: len,
            });
        }
        Ok(Box::new(FaultWritable {
            fs: self.clone(),
            path: path.to_path_buf(),
            inner,
        }))
    }
    fn open_read(&self, path: &Path) -> io::Result<Arc<dyn RandomAccessFile>> {
        self.check(IoOp::Read, path)?;
        let inner = StdFs.open_read(path)?;
        Ok(Arc::new(FaultRandom {
            fs: self.clone(),
            path: path.to_path_buf(),
            inner,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(IoOp::Rename, from)?;
        let prior = if to.is_file() {
            std::fs::read(to).ok()
        } else {
            None
        };
        StdFs.rename(from, to)?;
        {
            let mut s = self.state.lock();
            s.files.remove(to);
            rekey(&mut s.files, from, to);
        }
        self.note_dir_op(
            dir_of(to),
            DirOp::Renamed {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                prior,
            },
        );
        Ok(())
    }
    fn link(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(IoOp::Link, to)?;
        StdFs.link(from, to)?;
        {
            let mut s = self.state.lock();
            let len = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
            let st = s.files.get(from).copied().unwrap_or(FileState {
                len,
                synced_len: len,
            });
            s.files.insert(to.to_path_buf(), st);
        }
        self.note_dir_op(dir_of(to), DirOp::Created(to.to_path_buf()));
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(IoOp::Remove, path)?;
        StdFs.remove(path)?;
        self.state.lock().files.remove(path);
        Ok(())
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(IoOp::Remove, path)?;
        StdFs.remove_dir_all(path)?;
        self.state.lock().files.retain(|p, _| !p.starts_with(path));
        Ok(())
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.check(IoOp::CreateDir, path)?;
        let existed = path.exists();
        StdFs.create_dir_all(path)?;
        if !existed {
            self.note_dir_op(dir_of(path), DirOp::Created(path.to_path_buf()));
        }
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check(IoOp::Read, dir)?;
        StdFs.list(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        StdFs.exists(path)
    }
    fn file_size(&self, path: &Path) -> io::Result<u64> {
        self.check(IoOp::Read, path)?;
        StdFs.file_size(path)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        StdFs.lock(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(IoOp::SyncDir, dir)?;
        StdFs.sync_dir(dir)?;
        let mut s = self.state.lock();
        let key = dir.to_path_buf();
        s.dir_ops.remove(&key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_bytes_and_entries_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let a = dir.path().join("a");
        let mut f = fs.create(&a).unwrap();
        f.append(b"hello").unwrap();
        f.sync().unwrap();
        fs.sync_dir(dir.path()).unwrap();
        f.append(b" world").unwrap();
        let b = dir.path().join("b");
        let mut g = fs.create(&b).unwrap();
        g.append(b"x").unwrap();
        g.sync().unwrap(); // data synced but the entry is not
        drop((f, g));
        fs.power_loss();
        assert_eq!(std::fs::read(&a).unwrap(), b"hello");
        assert!(!b.exists());
    }

    #[test]
    fn unsynced_rename_is_undone_and_prior_restored() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let cur = dir.path().join("CURRENT");
        super::super::write_atomic(&fs, &cur, b"one").unwrap();
        let tmp = dir.path().join("CURRENT.tmp");
        let mut f = fs.create(&tmp).unwrap();
        f.append(b"two").unwrap();
        f.sync().unwrap();
        drop(f);
        fs.rename(&tmp, &cur).unwrap();
        fs.power_loss();
        assert_eq!(std::fs::read(&cur).unwrap(), b"one");
    }

    #[test]
    fn nth_call_fails_and_die_after_kills_mutations() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let mut f = fs.create(&dir.path().join("x")).unwrap();
        fs.fail_nth(IoOp::Append, 2, FaultKind::Enospc);
        f.append(b"1").unwrap();
        let e = f.append(b"2").unwrap_err();
        assert_eq!(e.raw_os_error(), None);
        assert!(e.to_string().contains("No space"), "{e}");
        f.append(b"3").unwrap();
        fs.die_after(1);
        f.append(b"4").unwrap();
        assert!(f.append(b"5").is_err());
        assert!(fs.is_dead());
        assert_eq!(fs.injected(), 2);
    }
}
