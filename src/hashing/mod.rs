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

use std::mem::MaybeUninit;
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
                    fast: FastMod::new(&head_sizes, config.n_head_per_ngram),
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
        // Checked before anything is written; compression itself then happens chunk by
        // chunk inside the hashing pass (no compressed copy of the batch).
        self.vocab.check(ids, seq_len)?;
        let heads = self.heads_per_layer();
        let tokens = batch * seq_len;
        let n = tokens * heads;
        out.layers
            .resize_with(self.layers.len(), || (0, Vec::new()));
        // Every element is written below, so a buffer of the wrong length is not zeroed
        // first: its spare capacity is written and its length set afterwards.
        let mut chunks: Vec<_> = out
            .layers
            .iter_mut()
            .zip(&self.layers)
            .map(|((layer_id, dst), layer)| {
                *layer_id = layer.layer_id;
                uninit_ids(dst, n).chunks_mut(CHUNK_TOKENS * heads)
            })
            .collect();
        let tasks: Vec<Vec<&mut [MaybeUninit<i32>]>> = (0..tokens.div_ceil(CHUNK_TOKENS))
            .map(|_| chunks.iter_mut().filter_map(Iterator::next).collect())
            .collect();
        drop(chunks);
        let run = |(i, dsts): (usize, Vec<&mut [MaybeUninit<i32>]>)| {
            self.hash_chunk(ids, seq_len, i * CHUNK_TOKENS, dsts)
        };
        if n * self.layers.len() >= PARALLEL_MIN_IDS {
            tasks.into_par_iter().enumerate().for_each(run);
        } else {
            tasks.into_iter().enumerate().for_each(run);
        }
        for (_, dst) in &mut out.layers {
            // SAFETY: `uninit_ids` gave n elements of this buffer's allocation and the
            // chunks above wrote every one of them.
            unsafe { dst.set_len(n) };
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

    /// Compresses the tokens a chunk's n-grams read (the chunk and the N-1 before it) and
    /// hashes the chunk for every layer: `dsts[l]` takes layer `l`'s ids of the flat tokens
    /// `first..first + dsts[l].len() / heads` of the row-major `[B, seq_len]` batch `ids`.
    fn hash_chunk(
        &self,
        ids: &[i64],
        seq_len: usize,
        first: usize,
        dsts: Vec<&mut [MaybeUninit<i32>]>,
    ) {
        let count = dsts.first().map_or(0, |d| d.len() / self.heads_per_layer());
        let start = first.saturating_sub(self.max_ngram_size - 1);
        let window: Vec<i64> = ids[start..first + count]
            .iter()
            // every id was checked in `hash_into`, so the fallback is never taken
            .map(|&id| self.vocab.compress_id(id).unwrap_or(self.pad))
            .collect();
        for (layer, dst) in self.layers.iter().zip(dsts) {
            self.hash_span(layer, &window, first - start, seq_len, first, dst);
        }
    }

    /// Hash ids of the flat tokens `first..first + dst.len() / heads`; `window[skip]` is the
    /// compressed token `first` and the window holds the N-1 tokens before it where they
    /// exist. Each row starts afresh. The widest SIMD this CPU has is picked once here.
    fn hash_span(
        &self,
        layer: &LayerHashing,
        window: &[i64],
        skip: usize,
        seq_len: usize,
        first: usize,
        dst: &mut [MaybeUninit<i32>],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx2") && has!("fma") {
                // SAFETY: the CPU has the features the function is compiled for.
                return unsafe { self.hash_span_avx512(layer, window, skip, seq_len, first, dst) };
            }
            if has!("avx2") && has!("fma") {
                // SAFETY: as above.
                return unsafe { self.hash_span_avx2(layer, window, skip, seq_len, first, dst) };
            }
        }
        self.hash_span_impl::<SCALAR>(layer, window, skip, seq_len, first, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn hash_span_avx512(
        &self,
        layer: &LayerHashing,
        window: &[i64],
        skip: usize,
        seq_len: usize,
        first: usize,
        dst: &mut [MaybeUninit<i32>],
    ) {
        self.hash_span_impl::<AVX512>(layer, window, skip, seq_len, first, dst)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hash_span_avx2(
        &self,
        layer: &LayerHashing,
        window: &[i64],
        skip: usize,
        seq_len: usize,
        first: usize,
        dst: &mut [MaybeUninit<i32>],
    ) {
        self.hash_span_impl::<AVX2>(layer, window, skip, seq_len, first, dst)
    }

    /// The span loop for one kernel (`SCALAR`, `AVX2`, `AVX512`); only call the SIMD ones
    /// from a function compiled with their features.
    #[inline(always)]
    fn hash_span_impl<const KERNEL: u8>(
        &self,
        layer: &LayerHashing,
        window: &[i64],
        skip: usize,
        seq_len: usize,
        first: usize,
        dst: &mut [MaybeUninit<i32>],
    ) {
        let n = self.max_ngram_size;
        let h = self.n_head;
        let heads = self.heads_per_layer();
        let m = &layer.multipliers;
        let t0 = first % seq_len;
        if let Some(fast) = &layer.fast
            && self.pad >= 0
            && window.iter().all(|&x| x >= 0)
        {
            // Ids and multipliers are non-negative and their products do not overflow, so
            // every mix is >= 0: the SIMD reduction without a check per order.
            let mut t = t0;
            for (i, out) in dst.chunks_exact_mut(heads).enumerate() {
                let at = skip + i;
                let mut mix = window[at].wrapping_mul(m[0]);
                let ptr = out.as_mut_ptr().cast::<i32>();
                for order in 0..n - 1 {
                    let k = order + 1;
                    let token = if t >= k { window[at - k] } else { self.pad };
                    mix ^= token.wrapping_mul(m[k]);
                    // SAFETY: `out` holds (N-1) * H elements, so `ptr + order * H` is valid
                    // for H writes; mix >= 0 (above); the SIMD kernels run only where
                    // `hash_span` found their features.
                    unsafe {
                        let ptr = ptr.add(order * h);
                        #[cfg(target_arch = "x86_64")]
                        match KERNEL {
                            AVX512 => fast.reduce_avx512(order, mix, ptr),
                            AVX2 => fast.reduce_avx2(order, mix, ptr),
                            _ => fast.reduce_scalar(order, mix, ptr),
                        }
                        #[cfg(not(target_arch = "x86_64"))]
                        fast.reduce_scalar(order, mix, ptr)
                    }
                }
                t += 1;
                if t == seq_len {
                    t = 0;
                }
            }
            return;
        }
        // Primes of 2^21 and more, or negative ids: one integer remainder per head.
        let mut t = t0;
        for (i, out) in dst.chunks_exact_mut(heads).enumerate() {
            let at = skip + i;
            let mut mix = window[at].wrapping_mul(m[0]);
            for order in 0..n - 1 {
                let k = order + 1;
                let token = if t >= k { window[at - k] } else { self.pad };
                mix ^= token.wrapping_mul(m[k]);
                let base = order * h;
                for (j, o) in out[base..base + h].iter_mut().enumerate() {
                    o.write(if mix >= 0 {
                        // below the head size, < 2^31 (checked in `new`)
                        (mix as u64 % layer.reducers[base + j]) as i32
                    } else {
                        // Only reachable with negative ids; numpy's % is a floor modulus.
                        mix.rem_euclid(layer.head_sizes[base + j] as i64) as i32
                    });
                }
            }
            t += 1;
            if t == seq_len {
                t = 0;
            }
        }
    }
}

/// Kernels of [`NgramHasher::hash_span_impl`].
const SCALAR: u8 = 0;
#[cfg(target_arch = "x86_64")]
const AVX2: u8 = 1;
#[cfg(target_arch = "x86_64")]
const AVX512: u8 = 2;

/// The first `n` elements of `v`'s allocation as writable slots, growing it if needed
/// (without zeroing: the caller writes all `n` and then sets the length to `n`).
fn uninit_ids(v: &mut Vec<i32>, n: usize) -> &mut [MaybeUninit<i32>] {
    if v.len() == n {
        // SAFETY: i32 and MaybeUninit<i32> have one layout; initialised memory stays valid.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), n) }
    } else {
        v.clear();
        v.reserve_exact(n);
        &mut v.spare_capacity_mut()[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference's hashing written out plainly: compress, shift in pads, multiply-XOR in
    /// i64, one floor modulus per head.
    fn naive(h: &NgramHasher, ids: &[i64], batch: usize, seq_len: usize) -> Vec<Vec<i32>> {
        let c: Vec<i64> = ids
            .iter()
            .map(|&i| h.vocab.compress_id(i).unwrap())
            .collect();
        let (n, heads) = (h.max_ngram_size, h.n_head);
        h.layers
            .iter()
            .map(|l| {
                let mut out = Vec::new();
                for b in 0..batch {
                    for t in 0..seq_len {
                        let tok = |k: usize| {
                            if t >= k {
                                c[b * seq_len + t - k]
                            } else {
                                h.pad
                            }
                        };
                        let mut mix = tok(0).wrapping_mul(l.multipliers[0]);
                        for order in 0..n - 1 {
                            mix ^= tok(order + 1).wrapping_mul(l.multipliers[order + 1]);
                            for j in 0..heads {
                                let p = l.head_sizes[order * heads + j] as i64;
                                out.push(mix.rem_euclid(p) as i32);
                            }
                        }
                    }
                }
                out
            })
            .collect()
    }

    fn hasher(sizes: Vec<u64>, n_head: usize) -> NgramHasher {
        let vocab = Arc::new(CompressedVocab::from_lookup((0..5000).collect()).unwrap());
        let cfg = EngramConfig {
            max_ngram_size: sizes.len() + 1,
            engram_vocab_size: sizes,
            n_head_per_ngram: n_head,
            n_embed_per_ngram: 4 * n_head,
            layer_ids: vec![0, 3],
            pad_id: 2,
            ..EngramConfig::default()
        };
        NgramHasher::new(&cfg, vocab).unwrap()
    }

    fn tokens(n: usize, seed: u64) -> Vec<i64> {
        let v = crate::test_util::xorshift_below(n, seed, 5000);
        v.into_iter().map(|x| x as i64).collect()
    }

    /// Parallel chunks that straddle rows, a head count that leaves partial SIMD steps,
    /// primes above the f64 path's limit and negative ids all give the plain hashing's ids.
    #[test]
    fn every_path_equals_the_plain_hashing() {
        let cases = [
            (vec![900, 300, 700], 5, 7, 300), // 2100 tokens: parallel, rows straddle chunks
            (vec![60_000, 50_000], 16, 3, 1000),
            (vec![3_000_000], 3, 2, 77), // primes >= 2^21: the integer path
            (vec![100, 100, 100], 8, 3, 2), // rows shorter than N - 1
        ];
        for (sizes, n_head, batch, seq_len) in cases {
            let h = hasher(sizes.clone(), n_head);
            let mut ids = tokens(batch * seq_len, seq_len as u64);
            let got = h.hash(&ids, batch, seq_len).unwrap();
            let want = naive(&h, &ids, batch, seq_len);
            for ((_, g), w) in got.layers.iter().zip(&want) {
                assert_eq!(g, w, "sizes {sizes:?}, H {n_head}, [{batch}, {seq_len}]");
            }
            ids[seq_len / 2] = -3; // passes compression unchanged, as in the reference
            let got = h.hash(&ids, batch, seq_len).unwrap();
            let want = naive(&h, &ids, batch, seq_len);
            for ((_, g), w) in got.layers.iter().zip(&want) {
                assert_eq!(g, w, "negative id, sizes {sizes:?}");
            }
        }
    }

    /// `hash_into` over buffers of another shape (growing and shrinking) equals a fresh
    /// `hash`, and an out-of-vocabulary id leaves the buffers as they were.
    #[test]
    fn hash_into_reuses_any_buffer_and_errors_leave_it_unchanged() {
        let h = hasher(vec![900, 300, 700], 5);
        let mut out = h.hash(&tokens(40, 1), 4, 10).unwrap();
        for (batch, seq_len) in [(9, 400), (2, 3), (9, 400), (1, 1)] {
            let ids = tokens(batch * seq_len, 7);
            h.hash_into(&ids, batch, seq_len, &mut out).unwrap();
            assert_eq!(out, h.hash(&ids, batch, seq_len).unwrap());
        }
        let before = out.clone();
        let err = h.hash_into(&[1, 2, 5000, 3], 2, 2, &mut out).unwrap_err();
        assert!(err.to_string().contains("5000"), "{err}");
        assert_eq!(out, before);
    }
}
