//! YCSB's scrambled zipfian key chooser (`ScrambledZipfianGenerator`, θ = 0.99).
//!
//! As in YCSB: a zipfian rank is drawn over a fixed space of 10^10 items (Gray et al.'s
//! "Quickly generating billion-record synthetic databases" method, with ζ(10^10, 0.99)
//! precomputed, so construction costs nothing whatever the key count), then hashed with 64-bit
//! FNV-1a and reduced modulo the key count. The popular keys are thus spread over the key space
//! instead of clustering at its start; the skew stays zipfian.

use rand::Rng;

/// YCSB's zipfian constant θ.
pub const ZIPFIAN_THETA: f64 = 0.99;
/// The item space the underlying zipfian is drawn over (YCSB's `ITEM_COUNT`).
const SCRAMBLED_ITEMS: u64 = 10_000_000_000;
/// ζ(10^10, 0.99), YCSB's `ZETAN`.
const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

/// Chooses keys in `0..n` with YCSB's scrambled zipfian distribution.
#[derive(Debug, Clone)]
pub struct ScrambledZipfian {
    n: u64,
    alpha: f64,
    eta: f64,
    half_pow_theta: f64,
}

impl ScrambledZipfian {
    /// A chooser over `0..n` (`n >= 1`).
    pub fn new(n: u64) -> Self {
        let theta = ZIPFIAN_THETA;
        let zeta2 = 1.0 + 0.5f64.powf(theta);
        let items = SCRAMBLED_ITEMS as f64;
        ScrambledZipfian {
            n: n.max(1),
            alpha: 1.0 / (1.0 - theta),
            eta: (1.0 - (2.0 / items).powf(1.0 - theta)) / (1.0 - zeta2 / SCRAMBLED_ZETAN),
            half_pow_theta: 0.5f64.powf(theta),
        }
    }

    /// The zipfian rank in `0..10^10` (0 the most popular).
    fn rank(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.gen();
        let uz = u * SCRAMBLED_ZETAN;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta {
            return 1;
        }
        let r = (SCRAMBLED_ITEMS as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(SCRAMBLED_ITEMS - 1)
    }

    /// The next key.
    pub fn next(&self, rng: &mut impl Rng) -> u64 {
        fnv1a64(self.rank(rng)) % self.n
    }
}

/// YCSB's `Utils.fnvhash64`: FNV-1a over the eight bytes of `v`, low byte first, made
/// non-negative as Java's `Math.abs` of the signed result.
pub fn fnv1a64(mut v: u64) -> u64 {
    const FNV_OFFSET_BASIS_64: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME_64: u64 = 1_099_511_628_211;
    let mut h = FNV_OFFSET_BASIS_64;
    for _ in 0..8 {
        h ^= v & 0xff;
        h = h.wrapping_mul(FNV_PRIME_64);
        v >>= 8;
    }
    (h as i64).unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn keys_in_range_and_skewed() {
        let n = 100_000;
        let z = ScrambledZipfian::new(n);
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = std::collections::HashMap::new();
        let draws = 200_000;
        for _ in 0..draws {
            let k = z.next(&mut rng);
            assert!(k < n);
            *counts.entry(k).or_insert(0u32) += 1;
        }
        let mut freq: Vec<u32> = counts.values().copied().collect();
        freq.sort_unstable_by(|a, b| b.cmp(a));
        // Rank 0 has probability 1/ζ(10^10) ≈ 3.8%; the top 1000 ranks about
        // ζ(1000)/ζ(10^10) ≈ 28% (the hottest 1% of keys somewhat more, with hash collisions),
        // yet fewer keys are drawn than uniform
        // draws would reach.
        let top = f64::from(freq[0]) / f64::from(draws);
        assert!((0.03..0.05).contains(&top), "top key share {top}");
        let hot: u32 = freq.iter().take((n / 100) as usize).sum();
        let share = f64::from(hot) / f64::from(draws);
        assert!((0.25..0.4).contains(&share), "hot share {share}");
        // Uniform draws would reach n * (1 - e^-2) ≈ 86% of the keys.
        assert!(
            (counts.len() as u64) < n * 8 / 10,
            "{} distinct",
            counts.len()
        );
        // Scrambled: the hottest key is not simply key 0.
        let hottest = counts.iter().max_by_key(|(_, c)| **c).map(|(k, _)| *k);
        assert_eq!(hottest, Some(fnv1a64(0) % n));
    }

    #[test]
    fn fnv_matches_ycsb() {
        // FNV-1a of eight zero bytes.
        assert_eq!(fnv1a64(0), (0xa8c7_f832_281a_39c5u64 as i64).unsigned_abs());
        // The top bit set: made non-negative.
        assert_eq!(fnv1a64(12345), 0u64.wrapping_sub(0xe71e_b185_e2ed_cc4c));
    }
}
