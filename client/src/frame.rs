//! Frames: the unit of the TCP protocol (see `docs/format.md`, "Wire frames").
//!
//! ```text
//! 0         4          8         9        10            18
//! | len u32 | crc32c u32 | version u8 | kind u8 | request_id u64 | payload ... |
//! ```
//! Little endian. `len` counts the bytes after the crc field (version through payload) and is at
//! most [`MAX_FRAME_SIZE_BYTES`]; `crc32c` (masked like the engine's WAL) covers those same bytes.
//! The payload is a bincode value whose type depends on `kind`. A reader checks the length
//! before reading the body and grows its buffer only as bytes arrive, so a peer lying about the
//! length cannot make it allocate [`MAX_FRAME_SIZE_BYTES`] up front.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame body (version .. end of payload). Larger messages are refused by the sender:
/// an AppendEntries that does not fit is reported to openraft as `PayloadTooLarge` so it
/// retries with fewer entries.
pub const MAX_FRAME_SIZE_BYTES: usize = 32 << 20;
/// The protocol version written in every frame.
pub const FRAME_VERSION: u8 = 1;
/// Bytes of the fixed header: len, crc, version, kind, request id.
pub const FRAME_HEADER_BYTES: usize = 18;
const BODY_FIXED_BYTES: usize = 10;
const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// What a frame's payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A Raft RPC (the replica layer's `transport::message::RaftEnvelope`).
    RaftRequest = 1,
    /// The answer to a Raft RPC (the replica layer's `transport::message::RaftResponse`).
    RaftResponse = 2,
    /// A client or operator request (defined by the server crate).
    ClientRequest = 3,
    /// The answer to a client request.
    ClientResponse = 4,
    /// The first frame of a connection: the client's credentials ([`crate::auth::Hello`]).
    Hello = 5,
    /// The answer to a hello ([`crate::auth::HelloReply`]).
    HelloReply = 6,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        match b {
            1 => Some(FrameKind::RaftRequest),
            2 => Some(FrameKind::RaftResponse),
            3 => Some(FrameKind::ClientRequest),
            4 => Some(FrameKind::ClientResponse),
            5 => Some(FrameKind::Hello),
            6 => Some(FrameKind::HelloReply),
            _ => None,
        }
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: FrameKind,
    /// Chosen by the requester, echoed by the responder.
    pub request_id: u64,
    /// The bincode payload.
    pub payload: Vec<u8>,
}

/// Why a frame could not be read or built.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed or closed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The frame is malformed (length, checksum, version or kind).
    #[error("bad frame: {0}")]
    Malformed(String),
    /// The message does not fit in one frame.
    #[error("message of {size_bytes} bytes exceeds the frame limit of {MAX_FRAME_SIZE_BYTES}")]
    TooLarge {
        /// The encoded size.
        size_bytes: usize,
    },
    /// The payload did not decode as the expected type.
    #[error("bad payload: {0}")]
    Payload(String),
}

fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

fn bincode_options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new().with_limit(MAX_FRAME_SIZE_BYTES as u64)
}

/// Encodes a value as a payload (bincode, bounded by [`MAX_FRAME_SIZE_BYTES`]).
pub fn encode_payload<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    use bincode::Options;
    bincode_options().serialize(value).map_err(|e| match *e {
        bincode::ErrorKind::SizeLimit => FrameError::TooLarge {
            size_bytes: MAX_FRAME_SIZE_BYTES.saturating_add(1),
        },
        other => FrameError::Payload(other.to_string()),
    })
}

/// Decodes a payload; never panics on arbitrary bytes.
pub fn decode_payload<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    use bincode::Options;
    bincode_options()
        .deserialize(bytes)
        .map_err(|e| FrameError::Payload(e.to_string()))
}

/// Encodes a whole frame (header and payload).
pub fn encode_frame(frame: &Frame) -> Result<Vec<u8>, FrameError> {
    let body_len = frame
        .payload
        .len()
        .checked_add(BODY_FIXED_BYTES)
        .filter(|n| *n <= MAX_FRAME_SIZE_BYTES)
        .ok_or(FrameError::TooLarge {
            size_bytes: frame.payload.len(),
        })?;
    let mut out = Vec::with_capacity(body_len + 8);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(FRAME_VERSION);
    out.push(frame.kind as u8);
    out.extend_from_slice(&frame.request_id.to_le_bytes());
    out.extend_from_slice(&frame.payload);
    let crc = mask(crc32c::crc32c(&out[8..]));
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len(), body_len + 8);
    Ok(out)
}

/// Checks a frame header, returning `(body_len, crc)`.
fn parse_header(header: &[u8; 8]) -> Result<(usize, u32), FrameError> {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len < BODY_FIXED_BYTES {
        return Err(FrameError::Malformed(format!("body of {len} bytes")));
    }
    if len > MAX_FRAME_SIZE_BYTES {
        return Err(FrameError::Malformed(format!(
            "body of {len} bytes exceeds {MAX_FRAME_SIZE_BYTES}"
        )));
    }
    Ok((len, crc))
}

/// Checks a frame body (after the 8-byte length + crc) against its crc.
fn parse_body(body: Vec<u8>, crc: u32) -> Result<Frame, FrameError> {
    if mask(crc32c::crc32c(&body)) != crc {
        return Err(FrameError::Malformed("checksum mismatch".into()));
    }
    let (Some(&version), Some(&kind), Some(id)) = (body.first(), body.get(1), body.get(2..10))
    else {
        return Err(FrameError::Malformed("short body".into()));
    };
    if version != FRAME_VERSION {
        return Err(FrameError::Malformed(format!("version {version}")));
    }
    let kind = FrameKind::from_u8(kind)
        .ok_or_else(|| FrameError::Malformed(format!("unknown kind {kind}")))?;
    let mut id_bytes = [0u8; 8];
    id_bytes.copy_from_slice(id);
    let mut payload = body;
    payload.drain(..BODY_FIXED_BYTES);
    Ok(Frame {
        kind,
        request_id: u64::from_le_bytes(id_bytes),
        payload,
    })
}

/// Decodes one frame from the start of `buf`: `Ok(Some((frame, bytes used)))`, `Ok(None)` when
/// more bytes are needed, `Err` when malformed. The fuzz entry point; never panics.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    let Some(header) = buf.get(..8) else {
        return Ok(None);
    };
    let mut h = [0u8; 8];
    h.copy_from_slice(header);
    let (len, crc) = parse_header(&h)?;
    let end = 8usize
        .checked_add(len)
        .ok_or_else(|| FrameError::Malformed("length overflow".into()))?;
    let Some(body) = buf.get(8..end) else {
        return Ok(None);
    };
    Ok(Some((parse_body(body.to_vec(), crc)?, end)))
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a header.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut header = [0u8; 8];
    match r.read_exact(&mut header[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut header[1..]).await?;
    let (len, crc) = parse_header(&header)?;
    // Grows with the bytes that actually arrive (see the module doc).
    let mut body = Vec::with_capacity(len.min(64 << 10));
    let read = r.take(len as u64).read_to_end(&mut body).await?;
    if read != len {
        return Err(FrameError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame body: {read} of {len} bytes"),
        )));
    }
    parse_body(body, crc).map(Some)
}

/// Writes one frame and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
) -> Result<(), FrameError> {
    let bytes = encode_frame(frame)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: usize) -> Frame {
        Frame {
            kind: FrameKind::ClientRequest,
            request_id: 42,
            payload: (0..n).map(|i| i as u8).collect(),
        }
    }

    #[test]
    fn round_trip_and_partial_input() {
        let f = frame(100);
        let bytes = encode_frame(&f).unwrap();
        assert_eq!(bytes.len(), FRAME_HEADER_BYTES + 100);
        for cut in 0..bytes.len() {
            assert!(decode_frame(&bytes[..cut]).unwrap().is_none(), "cut {cut}");
        }
        let (got, used) = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!((got, used), (f, bytes.len()));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = encode_frame(&frame(20)).unwrap();
        for i in 4..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(decode_frame(&b).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn oversized_lengths_are_refused_before_reading() {
        let mut h = vec![0u8; 8];
        h[..4].copy_from_slice(&((MAX_FRAME_SIZE_BYTES + 1) as u32).to_le_bytes());
        assert!(matches!(decode_frame(&h), Err(FrameError::Malformed(_))));
        h[..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(decode_frame(&h), Err(FrameError::Malformed(_))));
        let big = Frame {
            kind: FrameKind::RaftRequest,
            request_id: 0,
            payload: vec![0; MAX_FRAME_SIZE_BYTES],
        };
        assert!(matches!(
            encode_frame(&big),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn async_read_write() {
        let (mut a, mut b) = tokio::io::duplex(1 << 10);
        let f = frame(5000);
        let f2 = f.clone();
        let w = tokio::spawn(async move { write_frame(&mut a, &f2).await });
        assert_eq!(read_frame(&mut b).await.unwrap(), Some(f));
        w.await.unwrap().unwrap();
        assert_eq!(read_frame(&mut b).await.unwrap(), None);
    }
}
