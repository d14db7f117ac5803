//! What Engram computes for a batch, as one JSON value: the compressed vocabulary size, a
//! sample of the compression table, and per layer the multipliers, table sizes and hash ids.
//! `examples/inspect.rs` prints it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::error::{EngramError, Result};
use crate::hashing::NgramHasher;

/// The inspection of `rows` (a `[B, T]` batch of raw ids):
/// `{"compressed_vocab_size", "lookup_sample": {raw: compressed}, "layers": {"<id>":
/// {"multipliers": [N], "head_sizes": [[H] x (N-1)], "hash_ids": [B][T][(N-1)*H]}}}`.
///
/// ```
/// # fn main() -> Result<(), burn_engram::EngramError> {
/// use std::sync::Arc;
/// use burn_engram::{CompressedVocab, EngramConfig, NgramHasher};
/// let vocab = Arc::new(CompressedVocab::from_lookup(vec![0, 1, 2, 1])?);
/// let cfg = EngramConfig { engram_vocab_size: vec![11], max_ngram_size: 2, n_embed_per_ngram: 4,
///     n_head_per_ngram: 2, layer_ids: vec![3], pad_id: 0, ..EngramConfig::default() };
/// let hasher = NgramHasher::new(&cfg, vocab)?;
/// let v = burn_engram::inspect::inspect(&hasher, &[vec![1, 2, 3]], &[3])?;
/// assert_eq!(v["compressed_vocab_size"], 3);
/// assert_eq!(v["lookup_sample"]["3"], 1);
/// assert_eq!(v["layers"]["3"]["head_sizes"], serde_json::json!([[11, 13]]));
/// assert_eq!(v["layers"]["3"]["hash_ids"][0].as_array().unwrap().len(), 3);
/// # Ok(()) }
/// ```
pub fn inspect(hasher: &NgramHasher, rows: &[Vec<i64>], lookup: &[i64]) -> Result<Value> {
    let vocab = hasher.vocab();
    let ids = hasher.hash_rows(rows)?;
    let mut lookup_sample = BTreeMap::new();
    for raw in lookup {
        let c = vocab
            .compress_id(*raw)
            .ok_or(EngramError::TokenOutOfRange {
                id: *raw,
                row: 0,
                pos: 0,
                vocab_size: vocab.tokenizer_vocab_size(),
            })?;
        lookup_sample.insert(raw.to_string(), c);
    }
    let n_head = hasher.heads_per_order();
    let mut layers = serde_json::Map::new();
    for lh in hasher.layers() {
        let flat = ids
            .layer(lh.layer_id)
            .expect("every configured layer is hashed");
        let hash_ids: Vec<Vec<&[i32]>> = flat
            .chunks(ids.seq_len * ids.heads)
            .map(|row| row.chunks(ids.heads).collect())
            .collect();
        let head_sizes: Vec<&[u64]> = lh.head_sizes.chunks(n_head).collect();
        layers.insert(
            lh.layer_id.to_string(),
            json!({ "multipliers": lh.multipliers, "head_sizes": head_sizes, "hash_ids": hash_ids }),
        );
    }
    Ok(json!({
        "compressed_vocab_size": vocab.compressed_vocab_size(),
        "lookup_sample": lookup_sample,
        "layers": layers,
    }))
}
