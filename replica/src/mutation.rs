//! A mutation: one batch of client writes, the payload of one log entry (openraft's `D`).
//!
//! Client writes are batched into one `Mutation` per log entry because openraft appends and
//! fsyncs one entry per client request on the leader (mapping §12.3). A mutation applies to the
//! engine as one atomic `WriteBatch` tagged with its decree.
//!
//! A mutation may instead carry one [`ControlOp`]: a write the replica performs itself on every
//! replica when the entry applies (today: bulk-load ingestion, [`IngestCommand`]). Control
//! mutations carry no client writes and bypass user write throttling
//! (`Replica::write_control`).
//!
//! Binary encoding (inside a plog record, little endian; `docs/format.md`, "Mutation payload"):
//! `ballot + 1: u64` (0 = none), `count: u32`, then per op `kind: u8` (1 put, 2 delete,
//! 3 delete-range), `a_len: u32`, `a`, and for put/delete-range `b_len: u32`, `b` (value, or
//! range end). Then, only when a control op is present, a trailer: `control kind: u8`
//! (1 = ingest), and for ingest `load_id: u64`, `dir_len: u32`, `dir` (UTF-8), `files: u32`,
//! per file `name_len: u32`, `name` (UTF-8), `size: u64`, `crc32c: u32`. A mutation without the
//! trailer is exactly the format-1 encoding, so older plogs decode unchanged. Decoding checks
//! structure only (lengths, UTF-8, known kinds) and never panics; [`Mutation::validate`] checks
//! meaning (reserved keys, sizes, file names).

use crate::bulk_load::metadata::{validate_file_name, MAX_FILES};
use crate::error::{Error, Result};
use crate::types::Ballot;
use serde::{Deserialize, Serialize};
pub use siltdb_client::{IngestCommand, IngestFile, WriteOp};

/// Keys starting with this prefix are reserved for the replica's own metadata in the engine.
pub const RESERVED_KEY_PREFIX: &[u8] = b"\0silt/";

/// Largest key or value a mutation accepts.
pub const MAX_VALUE_SIZE_BYTES: usize = 64 << 20;

/// Largest encoded mutation ([`Mutation::encoded_len`]) the replica API accepts. One log entry
/// must fit a replication frame ([`crate::transport::MAX_FRAME_SIZE_BYTES`], 32 MiB, which
/// also carries the entry's log id and the request envelope) and a plog record
/// ([`crate::plog::format::MAX_RECORD_BODY_BYTES`], 256 MiB, the replay limit); a larger
/// mutation could be acknowledged by the leader's log yet never replicate or replay.
pub const MAX_MUTATION_BYTES: usize = 16 << 20;

const _: () = assert!(MAX_MUTATION_BYTES <= crate::transport::MAX_FRAME_SIZE_BYTES / 2);
const _: () = assert!(MAX_MUTATION_BYTES < crate::plog::format::MAX_RECORD_BODY_BYTES / 2);

/// Longest source directory an [`IngestCommand`] may name, in bytes.
pub const MAX_INGEST_DIR_BYTES: usize = 4096;

/// Control-op kind byte of [`ControlOp::Ingest`] in the encoding.
const CONTROL_KIND_INGEST: u8 = 1;
/// Control-op kind byte of [`ControlOp::Atomic`] in the encoding.
const CONTROL_KIND_ATOMIC: u8 = 2;

/// A write the replica performs itself when the entry applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlOp {
    /// Ingest a bulk load's SST files.
    Ingest(IngestCommand),
    /// A user read-modify-write on one hash key (Pegasus check-and-mutate, incr), decided
    /// when the entry applies ([`crate::pegasus::atomic`]). Proposed by `Replica::write_atomic`
    /// (gated and throttled like any user write).
    Atomic(Box<crate::pegasus::AtomicOp>),
}

/// A batch of client writes replicated as one log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    /// The ballot the client believed current when it sent the writes; `None` = unchecked.
    pub ballot: Option<Ballot>,
    /// The writes, applied atomically in order.
    pub ops: Vec<WriteOp>,
    /// A control write instead of client writes (then `ops` is empty).
    #[serde(default)]
    pub control: Option<ControlOp>,
}

/// The result of applying one log entry (openraft's `R`): one per entry, business errors inside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationResp {
    /// The decree the entry was applied at.
    pub decree: u64,
    /// How many client writes the entry carried.
    pub ops: usize,
    /// The outcome of a [`ControlOp::Atomic`] entry.
    #[serde(default)]
    pub atomic: Option<crate::pegasus::AtomicResult>,
    /// Why a [`ControlOp::Ingest`] entry was applied as a recorded failure (nothing ingested;
    /// see [`crate::bulk_load::apply`]).
    #[serde(default)]
    pub ingest_failure: Option<String>,
}

impl Mutation {
    /// An empty mutation.
    pub fn new() -> Self {
        Self::default()
    }

    /// A control mutation carrying `op` under `ballot`.
    pub fn control(ballot: Option<Ballot>, op: ControlOp) -> Self {
        Mutation {
            ballot,
            ops: Vec::new(),
            control: Some(op),
        }
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
        if let Some(ControlOp::Atomic(op)) = &self.control {
            total = total.saturating_add(op.size_bytes());
        }
        total
    }

    /// Bytes of [`Mutation::encode_to`]'s output, computed without encoding (saturating).
    pub fn encoded_len(&self) -> usize {
        let bytes = |b: &[u8]| 4usize.saturating_add(b.len());
        let mut n: usize = 8 + 4;
        for op in &self.ops {
            let op_len = match op {
                WriteOp::Put { key, value } => bytes(key).saturating_add(bytes(value)),
                WriteOp::Delete { key } => bytes(key),
                WriteOp::DeleteRange { start, end } => bytes(start).saturating_add(bytes(end)),
            };
            n = n.saturating_add(1).saturating_add(op_len);
        }
        if let Some(ControlOp::Ingest(cmd)) = &self.control {
            n = n
                .saturating_add(1 + 8 + 4)
                .saturating_add(bytes(cmd.source_dir.as_bytes()));
            for f in &cmd.files {
                n = n
                    .saturating_add(bytes(f.name.as_bytes()))
                    .saturating_add(8 + 4);
            }
        }
        if let Some(ControlOp::Atomic(op)) = &self.control {
            // Exact: an atomic op is one small record, so encoding it here costs little.
            let mut buf = Vec::new();
            op.encode_to(&mut buf);
            n = n.saturating_add(1).saturating_add(buf.len());
        }
        n
    }

    /// Refuses keys in the reserved prefix, oversized keys or values, a mutation whose encoding
    /// exceeds [`MAX_MUTATION_BYTES`], and control ops that mix with client writes or name
    /// unsafe files.
    pub fn validate(&self) -> Result<()> {
        // The encoding stores `ballot + 1` (0 = none): u64::MAX has no encoding. No real ballot
        // gets there (terms grow by one per election).
        if self.ballot == Some(Ballot(u64::MAX)) {
            return Err(Error::InvalidArgument("ballot u64::MAX is reserved".into()));
        }
        if let Some(ControlOp::Ingest(cmd)) = &self.control {
            if !self.ops.is_empty() {
                return Err(Error::InvalidArgument(
                    "a control mutation carries no client writes".into(),
                ));
            }
            validate_ingest(cmd)?;
        }
        if let Some(ControlOp::Atomic(op)) = &self.control {
            if !self.ops.is_empty() {
                return Err(Error::InvalidArgument(
                    "a control mutation carries no client writes".into(),
                ));
            }
            op.validate(MAX_VALUE_SIZE_BYTES)
                .map_err(Error::InvalidArgument)?;
        }
        let len = self.encoded_len();
        if len > MAX_MUTATION_BYTES {
            return Err(Error::InvalidArgument(format!(
                "mutation of {len} bytes (encoded) exceeds the limit of {MAX_MUTATION_BYTES} \
                 bytes: split it into smaller writes"
            )));
        }
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
            if a.len() > MAX_VALUE_SIZE_BYTES || b.is_some_and(|b| b.len() > MAX_VALUE_SIZE_BYTES) {
                return Err(Error::InvalidArgument(format!(
                    "key or value larger than {MAX_VALUE_SIZE_BYTES} bytes"
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
        if let Some(ControlOp::Ingest(cmd)) = &self.control {
            out.push(CONTROL_KIND_INGEST);
            out.extend_from_slice(&cmd.load_id.to_le_bytes());
            put_bytes(out, cmd.source_dir.as_bytes());
            out.extend_from_slice(&(cmd.files.len() as u32).to_le_bytes());
            for f in &cmd.files {
                put_bytes(out, f.name.as_bytes());
                out.extend_from_slice(&f.size.to_le_bytes());
                out.extend_from_slice(&f.crc32c.to_le_bytes());
            }
        }
        if let Some(ControlOp::Atomic(op)) = &self.control {
            out.push(CONTROL_KIND_ATOMIC);
            op.encode_to(out);
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
        let control = if buf.is_empty() {
            None
        } else {
            Some(decode_control(&mut buf)?)
        };
        if !buf.is_empty() {
            return None;
        }
        let ballot = ballot.checked_sub(1).map(Ballot);
        Some(Mutation {
            ballot,
            ops,
            control,
        })
    }
}

fn decode_control(buf: &mut &[u8]) -> Option<ControlOp> {
    let kind = *take(buf, 1)?.first()?;
    if kind == CONTROL_KIND_ATOMIC {
        return crate::pegasus::AtomicOp::decode(buf).map(|op| ControlOp::Atomic(Box::new(op)));
    }
    if kind != CONTROL_KIND_INGEST {
        return None;
    }
    let load_id = get_u64(buf)?;
    let source_dir = String::from_utf8(get_bytes(buf)?).ok()?;
    let count = u32::from_le_bytes(take(buf, 4)?.try_into().ok()?);
    let mut files = Vec::with_capacity((count as usize).min(1024));
    for _ in 0..count {
        let name = String::from_utf8(get_bytes(buf)?).ok()?;
        let size = get_u64(buf)?;
        let crc32c = u32::from_le_bytes(take(buf, 4)?.try_into().ok()?);
        files.push(IngestFile { name, size, crc32c });
    }
    Some(ControlOp::Ingest(IngestCommand {
        load_id,
        source_dir,
        files,
    }))
}

/// The meaning checks of an ingest command: a bounded absolute source directory, 1 to
/// [`MAX_FILES`] files, each a safe plain name, no name twice.
fn validate_ingest(cmd: &IngestCommand) -> Result<()> {
    let bad = |why: String| Err(Error::InvalidArgument(format!("ingest command: {why}")));
    if cmd.source_dir.is_empty() || cmd.source_dir.len() > MAX_INGEST_DIR_BYTES {
        return bad(format!(
            "source directory must be 1 to {MAX_INGEST_DIR_BYTES} bytes"
        ));
    }
    if !std::path::Path::new(&cmd.source_dir).is_absolute() || cmd.source_dir.contains('\0') {
        return bad(format!(
            "source directory {:?} is not absolute",
            cmd.source_dir
        ));
    }
    if cmd.files.is_empty() || cmd.files.len() > MAX_FILES {
        return bad(format!("must list 1 to {MAX_FILES} files"));
    }
    let mut names = std::collections::HashSet::new();
    for f in &cmd.files {
        validate_file_name(&f.name).or_else(bad)?;
        if !names.insert(f.name.as_str()) {
            return bad(format!("file {} listed twice", f.name));
        }
    }
    Ok(())
}

pub(crate) fn get_u64(buf: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(buf, 8)?.try_into().ok()?))
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

pub(crate) fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Some(head)
}

pub(crate) fn get_bytes(buf: &mut &[u8]) -> Option<Vec<u8>> {
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
        // Every valid ballot round-trips; the one without an encoding is refused up front.
        for b in [0, 1, u64::MAX - 1] {
            m.ballot = Some(Ballot(b));
            let mut buf = Vec::new();
            m.encode_to(&mut buf);
            assert_eq!(Mutation::decode(&buf).unwrap().ballot, Some(Ballot(b)));
        }
        m.ballot = Some(Ballot(u64::MAX));
        assert!(m.validate().is_err());
    }

    #[test]
    fn total_size_is_capped_below_the_frame_and_replay_limits() {
        let mut m = Mutation::new();
        m.put("a", "1").delete("b").delete_range("c", "d");
        let mut buf = Vec::new();
        m.encode_to(&mut buf);
        assert_eq!(m.encoded_len(), buf.len());

        // Many values each under the per-value limit, together over the total cap.
        let mut big = Mutation::new();
        for i in 0..5u8 {
            big.put(vec![i], vec![0u8; 4 << 20]);
        }
        let e = big.validate().unwrap_err().to_string();
        assert!(e.contains("exceeds the limit"), "{e}");
        assert!(e.contains(&MAX_MUTATION_BYTES.to_string()), "{e}");

        // Exactly at the cap is accepted.
        let mut at = Mutation::new();
        at.put(
            "k",
            vec![0u8; MAX_MUTATION_BYTES - at.encoded_len() - 1 - 4 - 1 - 4],
        );
        assert_eq!(at.encoded_len(), MAX_MUTATION_BYTES);
        at.validate().unwrap();
        at.put("", "");
        assert!(at.validate().is_err());
    }

    fn ingest(names: &[&str]) -> Mutation {
        let files = names
            .iter()
            .map(|n| IngestFile {
                name: (*n).into(),
                size: 10,
                crc32c: 7,
            })
            .collect();
        Mutation::control(
            Some(Ballot(2)),
            ControlOp::Ingest(IngestCommand {
                load_id: 99,
                source_dir: "/data/p0/bulk_load".into(),
                files,
            }),
        )
    }

    #[test]
    fn control_ingest_round_trips_and_is_validated() {
        let m = ingest(&["000001.sst", "000002.sst"]);
        m.validate().unwrap();
        let mut buf = Vec::new();
        m.encode_to(&mut buf);
        assert_eq!(Mutation::decode(&buf), Some(m.clone()));
        for cut in 0..buf.len() {
            // Every strict prefix is either a shorter valid encoding or refused; none panics.
            if let Some(d) = Mutation::decode(&buf[..cut]) {
                assert_ne!(d, m);
            }
        }
        let mut unknown = buf.clone();
        unknown[12] = 9;
        assert_eq!(Mutation::decode(&unknown), None);
        assert_eq!(m.size_bytes(), 0);
        for bad in [&["../x.sst"][..], &["a/b.sst"], &["x.sst", "x.sst"], &[]] {
            let e = ingest(bad).validate().unwrap_err().to_string();
            assert!(e.contains("ingest command"), "{bad:?}: {e}");
        }
        let mut mixed = ingest(&["000001.sst"]);
        mixed.put("k", "v");
        assert!(mixed.validate().is_err());
        let mut relative = ingest(&["000001.sst"]);
        if let Some(ControlOp::Ingest(c)) = relative.control.as_mut() {
            c.source_dir = "relative/dir".into();
        }
        assert!(relative.validate().is_err());
    }

    #[test]
    fn reserved_prefix_refused() {
        let mut m = Mutation::new();
        m.put(&b"\0silt/applied"[..], "x");
        assert!(m.validate().unwrap_err().to_string().contains("reserved"));
    }
}
