//! Exact `mix mod p` for many small primes at once, in f64 lanes the compiler vectorizes.
//!
//! For `0 <= mix < 2^63` and `p < 2^21`, write `mix = hi * 2^32 + lo` and `c = 2^32 mod p`:
//! `x = hi * c + lo` is congruent to `mix` and below `2^31 * 2^21 + 2^32 < 2^53`, so it and
//! every intermediate below are exact in f64. `q = floor(x * (1/p))` is off by at most one
//! (the rounding error of `x * (1/p)` is far below 1), `r = x - q * p` is exact, and one
//! correction either way gives `x mod p`. The heads of one n-gram order share `mix`, so a
//! token's heads are one short loop of identical lane operations: with AVX2 / AVX-512 (picked
//! at run time) four or eight heads per instruction instead of one 128-bit multiply each.

/// The largest prime the f64 path takes (exclusive): `2^21`.
pub(crate) const MAX_PRIME: u64 = 1 << 21;

/// 2^52 as f64: adding it to an integer-valued `0 <= r < 2^52` leaves `r` in the low
/// mantissa bits, which turns f64 -> integer into a truncation that vectorizes.
const MAGIC: f64 = 4_503_599_627_370_496.0;

/// Per-head constants of one layer, head-major like the output.
#[derive(Debug, Clone)]
pub(crate) struct FastMod {
    p: Vec<f64>,
    inv: Vec<f64>,
    c: Vec<f64>,
}

impl FastMod {
    /// `None` if a prime is too large for the f64 path.
    pub(crate) fn new(primes: &[u64]) -> Option<Self> {
        if primes.iter().any(|&p| p == 0 || p >= MAX_PRIME) {
            return None;
        }
        Some(Self {
            p: primes.iter().map(|&p| p as f64).collect(),
            inv: primes.iter().map(|&p| 1.0 / p as f64).collect(),
            c: primes.iter().map(|&p| ((1u64 << 32) % p) as f64).collect(),
        })
    }

    /// `out[j] = mix mod p[base + j]` for `j < out.len()`; `mix` must be `>= 0`.
    #[inline(always)]
    pub(crate) fn reduce(&self, mix: i64, base: usize, out: &mut [i32]) {
        debug_assert!(mix >= 0);
        let n = out.len();
        let hi = (mix >> 32) as f64;
        let lo = (mix & 0xFFFF_FFFF) as f64;
        let (p, inv, c) = (
            &self.p[base..base + n],
            &self.inv[base..base + n],
            &self.c[base..base + n],
        );
        for j in 0..n {
            let x = hi * c[j] + lo;
            let q = (x * inv[j]).floor();
            let mut r = x - q * p[j];
            r = if r < 0.0 { r + p[j] } else { r };
            r = if r >= p[j] { r - p[j] } else { r };
            // r < 2^21 sits in the low mantissa bits of r + 2^52
            out[j] = (r + MAGIC).to_bits() as u32 as i32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_integer_remainder_at_the_edges() {
        let primes = [2u64, 3, 101, 503, 646_403, 1_048_573, 2_097_143];
        let fm = FastMod::new(&primes).unwrap();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut mixes = vec![
            0i64,
            1,
            (1 << 32) - 1,
            1 << 32,
            i64::MAX,
            i64::MAX - 1,
            1 << 52,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            mixes.push((x >> 1) as i64);
            mixes.push((x >> 1 >> (x % 62)) as i64);
        }
        let mut out = vec![0i32; primes.len()];
        for &m in &mixes {
            fm.reduce(m, 0, &mut out);
            for (j, &p) in primes.iter().enumerate() {
                assert_eq!(out[j] as i64, m % p as i64, "{m} mod {p}");
            }
        }
        assert!(FastMod::new(&[MAX_PRIME + 1]).is_none());
    }
}
