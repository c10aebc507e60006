//! Internal keys: user key + sequence number + kind, and their order.
//!
//! Encoding (see `docs/format.md`, "Internal key"): `user_key ++ trailer`, where `trailer` is the
//! little-endian u64 `(seqno << 8) | kind`. Order: user key ascending (bytewise), then trailer
//! descending, so the newest version of a key comes first.

use std::cmp::Ordering;

/// A sequence number: every write gets the next one; snapshots read "as of" one.
pub type SeqNo = u64;

/// The largest sequence number that fits in a trailer (56 bits).
pub const MAX_SEQNO: SeqNo = (1 << 56) - 1;

/// Length of the trailer appended to every user key.
pub const TRAILER_LEN: usize = 8;

/// Kind byte of a seek key: sorts before every stored kind with the same seqno.
pub const KIND_SEEK: u8 = 0xff;

/// What an internal key records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// A point tombstone.
    Delete = 0,
    /// A value.
    Put = 1,
    /// A range tombstone `[key, value)`; only in write batches and range-deletion blocks.
    RangeDelete = 2,
}

impl ValueKind {
    /// Decodes a kind byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(ValueKind::Delete),
            1 => Some(ValueKind::Put),
            2 => Some(ValueKind::RangeDelete),
            _ => None,
        }
    }
}

/// Packs a sequence number and kind byte into a trailer.
#[inline]
pub fn pack_trailer(seq: SeqNo, kind: u8) -> u64 {
    debug_assert!(seq <= MAX_SEQNO);
    (seq << 8) | u64::from(kind)
}

/// Appends the internal key for (`user_key`, `seq`, `kind`) to `buf`.
#[inline]
pub fn append_internal_key(buf: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: u8) {
    buf.extend_from_slice(user_key);
    buf.extend_from_slice(&pack_trailer(seq, kind).to_le_bytes());
}

/// Builds an internal key.
pub fn internal_key(user_key: &[u8], seq: SeqNo, kind: ValueKind) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    append_internal_key(&mut v, user_key, seq, kind as u8);
    v
}

/// The key that positions an iterator at the newest version of `user_key` visible at `seq`.
pub fn seek_key(user_key: &[u8], seq: SeqNo) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    append_internal_key(&mut v, user_key, seq, KIND_SEEK);
    v
}

/// A file-boundary key that sorts before every real entry of `user_key` (used as the exclusive
/// end of range tombstones in file bounds).
pub fn range_end_sentinel(user_key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    append_internal_key(&mut v, user_key, MAX_SEQNO, ValueKind::RangeDelete as u8);
    v
}

/// The user-key part of an internal key. Internal keys shorter than a trailer (only possible
/// from corrupt input, which decoders reject first) yield an empty user key.
#[inline]
pub fn user_key(ikey: &[u8]) -> &[u8] {
    debug_assert!(ikey.len() >= TRAILER_LEN);
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

/// The trailer of an internal key (0 when too short).
#[inline]
pub fn trailer(ikey: &[u8]) -> u64 {
    match ikey.len().checked_sub(TRAILER_LEN) {
        Some(at) => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&ikey[at..]);
            u64::from_le_bytes(b)
        }
        None => 0,
    }
}

/// Sequence number of an internal key.
#[inline]
pub fn seqno(ikey: &[u8]) -> SeqNo {
    trailer(ikey) >> 8
}

/// Kind byte of an internal key.
#[inline]
pub fn kind_byte(ikey: &[u8]) -> u8 {
    trailer(ikey) as u8
}

/// Splits and validates an internal key read from disk.
pub fn parse(ikey: &[u8]) -> Option<(&[u8], SeqNo, ValueKind)> {
    if ikey.len() < TRAILER_LEN {
        return None;
    }
    let t = trailer(ikey);
    let kind = ValueKind::from_u8(t as u8)?;
    Some((user_key(ikey), t >> 8, kind))
}

/// Keys up to this long are compared inline, eight bytes at a time; longer ones with `memcmp`.
const MAX_INLINE_CMP_BYTES: usize = 32;

/// Bytewise order (`<[u8]>::cmp`), inlined for short keys: the memtable and block searches
/// compare 16-byte keys millions of times, and a libc `memcmp` call costs more than the
/// comparison itself at that size.
#[inline]
pub fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    if n > MAX_INLINE_CMP_BYTES {
        return a.cmp(b);
    }
    let (mut x, mut y) = (a, b);
    while x.len() >= 8 && y.len() >= 8 {
        let (xa, xr) = x.split_at(8);
        let (ya, yr) = y.split_at(8);
        let xv = u64::from_be_bytes(xa.try_into().unwrap_or([0; 8]));
        let yv = u64::from_be_bytes(ya.try_into().unwrap_or([0; 8]));
        if xv != yv {
            return xv.cmp(&yv);
        }
        x = xr;
        y = yr;
    }
    for (p, q) in x.iter().zip(y) {
        if p != q {
            return p.cmp(q);
        }
    }
    x.len().cmp(&y.len())
}

/// Total order over internal keys: user key ascending, then trailer descending.
#[inline]
pub fn cmp_internal(a: &[u8], b: &[u8]) -> Ordering {
    match cmp_bytes(user_key(a), user_key(b)) {
        Ordering::Equal => trailer(b).cmp(&trailer(a)),
        o => o,
    }
}

/// A range tombstone: deletes every key in `[start, end)` with a seqno below `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeTombstone {
    /// Inclusive start user key.
    pub start: Vec<u8>,
    /// Exclusive end user key.
    pub end: Vec<u8>,
    /// Sequence number of the deletion.
    pub seq: SeqNo,
}

impl RangeTombstone {
    /// True if this tombstone deletes `user_key` as of a write at `key_seq`, seen from `read_seq`.
    #[inline]
    pub fn covers(&self, user_key: &[u8], key_seq: SeqNo, read_seq: SeqNo) -> bool {
        self.seq <= read_seq
            && key_seq < self.seq
            && self.start.as_slice() <= user_key
            && user_key < self.end.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmp_bytes_is_bytewise_order() {
        // Every pair from a set with shared prefixes, every length around the 8-byte chunks
        // and the inline limit, and bytes that differ only in the high bit.
        let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
        for len in [1usize, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40] {
            for last in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut k = vec![b'k'; len];
                k[len - 1] = last;
                keys.push(k.clone());
                k[len / 2] = 0x80;
                keys.push(k);
            }
        }
        for a in &keys {
            for b in &keys {
                assert_eq!(cmp_bytes(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn order_is_user_asc_then_seq_desc() {
        let a1 = internal_key(b"a", 1, ValueKind::Put);
        let a2 = internal_key(b"a", 2, ValueKind::Put);
        let a0 = internal_key(b"a\0", 9, ValueKind::Put);
        assert_eq!(cmp_internal(&a2, &a1), Ordering::Less);
        assert_eq!(cmp_internal(&a1, &a0), Ordering::Less);
        let s = seek_key(b"a", 2);
        assert_eq!(cmp_internal(&s, &a2), Ordering::Less);
        assert_eq!(cmp_internal(&range_end_sentinel(b"a"), &s), Ordering::Less);
        assert_eq!(parse(&a2), Some((&b"a"[..], 2, ValueKind::Put)));
        assert_eq!(parse(b"short"), None);
    }
}
