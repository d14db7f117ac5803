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

/// Asserts `got` equals `want` element by element within 2e-6 of `want`'s largest magnitude
/// (at least 1): float rounding of a fused op against Burn's op chain.
#[cfg(feature = "flex")]
pub(crate) fn assert_close(
    got: burn::tensor::Tensor<1>,
    want: burn::tensor::Tensor<1>,
    what: &str,
) {
    let (g, w) = (
        got.into_data().try_to_vec::<f32>().unwrap(),
        want.into_data().try_to_vec::<f32>().unwrap(),
    );
    assert_eq!(g.len(), w.len(), "{what}");
    let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!((a - b).abs() <= 2e-6 * scale, "{what}[{i}]: {a} vs {b}");
    }
}
