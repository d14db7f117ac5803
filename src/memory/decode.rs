//! [`EngramState`]: what Engram carries from one decoding step to the next, so each new
//! token costs O(1) in Engram instead of a recompute of the whole sequence.
//!
//! Two things of an Engram layer read earlier positions: the n-gram hash of a token reads the
//! N-1 tokens before it, and the short causal conv reads the normalized values of the
//! `(kernel - 1) * N` positions before it. The state holds exactly those (the last N-1 raw
//! token ids per row, and per layer the conv's input history), the way a KV cache holds keys
//! and values. A sequence run in steps through [`EngramLayers::prepare_step`] and
//! [`EngramLayers::memory_step`] gives what one forward of the whole sequence gives.

use burn::tensor::{Device, Tensor};

use super::layers::{EngramBatch, EngramLayers};
use crate::error::{EngramError, Result};
use crate::hashing::HashIds;

/// The decoding state of every Engram layer of one model for a batch of sequences: start
/// with `EngramState::default()`, then prepare each step's batch with
/// [`EngramLayers::prepare_step`] and run it through [`EngramLayers::inject_step`] (or
/// [`EngramLayers::memory_step`]) at every Engram layer.
///
/// Cheap to clone (tensors are shared until written), so a prefix computed once can be
/// continued several ways, as when scoring the choices of one question.
///
/// ```
/// # fn main() -> Result<(), burn_engram::EngramError> {
/// use std::sync::Arc;
/// use burn::tensor::{Device, Tensor};
/// use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, EngramState, InitOptions};
///
/// let device = Device::default();
/// let vocab = Arc::new(CompressedVocab::from_lookup((0..100).collect())?);
/// let cfg = EngramConfig { engram_vocab_size: vec![50, 30], n_embed_per_ngram: 16,
///     n_head_per_ngram: 2, layer_ids: vec![0], pad_id: 0, ..EngramConfig::default() };
/// let memory = EngramLayers::new(&cfg, vocab, 32, InitOptions::default(), &device)?;
/// let hidden = Tensor::<3>::random([1, 5, 32], burn::tensor::Distribution::Default, &device);
///
/// // the whole sequence at once
/// let ids = [5, 6, 7, 8, 9];
/// let whole = memory.inject(0, hidden.clone(), &memory.prepare(&ids, 1, 5, &device)?)?;
///
/// // a prompt of three tokens, then one token at a time
/// let mut state = EngramState::default();
/// let mut parts = Vec::new();
/// for (from, to) in [(0, 3), (3, 4), (4, 5)] {
///     let batch = memory.prepare_step(&mut state, &ids[from..to], 1, to - from, &device)?;
///     let h = hidden.clone().narrow(1, from, to - from);
///     parts.push(memory.inject_step(0, h, &batch, &mut state)?);
/// }
/// let stepped = Tensor::cat(parts, 1);
/// let diff = (whole - stepped).abs().max().into_scalar::<f32>();
/// assert!(diff < 1e-6, "{diff}");
/// assert_eq!(state.len(), 5);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct EngramState {
    /// Per row, the last `N - 1` raw token ids (fewer at the start).
    ids: Vec<Vec<i64>>,
    /// Positions prepared so far.
    len: usize,
    /// Per Engram layer, in configured order.
    layers: Vec<LayerState>,
}

#[derive(Debug, Clone)]
struct LayerState {
    layer_id: usize,
    /// The short conv's normalized input of the positions before `len`, `[B, H, G * D]`.
    conv: Option<Tensor<3>>,
    /// Positions this layer has run.
    len: usize,
}

impl EngramState {
    /// Positions prepared so far (the length of the sequences).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position was prepared yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows (sequences) this state decodes; 0 before the first step.
    pub fn batch(&self) -> usize {
        self.ids.len()
    }
}

impl EngramLayers {
    /// Hashes and uploads the next `seq_len` tokens of each of `batch` sequences that
    /// continue `state` (row-major `[batch, seq_len]` raw ids): each token's n-grams reach
    /// back into the tokens `state` has seen, so the rows equal those of
    /// [`prepare`](Self::prepare) on the whole sequences at these positions. Costs
    /// O(`seq_len`), whatever the length so far.
    ///
    /// The first call on an empty state fixes the batch size. Every Engram layer must run the
    /// returned batch ([`inject_step`](Self::inject_step)) before the next call.
    pub fn prepare_step(
        &self,
        state: &mut EngramState,
        ids: &[i64],
        batch: usize,
        seq_len: usize,
        device: &Device,
    ) -> Result<EngramBatch> {
        if batch == 0 || seq_len == 0 || ids.len() != batch * seq_len {
            return Err(EngramError::BadBatch(format!(
                "{} token ids do not form a [{batch}, {seq_len}] batch of at least one token",
                ids.len()
            )));
        }
        if state.is_empty() {
            state.ids = vec![Vec::new(); batch];
            state.layers = self
                .config()
                .layer_ids
                .iter()
                .map(|&layer_id| LayerState {
                    layer_id,
                    conv: None,
                    len: 0,
                })
                .collect();
        } else if state.batch() != batch {
            return Err(EngramError::BadBatch(format!(
                "the Engram decoding state holds {} sequences, this step {batch}",
                state.batch()
            )));
        }
        if let Some(l) = state.layers.iter().find(|l| l.len != state.len) {
            return Err(EngramError::BadBatch(format!(
                "Engram layer {} ran {} of the {} prepared positions: every Engram layer must \
                 run a step's batch before the next step is prepared",
                l.layer_id, l.len, state.len
            )));
        }
        // every row has seen the same number of tokens, so the same history length
        let past = state.ids[0].len();
        let window = past + seq_len;
        let mut rows = Vec::with_capacity(batch * window);
        for (r, hist) in state.ids.iter().enumerate() {
            rows.extend_from_slice(hist);
            rows.extend_from_slice(&ids[r * seq_len..(r + 1) * seq_len]);
        }
        let hashed = self.hash(&rows, batch, window)?;
        let heads = hashed.heads;
        let sliced = HashIds {
            batch,
            seq_len,
            heads,
            layers: hashed
                .layers
                .into_iter()
                .map(|(layer_id, all)| {
                    let kept = all
                        .chunks_exact(window * heads)
                        .flat_map(|row| row[past * heads..].iter().copied())
                        .collect();
                    (layer_id, kept)
                })
                .collect(),
        };
        let mut out = self.upload(&sliced, device)?;
        out.start = Some(state.len);
        let keep = self.config().max_ngram_size - 1;
        for (r, hist) in state.ids.iter_mut().enumerate() {
            let row = &rows[r * window..(r + 1) * window];
            *hist = row[window.saturating_sub(keep)..].to_vec();
        }
        state.len += seq_len;
        Ok(out)
    }

    /// The residual update of layer `layer_id` for the positions of a decoding step
    /// (`batch` from [`prepare_step`](Self::prepare_step)), reading and advancing the
    /// layer's short-conv history in `state`.
    ///
    /// # Shapes
    /// - `hidden`: `[B, T, G, D]`
    /// - output: `[B, T, G, D]` (the update alone)
    pub fn memory_step(
        &self,
        layer_id: usize,
        hidden: Tensor<4>,
        batch: &EngramBatch,
        state: &mut EngramState,
    ) -> Result<Tensor<4>> {
        let (engram, rows) = self.layer_and_rows(layer_id, batch)?;
        let start = batch.start.ok_or_else(|| {
            EngramError::BadBatch(
                "a decoding step needs a batch from EngramLayers::prepare_step (its n-grams \
                 reach back into the earlier tokens)"
                    .into(),
            )
        })?;
        let layer = state
            .layers
            .iter_mut()
            .find(|l| l.layer_id == layer_id)
            .ok_or_else(|| {
                EngramError::BadBatch(format!(
                    "the Engram decoding state holds no layer {layer_id}: prepare the step with \
                     this model's EngramLayers::prepare_step"
                ))
            })?;
        if layer.len != start {
            return Err(EngramError::BadBatch(format!(
                "layer {layer_id} has run {} positions, but this step starts at position \
                 {start}: a step's batch runs once per layer",
                layer.len
            )));
        }
        let (out, next) =
            engram.forward_step(hidden, rows.clone(), batch.gate, layer.conv.take())?;
        layer.conv = next;
        layer.len = start + batch.seq_len;
        Ok(out)
    }

    /// `hidden + engram(hidden)` at configured layers, `hidden` unchanged elsewhere, for the
    /// positions of a decoding step (needs `hc_mult == 1`); see
    /// [`memory_step`](Self::memory_step).
    ///
    /// # Shapes
    /// - `hidden`: `[B, T, D]`
    /// - output: `[B, T, D]`
    pub fn inject_step(
        &self,
        layer_id: usize,
        hidden: Tensor<3>,
        batch: &EngramBatch,
        state: &mut EngramState,
    ) -> Result<Tensor<3>> {
        let what = "hidden states (hc_mult > 1 needs memory_step)";
        self.add_ungrouped(layer_id, hidden, what, |h| {
            self.memory_step(layer_id, h, batch, state)
        })
    }
}
