//! Exact `mix mod p` for the heads of one n-gram order at once, in SIMD lanes.
//!
//! For `0 <= mix < 2^63` and `p < 2^21`, write `mix = hi * 2^32 + lo` and `c = 2^32 mod p`:
//! `x = hi * c + lo` is congruent to `mix` and below `2^31 * 2^21 + 2^32`, so it and every
//! product below are exact in f64. `x * (1/p)` is within `2^-18` of `x / p < 2^33`, so
//! rounding it to the nearest integer gives `q = floor(x / p)` or one more; `r = x - q * p` is
//! exact and lies in `(-p, p)`, and `min_u32(r, r + p)` (a negative `r` is a huge u32) is
//! `x mod p`. All heads of an order share `mix`, so an order is one short loop of identical
//! lane operations: eight heads per step with AVX2 (two f64x4 halves, then i32x8) or AVX-512
//! (one f64x8), picked once per span by the caller, and the same arithmetic lane by lane
//! elsewhere. Every path computes the exact remainder, so all agree bit for bit.

/// The largest prime the f64 path takes (exclusive): `2^21`.
pub(crate) const MAX_PRIME: u64 = 1 << 21;

/// Lanes per step; each order's constants are padded to a multiple of this.
const LANES: usize = 8;

/// Per-head constants of one layer, order-major, each order padded to a multiple of
/// [`LANES`] (padding lanes take `p = 1`, whose remainder is 0 and never stored).
#[derive(Debug, Clone)]
pub(crate) struct FastMod {
    /// Heads per order (H).
    heads: usize,
    /// Padded lanes per order.
    width: usize,
    p: Vec<f64>,
    inv: Vec<f64>,
    c: Vec<f64>,
    p32: Vec<i32>,
}

impl FastMod {
    /// The constants of `primes` (order-major, `heads` per order); `None` if a prime is too
    /// large for the f64 path.
    pub(crate) fn new(primes: &[u64], heads: usize) -> Option<Self> {
        if heads == 0
            || !primes.len().is_multiple_of(heads)
            || primes.iter().any(|&p| p == 0 || p >= MAX_PRIME)
        {
            return None;
        }
        let width = heads.next_multiple_of(LANES);
        let padded: Vec<u64> = primes
            .chunks(heads)
            .flat_map(|order| {
                let mut o = order.to_vec();
                o.resize(width, 1);
                o
            })
            .collect();
        Some(Self {
            heads,
            width,
            p: padded.iter().map(|&p| p as f64).collect(),
            inv: padded.iter().map(|&p| 1.0 / p as f64).collect(),
            c: padded.iter().map(|&p| ((1u64 << 32) % p) as f64).collect(),
            p32: padded.iter().map(|&p| p as i32).collect(),
        })
    }

    /// `out[j] = mix mod p[order][j]` for the H heads of `order`, lane by lane.
    ///
    /// # Safety
    /// `out` is valid for H writes; `mix >= 0`; `order` is below the layer's order count.
    #[inline(always)]
    pub(crate) unsafe fn reduce_scalar(&self, order: usize, mix: i64, out: *mut i32) {
        debug_assert!(mix >= 0);
        let hi = (mix >> 32) as f64;
        let lo = (mix & 0xFFFF_FFFF) as f64;
        let base = order * self.width;
        for j in 0..self.heads {
            let k = base + j;
            let x = hi * self.c[k] + lo;
            let q = (x * self.inv[k]).round_ties_even();
            let r = (x - q * self.p[k]) as i32; // an integer in (-p, p)
            let r = (r as u32).min(r.wrapping_add(self.p32[k]) as u32) as i32;
            // SAFETY: j < H and the caller gives H writable elements.
            unsafe { out.add(j).write(r) };
        }
    }

    /// [`reduce_scalar`](Self::reduce_scalar) with AVX2 + FMA.
    ///
    /// # Safety
    /// As `reduce_scalar`, and the CPU has AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(crate) unsafe fn reduce_avx2(&self, order: usize, mix: i64, out: *mut i32) {
        use std::arch::x86_64::*;
        debug_assert!(mix >= 0);
        let hi = _mm256_set1_pd((mix >> 32) as f64);
        let lo = _mm256_set1_pd((mix & 0xFFFF_FFFF) as f64);
        // SAFETY: the caller's; `step` reads lanes k..k + 8 of one order, inside every
        // constant vector (each order is padded to a multiple of 8).
        unsafe {
            self.steps(order, out, |k| {
                let half = |k: usize| {
                    let x = _mm256_fmadd_pd(hi, _mm256_loadu_pd(self.c.as_ptr().add(k)), lo);
                    let q = _mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                        _mm256_mul_pd(x, _mm256_loadu_pd(self.inv.as_ptr().add(k))),
                    );
                    _mm256_cvttpd_epi32(_mm256_fnmadd_pd(
                        q,
                        _mm256_loadu_pd(self.p.as_ptr().add(k)),
                        x,
                    ))
                };
                let r = _mm256_set_m128i(half(k + 4), half(k));
                let p = _mm256_loadu_si256(self.p32.as_ptr().add(k).cast());
                _mm256_min_epu32(r, _mm256_add_epi32(r, p))
            })
        }
    }

    /// [`reduce_scalar`](Self::reduce_scalar) with AVX-512F.
    ///
    /// # Safety
    /// As `reduce_scalar`, and the CPU has AVX-512F, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(crate) unsafe fn reduce_avx512(&self, order: usize, mix: i64, out: *mut i32) {
        use std::arch::x86_64::*;
        debug_assert!(mix >= 0);
        let hi = _mm512_set1_pd((mix >> 32) as f64);
        let lo = _mm512_set1_pd((mix & 0xFFFF_FFFF) as f64);
        // SAFETY: as in `reduce_avx2`.
        unsafe {
            self.steps(order, out, |k| {
                let x = _mm512_fmadd_pd(hi, _mm512_loadu_pd(self.c.as_ptr().add(k)), lo);
                let q = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_mul_pd(x, _mm512_loadu_pd(self.inv.as_ptr().add(k))),
                );
                let r = _mm512_cvttpd_epi32(_mm512_fnmadd_pd(
                    q,
                    _mm512_loadu_pd(self.p.as_ptr().add(k)),
                    x,
                ));
                let p = _mm256_loadu_si256(self.p32.as_ptr().add(k).cast());
                _mm256_min_epu32(r, _mm256_add_epi32(r, p))
            })
        }
    }

    /// The H heads of `order` in steps of 8 lanes: `step(k)` gives the remainders of the
    /// padded lanes `k..k + 8`, stored at `out` (a partial last step through a local buffer).
    ///
    /// # Safety
    /// `out` is valid for H writes; the CPU has AVX2; `step` is sound for every `k` it gets.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn steps(
        &self,
        order: usize,
        out: *mut i32,
        step: impl Fn(usize) -> std::arch::x86_64::__m256i,
    ) {
        let base = order * self.width;
        let mut j = 0;
        while j < self.heads {
            // SAFETY: j < H, so `out + j` is valid for min(H - j, 8) writes (the caller).
            unsafe { store8(step(base + j), out.add(j), self.heads - j) };
            j += LANES;
        }
    }
}

/// Stores the first `min(n, 8)` lanes of `r` at `out`.
///
/// # Safety
/// `out` is valid for `min(n, 8)` writes; the CPU has AVX.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store8(r: std::arch::x86_64::__m256i, out: *mut i32, n: usize) {
    use std::arch::x86_64::*;
    if n >= LANES {
        // SAFETY: 8 writable elements (caller).
        unsafe { _mm256_storeu_si256(out.cast(), r) };
    } else {
        let mut tmp = [0i32; LANES];
        // SAFETY: `tmp` holds 8 elements; `out` takes n < 8 (caller).
        unsafe {
            _mm256_storeu_si256(tmp.as_mut_ptr().cast(), r);
            std::ptr::copy_nonoverlapping(tmp.as_ptr(), out, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU runs, against the integer remainder, at the edges of the
    /// range and for head counts that leave a partial last step.
    #[test]
    fn every_kernel_matches_the_integer_remainder() {
        let primes = [
            2u64, 3, 5, 101, 503, 646_403, 1_048_573, 2_097_143, 7, 11, 13, 17, 19,
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut mixes = vec![
            0i64,
            1,
            (1 << 32) - 1,
            1 << 32,
            i64::MAX,
            i64::MAX - 1,
            1 << 52,
            (1 << 53) + 1,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            mixes.push((x >> 1) as i64);
            mixes.push((x >> 1 >> (x % 62)) as i64);
        }
        for heads in [1, 3, 8, 13] {
            let primes: Vec<u64> = primes.iter().cycle().take(heads * 3).copied().collect();
            let fm = FastMod::new(&primes, heads).unwrap();
            type Kernel = unsafe fn(&FastMod, usize, i64, *mut i32);
            let mut kernels: Vec<(&str, Kernel)> = vec![("scalar", FastMod::reduce_scalar)];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    kernels.push(("avx2", |f, o, m, out| unsafe { f.reduce_avx2(o, m, out) }));
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    kernels.push(("avx512", |f, o, m, out| unsafe {
                        f.reduce_avx512(o, m, out)
                    }));
                }
            }
            for (name, kernel) in kernels {
                // one guard element past the heads: a kernel writes exactly H
                let mut out = vec![-7i32; heads + 1];
                for &m in &mixes {
                    for order in 0..3 {
                        // SAFETY: `out` has H writable elements, m >= 0, order < 3.
                        unsafe { kernel(&fm, order, m, out.as_mut_ptr()) };
                        for (j, &p) in primes[order * heads..][..heads].iter().enumerate() {
                            assert_eq!(out[j] as i64, m % p as i64, "{name}: {m} mod {p}");
                        }
                        assert_eq!(out[heads], -7, "{name} wrote past H = {heads}");
                    }
                }
            }
        }
        assert!(FastMod::new(&[MAX_PRIME + 1], 1).is_none());
    }
}
