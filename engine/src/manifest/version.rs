//! A version: the immutable set of SST files, per level, at one point in time.
//!
//! Versions are shared (`Arc`) by readers, iterators and checkpoints; a file removed by an edit
//! is deleted from disk only when the last version holding it is dropped (see [`Graveyard`]).

use super::edit::{NewFile, VersionEdit};
use super::NUM_LEVELS;
use crate::key::{self, cmp_internal};
use parking_lot::Mutex;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering as AtomicOrdering};
use std::sync::Arc;

/// Numbers of files no version references any more, waiting to be deleted.
#[derive(Debug, Default)]
pub(crate) struct Graveyard {
    pub(crate) dead: Mutex<Vec<u64>>,
}

impl Graveyard {
    /// True when files died since the last purge: the background threads purge them even when
    /// no flush or compaction follows (a read-only spell after the last reader of an old
    /// version let go would otherwise keep them on disk indefinitely).
    pub(crate) fn has_dead(&self) -> bool {
        !self.dead.lock().is_empty()
    }
}

/// Bytes of compaction one wasted file probe is worth (LevelDB's estimate).
pub(crate) const BYTES_PER_WASTED_READ: u64 = 16 << 10;
/// Wasted probes every file is allowed, however small.
pub(crate) const MIN_WASTED_READS: i64 = 100;

/// The wasted probes a file of `size` bytes is allowed before it is compacted.
pub(crate) fn allowed_wasted_reads(size: u64) -> i64 {
    i64::try_from(size / BYTES_PER_WASTED_READ)
        .unwrap_or(i64::MAX)
        .max(MIN_WASTED_READS)
}

/// One SST file of a version.
#[derive(Debug)]
pub(crate) struct FileMeta {
    pub(crate) f: NewFile,
    /// Chosen as input by a running compaction.
    pub(crate) being_compacted: AtomicBool,
    /// Removed from the live version set: delete the file when the last reference drops.
    pub(crate) obsolete: AtomicBool,
    /// Reads that may still consult this file in vain before it is scheduled for a
    /// read-triggered compaction (see `compaction::read_trigger`).
    pub(crate) wasted_reads_left: AtomicI64,
    graveyard: Option<Arc<Graveyard>>,
}

impl FileMeta {
    pub(crate) fn new(f: NewFile, graveyard: Option<Arc<Graveyard>>) -> Self {
        let allowance = allowed_wasted_reads(f.size);
        FileMeta {
            f,
            being_compacted: AtomicBool::new(false),
            obsolete: AtomicBool::new(false),
            wasted_reads_left: AtomicI64::new(allowance),
            graveyard,
        }
    }

    pub(crate) fn number(&self) -> u64 {
        self.f.number
    }

    pub(crate) fn smallest_user(&self) -> &[u8] {
        key::user_key(&self.f.smallest)
    }

    pub(crate) fn largest_user(&self) -> &[u8] {
        key::user_key(&self.f.largest)
    }

    /// True if `user_key` lies within the file's user-key range.
    pub(crate) fn contains_user_key(&self, user_key: &[u8]) -> bool {
        self.smallest_user() <= user_key && user_key <= self.largest_user()
    }

    /// True if the file's user-key range meets `[lo, hi]` (None = unbounded).
    pub(crate) fn overlaps(&self, lo: Option<&[u8]>, hi: Option<&[u8]>) -> bool {
        let before = hi.is_some_and(|h| self.smallest_user() > h);
        let after = lo.is_some_and(|l| self.largest_user() < l);
        !before && !after
    }
}

impl Drop for FileMeta {
    fn drop(&mut self) {
        if self.obsolete.load(AtomicOrdering::Acquire) {
            if let Some(g) = &self.graveyard {
                g.dead.lock().push(self.f.number);
            }
        }
    }
}

/// The files of the database, per level. L0 is ordered newest first; L1+ by smallest key and
/// non-overlapping.
#[derive(Debug, Default, Clone)]
pub(crate) struct Version {
    pub(crate) levels: [Vec<Arc<FileMeta>>; NUM_LEVELS],
    /// Bytes per level, summed once when the version is built: the stall check reads them on
    /// every write.
    level_sizes: [u64; NUM_LEVELS],
}

impl Version {
    /// Applies an edit, returning the new version. `graveyard` is attached to new files.
    pub(crate) fn apply(
        &self,
        edit: &VersionEdit,
        graveyard: &Option<Arc<Graveyard>>,
    ) -> Result<Version, String> {
        let mut files: [BTreeMap<u64, Arc<FileMeta>>; NUM_LEVELS] = Default::default();
        for (l, level) in self.levels.iter().enumerate() {
            for f in level {
                files[l].insert(f.number(), Arc::clone(f));
            }
        }
        let mut removed = BTreeMap::new();
        for (l, n) in &edit.deleted {
            match files[*l].remove(n) {
                Some(f) => removed.insert(*n, f),
                None => return Err(format!("edit deletes file {n} which is not in level {l}")),
            };
        }
        for (l, nf) in &edit.added {
            if cmp_internal(&nf.smallest, &nf.largest) == Ordering::Greater {
                return Err(format!("file {} has smallest > largest", nf.number));
            }
            // A file moved between levels keeps its one `FileMeta`: with two, the new one could
            // be dropped as obsolete (after a later compaction) and the file deleted while an
            // older version, still pinned by a reader, holds the old one.
            let meta = match removed.remove(&nf.number) {
                Some(m) => m,
                None => Arc::new(FileMeta::new(nf.clone(), graveyard.clone())),
            };
            files[*l].insert(nf.number, meta);
        }
        let mut v = Version::default();
        for (l, m) in files.into_iter().enumerate() {
            v.levels[l] = m.into_values().collect();
        }
        v.sort();
        for l in 1..NUM_LEVELS {
            for w in v.levels[l].windows(2) {
                if cmp_internal(&w[0].f.largest, &w[1].f.smallest) != Ordering::Less {
                    return Err(format!(
                        "files {} and {} overlap in level {l}",
                        w[0].number(),
                        w[1].number()
                    ));
                }
            }
        }
        // Pair assertion with the overlap check above: whatever edit was applied, levels >= 1
        // come out sorted by smallest key and non-overlapping (binary search relies on it).
        debug_assert!(
            v.levels_sorted_and_disjoint(),
            "level order broken by an edit"
        );
        Ok(v)
    }

    /// True when every level >= 1 is sorted by smallest key and no two of its files overlap
    /// (each file's largest key is below the next file's smallest). O(files).
    pub(crate) fn levels_sorted_and_disjoint(&self) -> bool {
        self.levels[1..].iter().all(|level| {
            level.windows(2).all(|w| {
                cmp_internal(&w[0].f.smallest, &w[1].f.smallest) == Ordering::Less
                    && cmp_internal(&w[0].f.largest, &w[1].f.smallest) == Ordering::Less
            })
        })
    }

    fn sort(&mut self) {
        for (size, files) in self.level_sizes.iter_mut().zip(&self.levels) {
            *size = files.iter().map(|f| f.f.size).sum();
        }
        self.levels[0].sort_by(|a, b| {
            b.f.largest_seqno
                .cmp(&a.f.largest_seqno)
                .then(b.number().cmp(&a.number()))
        });
        for l in 1..NUM_LEVELS {
            self.levels[l].sort_by(|a, b| cmp_internal(&a.f.smallest, &b.f.smallest));
        }
    }

    /// Every file, all levels.
    pub(crate) fn all_files(&self) -> impl Iterator<Item = (usize, &Arc<FileMeta>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(l, fs)| fs.iter().map(move |f| (l, f)))
    }

    /// Total bytes in a level.
    pub(crate) fn level_bytes(&self, level: usize) -> u64 {
        debug_assert_eq!(
            self.level_sizes[level],
            self.levels[level].iter().map(|f| f.f.size).sum::<u64>()
        );
        self.level_sizes[level]
    }

    /// Index of the first file in sorted level `level >= 1` whose largest key is `>= ikey`.
    pub(crate) fn find_file(&self, level: usize, ikey: &[u8]) -> usize {
        self.levels[level].partition_point(|f| cmp_internal(&f.f.largest, ikey) == Ordering::Less)
    }

    /// Files of `level` whose user-key range meets `[lo, hi]`.
    pub(crate) fn overlapping(
        &self,
        level: usize,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Vec<Arc<FileMeta>> {
        self.levels[level]
            .iter()
            .filter(|f| f.overlaps(lo, hi))
            .cloned()
            .collect()
    }

    /// The edit that recreates this version from nothing.
    pub(crate) fn snapshot_edit(&self) -> VersionEdit {
        let mut e = VersionEdit::default();
        for (l, f) in self.all_files() {
            e.added.push((l, f.f.clone()));
        }
        e
    }

    /// Number of files in each level (fuzzing checks a rebuilt version against it).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn files_per_level(&self) -> [usize; NUM_LEVELS] {
        let mut out = [0; NUM_LEVELS];
        for (l, fs) in self.levels.iter().enumerate() {
            out[l] = fs.len();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};

    fn file(n: u64, lo: &[u8], hi: &[u8]) -> NewFile {
        NewFile {
            number: n,
            size: 100,
            smallest: internal_key(lo, 1, ValueKind::Put),
            largest: internal_key(hi, 1, ValueKind::Put),
            smallest_seqno: 1,
            largest_seqno: 1,
            ..Default::default()
        }
    }

    #[test]
    fn every_applied_edit_leaves_levels_sorted_and_disjoint() {
        let add = |files: Vec<(usize, NewFile)>| VersionEdit {
            added: files,
            ..Default::default()
        };
        // Added out of order (and by file number against key order): sorted by the builder.
        let v = Version::default()
            .apply(
                &add(vec![
                    (1, file(3, b"m", b"p")),
                    (1, file(9, b"a", b"c")),
                    (1, file(5, b"d", b"k")),
                    (0, file(4, b"a", b"z")),
                    (0, file(8, b"b", b"y")),
                ]),
                &None,
            )
            .unwrap();
        assert!(v.levels_sorted_and_disjoint());
        let order: Vec<u64> = v.levels[1].iter().map(|f| f.number()).collect();
        assert_eq!(order, [9, 5, 3]);
        // L0 may overlap; a further edit keeps L1+ in order.
        let more = VersionEdit {
            deleted: vec![(1, 5)],
            added: vec![(1, file(6, b"e", b"f")), (2, file(7, b"a", b"z"))],
            ..Default::default()
        };
        let v2 = v.apply(&more, &None).unwrap();
        assert!(v2.levels_sorted_and_disjoint());
        // An edit that would make L1 overlap is refused, not applied.
        let err = v2
            .apply(&add(vec![(1, file(10, b"b", b"n"))]), &None)
            .unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        // The check itself sees a broken level (built by hand, out of order).
        let mut broken = v2.clone();
        broken.levels[1].reverse();
        assert!(!broken.levels_sorted_and_disjoint());
        let mut overlapping = Version::default();
        overlapping.levels[3] = vec![
            Arc::new(FileMeta::new(file(1, b"a", b"m"), None)),
            Arc::new(FileMeta::new(file(2, b"k", b"z"), None)),
        ];
        assert!(!overlapping.levels_sorted_and_disjoint());
    }

    #[test]
    fn a_moved_file_is_deleted_only_after_every_version_holding_it_is_gone() {
        let g = Some(Arc::new(Graveyard::default()));
        let add = |l, f| VersionEdit {
            added: vec![(l, f)],
            ..Default::default()
        };
        let v1 = Version::default()
            .apply(&add(0, file(7, b"a", b"m")), &g)
            .unwrap();
        // Trivial move L0 -> L6.
        let mv = VersionEdit {
            deleted: vec![(0, 7)],
            added: vec![(6, file(7, b"a", b"m"))],
            ..Default::default()
        };
        let v2 = v1.apply(&mv, &g).unwrap();
        assert!(Arc::ptr_eq(&v1.levels[0][0], &v2.levels[6][0]));
        // A compaction then removes it; the newer versions go away, v1 (a reader) stays.
        let rm = VersionEdit {
            deleted: vec![(6, 7)],
            ..Default::default()
        };
        let v3 = v2.apply(&rm, &g).unwrap();
        v2.levels[6][0]
            .obsolete
            .store(true, AtomicOrdering::Release);
        drop((v2, v3));
        let dead = || g.as_ref().unwrap().dead.lock().clone();
        assert!(
            dead().is_empty(),
            "file deleted while a reader's version holds it"
        );
        drop(v1);
        assert_eq!(dead(), vec![7]);
    }
}
