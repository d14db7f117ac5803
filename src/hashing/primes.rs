//! The table sizes: distinct primes shared across all Engram layers (REFERENCE §1.3).

/// Deterministic primality for the table sizes (at most a little above `u32::MAX`): trial
/// division by 2, 3 and 6k ± 1.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) || n.is_multiple_of(3) {
        return n == 2 || n == 3;
    }
    let mut d = 5u64;
    while d * d <= n {
        if n.is_multiple_of(d) || n.is_multiple_of(d + 2) {
            return false;
        }
        d += 6;
    }
    true
}

/// The reference's prime search: for each layer in order, for each n-gram order 2..=N, the H
/// heads take the smallest primes above `engram_vocab_size[n-2] - 1` that no earlier head of
/// any layer took, each head continuing from the previous head's prime.
///
/// Returns, per layer (in `layer_ids` order), `N - 1` lists of `n_head` primes.
///
/// ```
/// let sizes = burn_engram::hashing::layer_head_sizes(&[500, 100, 100], 16, 1);
/// assert_eq!(&sizes[0][0][..3], &[503, 509, 521]);
/// assert_eq!(sizes[0][0][15], 607);
/// assert_eq!(&sizes[0][1][..2], &[101, 103]);
/// assert_eq!(sizes[0][2][0], 181); // 4-grams skip the primes the 3-grams took
/// ```
pub fn layer_head_sizes(
    engram_vocab_size: &[u64],
    n_head: usize,
    n_layers: usize,
) -> Vec<Vec<Vec<u64>>> {
    let mut used = std::collections::HashSet::new();
    (0..n_layers)
        .map(|_| {
            engram_vocab_size
                .iter()
                .map(|&size| {
                    let mut start = size - 1;
                    (0..n_head)
                        .map(|_| {
                            let mut candidate = start + 1;
                            while used.contains(&candidate) || !is_prime(candidate) {
                                candidate += 1;
                            }
                            used.insert(candidate);
                            start = candidate;
                            candidate
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primality_agrees_with_a_sieve() {
        let n = 20_000usize;
        let mut sieve = vec![true; n];
        sieve[0] = false;
        sieve[1] = false;
        for i in 2..n {
            if sieve[i] {
                for j in (i * i..n).step_by(i) {
                    sieve[j] = false;
                }
            }
        }
        for (i, &p) in sieve.iter().enumerate() {
            assert_eq!(is_prime(i as u64), p, "{i}");
        }
        assert!(is_prime(4_294_967_311)); // first prime above u32::MAX
        assert!(!is_prime(4_294_967_297)); // 641 * 6700417
    }

    #[test]
    fn later_layers_skip_used_primes() {
        let s = layer_head_sizes(&[100], 2, 2);
        assert_eq!(s, vec![vec![vec![101, 103]], vec![vec![107, 109]]]);
    }
}
