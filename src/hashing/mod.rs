//! Multi-head n-gram hashing (REFERENCE §1.2-§1.4), computed on the host in 64-bit integers.
//!
//! Hash ids depend on token ids only, so a data loader computes them ahead of the step that
//! uses them ([`NgramHasher::hash`]) and the device never hashes.

mod fastmod;
mod numpy_rng;
mod prefetch;
mod primes;

pub use numpy_rng::NumpyGenerator;
pub use prefetch::HashPrefetcher;
pub use primes::{is_prime, layer_head_sizes};

use std::sync::Arc;

use rayon::prelude::*;
use strength_reduce::StrengthReducedU64;

use self::fastmod::FastMod;
use crate::config::EngramConfig;
use crate::error::{EngramError, Result};
use crate::vocab::CompressedVocab;

/// Seed stride between layers in the reference (`seed + 10007 * layer_id`).
pub const LAYER_SEED_STRIDE: u64 = 10_007;

/// Below this many output ids a batch is hashed on the calling thread.
const PARALLEL_MIN_IDS: usize = 1 << 15;

/// Tokens per parallel task (rows are split too, so one long row still uses every thread).
const CHUNK_TOKENS: usize = 256;

/// The reference's hash multipliers of one layer: `2 * r + 1` with
/// `r = default_rng(seed + 10007 * layer).integers(0, half, N)` and
/// `half = max(1, (i64::MAX / compressed_vocab_size) / 2)`.
///
/// ```
/// let m = burn_engram::hashing::layer_multipliers(0, 1, 107_457, 3);
/// assert_eq!(m.len(), 3);
/// assert!(m.iter().all(|x| x % 2 == 1 && *x < i64::MAX / 107_457));
/// ```
pub fn layer_multipliers(
    seed: u64,
    layer_id: usize,
    compressed_vocab_size: usize,
    n: usize,
) -> Vec<i64> {
    let half = std::cmp::max(1, (i64::MAX / compressed_vocab_size.max(1) as i64) / 2);
    let seed = seed as u128 + LAYER_SEED_STRIDE as u128 * layer_id as u128;
    NumpyGenerator::default_rng(seed)
        .integers_i64(half, n)
        .into_iter()
        .map(|r| 2 * r + 1)
        .collect()
}

/// Hashing parameters of one Engram layer.
#[derive(Debug, Clone)]
pub struct LayerHashing {
    /// The backbone layer id.
    pub layer_id: usize,
    /// N multipliers, one per n-gram position.
    pub multipliers: Vec<i64>,
    /// Table size (a prime) per head, n-gram-major: `(N-1) * H` entries.
    pub head_sizes: Vec<u64>,
    reducers: Vec<StrengthReducedU64>,
    /// The vectorizable f64 reduction, when every prime is below 2^21.
    fast: Option<FastMod>,
}

impl LayerHashing {
    /// Row offset of each head in the single embedding table: exclusive prefix sums of
    /// [`head_sizes`](Self::head_sizes).
    pub fn offsets(&self) -> Vec<u64> {
        self.head_sizes
            .iter()
            .scan(0u64, |acc, &p| {
                let o = *acc;
                *acc += p;
                Some(o)
            })
            .collect()
    }

    /// Rows of the layer's embedding table (sum of the head sizes).
    pub fn table_rows(&self) -> u64 {
        self.head_sizes.iter().sum()
    }
}

/// Hash ids of a `[B, T]` batch for every Engram layer: per layer a row-major
/// `[B, T, (N-1)*H]` array of ids, head `h` in `0..head_sizes[h]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashIds {
    /// B.
    pub batch: usize,
    /// T.
    pub seq_len: usize,
    /// `(N-1) * H`.
    pub heads: usize,
    /// `(layer_id, ids)` in configured layer order. `i32`, Burn's integer type: a head's
    /// ids are below its table size, which [`NgramHasher::new`] keeps under `2^31`.
    pub layers: Vec<(usize, Vec<i32>)>,
}

impl HashIds {
    /// The ids of one layer, if it has Engram.
    pub fn layer(&self, layer_id: usize) -> Option<&[i32]> {
        self.layers
            .iter()
            .find(|(l, _)| *l == layer_id)
            .map(|(_, v)| v.as_slice())
    }
}

/// Turns token ids into hash ids for every configured layer: tokenizer compression, n-gram
/// windows, multiplicative-XOR mixing and one prime modulus per head, exactly as the reference.
///
/// Cheap to clone (the compressed vocabulary is shared).
///
/// ```
/// # fn main() -> Result<(), burn_engram::EngramError> {
/// use std::sync::Arc;
/// use burn_engram::{CompressedVocab, EngramConfig, NgramHasher};
/// // A toy vocabulary: 10 raw ids, 7 compressed ones.
/// let vocab = Arc::new(CompressedVocab::from_lookup(vec![0, 1, 2, 3, 4, 5, 6, 1, 2, 3])?);
/// let cfg = EngramConfig { engram_vocab_size: vec![50, 20], layer_ids: vec![0, 2], pad_id: 0,
///     ..EngramConfig::default() };
/// let hasher = NgramHasher::new(&cfg, vocab)?;
/// let ids = hasher.hash(&[1, 2, 3, 7, 8, 9], 2, 3)?; // two rows of three tokens
/// assert_eq!(ids.heads, 2 * 8);
/// // rows 1,2,3 and 7,8,9 compress to the same ids, so they hash the same
/// let l0 = ids.layer(0).unwrap();
/// assert_eq!(&l0[..3 * 16], &l0[3 * 16..]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NgramHasher {
    vocab: Arc<CompressedVocab>,
    max_ngram_size: usize,
    n_head: usize,
    pad: i64,
    layers: Vec<LayerHashing>,
}

impl NgramHasher {
    /// Builds the hashing of every layer of `config` (validated against `vocab`).
    pub fn new(config: &EngramConfig, vocab: Arc<CompressedVocab>) -> Result<Self> {
        config.validate(Some(vocab.tokenizer_vocab_size()))?;
        let n = config.max_ngram_size;
        let sizes = layer_head_sizes(
            &config.engram_vocab_size,
            config.n_head_per_ngram,
            config.layer_ids.len(),
        );
        if let Some(p) = sizes
            .iter()
            .flatten()
            .flatten()
            .find(|&&p| p > i32::MAX as u64)
        {
            return Err(EngramError::config(
                "engram_vocab_size",
                format!("a head's table size (the prime {p}) exceeds 2147483647; hash ids are i32"),
            ));
        }
        let layers = config
            .layer_ids
            .iter()
            .zip(sizes)
            .map(|(&layer_id, per_order)| {
                let head_sizes: Vec<u64> = per_order.into_iter().flatten().collect();
                LayerHashing {
                    layer_id,
                    multipliers: layer_multipliers(
                        config.seed,
                        layer_id,
                        vocab.compressed_vocab_size(),
                        n,
                    ),
                    reducers: head_sizes
                        .iter()
                        .map(|&p| StrengthReducedU64::new(p))
                        .collect(),
                    fast: FastMod::new(&head_sizes),
                    head_sizes,
                }
            })
            .collect();
        let pad = vocab.compress_id(config.pad_id).ok_or_else(|| {
            EngramError::config(
                "pad_id",
                format!("{} is outside the tokenizer", config.pad_id),
            )
        })?;
        Ok(Self {
            vocab,
            max_ngram_size: n,
            n_head: config.n_head_per_ngram,
            pad,
            layers,
        })
    }

    /// The compressed vocabulary used.
    pub fn vocab(&self) -> &Arc<CompressedVocab> {
        &self.vocab
    }

    /// Per-layer hashing parameters, in configured layer order.
    pub fn layers(&self) -> &[LayerHashing] {
        &self.layers
    }

    /// The compressed id that pads n-gram windows.
    pub fn compressed_pad_id(&self) -> i64 {
        self.pad
    }

    /// H, the hash heads per n-gram order.
    pub fn heads_per_order(&self) -> usize {
        self.n_head
    }

    /// `(N - 1) * H`, the hash ids per token and layer.
    pub fn heads_per_layer(&self) -> usize {
        (self.max_ngram_size - 1) * self.n_head
    }

    /// Hashes a row-major `[batch, seq_len]` block of raw token ids. Each row starts afresh
    /// (its first N-1 windows are padded with the pad id). Negative ids pass through
    /// compression unchanged, as in the reference; ids at or above the tokenizer vocabulary
    /// are an error.
    pub fn hash(&self, ids: &[i64], batch: usize, seq_len: usize) -> Result<HashIds> {
        let mut out = HashIds {
            batch: 0,
            seq_len: 0,
            heads: 0,
            layers: Vec::new(),
        };
        self.hash_into(ids, batch, seq_len, &mut out)?;
        Ok(out)
    }

    /// [`hash`](Self::hash) into `out`, reusing its buffers: a data loader that hashes batch
    /// after batch into the same `HashIds` allocates (and page-faults) nothing once the buffers
    /// are large enough. On error `out` is left unchanged.
    ///
    /// ```
    /// # fn main() -> Result<(), burn_engram::EngramError> {
    /// use std::sync::Arc;
    /// use burn_engram::{CompressedVocab, EngramConfig, NgramHasher};
    /// let vocab = Arc::new(CompressedVocab::from_lookup((0..100).collect())?);
    /// let cfg = EngramConfig { engram_vocab_size: vec![50, 30], layer_ids: vec![1], pad_id: 0,
    ///     ..EngramConfig::default() };
    /// let hasher = NgramHasher::new(&cfg, vocab)?;
    /// let mut ids = hasher.hash(&[1, 2, 3, 4], 2, 2)?;
    /// hasher.hash_into(&[5, 6, 7, 8, 9, 10], 1, 6, &mut ids)?;
    /// assert_eq!(ids, hasher.hash(&[5, 6, 7, 8, 9, 10], 1, 6)?);
    /// # Ok(()) }
    /// ```
    pub fn hash_into(
        &self,
        ids: &[i64],
        batch: usize,
        seq_len: usize,
        out: &mut HashIds,
    ) -> Result<()> {
        if batch == 0 || seq_len == 0 {
            return Err(EngramError::BadBatch(format!(
                "a batch needs at least one row and one token, got [{batch}, {seq_len}]"
            )));
        }
        if ids.len() != batch * seq_len {
            return Err(EngramError::BadBatch(format!(
                "{} token ids do not form a [{batch}, {seq_len}] batch",
                ids.len()
            )));
        }
        let compressed = self.vocab.compress(ids, seq_len)?;
        let heads = self.heads_per_layer();
        let n = batch * seq_len * heads;
        out.layers
            .resize_with(self.layers.len(), || (0, Vec::new()));
        for (layer, (layer_id, dst)) in self.layers.iter().zip(out.layers.iter_mut()) {
            *layer_id = layer.layer_id;
            if dst.len() != n {
                dst.resize(n, 0); // every element is written below
            }
            if n >= PARALLEL_MIN_IDS {
                dst.par_chunks_mut(CHUNK_TOKENS * heads)
                    .enumerate()
                    .for_each(|(i, d)| {
                        self.hash_span(layer, &compressed, seq_len, i * CHUNK_TOKENS, d)
                    });
            } else {
                self.hash_span(layer, &compressed, seq_len, 0, dst);
            }
        }
        (out.batch, out.seq_len, out.heads) = (batch, seq_len, heads);
        Ok(())
    }

    /// Hashes rows of equal length given as nested vectors (a `[B, T]` batch).
    pub fn hash_rows(&self, rows: &[Vec<i64>]) -> Result<HashIds> {
        let seq_len = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != seq_len) {
            return Err(EngramError::BadBatch(format!(
                "row {i} has {} tokens but row 0 has {seq_len}; pad rows to one length",
                r.len()
            )));
        }
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        self.hash(&flat, rows.len(), seq_len)
    }

    /// Hash ids of the flat tokens `first..first + dst.len() / heads` of the compressed
    /// `[B, seq_len]` batch `src` (each row starts afresh), with the widest SIMD this CPU has.
    fn hash_span(
        &self,
        layer: &LayerHashing,
        src: &[i64],
        seq_len: usize,
        first: usize,
        dst: &mut [i32],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
            {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { self.hash_span_avx512(layer, src, seq_len, first, dst) };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: as above.
                return unsafe { self.hash_span_avx2(layer, src, seq_len, first, dst) };
            }
        }
        self.hash_span_impl(layer, src, seq_len, first, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
    unsafe fn hash_span_avx512(
        &self,
        layer: &LayerHashing,
        src: &[i64],
        seq_len: usize,
        first: usize,
        dst: &mut [i32],
    ) {
        self.hash_span_impl(layer, src, seq_len, first, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hash_span_avx2(
        &self,
        layer: &LayerHashing,
        src: &[i64],
        seq_len: usize,
        first: usize,
        dst: &mut [i32],
    ) {
        self.hash_span_impl(layer, src, seq_len, first, dst)
    }

    #[inline(always)]
    fn hash_span_impl(
        &self,
        layer: &LayerHashing,
        src: &[i64],
        seq_len: usize,
        first: usize,
        dst: &mut [i32],
    ) {
        let n = self.max_ngram_size;
        let h = self.n_head;
        let heads = self.heads_per_layer();
        let mut products = vec![0i64; n]; // one allocation per span
        let (mut row, mut t) = (first / seq_len, first % seq_len);
        for out in dst.chunks_exact_mut(heads) {
            let row_src = &src[row * seq_len..(row + 1) * seq_len];
            for (k, p) in products.iter_mut().enumerate() {
                let token = if t >= k { row_src[t - k] } else { self.pad };
                // No overflow for ids in 0..V: m < i64::MAX / V by construction.
                *p = token.wrapping_mul(layer.multipliers[k]);
            }
            let mut mix = products[0];
            for order in 0..n - 1 {
                mix ^= products[order + 1];
                let base = order * h;
                let out = &mut out[base..base + h];
                match &layer.fast {
                    Some(fast) if mix >= 0 => fast.reduce(mix, base, out),
                    _ => {
                        for (j, o) in out.iter_mut().enumerate() {
                            *o = if mix >= 0 {
                                // below the head size, < 2^31 (checked in `new`)
                                (mix as u64 % layer.reducers[base + j]) as i32
                            } else {
                                // Only reachable with negative ids; numpy's % is a floor modulus.
                                mix.rem_euclid(layer.head_sizes[base + j] as i64) as i32
                            };
                        }
                    }
                }
            }
            t += 1;
            if t == seq_len {
                (row, t) = (row + 1, 0);
            }
        }
    }
}
