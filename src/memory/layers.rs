//! [`EngramLayers`]: the Engram layers of one model, sharing one compressed vocabulary and
//! one hash mapping, and the per-batch input they read ([`EngramBatch`]).

use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::engram::Engram;
use super::init::{InitOptions, LayerDims, LayerWeights};
use super::schedule::GateMode;
use crate::config::EngramConfig;
use crate::error::{EngramError, Result};
use crate::hashing::{HashIds, NgramHasher};
use crate::vocab::CompressedVocab;

/// One Engram layer per configured layer id, plus the host-side hashing they share.
///
/// A Burn [`Module`]: train it, freeze it, move it between devices like any other. The
/// hashing (`NgramHasher`) is not a parameter and travels along untouched.
///
/// ```
/// # fn main() -> Result<(), burn_engram::EngramError> {
/// use std::sync::Arc;
/// use burn::tensor::{Device, Tensor};
/// use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, InitOptions};
///
/// let device = Device::default();
/// let vocab = Arc::new(CompressedVocab::from_lookup((0..100).collect())?);
/// let cfg = EngramConfig { engram_vocab_size: vec![50, 30], n_embed_per_ngram: 16,
///     n_head_per_ngram: 2, layer_ids: vec![1], pad_id: 0, ..EngramConfig::default() };
/// let memory = EngramLayers::new(&cfg, vocab, 32, InitOptions::default(), &device)?;
///
/// let batch = memory.prepare(&[5, 6, 7, 8, 9, 10], 2, 3, &device)?; // host hashing + upload
/// let hidden = Tensor::<3>::zeros([2, 3, 32], &device);
/// let out = memory.inject(1, hidden.clone(), &batch)?;        // h + engram(h, ids)
/// assert_eq!(out.dims(), [2, 3, 32]);
/// let same = memory.inject(0, hidden, &batch)?;               // layer 0 has no Engram
/// assert_eq!(same.dims(), [2, 3, 32]);
/// # Ok(()) }
/// ```
#[derive(Module, Debug)]
pub struct EngramLayers {
    /// The layers, in `config.layer_ids` order.
    pub layers: Vec<Engram>,
    #[module(skip)]
    hasher: NgramHasher,
    #[module(skip)]
    config: EngramConfig,
}

/// The hash rows of one batch for every Engram layer, on the device, plus the gate mode
/// for this step. Made by [`EngramLayers::upload`] or [`EngramLayers::prepare`].
#[derive(Debug, Clone)]
pub struct EngramBatch {
    pub(crate) rows: Vec<(usize, Tensor<3, Int>)>,
    /// Sparse-update batches only: per layer, the sub-table of touched rows that `rows`
    /// index (see [`crate::memory::SparseTables`]).
    pub(crate) tables: Vec<(usize, Tensor<2>)>,
    pub(crate) gate: GateMode,
    pub(crate) batch: usize,
    pub(crate) seq_len: usize,
    /// Decoding batches only ([`EngramLayers::prepare_step`]): the position of the
    /// sequence this batch's first token has.
    pub(crate) start: Option<usize>,
}

impl EngramBatch {
    /// Sets the gate mode, e.g. `batch.with_gate(schedule.at(step))`.
    pub fn with_gate(mut self, gate: GateMode) -> Self {
        self.gate = gate;
        self
    }

    /// The gate mode of this batch.
    pub fn gate(&self) -> GateMode {
        self.gate
    }

    /// `[B, T]` of the batch.
    pub fn dims(&self) -> [usize; 2] {
        [self.batch, self.seq_len]
    }

    /// Global row indices `[B, T, K]` of one layer.
    pub fn rows(&self, layer_id: usize) -> Option<&Tensor<3, Int>> {
        self.rows
            .iter()
            .find(|(l, _)| *l == layer_id)
            .map(|(_, r)| r)
    }
}

impl EngramLayers {
    /// Fresh layers for a backbone of width `hidden_size` (with `config.hc_mult` groups).
    pub fn new(
        config: &EngramConfig,
        vocab: Arc<CompressedVocab>,
        hidden_size: usize,
        init: InitOptions,
        device: &Device,
    ) -> Result<Self> {
        Self::build(config, vocab, hidden_size, device, |layer_id, dims| {
            Ok(LayerWeights::init(dims, &init, layer_id))
        })
    }

    /// Builds layers whose weights come from `weights(layer_id, dims)`.
    pub(crate) fn build(
        config: &EngramConfig,
        vocab: Arc<CompressedVocab>,
        hidden_size: usize,
        device: &Device,
        mut weights: impl FnMut(usize, &LayerDims) -> Result<LayerWeights>,
    ) -> Result<Self> {
        if hidden_size == 0 {
            return Err(EngramError::config("hidden_size", "must be >= 1, got 0"));
        }
        let hasher = NgramHasher::new(config, vocab)?;
        let layers = hasher
            .layers()
            .iter()
            .map(|lh| {
                let rows = lh.table_rows();
                if rows > i32::MAX as u64 {
                    return Err(EngramError::config(
                        "engram_vocab_size",
                        format!(
                            "layer {} would need {rows} table rows; at most {} are addressable",
                            lh.layer_id,
                            i32::MAX
                        ),
                    ));
                }
                let dims = LayerDims {
                    table_rows: rows as usize,
                    head_dim: config.head_dim(),
                    engram_hidden: config.engram_hidden_size(),
                    hidden: hidden_size,
                    groups: config.hc_mult,
                    kernel: config.kernel_size,
                };
                let w = weights(lh.layer_id, &dims)?;
                Ok(Engram::from_weights(
                    &w,
                    &dims,
                    config.max_ngram_size,
                    device,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            layers,
            hasher,
            config: config.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EngramConfig {
        &self.config
    }

    /// The shared hashing.
    pub fn hasher(&self) -> &NgramHasher {
        &self.hasher
    }

    /// Model width D.
    pub fn hidden_size(&self) -> usize {
        self.layers[0].hidden_size()
    }

    /// The Engram layer at backbone layer `layer_id`, if any.
    pub fn layer(&self, layer_id: usize) -> Option<&Engram> {
        self.config
            .layer_ids
            .iter()
            .position(|l| *l == layer_id)
            .map(|i| &self.layers[i])
    }

    /// Host-side hashing of a row-major `[batch, seq_len]` block of raw token ids.
    pub fn hash(&self, ids: &[i64], batch: usize, seq_len: usize) -> Result<HashIds> {
        self.hasher.hash(ids, batch, seq_len)
    }

    /// Uploads hash ids as global table rows (hash id + head offset) to `device`.
    pub fn upload(&self, ids: &HashIds, device: &Device) -> Result<EngramBatch> {
        let rows = self
            .global_rows(ids)?
            .into_iter()
            .map(|(layer_id, global)| {
                let data = TensorData::new(global, [ids.batch, ids.seq_len, ids.heads]);
                (layer_id, Tensor::<3, Int>::from_data(data, device))
            })
            .collect();
        Ok(EngramBatch {
            rows,
            tables: Vec::new(),
            gate: GateMode::Learned,
            batch: ids.batch,
            seq_len: ids.seq_len,
            start: None,
        })
    }

    /// Checks hash ids against every layer and turns them into global table rows (hash id +
    /// head offset), row-major `[B, T, K]`, per layer in configured order.
    pub(crate) fn global_rows(&self, ids: &HashIds) -> Result<Vec<(usize, Vec<i32>)>> {
        self
            .hasher
            .layers()
            .iter()
            .map(|lh| {
                let hashed = ids.layer(lh.layer_id).ok_or_else(|| {
                    EngramError::BadBatch(format!("hash ids hold no entry for layer {}", lh.layer_id))
                })?;
                if ids.heads != lh.head_sizes.len() {
                    return Err(EngramError::BadBatch(format!(
                        "hash ids have {} heads per token, layer {} has {}",
                        ids.heads,
                        lh.layer_id,
                        lh.head_sizes.len()
                    )));
                }
                if hashed.len() != ids.batch * ids.seq_len * ids.heads {
                    return Err(EngramError::BadBatch(format!(
                        "layer {} holds {} hash ids, not [{}, {}, {}]",
                        lh.layer_id,
                        hashed.len(),
                        ids.batch,
                        ids.seq_len,
                        ids.heads
                    )));
                }
                if let Some((i, (&h, p))) = hashed
                    .iter()
                    .zip(lh.head_sizes.iter().cycle())
                    .enumerate()
                    .find(|(_, (h, p))| **h < 0 || **h as u64 >= **p)
                {
                    return Err(EngramError::BadBatch(format!(
                        "hash id {h} at flat index {i} of layer {} is outside its head's table (size {p})",
                        lh.layer_id
                    )));
                }
                // the table's rows fit i32 (checked when the layers were built)
                let offsets: Vec<i32> = lh.offsets().into_iter().map(|o| o as i32).collect();
                let global: Vec<i32> = hashed
                    .chunks_exact(ids.heads)
                    .flat_map(|tok| tok.iter().zip(&offsets).map(|(&h, &o)| h + o))
                    .collect();
                Ok((lh.layer_id, global))
            })
            .collect()
    }

    /// [`hash`](Self::hash) then [`upload`](Self::upload).
    pub fn prepare(
        &self,
        ids: &[i64],
        batch: usize,
        seq_len: usize,
        device: &Device,
    ) -> Result<EngramBatch> {
        self.upload(&self.hash(ids, batch, seq_len)?, device)
    }

    /// The residual update of layer `layer_id` for grouped hidden states `[B, T, G, D]`.
    ///
    /// # Shapes
    /// - `hidden`: `[B, T, G, D]`
    /// - output: `[B, T, G, D]` (the update alone)
    pub fn memory(
        &self,
        layer_id: usize,
        hidden: Tensor<4>,
        batch: &EngramBatch,
    ) -> Result<Tensor<4>> {
        let (engram, rows) = self.layer_and_rows(layer_id, batch)?;
        match batch.tables.iter().find(|(l, _)| *l == layer_id) {
            Some((_, table)) => {
                engram.forward_with_table(hidden, table.clone(), rows.clone(), batch.gate)
            }
            None => engram.forward(hidden, rows.clone(), batch.gate),
        }
    }

    /// The Engram layer at `layer_id` and the batch's hash rows for it, or the error naming
    /// which is missing.
    pub(crate) fn layer_and_rows<'a>(
        &self,
        layer_id: usize,
        batch: &'a EngramBatch,
    ) -> Result<(&Engram, &'a Tensor<3, Int>)> {
        let engram = self
            .layer(layer_id)
            .ok_or_else(|| EngramError::UnknownLayer {
                layer: layer_id,
                configured: self.config.layer_ids.clone(),
            })?;
        let rows = batch.rows(layer_id).ok_or_else(|| {
            EngramError::BadBatch(format!("the batch holds no hash rows for layer {layer_id}"))
        })?;
        Ok((engram, rows))
    }

    /// `hidden + engram(hidden)` at configured layers, `hidden` unchanged elsewhere, for
    /// grouped hidden states `[B, T, G, D]` (hyper-connections).
    ///
    /// # Shapes
    /// - `hidden`: `[B, T, G, D]`
    /// - output: `[B, T, G, D]`
    pub fn inject_grouped(
        &self,
        layer_id: usize,
        hidden: Tensor<4>,
        batch: &EngramBatch,
    ) -> Result<Tensor<4>> {
        if self.layer(layer_id).is_none() {
            return Ok(hidden);
        }
        Ok(hidden.clone() + self.memory(layer_id, hidden, batch)?)
    }

    /// `hidden + engram(hidden)` at configured layers, `hidden` unchanged elsewhere, for
    /// ordinary hidden states `[B, T, D]` (needs `hc_mult == 1`).
    ///
    /// # Shapes
    /// - `hidden`: `[B, T, D]`
    /// - output: `[B, T, D]`
    pub fn inject(
        &self,
        layer_id: usize,
        hidden: Tensor<3>,
        batch: &EngramBatch,
    ) -> Result<Tensor<3>> {
        let what = "hidden states (hc_mult > 1 needs inject_grouped)";
        self.add_ungrouped(layer_id, hidden, what, |h| self.memory(layer_id, h, batch))
    }

    /// `hidden + update(hidden as [B, T, 1, D])` at configured layers (needs `hc_mult == 1`;
    /// else a shape error whose `what` points to the grouped form), `hidden` unchanged
    /// elsewhere: what `inject` and `inject_step` share.
    pub(crate) fn add_ungrouped(
        &self,
        layer_id: usize,
        hidden: Tensor<3>,
        what: &'static str,
        update: impl FnOnce(Tensor<4>) -> Result<Tensor<4>>,
    ) -> Result<Tensor<3>> {
        if self.layer(layer_id).is_none() {
            return Ok(hidden);
        }
        let [b, t, d] = hidden.dims();
        if self.config.hc_mult != 1 {
            return Err(EngramError::ShapeMismatch {
                what,
                expected: format!("[B, T, {}, {d}]", self.config.hc_mult),
                got: vec![b, t, d],
            });
        }
        let update = update(hidden.clone().unsqueeze_dim::<4>(2))?;
        Ok(hidden + update.reshape([b, t, d]))
    }
}
