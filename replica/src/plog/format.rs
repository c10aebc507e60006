//! Byte layout of plog segments and records (described in `docs/format.md`, "Replica: mutation log").
//!
//! A segment is `plog/<sequence number, 20 digits>.log`: a 16-byte header (`SILTPLOG`, format
//! version `u32`, reserved `u32`) followed by records. A record is
//! `crc: u32 | body_len: u32 | body`, `crc` = masked CRC32C of `body_len | body`. The body starts
//! with a type byte:
//! - 1, an entry: `term u64 | leader node u64 | decree u64 | timestamp_ms u64 | committed` (flag
//!   `u8`, then `term u64 | node u64 | decree u64` when set) `| payload kind u8 | payload` with
//!   kind 0 = blank, 1 = mutation ([`crate::mutation::Mutation::encode_to`]), 2 = membership
//!   (JSON);
//! - 2, a truncation: `from decree u64` — every entry at or after it written before this record
//!   is gone.
//!
//! Replay applies records in file order: an entry sets its decree (replacing an older one), a
//! truncation removes decrees `>= from`.

use crate::mutation::Mutation;
use crate::raft::TypeConfig;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership};

/// Segment file magic.
pub const SEGMENT_MAGIC: &[u8; 8] = b"SILTPLOG";
/// Segment format version written in every header.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = 16;
/// Bytes before a record body: crc + length.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Largest record body accepted when reading (a larger length is a torn or corrupt record).
pub const MAX_RECORD_BODY_BYTES: usize = 256 << 20;

const MASK_DELTA: u32 = 0xa282_ead8;
const RECORD_ENTRY: u8 = 1;
const RECORD_TRUNCATE: u8 = 2;

/// The segment header bytes.
pub fn segment_header() -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// True when `h` is a valid header of a version we read.
pub fn header_ok(h: &[u8]) -> bool {
    h.len() >= SEGMENT_HEADER_BYTES
        && &h[..8] == SEGMENT_MAGIC
        && h[8..12] == FORMAT_VERSION.to_le_bytes()
}

/// The file name of segment number `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("{seq:020}.log")
}

/// The sequence number of a segment file name, `None` when the name is not a segment's.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn masked_crc(len_bytes: &[u8], body: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(crc32c::crc32c(len_bytes), body);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

fn put_log_id(out: &mut Vec<u8>, id: &LogId<u64>) {
    out.extend_from_slice(&id.leader_id.term.to_le_bytes());
    out.extend_from_slice(&id.leader_id.node_id.to_le_bytes());
    out.extend_from_slice(&id.index.to_le_bytes());
}

/// Appends one framed record for `entry` to `out`.
pub fn encode_record(
    out: &mut Vec<u8>,
    entry: &Entry<TypeConfig>,
    committed: Option<&LogId<u64>>,
    timestamp_ms: u64,
) {
    let mut body = Vec::with_capacity(64);
    body.push(RECORD_ENTRY);
    put_log_id(&mut body, &entry.log_id);
    body.extend_from_slice(&timestamp_ms.to_le_bytes());
    match committed {
        Some(c) => {
            body.push(1);
            put_log_id(&mut body, c);
        }
        None => body.push(0),
    }
    match &entry.payload {
        EntryPayload::Blank => body.push(0),
        EntryPayload::Normal(m) => {
            body.push(1);
            m.encode_to(&mut body);
        }
        EntryPayload::Membership(m) => {
            body.push(2);
            // Serializing a BTreeMap/BTreeSet-based membership to JSON cannot fail.
            let json = serde_json::to_vec(m).unwrap_or_default();
            body.extend_from_slice(&json);
        }
    }
    frame(out, &body);
}

/// Appends one framed truncation record: decrees `>= from` are removed.
pub fn encode_truncate(out: &mut Vec<u8>, from: u64) {
    let mut body = Vec::with_capacity(9);
    body.push(RECORD_TRUNCATE);
    body.extend_from_slice(&from.to_le_bytes());
    frame(out, &body);
}

fn frame(out: &mut Vec<u8>, body: &[u8]) {
    let len_bytes = (body.len() as u32).to_le_bytes();
    out.extend_from_slice(&masked_crc(&len_bytes, body).to_le_bytes());
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(body);
}

/// A record read back from a segment.
#[derive(Debug)]
pub enum Record {
    /// An entry.
    Entry(EntryRecord),
    /// A truncation of every decree `>= from`.
    Truncate {
        /// The first decree removed.
        from: u64,
    },
}

/// A decoded record and its framed length.
#[derive(Debug)]
pub struct Decoded {
    /// The record.
    pub record: Record,
    /// Total framed length of the record.
    pub framed_len: usize,
}

/// An entry record.
#[derive(Debug)]
pub struct EntryRecord {
    /// The entry.
    pub entry: Entry<TypeConfig>,
    /// The committed log id the writer knew when it appended the entry.
    pub committed: Option<LogId<u64>>,
    /// Wall-clock milliseconds when the record was appended.
    pub timestamp_ms: u64,
}

/// Why a record could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the frame announces: a torn tail.
    Truncated,
    /// The checksum or body structure is wrong.
    Bad(&'static str),
}

fn get_u64(b: &[u8], pos: &mut usize) -> Option<u64> {
    let v = u64::from_le_bytes(b.get(*pos..*pos + 8)?.try_into().ok()?);
    *pos += 8;
    Some(v)
}

fn get_log_id(b: &[u8], pos: &mut usize) -> Option<LogId<u64>> {
    let term = get_u64(b, pos)?;
    let node = get_u64(b, pos)?;
    let index = get_u64(b, pos)?;
    Some(LogId::new(CommittedLeaderId::new(term, node), index))
}

/// Decodes the record at the start of `buf`.
pub fn decode_record(buf: &[u8]) -> Result<Decoded, DecodeError> {
    if buf.len() < RECORD_HEADER_BYTES {
        return Err(DecodeError::Truncated);
    }
    let crc = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let len_bytes = &buf[4..8];
    let len = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if len > MAX_RECORD_BODY_BYTES {
        return Err(DecodeError::Bad("record length over the limit"));
    }
    let Some(body) = buf.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len) else {
        return Err(DecodeError::Truncated);
    };
    if masked_crc(len_bytes, body) != crc {
        return Err(DecodeError::Bad("checksum mismatch"));
    }
    let framed_len = RECORD_HEADER_BYTES + len;
    let record = match body.first() {
        Some(&RECORD_ENTRY) => Record::Entry(decode_entry(&body[1..])?),
        Some(&RECORD_TRUNCATE) => {
            let mut pos = 1;
            let from = get_u64(body, &mut pos).ok_or(DecodeError::Bad("short body"))?;
            if pos != body.len() {
                return Err(DecodeError::Bad("long truncation record"));
            }
            Record::Truncate { from }
        }
        _ => return Err(DecodeError::Bad("unknown record type")),
    };
    Ok(Decoded { record, framed_len })
}

/// True when a record that decodes follows damage at `pos` in `data`: right after the damaged
/// record (trusting its length field, which catches a flipped body byte), or at any later byte
/// offset (a damaged length field hides where the next record starts). A torn tail — the
/// unsynced end of the last segment, zero-filled or cut short — has nothing valid after it;
/// acknowledged records after damage mean the damage is corruption, never a torn tail.
///
/// Offsets are filtered by a plausible length and record type before the checksum is computed,
/// so a zero-filled or garbage tail costs one pass over its bytes; a CRC32C match at a wrong
/// offset has odds of 2^-32.
pub fn valid_record_after(data: &[u8], pos: usize) -> bool {
    let plausible = |p: usize| -> bool {
        let Some(h) = data.get(p..p + RECORD_HEADER_BYTES + 1) else {
            return false;
        };
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let kind = h[RECORD_HEADER_BYTES];
        len >= 1
            && len <= data.len() - p - RECORD_HEADER_BYTES
            && (kind == RECORD_ENTRY || kind == RECORD_TRUNCATE)
            && decode_record(&data[p..]).is_ok()
    };
    if let Some(h) = data.get(pos + 4..pos + 8) {
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if let Some(next) = (pos + RECORD_HEADER_BYTES).checked_add(len) {
            if next > pos && plausible(next) {
                return true;
            }
        }
    }
    (pos + 1..data.len()).any(plausible)
}

fn decode_entry(body: &[u8]) -> Result<EntryRecord, DecodeError> {
    let bad = DecodeError::Bad("malformed record body");
    let mut pos = 0;
    let log_id = get_log_id(body, &mut pos).ok_or(DecodeError::Bad("short body"))?;
    let timestamp_ms = get_u64(body, &mut pos).ok_or(DecodeError::Bad("short body"))?;
    let committed = match body.get(pos) {
        Some(0) => {
            pos += 1;
            None
        }
        Some(1) => {
            pos += 1;
            Some(get_log_id(body, &mut pos).ok_or(DecodeError::Bad("short body"))?)
        }
        _ => return Err(bad),
    };
    let kind = *body.get(pos).ok_or(DecodeError::Bad("short body"))?;
    let payload = &body[pos + 1..];
    let payload = match kind {
        0 if payload.is_empty() => EntryPayload::Blank,
        1 => EntryPayload::Normal(Mutation::decode(payload).ok_or(bad)?),
        2 => {
            let m: Membership<u64, openraft::BasicNode> =
                serde_json::from_slice(payload).map_err(|_| DecodeError::Bad("bad membership"))?;
            EntryPayload::Membership(m)
        }
        _ => return Err(DecodeError::Bad("unknown payload kind")),
    };
    Ok(EntryRecord {
        entry: Entry { log_id, payload },
        committed,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn id(term: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    #[test]
    fn records_round_trip_and_detect_damage() {
        let mut m = Mutation::new();
        m.put("k", "v");
        let members: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let entries = vec![
            Entry::<TypeConfig> {
                log_id: id(1, 0),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: id(1, 1),
                payload: EntryPayload::Normal(m),
            },
            Entry {
                log_id: id(2, 2),
                payload: EntryPayload::Membership(Membership::new(vec![members], None)),
            },
        ];
        let mut buf = Vec::new();
        for e in &entries {
            encode_record(&mut buf, e, Some(&id(1, 0)), 42);
        }
        encode_truncate(&mut buf, 7);
        let mut pos = 0;
        for e in &entries {
            let d = decode_record(&buf[pos..]).unwrap();
            let Record::Entry(r) = d.record else {
                panic!("not an entry")
            };
            assert_eq!(&r.entry, e);
            assert_eq!(r.committed, Some(id(1, 0)));
            assert_eq!(r.timestamp_ms, 42);
            pos += d.framed_len;
        }
        let d = decode_record(&buf[pos..]).unwrap();
        assert!(matches!(d.record, Record::Truncate { from: 7 }));
        pos += d.framed_len;
        assert_eq!(pos, buf.len());
        assert_eq!(
            decode_record(&buf[..5]).unwrap_err(),
            DecodeError::Truncated
        );
        let last = buf.len() - 1;
        buf[last] ^= 1;
        let r0 = decode_record(&buf).unwrap();
        let r1 = decode_record(&buf[r0.framed_len..]).unwrap();
        let r2 = decode_record(&buf[r0.framed_len + r1.framed_len..]).unwrap();
        let off = r0.framed_len + r1.framed_len + r2.framed_len;
        assert!(matches!(
            decode_record(&buf[off..]),
            Err(DecodeError::Bad(_))
        ));
    }

    #[test]
    fn segment_names() {
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("meta"), None);
    }
}
