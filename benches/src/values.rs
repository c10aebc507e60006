//! Benchmark values that compress like real data: db_bench's `RandomGenerator` with
//! `compression_ratio = 0.5`.
//!
//! A pool is filled with pieces of 100 bytes, each made of 50 random bytes (printable, as
//! db_bench's `CompressibleString`) repeated to fill it, so a block compressor halves it and no
//! more. Values are windows of the pool at offsets that move with the operation number; a run
//! never sees the degenerate constant value that would compress to nothing.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes of the pool values are cut from.
const VALUE_POOL_BYTES: usize = 1 << 20;
/// Bytes of each piece of the pool (db_bench's 100).
const VALUE_PIECE_BYTES: usize = 100;
/// Random bytes per piece: the compression ratio (0.5) times the piece.
const VALUE_PIECE_RANDOM_BYTES: usize = 50;

/// A pool of compressible data that values are cut from.
#[derive(Debug, Clone)]
pub struct Values {
    pool: Vec<u8>,
    len: usize,
}

impl Values {
    /// Values of `len` bytes from a pool seeded with `seed`.
    pub fn new(len: usize, seed: u64) -> Values {
        let mut rng = StdRng::seed_from_u64(seed);
        let total = VALUE_POOL_BYTES.max(len * 2);
        let mut pool = Vec::with_capacity(total + VALUE_PIECE_BYTES);
        while pool.len() < total {
            let piece: Vec<u8> = (0..VALUE_PIECE_RANDOM_BYTES)
                .map(|_| rng.gen_range(b' '..=b'~'))
                .collect();
            for i in 0..VALUE_PIECE_BYTES {
                pool.push(piece[i % piece.len()]);
            }
        }
        Values { pool, len }
    }

    /// The value of operation `i`.
    pub fn get(&self, i: u64) -> &[u8] {
        let room = (self.pool.len() - self.len) as u64;
        // An odd stride: consecutive operations get different windows.
        let at = (i.wrapping_mul(7919) % room.max(1)) as usize;
        &self.pool[at..at + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_length_asked_and_vary() {
        for len in [0, 1, 100, 4096, 65536] {
            let v = Values::new(len, 1);
            assert_eq!(v.get(0).len(), len);
            assert_eq!(v.get(u64::MAX).len(), len);
            if len >= 100 {
                assert_ne!(v.get(1), v.get(2));
            }
        }
    }

    #[test]
    fn pieces_repeat_their_random_half() {
        let v = Values::new(100, 3);
        for piece in v.pool.chunks_exact(VALUE_PIECE_BYTES) {
            let (a, b) = piece.split_at(VALUE_PIECE_RANDOM_BYTES);
            assert_eq!(a, b);
            let distinct: std::collections::HashSet<u8> = a.iter().copied().collect();
            assert!(distinct.len() > 20, "{} distinct bytes", distinct.len());
        }
    }
}
