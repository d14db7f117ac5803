//! Helpers shared by the unit tests.

/// `n` pseudo-random values below `modulus` (xorshift64, deterministic for a `seed`).
pub(crate) fn xorshift_below(n: usize, seed: u64, modulus: u64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % modulus
        })
        .collect()
}
