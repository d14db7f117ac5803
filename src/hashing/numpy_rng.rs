//! numpy's `default_rng(seed).integers(0, high, dtype=int64)`, bit for bit.
//!
//! Three pieces of numpy (>= 1.17) are reproduced: `SeedSequence` (entropy pool and
//! `generate_state`), the `PCG64` bit generator (XSL-RR output of a 128-bit LCG) and the bounded
//! integer draw of `Generator.integers` (Lemire's method, with numpy's 32-bit buffered variant
//! for ranges that fit in 32 bits). The hash multipliers of every Engram layer come from this, so
//! checkpoints trained by the Python reference address the same table rows here.

/// `SeedSequence` hashing constants (numpy/random/bit_generator.pyx).
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;

/// The 128-bit LCG multiplier of PCG64.
const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) | 4_865_540_595_714_422_341u128;

fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut value = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    value = value.wrapping_mul(*hash_const);
    value ^ (value >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let result = MIX_MULT_L
        .wrapping_mul(x)
        .wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    result ^ (result >> XSHIFT)
}

/// numpy's `SeedSequence(entropy)` for a non-negative integer entropy and no spawn key.
#[derive(Debug, Clone)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

impl SeedSequence {
    /// Builds the entropy pool from `entropy` (numpy splits the integer into 32-bit words,
    /// least significant first; 0 is the single word 0).
    pub fn new(entropy: u128) -> Self {
        let mut words = Vec::new();
        let mut n = entropy;
        if n == 0 {
            words.push(0u32);
        }
        while n > 0 {
            words.push((n & 0xffff_ffff) as u32);
            n >>= 32;
        }
        let mut pool = [0u32; POOL_SIZE];
        let mut hash_const = INIT_A;
        for (i, slot) in pool.iter_mut().enumerate() {
            let word = words.get(i).copied().unwrap_or(0);
            *slot = hashmix(word, &mut hash_const);
        }
        for i_src in 0..POOL_SIZE {
            for i_dst in 0..POOL_SIZE {
                if i_src != i_dst {
                    let h = hashmix(pool[i_src], &mut hash_const);
                    pool[i_dst] = mix(pool[i_dst], h);
                }
            }
        }
        for &word in words.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                let h = hashmix(word, &mut hash_const);
                *slot = mix(*slot, h);
            }
        }
        Self { pool }
    }

    /// `generate_state(n_words, dtype=np.uint32)`.
    pub fn generate_state_u32(&self, n_words: usize) -> Vec<u32> {
        let mut hash_const = INIT_B;
        (0..n_words)
            .map(|i| {
                let mut v = self.pool[i % POOL_SIZE] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect()
    }

    /// `generate_state(n_words, dtype=np.uint64)`: pairs of 32-bit words, little-endian.
    pub fn generate_state_u64(&self, n_words: usize) -> Vec<u64> {
        self.generate_state_u32(2 * n_words)
            .chunks_exact(2)
            .map(|w| w[0] as u64 | ((w[1] as u64) << 32))
            .collect()
    }
}

/// numpy's `PCG64` bit generator.
#[derive(Debug, Clone)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
    /// numpy keeps the high half of a 64-bit draw for the next 32-bit request.
    spare_u32: Option<u32>,
}

impl Pcg64 {
    /// `PCG64(SeedSequence(seed))`, the generator behind `numpy.random.default_rng(seed)`.
    pub fn from_seed(seed: u128) -> Self {
        let s = SeedSequence::new(seed).generate_state_u64(4);
        let initstate = ((s[0] as u128) << 64) | s[1] as u128;
        let initseq = ((s[2] as u128) << 64) | s[3] as u128;
        let mut rng = Self {
            state: 0,
            inc: (initseq << 1) | 1,
            spare_u32: None,
        };
        rng.step();
        rng.state = rng.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The next raw 64-bit output (`next_uint64`).
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let rot = (self.state >> 122) as u32;
        (((self.state >> 64) as u64) ^ (self.state as u64)).rotate_right(rot)
    }

    /// The next 32-bit output (`next_uint32`): the low half of a fresh 64-bit draw, then its
    /// high half on the following call.
    pub fn next_u32(&mut self) -> u32 {
        if let Some(v) = self.spare_u32.take() {
            return v;
        }
        let next = self.next_u64();
        self.spare_u32 = Some((next >> 32) as u32);
        next as u32
    }
}

/// numpy's `Generator`: only the integer draw the multipliers need.
#[derive(Debug, Clone)]
pub struct NumpyGenerator {
    bitgen: Pcg64,
}

impl NumpyGenerator {
    /// `numpy.random.default_rng(seed)`.
    pub fn default_rng(seed: u128) -> Self {
        Self {
            bitgen: Pcg64::from_seed(seed),
        }
    }

    /// `Generator.integers(low=0, high=high, size=n, dtype=np.int64)` (`high` exclusive, >= 1).
    ///
    /// # Panics
    /// If `high < 1` (numpy raises `ValueError: high <= 0`).
    pub fn integers_i64(&mut self, high: i64, n: usize) -> Vec<i64> {
        assert!(high >= 1, "integers: high must be >= 1, got {high}");
        let rng = (high - 1) as u64; // inclusive range width, numpy's `rng`
        if rng == 0 {
            return vec![0; n];
        }
        if rng <= u32::MAX as u64 {
            // random_bounded_uint64_fill: the 32-bit path draws from the uint32 stream.
            let next_u32 = |g: &mut Pcg64| g.next_u32();
            let rng32 = rng as u32;
            (0..n)
                .map(|_| {
                    if rng32 == u32::MAX {
                        return next_u32(&mut self.bitgen) as i64;
                    }
                    let excl = rng32 + 1;
                    let mut m = next_u32(&mut self.bitgen) as u64 * excl as u64;
                    let mut leftover = m as u32;
                    if leftover < excl {
                        let threshold = (u32::MAX - rng32) % excl;
                        while leftover < threshold {
                            m = next_u32(&mut self.bitgen) as u64 * excl as u64;
                            leftover = m as u32;
                        }
                    }
                    (m >> 32) as i64
                })
                .collect()
        } else {
            (0..n)
                .map(|_| {
                    let excl = rng + 1; // rng < u64::MAX because high <= i64::MAX
                    let mut m = self.bitgen.next_u64() as u128 * excl as u128;
                    let mut leftover = m as u64;
                    if leftover < excl {
                        let threshold = (u64::MAX - rng) % excl;
                        while leftover < threshold {
                            m = self.bitgen.next_u64() as u128 * excl as u128;
                            leftover = m as u64;
                        }
                    }
                    (m >> 64) as i64
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_outputs_of_default_rng_zero() {
        // numpy: np.random.default_rng(0).integers(0, 2**63 - 1, size=2, dtype=np.int64)
        // is checked against fixtures in tests/; here only structural properties.
        let mut g = NumpyGenerator::default_rng(0);
        let v = g.integers_i64(10, 100);
        assert!(v.iter().all(|x| (0..10).contains(x)));
        let mut g2 = NumpyGenerator::default_rng(0);
        assert_eq!(v, g2.integers_i64(10, 100));
        assert_eq!(
            NumpyGenerator::default_rng(5).integers_i64(1, 3),
            vec![0, 0, 0]
        );
    }
}
