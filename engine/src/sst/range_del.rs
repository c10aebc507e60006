//! The range-deletion block: the range tombstones of one SST file.
//!
//! ```text
//! range_del := count varint | tombstone * count
//! tombstone := start_len varint | start | end_len varint | end | seq varint
//! ```
//!
//! Tombstones are sorted by start ascending, then seq descending, then end ascending; each has
//! `start < end` and `seq <= MAX_SEQNO`. See `docs/format.md`, "Range-deletion block".

use crate::coding::{self, Cursor};
use crate::key::{RangeTombstone, MAX_SEQNO};
use std::cmp::Ordering;

/// Smallest encoding of one tombstone (three one-byte varints; an empty start is legal), used to
/// bound the count before allocating.
const TOMBSTONE_MIN_BYTES: usize = 3;

/// The order tombstones are stored in.
pub fn cmp_tombstones(a: &RangeTombstone, b: &RangeTombstone) -> Ordering {
    a.start
        .cmp(&b.start)
        .then(b.seq.cmp(&a.seq))
        .then(a.end.cmp(&b.end))
}

/// Encodes tombstones already sorted with [`cmp_tombstones`].
pub fn encode(tombstones: &[RangeTombstone]) -> Vec<u8> {
    let mut out = Vec::new();
    coding::put_varint(&mut out, tombstones.len() as u64);
    for t in tombstones {
        coding::put_len_prefixed(&mut out, &t.start);
        coding::put_len_prefixed(&mut out, &t.end);
        coding::put_varint(&mut out, t.seq);
    }
    out
}

/// Decodes and validates a range-deletion block; the error is the reason it is rejected.
pub fn decode(data: &[u8]) -> Result<Vec<RangeTombstone>, String> {
    let mut c = Cursor::new(data);
    let count = c.varint().ok_or("bad tombstone count")?;
    let fits = (c.remaining() / TOMBSTONE_MIN_BYTES) as u64;
    if count > fits {
        return Err(format!(
            "{count} tombstones cannot fit in {} bytes",
            data.len()
        ));
    }
    let mut out: Vec<RangeTombstone> = Vec::with_capacity(count as usize);
    for i in 0..count {
        let bad = || format!("tombstone {i} is malformed");
        let start = c.len_prefixed().ok_or_else(bad)?;
        let end = c.len_prefixed().ok_or_else(bad)?;
        let seq = c.varint().ok_or_else(bad)?;
        if start >= end {
            return Err(format!("tombstone {i} has start >= end"));
        }
        if seq > MAX_SEQNO {
            return Err(format!("tombstone {i} has seqno {seq} above the maximum"));
        }
        let t = RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            seq,
        };
        if let Some(prev) = out.last() {
            if cmp_tombstones(prev, &t) == Ordering::Greater {
                return Err(format!("tombstone {i} out of order"));
            }
        }
        out.push(t);
    }
    if !c.is_empty() {
        return Err(format!("{} trailing bytes after tombstones", c.remaining()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let mut ts = vec![
            RangeTombstone {
                start: b"m".to_vec(),
                end: b"p".to_vec(),
                seq: 4,
            },
            RangeTombstone {
                start: b"".to_vec(),
                end: b"b".to_vec(),
                seq: 9,
            },
            RangeTombstone {
                start: b"m".to_vec(),
                end: b"n".to_vec(),
                seq: 7,
            },
        ];
        ts.sort_by(cmp_tombstones);
        let enc = encode(&ts);
        assert_eq!(decode(&enc).unwrap(), ts);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_err());
        }
        for i in 0..enc.len() {
            let mut b = enc.clone();
            b[i] ^= 0x55;
            let _ = decode(&b);
        }
        // A huge count is refused before allocating.
        let mut b = Vec::new();
        coding::put_varint(&mut b, u64::MAX);
        assert!(decode(&b).is_err());
    }
}
