//! Properties of the hashing that hold for any input: range, determinism, causality.

use std::sync::Arc;

use burn_engram::{CompressedVocab, EngramConfig, NgramHasher};
use proptest::prelude::*;

const RAW_VOCAB: i64 = 300;

fn hasher(max_ngram_size: usize, n_head: usize, seed: u64) -> NgramHasher {
    // a compression that merges every third id with its neighbour
    let lookup: Vec<i64> = (0..RAW_VOCAB).map(|i| i - i / 3).collect();
    let vocab = Arc::new(CompressedVocab::from_lookup(lookup).unwrap());
    let cfg = EngramConfig {
        engram_vocab_size: vec![61; max_ngram_size - 1],
        max_ngram_size,
        n_embed_per_ngram: 8 * n_head,
        n_head_per_ngram: n_head,
        layer_ids: vec![0, 3],
        pad_id: 1,
        seed,
        ..EngramConfig::default()
    };
    NgramHasher::new(&cfg, vocab).unwrap()
}

fn batch() -> impl Strategy<Value = (usize, Vec<Vec<i64>>)> {
    (2usize..6, 1usize..4, 1usize..24).prop_flat_map(|(n, b, t)| {
        (
            Just(n),
            prop::collection::vec(prop::collection::vec(0..RAW_VOCAB, t), b),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_id_lies_below_its_heads_prime((n, rows) in batch(), seed in 0u64..1000) {
        let h = hasher(n, 3, seed);
        let ids = h.hash_rows(&rows).unwrap();
        for lh in h.layers() {
            let layer = ids.layer(lh.layer_id).unwrap();
            prop_assert_eq!(layer.len(), rows.len() * rows[0].len() * (n - 1) * 3);
            for (i, &id) in layer.iter().enumerate() {
                let p = lh.head_sizes[i % lh.head_sizes.len()];
                prop_assert!(id >= 0 && (id as u64) < p, "id {} not in [0, {})", id, p);
            }
        }
    }

    #[test]
    fn hashing_is_deterministic((n, rows) in batch()) {
        let a = hasher(n, 2, 7).hash_rows(&rows).unwrap();
        let b = hasher(n, 2, 7).hash_rows(&rows).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn a_token_only_changes_its_own_and_the_next_n_minus_1_positions(
        (n, rows) in batch(), pick in any::<prop::sample::Index>(), new_id in 0..RAW_VOCAB,
    ) {
        let h = hasher(n, 2, 3);
        let t_len = rows[0].len();
        let (row, t) = (pick.index(rows.len()), pick.index(t_len));
        let mut changed = rows.clone();
        changed[row][t] = new_id;
        let a = h.hash_rows(&rows).unwrap();
        let b = h.hash_rows(&changed).unwrap();
        let heads = a.heads;
        for lh in h.layers() {
            let (la, lb) = (a.layer(lh.layer_id).unwrap(), b.layer(lh.layer_id).unwrap());
            for r in 0..rows.len() {
                for pos in 0..t_len {
                    let span = (r * t_len + pos) * heads..(r * t_len + pos + 1) * heads;
                    let may_change = r == row && pos >= t && pos < t + n;
                    if !may_change {
                        prop_assert_eq!(&la[span.clone()], &lb[span], "row {} pos {} changed", r, pos);
                    }
                }
            }
        }
    }
}

#[test]
fn changing_a_token_does_change_its_own_position() {
    // the causality property above must not hold vacuously
    let h = hasher(3, 4, 0);
    let a = h.hash_rows(&[vec![5, 6, 7, 8]]).unwrap();
    let b = h.hash_rows(&[vec![5, 6, 10, 8]]).unwrap();
    let heads = a.heads;
    let (la, lb) = (a.layer(0).unwrap(), b.layer(0).unwrap());
    assert_eq!(la[..2 * heads], lb[..2 * heads]);
    assert_ne!(la[2 * heads..3 * heads], lb[2 * heads..3 * heads]);
    assert_ne!(la[3 * heads..], lb[3 * heads..]);
}
