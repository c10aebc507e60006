//! Reads records back from a log file's bytes, telling a torn tail from real corruption.

use super::{BLOCK_SIZE, FIRST, FULL, HEADER_SIZE, LAST, MIDDLE};
use crate::coding::{crc32c_masked, u32_at};

/// The outcome of reading a whole log.
#[derive(Debug, Default)]
pub struct LogRead {
    /// Complete records in order, with the file offset where each starts.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Damage at the end of the log (no valid fragment after it): offset and reason. This is the
    /// unsynced tail a crash may leave; recovery drops it.
    pub torn_tail: Option<(u64, String)>,
    /// Damage followed by valid fragments: offset and reason of the first such damage.
    pub corruption: Option<(u64, String)>,
}

struct Fragment<'a> {
    kind: u8,
    data: &'a [u8],
}

/// Parses the fragment at `pos` (within `data`), if its header and checksum are valid.
fn fragment_at(data: &[u8], pos: usize) -> Result<Option<(Fragment<'_>, usize)>, String> {
    let block_left = BLOCK_SIZE - pos % BLOCK_SIZE;
    if block_left < HEADER_SIZE {
        return Ok(None); // trailer padding
    }
    if data.len() - pos < HEADER_SIZE {
        return Err("truncated fragment header".into());
    }
    let crc = u32_at(data, pos).ok_or("truncated header")?;
    let len = u16::from_le_bytes([data[pos + 4], data[pos + 5]]) as usize;
    let kind = data[pos + 6];
    if kind == 0 && len == 0 && crc == 0 {
        return Ok(None); // zero padding / preallocated space
    }
    if HEADER_SIZE + len > block_left {
        return Err(format!("fragment length {len} crosses the block boundary"));
    }
    let start = pos + HEADER_SIZE;
    let Some(payload) = data.get(start..start + len) else {
        return Err("truncated fragment payload".into());
    };
    if crc32c_masked(&[&[kind], payload]) != crc {
        return Err("fragment checksum mismatch".into());
    }
    if !(FULL..=LAST).contains(&kind) {
        return Err(format!("unknown fragment type {kind}"));
    }
    Ok(Some((
        Fragment {
            kind,
            data: payload,
        },
        start + len,
    )))
}

/// True if a valid fragment follows the damaged one at `pos`: right after it (trusting its
/// length field, which catches a flipped payload byte), at any later offset in the same block
/// (a flipped length field hides where the next fragment starts), or at any later block start.
fn valid_fragment_after(data: &[u8], pos: usize) -> bool {
    let block_left = BLOCK_SIZE - pos % BLOCK_SIZE;
    if let Some(h) = data.get(pos + 4..pos + 6) {
        let len = u16::from_le_bytes([h[0], h[1]]) as usize;
        let next = pos + HEADER_SIZE + len;
        if HEADER_SIZE + len <= block_left && next < data.len() {
            if let Ok(Some(_)) = fragment_at(data, next) {
                return true;
            }
        }
    }
    // Scan the rest of this block byte by byte. A CRC32C match at a wrong offset has odds of
    // 2^-32, and the type byte filters most offsets before any checksum is computed.
    let block_end = (pos + block_left).min(data.len());
    for p in pos + 1..block_end.saturating_sub(HEADER_SIZE - 1) {
        if (FULL..=LAST).contains(&data[p + 6]) {
            if let Ok(Some(_)) = fragment_at(data, p) {
                return true;
            }
        }
    }
    let mut b = pos + block_left;
    while b < data.len() {
        if let Ok(Some(_)) = fragment_at(data, b) {
            return true;
        }
        b += BLOCK_SIZE;
    }
    false
}

/// Reads every record of a log held in `data`.
pub fn read_log(data: &[u8]) -> LogRead {
    let mut out = LogRead::default();
    let mut pos = 0usize;
    let mut pending: Option<(u64, Vec<u8>)> = None;
    while pos < data.len() {
        match fragment_at(data, pos) {
            Ok(None) => {
                let next = pos + (BLOCK_SIZE - pos % BLOCK_SIZE);
                if next <= pos {
                    break;
                }
                pos = next;
            }
            Ok(Some((frag, next))) => {
                let here = pos as u64;
                pos = next;
                let bad = match frag.kind {
                    FULL => {
                        let torn = pending.take().is_some();
                        out.records.push((here, frag.data.to_vec()));
                        torn.then_some("record started but never finished")
                    }
                    FIRST => {
                        let torn = pending.replace((here, frag.data.to_vec())).is_some();
                        torn.then_some("record started but never finished")
                    }
                    MIDDLE | LAST => match pending.as_mut() {
                        Some((_, buf)) => {
                            buf.extend_from_slice(frag.data);
                            if frag.kind == LAST {
                                out.records.extend(pending.take());
                            }
                            None
                        }
                        None => Some("continuation fragment without a first fragment"),
                    },
                    _ => Some("unknown fragment type"),
                };
                if let Some(reason) = bad {
                    // A dangling FIRST or orphan MIDDLE/LAST followed by valid data is damage
                    // in the middle of the log.
                    out.corruption.get_or_insert((here, reason.to_string()));
                }
            }
            Err(reason) => {
                if valid_fragment_after(data, pos) {
                    out.corruption.get_or_insert((pos as u64, reason));
                    // Resynchronise at the next block.
                    pos += BLOCK_SIZE - pos % BLOCK_SIZE;
                    pending = None;
                } else {
                    out.torn_tail = Some((pos as u64, reason));
                    return out;
                }
            }
        }
    }
    if let Some((at, _)) = pending {
        out.torn_tail = Some((at, "record started but never finished".into()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::writer::encode_record;
    use super::*;

    fn log_of(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut off = 0;
        for r in records {
            encode_record(&mut out, &mut off, r);
        }
        out
    }

    fn sample() -> Vec<Vec<u8>> {
        (0..40u32)
            .map(|i| vec![i as u8; (i as usize * 2791) % 70_000 + 1])
            .collect()
    }

    #[test]
    fn round_trip_across_blocks() {
        let recs = sample();
        let log = log_of(&recs);
        let r = read_log(&log);
        assert!(r.corruption.is_none() && r.torn_tail.is_none());
        let got: Vec<_> = r.records.into_iter().map(|(_, d)| d).collect();
        assert_eq!(got, recs);
    }

    #[test]
    fn every_truncation_is_a_clean_torn_tail() {
        let recs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 20_000]).collect();
        let log = log_of(&recs);
        for cut in (0..log.len()).step_by(97) {
            let r = read_log(&log[..cut]);
            assert!(r.corruption.is_none(), "cut {cut}: {:?}", r.corruption);
            // What is read is a prefix of what was written.
            for (i, (_, d)) in r.records.iter().enumerate() {
                assert_eq!(d, &recs[i]);
            }
        }
    }

    #[test]
    fn mid_log_damage_is_corruption_tail_damage_is_torn() {
        let recs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 10_000]).collect();
        let log = log_of(&recs);
        let mut mid = log.clone();
        mid[20] ^= 1;
        let r = read_log(&mid);
        assert!(r.corruption.is_some());
        let mut tail = log.clone();
        let n = tail.len();
        tail[n - 5] ^= 1;
        let r = read_log(&tail);
        assert!(r.corruption.is_none());
        assert!(r.torn_tail.is_some());
        assert_eq!(r.records.len(), 7);
    }

    #[test]
    fn damaged_length_field_before_the_last_fragment_is_corruption() {
        // A small log (one block): a flipped length byte in any record but the last must not
        // look like a torn tail, or every later (synced) record would be dropped silently.
        let recs: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 50 + i as usize]).collect();
        let log = log_of(&recs);
        let starts: Vec<usize> = read_log(&log)
            .records
            .iter()
            .map(|(o, _)| *o as usize)
            .collect();
        for (i, s) in starts.iter().enumerate().take(recs.len() - 1) {
            for b in [4usize, 5] {
                for mask in [1u8, 4, 0x80] {
                    let mut bad = log.clone();
                    bad[s + b] ^= mask;
                    let r = read_log(&bad);
                    assert!(
                        r.corruption.is_some(),
                        "record {i} byte {b} mask {mask}: {:?}",
                        r.torn_tail
                    );
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 12345u64;
        for len in [0usize, 1, 6, 7, 100, 40_000, 70_000] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = read_log(&data);
        }
    }
}
