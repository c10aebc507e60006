//! The version set: the current version, the counters, and the manifest they are logged to.

use super::edit::VersionEdit;
use super::version::{Graveyard, Version};
use super::NUM_LEVELS;
use crate::filename;
use crate::fs::{self, FileSystem};
use crate::wal::{read_log, LogWriter};
use crate::{Error, Result};
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters persisted in the manifest.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub(crate) log_number: u64,
    pub(crate) last_seqno: u64,
    pub(crate) durable_tag: Option<u64>,
    pub(crate) compact_pointers: [Vec<u8>; NUM_LEVELS],
}

struct ManifestState {
    writer: Option<LogWriter>,
    number: u64,
    counters: Counters,
    /// Set when appending or syncing an edit failed: no later edit may follow it.
    failed: Option<String>,
}

/// The current version and the manifest.
pub(crate) struct VersionSet {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    manifest: Mutex<ManifestState>,
    current: RwLock<Arc<Version>>,
    next_file_number: AtomicU64,
    pub(crate) graveyard: Arc<Graveyard>,
    /// `counters.durable_tag` as of the last *synced* edit, behind its own small lock: readers
    /// (every replica apply calls `Db::durable_tag`) never wait on the manifest lock, which
    /// is held across manifest fsyncs.
    durable_tag: Mutex<Option<u64>>,
}

/// What replaying a manifest produced.
pub(crate) struct Recovered {
    pub(crate) version: Version,
    pub(crate) next_file_number: u64,
    pub(crate) counters: Counters,
}

/// Reads `CURRENT` and replays the manifest it names. `graveyard` is attached to the files.
pub(crate) fn replay(
    fs: &dyn FileSystem,
    dir: &Path,
    graveyard: Option<Arc<Graveyard>>,
) -> Result<Recovered> {
    let cur_path = filename::current_path(dir);
    let cur = fs::read_all(fs, &cur_path).map_err(|e| Error::io(&cur_path, e))?;
    let name = std::str::from_utf8(&cur)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .filter(|s| matches!(filename::parse(s), filename::FileKind::Manifest(_)))
        .ok_or_else(|| Error::corruption(&cur_path, 0, "CURRENT does not name a manifest"))?;
    let path = dir.join(name);
    let data = fs::read_all(fs, &path).map_err(|e| Error::io(&path, e))?;
    let log = read_log(&data);
    if let Some((off, reason)) = log.corruption {
        return Err(Error::corruption(&path, off, reason));
    }
    // A torn tail is an edit whose sync never returned: it was never acknowledged.
    let mut version = Version::default();
    let mut counters = Counters::default();
    let mut next_file_number = 2;
    for (off, rec) in &log.records {
        let edit = VersionEdit::decode(rec).map_err(|r| Error::corruption(&path, *off, r))?;
        version = version
            .apply(&edit, &graveyard)
            .map_err(|r| Error::corruption(&path, *off, r))?;
        absorb(&mut counters, &mut next_file_number, &edit);
    }
    for (_, f) in version.all_files() {
        next_file_number = next_file_number.max(f.number() + 1);
    }
    // `CURRENT` only ever names a manifest whose first record (the snapshot) is synced.
    if log.records.is_empty() {
        let (off, reason) = log
            .torn_tail
            .clone()
            .unwrap_or((0, "the file is empty".into()));
        return Err(Error::corruption(
            &path,
            off,
            format!("manifest holds no complete snapshot record ({reason})"),
        ));
    }
    if let Some((off, reason)) = &log.torn_tail {
        // A torn tail is legitimate only for an edit whose sync never returned. Such an edit
        // never let the engine delete anything, so the WAL the recovered state needs still
        // exists (WALs are deleted only after a durable edit moved `log_number` past them;
        // 0 = none needed, as in checkpoints). If it is gone, the damaged tail was an
        // acknowledged edit and dropping it would lose data silently.
        let wal = filename::wal_path(dir, counters.log_number);
        if counters.log_number != 0 && !fs.exists(&wal) {
            return Err(Error::corruption(
                &path,
                *off,
                format!(
                    "damaged manifest tail ({reason}) was acknowledged: {} needed by the \
                     edits before it is gone",
                    wal.display()
                ),
            ));
        }
    }
    Ok(Recovered {
        version,
        next_file_number,
        counters,
    })
}

fn absorb(c: &mut Counters, next_file: &mut u64, e: &VersionEdit) {
    if let Some(v) = e.log_number {
        c.log_number = v;
    }
    if let Some(v) = e.next_file_number {
        *next_file = (*next_file).max(v);
    }
    if let Some(v) = e.last_seqno {
        c.last_seqno = c.last_seqno.max(v);
    }
    if let Some(v) = e.durable_tag {
        c.durable_tag = Some(c.durable_tag.map_or(v, |t| t.max(v)));
    }
    for (l, k) in &e.compact_pointers {
        c.compact_pointers[*l] = k.clone();
    }
}

impl VersionSet {
    /// A version set over recovered (or empty) state; call [`VersionSet::write_new_manifest`]
    /// before logging edits.
    pub(crate) fn new(
        dir: &Path,
        fs: Arc<dyn FileSystem>,
        rec: Recovered,
        graveyard: Arc<Graveyard>,
    ) -> Self {
        let durable_tag = rec.counters.durable_tag;
        VersionSet {
            dir: dir.to_path_buf(),
            fs,
            manifest: Mutex::new(ManifestState {
                writer: None,
                number: 0,
                counters: rec.counters,
                failed: None,
            }),
            current: RwLock::new(Arc::new(rec.version)),
            next_file_number: AtomicU64::new(rec.next_file_number),
            graveyard,
            durable_tag: Mutex::new(durable_tag),
        }
    }

    /// Allocates a file number.
    pub(crate) fn new_file_number(&self) -> u64 {
        self.next_file_number.fetch_add(1, Ordering::SeqCst)
    }

    /// Makes sure `n` is never allocated again (a file found on disk that the manifest's
    /// `next_file_number` may not cover, such as a WAL created after the last edit).
    pub(crate) fn mark_file_number_used(&self, n: u64) {
        self.next_file_number.fetch_max(n + 1, Ordering::SeqCst);
    }

    /// The next number that would be allocated.
    pub(crate) fn peek_next_file_number(&self) -> u64 {
        self.next_file_number.load(Ordering::SeqCst)
    }

    /// The current version.
    pub(crate) fn current(&self) -> Arc<Version> {
        Arc::clone(&self.current.read())
    }

    /// The current version and the counters, read together under the manifest lock.
    pub(crate) fn current_with_counters(&self) -> (Arc<Version>, Counters) {
        let m = self.manifest.lock();
        (self.current(), m.counters.clone())
    }

    /// The durable tag of the last synced manifest edit, without taking the manifest lock.
    pub(crate) fn durable_tag(&self) -> Option<u64> {
        *self.durable_tag.lock()
    }

    /// The persisted counters.
    pub(crate) fn counters(&self) -> Counters {
        self.manifest.lock().counters.clone()
    }

    /// Number of the live manifest.
    pub(crate) fn manifest_number(&self) -> u64 {
        self.manifest.lock().number
    }

    /// Starts a new manifest holding a snapshot of the current state and points `CURRENT` at it.
    pub(crate) fn write_new_manifest(&self) -> Result<()> {
        let mut m = self.manifest.lock();
        let number = self.new_file_number();
        let path = filename::manifest_path(&self.dir, number);
        let file = self.fs.create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = LogWriter::new(file, path.clone());
        let mut snap = self.current.read().snapshot_edit();
        snap.log_number = Some(m.counters.log_number);
        snap.last_seqno = Some(m.counters.last_seqno);
        snap.durable_tag = m.counters.durable_tag;
        snap.next_file_number = Some(self.peek_next_file_number());
        for (l, k) in m.counters.compact_pointers.iter().enumerate() {
            if !k.is_empty() {
                snap.compact_pointers.push((l, k.clone()));
            }
        }
        w.add_record(&snap.encode())?;
        w.sync()?;
        let cur = filename::current_path(&self.dir);
        fs::write_atomic(
            self.fs.as_ref(),
            &cur,
            format!("{}\n", filename::manifest_name(number)).as_bytes(),
        )?;
        let old = m.number;
        m.writer = Some(w);
        m.number = number;
        drop(m);
        if old != 0 {
            let _ = self.fs.remove(&filename::manifest_path(&self.dir, old));
        }
        Ok(())
    }

    /// Logs `edit` durably to the manifest and installs the resulting version. On error nothing
    /// is installed (the caller turns the error into a background error).
    pub(crate) fn log_and_apply(&self, mut edit: VersionEdit) -> Result<Arc<Version>> {
        let mut m = self.manifest.lock();
        edit.next_file_number = Some(self.peek_next_file_number());
        let base = self.current();
        let manifest_file = filename::manifest_path(&self.dir, m.number);
        let next = base
            .apply(&edit, &Some(Arc::clone(&self.graveyard)))
            .map_err(|r| Error::corruption(&manifest_file, 0, format!("bad edit: {r}")))?;
        if !edit.added.is_empty() {
            // New tables' directory entries must be durable before the manifest names them.
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io(&self.dir, e))?;
        }
        if let Some(reason) = &m.failed {
            return Err(Error::Closed(format!(
                "no manifest edit is possible after an earlier one failed: {reason}"
            )));
        }
        let w = m
            .writer
            .as_mut()
            .ok_or_else(|| Error::Closed("manifest not open".into()))?;
        if let Err(e) = w.add_record(&edit.encode()).and_then(|()| w.sync()) {
            // The failed edit may still be in the file (whole or torn) and may even reach the
            // disk later. A later edit, computed from a version without it, would follow it in
            // the manifest: replay would then apply both (e.g. delete a file twice: an
            // unopenable database) or make a torn record a damaged sealed one. Stop here.
            m.failed = Some(e.to_string());
            m.writer = None;
            return Err(e);
        }
        let mut nf = 0;
        absorb(&mut m.counters, &mut nf, &edit);
        *self.durable_tag.lock() = m.counters.durable_tag;
        // Files that left the version are deleted once the last reader drops them.
        let next = Arc::new(next);
        for (l, n) in &edit.deleted {
            if edit.added.iter().any(|(_, a)| a.number == *n) {
                continue; // moved between levels, still live
            }
            if let Some(f) = base.levels[*l].iter().find(|f| f.number() == *n) {
                f.obsolete.store(true, Ordering::Release);
            }
        }
        *self.current.write() = Arc::clone(&next);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{FaultFs, FaultKind, IoOp};
    use crate::key::{internal_key, ValueKind};
    use crate::manifest::edit::NewFile;

    fn file(n: u64) -> NewFile {
        NewFile {
            number: n,
            size: 100,
            smallest: internal_key(b"a", 1, ValueKind::Put),
            largest: internal_key(b"m", 1, ValueKind::Put),
            smallest_seqno: 1,
            largest_seqno: 1,
            ..Default::default()
        }
    }

    /// Writes `edits` as the records of MANIFEST-000001 and points CURRENT at it; returns the
    /// manifest path and each record's offset.
    fn craft_manifest(dir: &Path, edits: &[VersionEdit]) -> (PathBuf, Vec<u64>) {
        let path = filename::manifest_path(dir, 1);
        let file = crate::fs::StdFs.create(&path).unwrap();
        let mut w = LogWriter::new(file, path.clone());
        for e in edits {
            w.add_record(&e.encode()).unwrap();
        }
        w.sync().unwrap();
        drop(w);
        std::fs::write(filename::current_path(dir), "MANIFEST-000001\n").unwrap();
        let data = std::fs::read(&path).unwrap();
        let offsets = read_log(&data).records.iter().map(|(o, _)| *o).collect();
        (path, offsets)
    }

    fn expect_seqno_corruption(dir: &Path, edits: &[VersionEdit], what: &str) {
        let (path, offsets) = craft_manifest(dir, edits);
        let err = replay(&crate::fs::StdFs, dir, None)
            .err()
            .unwrap_or_else(|| panic!("a manifest with a {what} past 56 bits replayed"));
        let Error::Corruption { file, offset, .. } = &err else {
            panic!("expected corruption, got {err}");
        };
        assert_eq!(file, &path, "{err}");
        assert_eq!(*offset, offsets[1], "{err}");
        let msg = err.to_string();
        assert!(msg.contains(what) && msg.contains("56-bit"), "{msg}");
    }

    #[test]
    fn seqnos_past_56_bits_are_corruption_naming_file_and_offset() {
        let snapshot = VersionEdit {
            log_number: Some(0),
            next_file_number: Some(2),
            last_seqno: Some(10),
            ..Default::default()
        };
        let tmp = tempfile::tempdir().unwrap();
        // The largest valid seqno replays.
        let max = VersionEdit {
            last_seqno: Some(crate::key::MAX_SEQNO),
            ..Default::default()
        };
        craft_manifest(tmp.path(), &[snapshot.clone(), max]);
        let rec = replay(&crate::fs::StdFs, tmp.path(), None).unwrap();
        assert_eq!(rec.counters.last_seqno, crate::key::MAX_SEQNO);

        let over = crate::key::MAX_SEQNO + 1;
        let last = VersionEdit {
            last_seqno: Some(over),
            ..Default::default()
        };
        expect_seqno_corruption(tmp.path(), &[snapshot.clone(), last], "last seqno");
        let mut big = file(3);
        big.largest_seqno = over;
        let added = VersionEdit {
            added: vec![(1, big)],
            ..Default::default()
        };
        expect_seqno_corruption(tmp.path(), &[snapshot.clone(), added], "largest seqno");
        let mut global = file(4);
        global.global_seqno = Some(u64::MAX - 1);
        let ingested = VersionEdit {
            added: vec![(1, global)],
            ..Default::default()
        };
        expect_seqno_corruption(tmp.path(), &[snapshot, ingested], "global seqno");
    }

    /// Found by tests/fault_matrix.rs: a compaction's manifest sync failed, then another
    /// thread's edit (computed from the version without the failed one) was appended and
    /// synced after it — the manifest deleted file 15 twice and the database no longer opened.
    #[test]
    fn no_edit_follows_a_failed_one() {
        let tmp = tempfile::tempdir().unwrap();
        let fault = FaultFs::new();
        let fsys: Arc<dyn FileSystem> = Arc::new(fault.clone());
        let open = || {
            let rec = Recovered {
                version: Version::default(),
                next_file_number: 2,
                counters: Counters::default(),
            };
            let g = Arc::new(Graveyard::default());
            VersionSet::new(tmp.path(), Arc::clone(&fsys), rec, g)
        };
        let vs = open();
        vs.write_new_manifest().unwrap();
        vs.log_and_apply(VersionEdit {
            added: vec![(5, file(15))],
            ..Default::default()
        })
        .unwrap();
        let delete = || VersionEdit {
            deleted: vec![(5, 15)],
            ..Default::default()
        };
        // The sync fails after the bytes were written: the edit is in the file.
        fault.fail_nth(IoOp::Sync, 1, FaultKind::Eio);
        assert!(vs.log_and_apply(delete()).is_err());
        assert_eq!(
            vs.current().levels[5].len(),
            1,
            "a failed edit was installed"
        );
        // The same deletion again (what a racing compaction would log) must not be appended.
        let again = vs.log_and_apply(delete());
        assert!(again.is_err(), "an edit was logged after a failed one");
        drop(vs);
        // The manifest replays: the failed edit may count (its bytes are there), nothing after.
        let rec = replay(fsys.as_ref(), tmp.path(), None).unwrap();
        assert!(rec.version.levels[5].is_empty());
    }
}
