//! The plog's files: group-committed appends, segment rollover, torn-tail tolerant replay,
//! truncation records and prefix segment removal.
//!
//! Durability rules (mapping §4): records are fsynced before an append is acknowledged, and a
//! new segment's directory entry is fsynced with its first records; every record of a non-last
//! segment is therefore durable, so damage there is corruption. Damage in the last segment with
//! nothing valid after it (the record runs past the end of the file, or a zero-filled tail) is a
//! torn tail of a write never acknowledged, and is cut off; damage followed by a valid record is
//! corruption too (that record's fsync covered the damaged bytes), reported and never cut.
//!
//! Truncation appends a record instead of rewriting files, so no file is ever modified in place
//! and a crash can never leave a hole. Segments are removed oldest first, and only while every
//! entry in them is at or below the purge mark: a truncation record can only affect records
//! before it, which are removed with it.

use super::cache::{CacheLimits, EntryCache, EntryLoc, Planned};
use super::format::{self, DecodeError, Record};
use crate::error::{Error, Result};
use crate::raft::TypeConfig;
use openraft::{Entry, LogId};
use siltdb::fs::{FileSystem, WritableFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What [`Segments::open`] read back.
pub struct Loaded {
    /// The entries above the purge mark: all indexed, the newest cached.
    pub entries: EntryCache,
    /// The newest committed log id piggybacked in a record.
    pub committed: Option<LogId<u64>>,
    /// True when a torn tail was cut off the last segment.
    pub torn_tail_cut: bool,
    /// Damaged non-last segments that open skipped (see [`Segments::open`]).
    pub lost: Option<Lost>,
}

/// Damaged segments skipped at open: every entry up to `upto` is gone from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// The first entry after the damage; the log restarts right after it.
    pub upto: LogId<u64>,
    /// Bytes of the damaged files.
    pub bytes: u64,
    /// The damaged files and the first error found in each.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct SegInfo {
    /// Largest entry decree written in the segment.
    max_decree: Option<u64>,
    /// The first entry decoded from the segment.
    first: Option<LogId<u64>>,
}

/// The segment files of one plog directory.
pub struct Segments {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segment_size_max_bytes: u64,
    segs: BTreeMap<u64, SegInfo>,
    /// Sequence number of the next segment; never reused while the process runs.
    next_seq: u64,
    /// The last segment, open for appending.
    active: Option<Box<dyn WritableFile>>,
}

impl Segments {
    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format::segment_name(seq))
    }

    fn io<T>(&self, path: &Path, r: std::io::Result<T>) -> Result<T> {
        r.map_err(|e| Error::io(path, e))
    }

    fn sync_dir(&self) -> Result<()> {
        self.io(&self.dir, self.fs.sync_dir(&self.dir))
    }

    /// Opens the segments in `dir` and replays them, dropping entries at or below `purged`.
    ///
    /// A damaged segment that is not the last one normally fails the open with
    /// [`Error::Corruption`] naming the file and offset. The exception: when the first entry
    /// `E` of the segment after the (last) damaged one is at or below `durable` — the engine
    /// holds everything the damaged files held — the damage costs the log nothing it needs for
    /// recovery. The log then restarts after `E` (everything up to `E` is dropped, as by a
    /// purge) and [`Loaded::lost`] reports the files, so readers outside Raft (duplication)
    /// learn that those decrees are gone.
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        segment_size_max_bytes: u64,
        purged: Option<&LogId<u64>>,
        durable: Option<u64>,
        cache: CacheLimits,
    ) -> Result<(Segments, Loaded)> {
        fs.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let names = fs.list(dir).map_err(|e| Error::io(dir, e))?;
        let mut segs = BTreeMap::new();
        for name in names {
            if let Some(seq) = format::parse_segment_name(&name) {
                segs.insert(seq, SegInfo::default());
            } else if name.ends_with(".tmp") {
                // An unfinished rewrite or meta write: the original is intact.
                let p = dir.join(&name);
                fs.remove(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        let mut me = Segments {
            fs,
            dir: dir.to_path_buf(),
            segment_size_max_bytes,
            segs,
            next_seq: 0,
            active: None,
        };
        let mut loaded = Loaded {
            entries: EntryCache::new(cache),
            committed: None,
            torn_tail_cut: false,
            lost: None,
        };
        let seqs: Vec<u64> = me.segs.keys().copied().collect();
        // The last damaged segment: its position, the error, and the damaged files so far.
        let mut damage: Option<(usize, Error)> = None;
        let mut damaged: Vec<(u64, String)> = Vec::new();
        for (i, &seq) in seqs.iter().enumerate() {
            let is_last = i + 1 == seqs.len();
            match me.load_segment(seq, is_last, purged.map(|p| p.index), &mut loaded) {
                Ok(()) => {}
                Err(e @ Error::Corruption { .. }) if !is_last => {
                    let path = me.path(seq);
                    let len = me.fs.file_size(&path).unwrap_or(0);
                    damaged.push((len, format!("{}: {e}", format::segment_name(seq))));
                    damage = Some((i, e));
                }
                Err(e) => return Err(e),
            }
        }
        if let Some((i, err)) = damage {
            let next = seqs
                .get(i + 1)
                .and_then(|s| me.segs.get(s))
                .and_then(|info| info.first);
            let Some(upto) = next.filter(|e| Some(e.index) <= durable) else {
                return Err(err);
            };
            // Entries up to `upto` leave the log; the damaged files hold decrees below it.
            loaded.entries.remove_upto(upto.index);
            for &s in &seqs[..=i] {
                if let Some(info) = me.segs.get_mut(&s) {
                    info.max_decree = Some(info.max_decree.unwrap_or(0).min(upto.index));
                }
            }
            if purged.is_none_or(|p| p.index < upto.index) {
                loaded.lost = Some(Lost {
                    upto,
                    bytes: damaged.iter().map(|(b, _)| b).sum(),
                    files: damaged.into_iter().map(|(_, f)| f).collect(),
                });
            }
        }
        me.next_seq = seqs.last().map_or(0, |s| s.saturating_add(1));
        if let Some(&last) = me.segs.keys().next_back() {
            let p = me.path(last);
            me.active = Some(me.io(&p, me.fs.open_append(&p))?);
        }
        Ok((me, loaded))
    }

    fn load_segment(
        &mut self,
        seq: u64,
        is_last: bool,
        purged_index: Option<u64>,
        loaded: &mut Loaded,
    ) -> Result<()> {
        let path = self.path(seq);
        let data = self.io(&path, siltdb::fs::read_all(self.fs.as_ref(), &path))?;
        if !format::header_ok(&data) {
            if is_last && data.len() <= format::SEGMENT_HEADER_BYTES {
                // Created, but its header never became durable: no record was acknowledged.
                return self.remove_torn(seq, &[], loaded);
            }
            return Err(Error::corruption(&path, 0, "bad plog segment header"));
        }
        let mut info = SegInfo::default();
        // A damaged segment stays listed (removed by a later purge) with what was decoded.
        self.segs.insert(seq, info);
        let mut pos = format::SEGMENT_HEADER_BYTES;
        while pos < data.len() {
            let d = match format::decode_record(&data[pos..]) {
                Ok(d) => d,
                // Damage followed by a valid record: that record was acknowledged (its fsync
                // covered the damaged bytes too), so this is corruption, not a torn tail.
                Err(e) if is_last && format::valid_record_after(&data, pos) => {
                    let why = match e {
                        DecodeError::Truncated => "record length runs past a later valid record",
                        DecodeError::Bad(why) => why,
                    };
                    return Err(Error::corruption(
                        &path,
                        pos as u64,
                        format!("{why}, followed by valid records (not a torn tail)"),
                    ));
                }
                // Torn tail (nothing valid after it): never acknowledged, cut it off.
                Err(_) if is_last => return self.remove_torn(seq, &data[..pos], loaded),
                Err(DecodeError::Truncated) => {
                    return Err(Error::corruption(&path, pos as u64, "truncated record"));
                }
                Err(DecodeError::Bad(why)) => {
                    return Err(Error::corruption(&path, pos as u64, why))
                }
            };
            let offset = pos as u64;
            pos += d.framed_len;
            match d.record {
                Record::Entry(r) => {
                    let index = r.entry.log_id.index;
                    info.max_decree = info.max_decree.max(Some(index));
                    info.first = info.first.or(Some(r.entry.log_id));
                    self.segs.insert(seq, info);
                    if r.committed > loaded.committed {
                        loaded.committed = r.committed;
                    }
                    if Some(index) > purged_index || purged_index.is_none() {
                        let loc = EntryLoc {
                            log_id: r.entry.log_id,
                            seq,
                            offset,
                            // decode_record bounds the body by MAX_RECORD_BODY_BYTES.
                            len: d.framed_len as u32,
                        };
                        loaded.entries.insert(r.entry, loc);
                    }
                }
                Record::Truncate { from } => {
                    loaded.entries.remove_from(from);
                }
            }
        }
        self.segs.insert(seq, info);
        Ok(())
    }

    /// Replaces the last segment `seq` by its valid `prefix` (atomically: temp file, fsync,
    /// rename, directory fsync); a prefix without records removes the segment.
    fn remove_torn(&mut self, seq: u64, prefix: &[u8], loaded: &mut Loaded) -> Result<()> {
        loaded.torn_tail_cut = true;
        let path = self.path(seq);
        if prefix.len() <= format::SEGMENT_HEADER_BYTES {
            self.io(&path, self.fs.remove(&path))?;
            self.segs.remove(&seq);
            return self.sync_dir();
        }
        match siltdb::fs::write_atomic(self.fs.as_ref(), &path, prefix) {
            Ok(()) => {}
            Err(siltdb::Error::Io { path, source }) => return Err(Error::io(&path, source)),
            Err(e) => return Err(e.into()),
        }
        // The records before the tear were replayed by the caller's loop already; keep the
        // segment's max decree as computed so far (recomputed cheaply here).
        let mut info = SegInfo::default();
        let mut pos = format::SEGMENT_HEADER_BYTES;
        while let Ok(d) = format::decode_record(&prefix[pos..]) {
            if let Record::Entry(r) = &d.record {
                info.max_decree = info.max_decree.max(Some(r.entry.log_id.index));
            }
            pos += d.framed_len;
            if pos >= prefix.len() {
                break;
            }
        }
        self.segs.insert(seq, info);
        Ok(())
    }

    /// Appends framed `records` (entries up to `max_decree`, if any), rolling over to a new
    /// segment when the active one is full, and fsyncs them: one fsync for the whole group.
    /// Returns the segment written and the offset of `records` within it.
    pub fn append(&mut self, records: &[u8], max_decree: Option<u64>) -> Result<(u64, u64)> {
        let full = self
            .active
            .as_ref()
            .is_none_or(|w| w.len() >= self.segment_size_max_bytes);
        let mut created = false;
        if full {
            let seq = self.next_seq;
            self.next_seq = seq.saturating_add(1);
            let path = self.path(seq);
            let mut w = self.io(&path, self.fs.create(&path))?;
            self.io(&path, w.append(&format::segment_header()))?;
            self.active = Some(w);
            self.segs.insert(seq, SegInfo::default());
            created = true;
        }
        let Some((&seq, info)) = self.segs.iter_mut().next_back() else {
            return Err(Error::Closed("plog has no active segment".into()));
        };
        info.max_decree = info.max_decree.max(max_decree);
        let path = self.dir.join(format::segment_name(seq));
        let Some(w) = self.active.as_mut() else {
            return Err(Error::Closed("plog has no active segment".into()));
        };
        let base = w.len();
        w.append(records).map_err(|e| Error::io(&path, e))?;
        w.sync().map_err(|e| Error::io(&path, e))?;
        if created {
            self.sync_dir()?;
        }
        Ok((seq, base))
    }

    /// Durably removes every entry with decree `>= from` (a truncation record).
    pub fn truncate(&mut self, from: u64) -> Result<()> {
        let mut buf = Vec::with_capacity(32);
        format::encode_truncate(&mut buf, from);
        self.append(&buf, None).map(|_| ())
    }

    /// Removes segments oldest first while every entry in them is `<= decree`. Returns how many.
    pub fn remove_upto(&mut self, decree: u64) -> Result<usize> {
        let mut removed = 0;
        while let Some((&seq, info)) = self.segs.iter().next() {
            if info.max_decree.is_some_and(|m| m > decree) {
                break;
            }
            if self.segs.len() == 1 {
                self.active = None;
            }
            let path = self.path(seq);
            self.io(&path, self.fs.remove(&path))?;
            self.segs.remove(&seq);
            removed += 1;
        }
        if removed > 0 {
            // Make the removals durable: a resurrected old segment would replay out of order.
            self.sync_dir()?;
        }
        Ok(removed)
    }

    /// Number of segment files.
    pub fn count(&self) -> usize {
        self.segs.len()
    }
}

/// Reads the entries at `locs` back from their segments in `dir`, verifying each record's
/// checksum and that it holds the entry the index expects; damage is [`Error::Corruption`]
/// naming the segment and offset. Consecutive records of one segment are read with one call.
pub fn read_entries(
    fs: &dyn FileSystem,
    dir: &Path,
    locs: &[EntryLoc],
) -> Result<Vec<Entry<TypeConfig>>> {
    let mut out = Vec::with_capacity(locs.len());
    let mut rest = locs;
    while let Some(first) = rest.first() {
        // The run of records that sit back to back in the same segment.
        let mut run = 1;
        while let (Some(prev), Some(next)) = (rest.get(run - 1), rest.get(run)) {
            let adjacent = next.seq == prev.seq && next.offset == prev.offset + u64::from(prev.len);
            if !adjacent {
                break;
            }
            run += 1;
        }
        let (group, tail) = rest.split_at(run);
        read_run(fs, dir, first.seq, group, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

fn read_run(
    fs: &dyn FileSystem,
    dir: &Path,
    seq: u64,
    group: &[EntryLoc],
    out: &mut Vec<Entry<TypeConfig>>,
) -> Result<()> {
    let path = dir.join(format::segment_name(seq));
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        return Ok(());
    };
    let start = first.offset;
    let end = last.offset + u64::from(last.len);
    let file = fs.open_read(&path).map_err(|e| Error::io(&path, e))?;
    if end > file.size() {
        return Err(Error::corruption(
            &path,
            start,
            format!(
                "indexed plog records end at {end}, past the segment's {} bytes",
                file.size()
            ),
        ));
    }
    let mut buf = vec![0u8; (end - start) as usize];
    file.read_at(start, &mut buf)
        .map_err(|e| Error::io(&path, e))?;
    for loc in group {
        let at = (loc.offset - start) as usize;
        let bad = |why: &str| Error::corruption(&path, loc.offset, why.to_string());
        let d = match format::decode_record(&buf[at..at + loc.len as usize]) {
            Ok(d) => d,
            Err(DecodeError::Truncated) => return Err(bad("truncated plog record on re-read")),
            Err(DecodeError::Bad(why)) => return Err(bad(why)),
        };
        match d.record {
            Record::Entry(r)
                if r.entry.log_id == loc.log_id && d.framed_len == loc.len as usize =>
            {
                out.push(r.entry)
            }
            Record::Entry(r) => {
                return Err(bad(&format!(
                    "plog record holds entry {} where the index expects {}",
                    r.entry.log_id, loc.log_id
                )))
            }
            Record::Truncate { .. } => {
                return Err(bad(
                    "plog record is a truncation where the index expects an entry",
                ))
            }
        }
    }
    Ok(())
}

/// Turns a read plan into entries, reading the on-disk runs from their segments.
pub fn resolve(
    fs: &dyn FileSystem,
    dir: &Path,
    plan: Vec<Planned>,
) -> Result<Vec<Entry<TypeConfig>>> {
    let mut out = Vec::with_capacity(plan.len());
    let mut pending: Vec<EntryLoc> = Vec::new();
    for p in plan {
        match p {
            Planned::OnDisk(loc) => pending.push(loc),
            Planned::Cached(e) => {
                out.extend(read_entries(fs, dir, &pending)?);
                pending.clear();
                out.push(e);
            }
        }
    }
    out.extend(read_entries(fs, dir, &pending)?);
    Ok(out)
}
