//! Atomic batches of writes, and their encoding (the same bytes go to the WAL).
//!
//! Encoding (`docs/format.md`, "Write batch"):
//! ```text
//! seqno: u64 LE | count: u32 LE | record*
//! record := kind u8 | key (varint len + bytes) | value-or-end (varint len + bytes; absent for Delete)
//!         | 0x03 tag varint          (a tag record; consumes no seqno and is not counted)
//! ```
//! Each counted record consumes one sequence number: `seqno`, `seqno + 1`, ...

use crate::coding::{put_len_prefixed, put_varint, Cursor};
use crate::error::{Error, Result};
use crate::key::{SeqNo, ValueKind, MAX_SEQNO};
use crate::sst::block::MAX_ENTRY_BYTES;

/// Bytes before the first record: seqno + count.
pub(crate) const HEADER_LEN: usize = 12;
const KIND_TAG: u8 = 3;
/// Capacity a new batch starts with: room for a typical single small write, so that the
/// common one-put batch allocates once.
const INITIAL_CAPACITY_BYTES: usize = 256;

/// A group of writes applied atomically: all or none survive a crash.
#[derive(Clone, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    /// Length of `rep` without a trailing tag record.
    body_len: usize,
    count: u32,
    tag: Option<u64>,
    /// Largest key + value (or range start + end) of one operation, for the entry size limit.
    max_entry_bytes: usize,
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch")
            .field("count", &self.count)
            .field("bytes", &self.rep.len())
            .field("tag", &self.tag)
            .finish()
    }
}

/// One decoded operation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp<'a> {
    /// Set `key` to `value`.
    Put(&'a [u8], &'a [u8]),
    /// Delete `key`.
    Delete(&'a [u8]),
    /// Delete every key in `[start, end)`.
    DeleteRange(&'a [u8], &'a [u8]),
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        let mut rep = Vec::with_capacity(INITIAL_CAPACITY_BYTES);
        rep.resize(HEADER_LEN, 0);
        WriteBatch {
            rep,
            body_len: HEADER_LEN,
            count: 0,
            tag: None,
            max_entry_bytes: 0,
        }
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(ValueKind::Put as u8, key.as_ref(), Some(value.as_ref()));
    }

    /// Adds a point delete.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.push(ValueKind::Delete as u8, key.as_ref(), None);
    }

    /// Adds a range delete of `[start, end)` (end exclusive). An empty range deletes nothing.
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) {
        self.push(
            ValueKind::RangeDelete as u8,
            start.as_ref(),
            Some(end.as_ref()),
        );
    }

    /// Attaches an opaque, monotonically increasing tag (e.g. a replication decree) to the batch.
    pub fn set_tag(&mut self, tag: u64) {
        self.tag = Some(self.tag.map_or(tag, |t| t.max(tag)));
    }

    /// The batch's tag.
    pub fn tag(&self) -> Option<u64> {
        self.tag
    }

    fn push(&mut self, kind: u8, key: &[u8], value: Option<&[u8]>) {
        self.rep.truncate(self.body_len);
        // One allocation per operation at most (two varints of at most 10 bytes each).
        self.rep
            .reserve(1 + 10 + key.len() + value.map_or(0, |v| 10 + v.len()));
        self.rep.push(kind);
        put_len_prefixed(&mut self.rep, key);
        if let Some(v) = value {
            put_len_prefixed(&mut self.rep, v);
        }
        self.body_len = self.rep.len();
        self.count += 1;
        let entry = key.len().saturating_add(value.map_or(0, <[u8]>::len));
        self.max_entry_bytes = self.max_entry_bytes.max(entry);
    }

    /// Refuses a batch with an operation whose key + value (or range start + end) exceeds
    /// [`MAX_ENTRY_BYTES`]: no SST block could hold it readably (see
    /// [`crate::sst::block::MAX_BLOCK_UNCOMPRESSED_BYTES`]), so it is refused before anything
    /// is written instead of failing the flush later.
    pub(crate) fn check_entry_sizes(&self) -> Result<()> {
        if self.max_entry_bytes > MAX_ENTRY_BYTES {
            return Err(Error::InvalidArgument(format!(
                "an entry of {} bytes (key + value) exceeds the limit of {MAX_ENTRY_BYTES} bytes",
                self.max_entry_bytes
            )));
        }
        Ok(())
    }

    /// Number of operations (each consumes one sequence number).
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Removes every operation and the tag.
    pub fn clear(&mut self) {
        self.rep.truncate(HEADER_LEN);
        self.body_len = HEADER_LEN;
        self.count = 0;
        self.tag = None;
        self.max_entry_bytes = 0;
    }

    /// Encoded size in bytes.
    pub fn approximate_size(&self) -> usize {
        self.rep.len() + 11
    }

    /// Appends another batch's operations to this one (used by group commit).
    pub(crate) fn append(&mut self, other: &WriteBatch) {
        self.rep.truncate(self.body_len);
        self.rep
            .extend_from_slice(&other.rep[HEADER_LEN..other.body_len]);
        self.body_len = self.rep.len();
        self.count += other.count;
        self.max_entry_bytes = self.max_entry_bytes.max(other.max_entry_bytes);
        if let Some(t) = other.tag {
            self.set_tag(t);
        }
    }

    /// Final encoding with the first sequence number filled in.
    pub(crate) fn encode(&mut self, seq: SeqNo) -> &[u8] {
        self.rep[..8].copy_from_slice(&seq.to_le_bytes());
        self.rep[8..12].copy_from_slice(&self.count.to_le_bytes());
        // A tag record is only ever appended here; drop a previous one so re-encoding is
        // idempotent.
        self.rep.truncate(self.body_len);
        if let Some(t) = self.tag {
            self.rep.push(KIND_TAG);
            put_varint(&mut self.rep, t);
        }
        &self.rep
    }

    /// Iterates over the operations.
    pub fn ops(&self) -> impl Iterator<Item = BatchOp<'_>> {
        let rep = &self.rep[..self.body_len];
        let mut c = Cursor::new(&rep[HEADER_LEN..]);
        let mut left = self.count;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            decode_op(&mut c).ok().flatten()
        })
    }
}

/// A batch decoded from WAL bytes.
#[derive(Debug)]
pub(crate) struct DecodedBatch<'a> {
    pub(crate) seq: SeqNo,
    pub(crate) count: u32,
    pub(crate) tag: Option<u64>,
    pub(crate) ops: Vec<BatchOp<'a>>,
}

fn decode_op<'a>(c: &mut Cursor<'a>) -> Result<Option<BatchOp<'a>>, String> {
    let Some(kind) = c.u8() else {
        return Ok(None);
    };
    let key = c.len_prefixed().ok_or("truncated key")?;
    match ValueKind::from_u8(kind) {
        Some(ValueKind::Put) => Ok(Some(BatchOp::Put(
            key,
            c.len_prefixed().ok_or("truncated value")?,
        ))),
        Some(ValueKind::Delete) => Ok(Some(BatchOp::Delete(key))),
        Some(ValueKind::RangeDelete) => Ok(Some(BatchOp::DeleteRange(
            key,
            c.len_prefixed().ok_or("truncated range end")?,
        ))),
        None => Err(format!("unknown record kind {kind}")),
    }
}

impl<'a> DecodedBatch<'a> {
    /// Decodes and validates a whole batch; any inconsistency is an error string.
    pub(crate) fn decode(data: &'a [u8]) -> Result<Self, String> {
        let mut c = Cursor::new(data);
        let seq = c.u64_le().ok_or("batch shorter than its header")?;
        let count = c.u32_le().ok_or("batch shorter than its header")?;
        // Each record takes at least 2 bytes: cap the allocation by the input.
        let mut ops = Vec::with_capacity((count as usize).min(data.len() / 2));
        let mut tag = None;
        while !c.is_empty() {
            let at = c.pos();
            let kind = data[at];
            if kind == KIND_TAG {
                let _ = c.u8();
                tag = Some(c.varint().ok_or("truncated tag")?);
                if !c.is_empty() {
                    return Err("bytes after the tag record".into());
                }
                break;
            }
            match decode_op(&mut c)? {
                Some(op) => ops.push(op),
                None => break,
            }
        }
        if ops.len() != count as usize {
            return Err(format!(
                "batch header says {count} records, found {}",
                ops.len()
            ));
        }
        // The last seqno the batch uses (the first when it holds only a tag) must fit the 56
        // bits of an internal key's trailer.
        let last = seq.checked_add(u64::from(count.saturating_sub(1)));
        if last.is_none_or(|l| l > MAX_SEQNO) {
            return Err(format!(
                "batch seqnos {seq} + {count} pass the 56-bit maximum {MAX_SEQNO}"
            ));
        }
        Ok(DecodedBatch {
            seq,
            count,
            tag,
            ops,
        })
    }
}

/// Fuzz entry point: decodes arbitrary bytes as a batch; never panics.
pub fn fuzz_decode(data: &[u8]) -> bool {
    DecodedBatch::decode(data).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut b = WriteBatch::new();
        b.put(b"k1", b"v1");
        b.delete(b"k2");
        b.delete_range(b"a", b"z");
        b.set_tag(7);
        let enc = b.encode(100).to_vec();
        let d = DecodedBatch::decode(&enc).unwrap();
        assert_eq!(d.seq, 100);
        assert_eq!(d.count, 3);
        assert_eq!(d.tag, Some(7));
        assert_eq!(
            d.ops,
            vec![
                BatchOp::Put(b"k1", b"v1"),
                BatchOp::Delete(b"k2"),
                BatchOp::DeleteRange(b"a", b"z")
            ]
        );
        // Re-encoding is idempotent.
        assert_eq!(b.encode(100), &enc[..]);
        assert_eq!(b.ops().count(), 3);
    }

    #[test]
    fn truncations_and_garbage_are_errors() {
        let mut b = WriteBatch::new();
        b.put(b"key", b"value");
        b.set_tag(1);
        let enc = b.encode(5).to_vec();
        let tag_record_len = 2; // 0x03 + varint(1)
        for cut in 0..enc.len() {
            let r = DecodedBatch::decode(&enc[..cut]);
            if cut == enc.len() - tag_record_len {
                // Exactly the batch without its tag record: valid, untagged.
                assert!(r.is_ok_and(|d| d.tag.is_none()), "cut {cut}");
            } else {
                assert!(r.is_err(), "cut {cut}");
            }
        }
        for i in 0..enc.len() {
            let mut e = enc.clone();
            e[i] ^= 0xff;
            let _ = DecodedBatch::decode(&e);
        }
    }
}
