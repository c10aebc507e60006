//! Varint and fixed-width integer coding shared by every on-disk format.
//!
//! Decoders take a cursor over a byte slice and never read past its end: a short or malformed
//! input returns `None`, and callers turn that into `Error::Corruption` with the file and offset.

/// Appends `v` as a LEB128 varint (1..=10 bytes).
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a varint length followed by the bytes.
pub fn put_len_prefixed(buf: &mut Vec<u8>, data: &[u8]) {
    put_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// A bounds-checked reader over a byte slice.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Starts reading at the beginning of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    /// Bytes consumed so far.
    #[inline]
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// True when every byte has been consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Reads a LEB128 varint of at most 10 bytes.
    #[inline]
    pub fn varint(&mut self) -> Option<u64> {
        // Fast path: most lengths and shared-prefix counts fit in one byte.
        let b = *self.data.get(self.pos)?;
        if b < 0x80 {
            self.pos += 1;
            return Some(u64::from(b));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Option<u64> {
        let mut result: u64 = 0;
        for i in 0..10 {
            let b = *self.data.get(self.pos)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return None; // would overflow 64 bits
            }
            result |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(result);
            }
        }
        None
    }

    /// Reads a varint that must fit in `usize` and in what is left of the input (a length).
    #[inline]
    pub fn len(&mut self) -> Option<usize> {
        let v = self.varint()?;
        let v = usize::try_from(v).ok()?;
        if v <= self.remaining() {
            Some(v)
        } else {
            None
        }
    }

    /// Reads exactly `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// Reads a varint length and then that many bytes.
    #[inline]
    pub fn len_prefixed(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.bytes(n)
    }

    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.data.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// Reads a little-endian u32.
    pub fn u32_le(&mut self) -> Option<u32> {
        let b = self.bytes(4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    /// Reads a little-endian u64.
    pub fn u64_le(&mut self) -> Option<u64> {
        let b = self.bytes(8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

/// Reads a little-endian u32 at `pos` in `data`, if in bounds.
pub fn u32_at(data: &[u8], pos: usize) -> Option<u32> {
    let b = data.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// Reads a little-endian u64 at `pos` in `data`, if in bounds.
pub fn u64_at(data: &[u8], pos: usize) -> Option<u64> {
    let b = data.get(pos..pos.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// CRC32C of the concatenation of `parts`, masked like LevelDB so that a CRC stored inside
/// checksummed data does not checksum to a fixed pattern.
pub fn crc32c_masked(parts: &[&[u8]]) -> u32 {
    let mut crc = 0u32;
    for p in parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_bounds() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut c = Cursor::new(&b);
            assert_eq!(c.varint(), Some(v));
            assert!(c.is_empty());
            // Every strict prefix is rejected.
            for cut in 0..b.len() {
                assert_eq!(Cursor::new(&b[..cut]).varint(), None);
            }
        }
        // 11 continuation bytes never decode.
        assert_eq!(Cursor::new(&[0xff; 11]).varint(), None);
    }

    #[test]
    fn len_is_capped_by_input() {
        let mut b = Vec::new();
        put_varint(&mut b, 1 << 40);
        assert_eq!(Cursor::new(&b).len(), None);
        let mut b = Vec::new();
        put_len_prefixed(&mut b, b"abc");
        assert_eq!(Cursor::new(&b).len_prefixed(), Some(&b"abc"[..]));
    }
}
