//! Version edits and their encoding (`docs/format.md`, "MANIFEST").
//!
//! ```text
//! edit   := field*
//! field  := tag varint, then by tag:
//!   1 log_number varint          2 next_file_number varint     3 last_seqno varint
//!   4 deleted file: level varint, number varint
//!   5 new file: level varint, len-prefixed file record
//!   6 durable_tag varint         7 compact pointer: level varint, len-prefixed internal key
//! file record := number, size, len-prefixed smallest, len-prefixed largest, smallest_seqno,
//!                largest_seqno, global_seqno + 1 (0 = none), num_entries, num_range_tombstones
//!                (all varints unless noted; trailing bytes ignored for forward compatibility)
//! ```

use crate::coding::{put_len_prefixed, put_varint, Cursor};
use crate::key::MAX_SEQNO;
use crate::manifest::NUM_LEVELS;

/// A sequence number read from a manifest, refused past the 56 bits an internal key's trailer
/// holds: recovering one would make the next write's seqno wrap into the kind byte.
fn seqno(what: &str, v: u64) -> Result<u64, String> {
    if v <= MAX_SEQNO {
        Ok(v)
    } else {
        Err(format!(
            "{what} {v} exceeds the 56-bit sequence number maximum {MAX_SEQNO}"
        ))
    }
}

/// Description of one SST file as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct NewFile {
    pub number: u64,
    pub size: u64,
    pub smallest: Vec<u8>,
    pub largest: Vec<u8>,
    pub smallest_seqno: u64,
    pub largest_seqno: u64,
    pub global_seqno: Option<u64>,
    pub num_entries: u64,
    pub num_range_tombstones: u64,
}

impl NewFile {
    /// The manifest record of a table just written as file `number` (no global seqno).
    pub(crate) fn from_table(number: u64, info: crate::sst::TableInfo) -> Self {
        NewFile {
            number,
            size: info.file_size,
            smallest: info.smallest,
            largest: info.largest,
            smallest_seqno: info.smallest_seqno,
            largest_seqno: info.largest_seqno,
            global_seqno: None,
            num_entries: info.num_entries,
            num_range_tombstones: info.num_range_tombstones,
        }
    }
}

/// A change to the set of files and counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct VersionEdit {
    pub log_number: Option<u64>,
    pub next_file_number: Option<u64>,
    pub last_seqno: Option<u64>,
    pub deleted: Vec<(usize, u64)>,
    pub added: Vec<(usize, NewFile)>,
    pub durable_tag: Option<u64>,
    pub compact_pointers: Vec<(usize, Vec<u8>)>,
}

impl VersionEdit {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        if let Some(v) = self.log_number {
            put_varint(&mut b, 1);
            put_varint(&mut b, v);
        }
        if let Some(v) = self.next_file_number {
            put_varint(&mut b, 2);
            put_varint(&mut b, v);
        }
        if let Some(v) = self.last_seqno {
            put_varint(&mut b, 3);
            put_varint(&mut b, v);
        }
        for (level, n) in &self.deleted {
            put_varint(&mut b, 4);
            put_varint(&mut b, *level as u64);
            put_varint(&mut b, *n);
        }
        for (level, f) in &self.added {
            put_varint(&mut b, 5);
            put_varint(&mut b, *level as u64);
            let mut r = Vec::new();
            put_varint(&mut r, f.number);
            put_varint(&mut r, f.size);
            put_len_prefixed(&mut r, &f.smallest);
            put_len_prefixed(&mut r, &f.largest);
            put_varint(&mut r, f.smallest_seqno);
            put_varint(&mut r, f.largest_seqno);
            put_varint(&mut r, f.global_seqno.map_or(0, |g| g + 1));
            put_varint(&mut r, f.num_entries);
            put_varint(&mut r, f.num_range_tombstones);
            put_len_prefixed(&mut b, &r);
        }
        if let Some(v) = self.durable_tag {
            put_varint(&mut b, 6);
            put_varint(&mut b, v);
        }
        for (level, k) in &self.compact_pointers {
            put_varint(&mut b, 7);
            put_varint(&mut b, *level as u64);
            put_len_prefixed(&mut b, k);
        }
        b
    }

    /// Decodes an edit; an error string says what is wrong.
    pub(crate) fn decode(data: &[u8]) -> Result<Self, String> {
        let mut c = Cursor::new(data);
        let mut e = VersionEdit::default();
        let level = |c: &mut Cursor<'_>| -> Result<usize, String> {
            let l = c.varint().ok_or("truncated level")?;
            if (l as usize) < NUM_LEVELS {
                Ok(l as usize)
            } else {
                Err(format!("level {l} out of range"))
            }
        };
        while !c.is_empty() {
            let tag = c.varint().ok_or("truncated tag")?;
            match tag {
                1 => e.log_number = Some(c.varint().ok_or("truncated log number")?),
                2 => e.next_file_number = Some(c.varint().ok_or("truncated next file")?),
                3 => {
                    let v = c.varint().ok_or("truncated last seqno")?;
                    e.last_seqno = Some(seqno("last seqno", v)?);
                }
                4 => {
                    let l = level(&mut c)?;
                    e.deleted
                        .push((l, c.varint().ok_or("truncated file number")?));
                }
                5 => {
                    let l = level(&mut c)?;
                    let rec = c.len_prefixed().ok_or("truncated file record")?;
                    e.added.push((l, decode_file(rec)?));
                }
                6 => e.durable_tag = Some(c.varint().ok_or("truncated durable tag")?),
                7 => {
                    let l = level(&mut c)?;
                    let k = c.len_prefixed().ok_or("truncated compact pointer")?;
                    e.compact_pointers.push((l, k.to_vec()));
                }
                t => return Err(format!("unknown edit tag {t}")),
            }
        }
        Ok(e)
    }
}

fn decode_file(rec: &[u8]) -> Result<NewFile, String> {
    let mut c = Cursor::new(rec);
    let truncated = || "truncated file record".to_string();
    let number = c.varint().ok_or_else(truncated)?;
    let size = c.varint().ok_or_else(truncated)?;
    let smallest = c.len_prefixed().ok_or_else(truncated)?.to_vec();
    let largest = c.len_prefixed().ok_or_else(truncated)?.to_vec();
    let smallest_seqno = seqno("file smallest seqno", c.varint().ok_or_else(truncated)?)?;
    let largest_seqno = seqno("file largest seqno", c.varint().ok_or_else(truncated)?)?;
    let g = c.varint().ok_or_else(truncated)?;
    if let Some(global) = g.checked_sub(1) {
        seqno("file global seqno", global)?;
    }
    let num_entries = c.varint().ok_or_else(truncated)?;
    let num_range_tombstones = c.varint().ok_or_else(truncated)?;
    if smallest.len() < crate::key::TRAILER_LEN || largest.len() < crate::key::TRAILER_LEN {
        return Err("file bound shorter than an internal key".into());
    }
    Ok(NewFile {
        number,
        size,
        smallest,
        largest,
        smallest_seqno,
        largest_seqno,
        global_seqno: g.checked_sub(1),
        num_entries,
        num_range_tombstones,
    })
}

/// Fuzz entry point: decodes arbitrary bytes as an edit and checks the round trip.
#[cfg(any(test, feature = "fuzzing"))]
pub fn fuzz_decode(data: &[u8]) -> bool {
    match VersionEdit::decode(data) {
        Ok(e) => {
            let again = VersionEdit::decode(&e.encode()).expect("re-decode of an encoded edit");
            assert_eq!(again, e);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{internal_key, ValueKind};

    #[test]
    fn round_trip_and_truncation() {
        let e = VersionEdit {
            log_number: Some(4),
            next_file_number: Some(9),
            last_seqno: Some(1000),
            deleted: vec![(0, 3), (2, 5)],
            added: vec![(
                1,
                NewFile {
                    number: 8,
                    size: 4096,
                    smallest: internal_key(b"a", 1, ValueKind::Put),
                    largest: internal_key(b"z", 2, ValueKind::Put),
                    smallest_seqno: 1,
                    largest_seqno: 2,
                    global_seqno: Some(7),
                    num_entries: 10,
                    num_range_tombstones: 1,
                },
            )],
            durable_tag: Some(42),
            compact_pointers: vec![(1, internal_key(b"m", 3, ValueKind::Put))],
        };
        let enc = e.encode();
        assert_eq!(VersionEdit::decode(&enc).unwrap(), e);
        for cut in 0..enc.len() {
            if let Ok(d) = VersionEdit::decode(&enc[..cut]) {
                assert_ne!(d, e);
            }
        }
        assert!(fuzz_decode(&enc));
    }
}
