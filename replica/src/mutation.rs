//! A mutation: one batch of client writes, the payload of one log entry (openraft's `D`).
//!
//! Client writes are batched into one `Mutation` per log entry because openraft appends and
//! fsyncs one entry per client request on the leader (mapping §12.3). A mutation applies to the
//! engine as one atomic `WriteBatch` tagged with its decree.
//!
//! Binary encoding (inside a plog record, little endian):
//! `count: u32`, then per op `kind: u8` (1 put, 2 delete, 3 delete-range), `a_len: u32`, `a`,
//! and for put/delete-range `b_len: u32`, `b` (value, or range end).

use crate::error::{Error, Result};
use crate::types::Ballot;
use serde::{Deserialize, Serialize};

/// Keys starting with this prefix are reserved for the replica's own metadata in the engine.
pub const RESERVED_KEY_PREFIX: &[u8] = b"\0silt/";

/// Largest key or value a mutation accepts.
pub const VALUE_SIZE_MAX_BYTES: usize = 64 << 20;

/// One client write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Delete `key`.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Delete every key in `[start, end)`.
    DeleteRange {
        /// First key deleted.
        start: Vec<u8>,
        /// First key kept.
        end: Vec<u8>,
    },
}

/// A batch of client writes replicated as one log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    /// The ballot the client believed current when it sent the writes; `None` = unchecked.
    pub ballot: Option<Ballot>,
    /// The writes, applied atomically in order.
    pub ops: Vec<WriteOp>,
}

/// The result of applying one log entry (openraft's `R`): one per entry, business errors inside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationResp {
    /// The decree the entry was applied at.
    pub decree: u64,
    /// How many client writes the entry carried.
    pub ops: usize,
}

impl Mutation {
    /// An empty mutation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(WriteOp::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(WriteOp::Delete { key: key.into() });
        self
    }

    /// Adds a range delete `[start, end)`.
    pub fn delete_range(
        &mut self,
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.ops.push(WriteOp::DeleteRange {
            start: start.into(),
            end: end.into(),
        });
        self
    }

    /// Bytes of keys and values, for throttling by size.
    pub fn size_bytes(&self) -> u64 {
        let mut total: u64 = 0;
        for op in &self.ops {
            let n = match op {
                WriteOp::Put { key, value } => key.len() + value.len(),
                WriteOp::Delete { key } => key.len(),
                WriteOp::DeleteRange { start, end } => start.len() + end.len(),
            };
            total = total.saturating_add(n as u64);
        }
        total
    }

    /// Refuses keys in the reserved prefix and oversized keys or values.
    pub fn validate(&self) -> Result<()> {
        for op in &self.ops {
            let (a, b) = match op {
                WriteOp::Put { key, value } => (key, Some(value)),
                WriteOp::Delete { key } => (key, None),
                WriteOp::DeleteRange { start, end } => (start, Some(end)),
            };
            if a.starts_with(RESERVED_KEY_PREFIX) {
                return Err(Error::InvalidArgument(format!(
                    "key {a:?} uses the reserved prefix \\0silt/"
                )));
            }
            if a.len() > VALUE_SIZE_MAX_BYTES || b.is_some_and(|b| b.len() > VALUE_SIZE_MAX_BYTES) {
                return Err(Error::InvalidArgument(format!(
                    "key or value larger than {VALUE_SIZE_MAX_BYTES} bytes"
                )));
            }
        }
        Ok(())
    }

    /// Appends the binary encoding to `out`.
    pub fn encode_to(&self, out: &mut Vec<u8>) {
        let ballot = self.ballot.map_or(0, |b| b.0.saturating_add(1));
        out.extend_from_slice(&ballot.to_le_bytes());
        out.extend_from_slice(&(self.ops.len() as u32).to_le_bytes());
        for op in &self.ops {
            let (kind, a, b) = match op {
                WriteOp::Put { key, value } => (1u8, key, Some(value)),
                WriteOp::Delete { key } => (2u8, key, None),
                WriteOp::DeleteRange { start, end } => (3u8, start, Some(end)),
            };
            out.push(kind);
            put_bytes(out, a);
            if let Some(b) = b {
                put_bytes(out, b);
            }
        }
    }

    /// Decodes what [`Mutation::encode_to`] wrote; `None` when the bytes are malformed.
    pub fn decode(mut buf: &[u8]) -> Option<Mutation> {
        let ballot = u64::from_le_bytes(take(&mut buf, 8)?.try_into().ok()?);
        let count = u32::from_le_bytes(take(&mut buf, 4)?.try_into().ok()?);
        let mut ops = Vec::with_capacity((count as usize).min(1024));
        for _ in 0..count {
            let kind = *take(&mut buf, 1)?.first()?;
            let a = get_bytes(&mut buf)?;
            let op = match kind {
                1 => WriteOp::Put {
                    key: a,
                    value: get_bytes(&mut buf)?,
                },
                2 => WriteOp::Delete { key: a },
                3 => WriteOp::DeleteRange {
                    start: a,
                    end: get_bytes(&mut buf)?,
                },
                _ => return None,
            };
            ops.push(op);
        }
        if !buf.is_empty() {
            return None;
        }
        let ballot = ballot.checked_sub(1).map(Ballot);
        Some(Mutation { ballot, ops })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

fn get_bytes(buf: &mut &[u8]) -> Option<Vec<u8>> {
    let len = u32::from_le_bytes(take(buf, 4)?.try_into().ok()?) as usize;
    take(buf, len).map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut m = Mutation::new();
        m.put("a", "1").delete("b").delete_range("c", "d");
        m.ballot = Some(Ballot(3));
        let mut buf = Vec::new();
        m.encode_to(&mut buf);
        assert_eq!(Mutation::decode(&buf), Some(m.clone()));
        assert_eq!(Mutation::decode(&buf[..buf.len() - 1]), None);
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(Mutation::decode(&longer), None);
        assert_eq!(m.size_bytes(), 5);
    }

    #[test]
    fn reserved_prefix_refused() {
        let mut m = Mutation::new();
        m.put(&b"\0silt/applied"[..], "x");
        assert!(m.validate().unwrap_err().to_string().contains("reserved"));
    }
}
