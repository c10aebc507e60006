//! Bloom filter over the user keys of one SST file, cache-line local.
//!
//! Each user key is hashed once with xxh3-64. The high 32 bits pick one 64-byte line (512 bits);
//! the low 32 bits `h` give the `k` probe positions inside that line: probe `i` is the top 9 bits
//! of `h * 0x9e3779b9^i` (mod 2^32), so a lookup touches one cache line. This is RocksDB's
//! FastLocalBloom probe sequence; plain double hashing `(a + i*b) mod 512` was measured at 1.4x
//! theory at 10 bits/key and 4.6x at 16, this sequence at 1.2x and 1.8x. See `docs/format.md`,
//! "Filter block":
//!
//! ```text
//! lines: [u8; 64 * num_lines] | num_probes u8 | num_lines u32 LE
//! ```

use crate::coding;

/// Bytes per filter line (one cache line).
pub const LINE_BYTES: usize = 64;
const LINE_BITS: u32 = (LINE_BYTES * 8) as u32;
/// Bytes after the bit array: probes (1) + line count (4).
const FILTER_TRAILER_LEN: usize = 5;
/// Most probes a filter may declare.
pub const MAX_PROBES: u8 = 30;

/// The one hash of a user key every filter operation uses.
#[inline]
pub fn hash_key(user_key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(user_key)
}

#[inline]
fn probe_positions(
    hash: u64,
    num_lines: u32,
    num_probes: u8,
) -> (usize, impl Iterator<Item = u32>) {
    // fastrange: maps the high 32 bits uniformly onto [0, num_lines).
    let line = ((hash >> 32) * u64::from(num_lines)) >> 32;
    let h = hash as u32;
    let positions = (0..u32::from(num_probes)).scan(h, |h, _| {
        let pos = *h >> 23;
        *h = h.wrapping_mul(0x9e37_79b9);
        Some(pos)
    });
    (line as usize * LINE_BYTES, positions)
}

/// Probes for `bits_per_key`: `round(bits_per_key * ln 2)` in `1..=MAX_PROBES`.
pub fn num_probes_for(bits_per_key: u32) -> u8 {
    let k = (f64::from(bits_per_key) * std::f64::consts::LN_2).round() as u32;
    k.clamp(1, u32::from(MAX_PROBES)) as u8
}

/// Builds the filter block contents for a set of key hashes.
pub fn build_filter(hashes: &[u64], bits_per_key: u32) -> Vec<u8> {
    build_filter_from(hashes.len(), hashes.iter().copied(), bits_per_key)
}

/// Builds the filter block contents for key hashes collected in chunks ([`HashChunks`]).
pub fn build_filter_chunks(hashes: &HashChunks, bits_per_key: u32) -> Vec<u8> {
    build_filter_from(hashes.len(), hashes.iter(), bits_per_key)
}

fn build_filter_from(n: usize, hashes: impl Iterator<Item = u64>, bits_per_key: u32) -> Vec<u8> {
    debug_assert!(bits_per_key > 0);
    let total_bits = (n as u64 * u64::from(bits_per_key)).max(1);
    let num_lines = total_bits
        .div_ceil(u64::from(LINE_BITS))
        .min(u64::from(u32::MAX)) as u32;
    let num_probes = num_probes_for(bits_per_key);
    let bits_len = num_lines as usize * LINE_BYTES;
    let mut out = Vec::with_capacity(bits_len + FOOTER_BYTES);
    out.resize(bits_len, 0u8);
    for h in hashes {
        let (base, positions) = probe_positions(h, num_lines, num_probes);
        for p in positions {
            out[base + (p / 8) as usize] |= 1 << (p % 8);
        }
    }
    out.push(num_probes);
    out.extend_from_slice(&num_lines.to_le_bytes());
    out
}

/// Bytes after the bit array: probes (u8) and line count (u32).
const FOOTER_BYTES: usize = 5;

/// Hashes per chunk of [`HashChunks`] (64 KiB).
const HASH_CHUNK_LEN: usize = 8192;

/// Key hashes of a table being built, in fixed-size chunks: a table of millions of keys never
/// reallocates and copies one huge vector as it grows.
#[derive(Debug, Default)]
pub struct HashChunks {
    chunks: Vec<Vec<u64>>,
    len: usize,
}

impl HashChunks {
    /// Appends a hash.
    #[inline]
    pub fn push(&mut self, h: u64) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < HASH_CHUNK_LEN => c.push(h),
            _ => {
                let mut c = Vec::with_capacity(HASH_CHUNK_LEN);
                c.push(h);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }

    /// Hashes collected.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every hash, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.chunks.iter().flatten().copied()
    }
}

/// A decoded bloom filter.
#[derive(Debug, Clone)]
pub struct BloomFilter {
    bits: Vec<u8>,
    num_lines: u32,
    num_probes: u8,
}

impl BloomFilter {
    /// Decodes filter block contents; the error is the reason it is malformed.
    pub fn decode(mut data: Vec<u8>) -> Result<BloomFilter, String> {
        let Some(bits_len) = data.len().checked_sub(FILTER_TRAILER_LEN) else {
            return Err(format!("filter block of {} bytes is too short", data.len()));
        };
        let num_probes = data[bits_len];
        let num_lines = coding::u32_at(&data, bits_len + 1).unwrap_or(0);
        if num_probes == 0 || num_probes > MAX_PROBES {
            return Err(format!("filter declares {num_probes} probes"));
        }
        if num_lines == 0 || (num_lines as usize).checked_mul(LINE_BYTES) != Some(bits_len) {
            return Err(format!(
                "filter declares {num_lines} lines but holds {bits_len} bytes"
            ));
        }
        data.truncate(bits_len);
        Ok(BloomFilter {
            bits: data,
            num_lines,
            num_probes,
        })
    }

    /// False only if no key with this hash was added.
    #[inline]
    pub fn may_contain_hash(&self, hash: u64) -> bool {
        let (base, mut positions) = probe_positions(hash, self.num_lines, self.num_probes);
        let line = &self.bits[base..base + LINE_BYTES];
        positions.all(|p| line[(p / 8) as usize] & (1 << (p % 8)) != 0)
    }

    /// False only if `user_key` was not added.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(hash_key(user_key))
    }

    /// Size of the bit array in bytes.
    pub fn size_bytes(&self) -> usize {
        self.bits.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_fpr_near_theory() {
        let n = 100_000u32;
        let hashes: Vec<u64> = (0..n)
            .map(|i| hash_key(format!("key{i:08}").as_bytes()))
            .collect();
        for bits in [5u32, 10, 16] {
            let f = BloomFilter::decode(build_filter(&hashes, bits)).unwrap();
            for i in 0..n {
                assert!(f.may_contain(format!("key{i:08}").as_bytes()));
            }
            let probes = 200_000u32;
            let fp = (0..probes)
                .filter(|i| f.may_contain(format!("absent{i:08}").as_bytes()))
                .count();
            let fpr = fp as f64 / f64::from(probes);
            let k = f64::from(num_probes_for(bits));
            let theory = (1.0 - (-k / f64::from(bits)).exp()).powf(k);
            assert!(
                fpr < 2.0 * theory,
                "bits {bits}: fpr {fpr} vs theory {theory}"
            );
            if bits == 10 {
                assert!((0.0082 - theory).abs() < 0.0005, "{theory}");
            }
        }
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(BloomFilter::decode(vec![]).is_err());
        assert!(BloomFilter::decode(vec![0; 5]).is_err());
        let mut good = build_filter(&[1, 2, 3], 10);
        assert!(BloomFilter::decode(good.clone()).is_ok());
        let n = good.len();
        good[n - 4] = 7; // wrong line count
        assert!(BloomFilter::decode(good).is_err());
        let empty = BloomFilter::decode(build_filter(&[], 10)).unwrap();
        // Chunked collection builds the very same filter.
        let many: Vec<u64> = (0..20_000u64).map(|i| hash_key(&i.to_le_bytes())).collect();
        let mut chunks = HashChunks::default();
        for &h in &many {
            chunks.push(h);
        }
        assert_eq!(chunks.len(), many.len());
        assert_eq!(build_filter_chunks(&chunks, 10), build_filter(&many, 10));
        assert!(!empty.may_contain(b"x") || empty.may_contain(b"x"));
    }
}
