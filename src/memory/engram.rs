//! [`Engram`]: one layer of conditional memory, from hash ids to the residual update.

use burn::module::{Module, Param};
use burn::nn::{Linear, RmsNorm};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::conv::ShortConv;
use super::embedding::MultiHeadEmbedding;
use super::gate::ContextGate;
use super::init::{LayerDims, LayerWeights};
use super::schedule::GateMode;
use crate::error::{EngramError, Result};
use crate::io::read_f32;

/// RMSNorm epsilon of the gate norms: torch's `nn.RMSNorm` with `eps` unset uses
/// `finfo(float32).eps`.
pub const GATE_NORM_EPS: f64 = f32::EPSILON as f64;
/// RMSNorm epsilon of the short-conv norms.
pub const CONV_NORM_EPS: f64 = 1e-5;

/// One Engram layer: read the memory rows of each token's n-grams, gate them against the
/// hidden state, project, and add a short causal convolution of the result.
///
/// `output = value + short_conv(value)`, `value[g] = gate_g * value_proj(e)`; the host block
/// then does `h = h + output` before its attention.
#[derive(Module, Debug)]
pub struct Engram {
    /// The hashed n-gram tables.
    pub multi_head_embedding: MultiHeadEmbedding,
    /// The context-aware gate.
    pub gate: ContextGate,
    /// `(N-1) * n_embed -> hidden`, shared by all groups.
    pub value_proj: Linear,
    /// The short causal convolution.
    pub short_conv: ShortConv,
}

fn param<const D: usize>(data: &[f32], shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_data(TensorData::new(data.to_vec(), shape), device)
}

fn linear(weight: &[f32], bias: &[f32], d_in: usize, d_out: usize, device: &Device) -> Linear {
    Linear {
        weight: param(weight, [d_in, d_out], device),
        bias: Some(param(bias, [d_out], device)),
    }
}

fn rms_norm(gamma: &[f32], eps: f64, device: &Device) -> RmsNorm {
    RmsNorm {
        gamma: param(gamma, [gamma.len()], device),
        epsilon: eps,
    }
}

impl Engram {
    pub(crate) fn from_weights(
        w: &LayerWeights,
        dims: &LayerDims,
        dilation: usize,
        device: &Device,
    ) -> Self {
        let (e, h) = (dims.engram_hidden, dims.hidden);
        Self {
            multi_head_embedding: MultiHeadEmbedding {
                weight: param(&w.embedding, [dims.table_rows, dims.head_dim], device),
            },
            gate: ContextGate {
                key_projs: (0..dims.groups)
                    .map(|g| linear(&w.key_weight[g], &w.key_bias[g], e, h, device))
                    .collect(),
                norm1: w
                    .norm1
                    .iter()
                    .map(|x| rms_norm(x, GATE_NORM_EPS, device))
                    .collect(),
                norm2: w
                    .norm2
                    .iter()
                    .map(|x| rms_norm(x, GATE_NORM_EPS, device))
                    .collect(),
            },
            value_proj: linear(&w.value_weight, &w.value_bias, e, h, device),
            short_conv: ShortConv {
                norms: w
                    .conv_norms
                    .iter()
                    .map(|x| rms_norm(x, CONV_NORM_EPS, device))
                    .collect(),
                weight: param(&w.conv_weight, [dims.channels(), dims.kernel], device),
                dilation,
            },
        }
    }

    pub(crate) fn dims(&self) -> LayerDims {
        let [e, h] = self.value_proj.weight.dims();
        let [channels, kernel] = self.short_conv.weight.dims();
        LayerDims {
            table_rows: self.multi_head_embedding.rows(),
            head_dim: self.multi_head_embedding.head_dim(),
            engram_hidden: e,
            hidden: h,
            groups: channels / h,
            kernel,
        }
    }

    pub(crate) fn to_weights(&self) -> Result<LayerWeights> {
        let lin_w = |l: &Linear| read_f32("linear weight", l.weight.val());
        let lin_b = |l: &Linear| match &l.bias {
            Some(b) => read_f32("linear bias", b.val()),
            None => Ok(vec![0.0; l.weight.dims()[1]]),
        };
        let norm = |n: &RmsNorm| read_f32("rms norm", n.gamma.val());
        Ok(LayerWeights {
            embedding: read_f32("embedding", self.multi_head_embedding.weight.val())?,
            key_weight: self
                .gate
                .key_projs
                .iter()
                .map(lin_w)
                .collect::<Result<_>>()?,
            key_bias: self
                .gate
                .key_projs
                .iter()
                .map(lin_b)
                .collect::<Result<_>>()?,
            norm1: self.gate.norm1.iter().map(norm).collect::<Result<_>>()?,
            norm2: self.gate.norm2.iter().map(norm).collect::<Result<_>>()?,
            value_weight: lin_w(&self.value_proj)?,
            value_bias: lin_b(&self.value_proj)?,
            conv_norms: self
                .short_conv
                .norms
                .iter()
                .map(norm)
                .collect::<Result<_>>()?,
            conv_weight: read_f32("short conv", self.short_conv.weight.val())?,
        })
    }

    /// Model width D.
    pub fn hidden_size(&self) -> usize {
        self.value_proj.weight.dims()[1]
    }

    /// Hyper-connection groups G.
    pub fn groups(&self) -> usize {
        self.dims().groups
    }

    /// Hash heads K = `(N-1) * H` read per token.
    pub fn heads(&self) -> usize {
        let d = self.dims();
        d.engram_hidden / d.head_dim
    }

    /// The memory read `e: [B, T, (N-1) * n_embed]` for global row indices `[B, T, K]`.
    ///
    /// # Shapes
    /// - `rows`: `[B, T, K]`
    /// - output: `[B, T, (N-1) * n_embed_per_ngram]`
    pub fn read_memory(&self, rows: Tensor<3, Int>) -> Tensor<3> {
        self.multi_head_embedding.forward(rows)
    }

    /// The layer's output (the residual update) for `hidden: [B, T, G, D]` and global row
    /// indices `rows: [B, T, K]` (see [`crate::EngramLayers::upload`]).
    ///
    /// Computed in the dtype of the layer's own parameters (f32 master weights): hidden states
    /// of another dtype (a bf16 backbone) are cast in, and the update is cast back to their
    /// dtype, so gradients flow through both casts into the parameters.
    ///
    /// # Shapes
    /// - `hidden`: `[B, T, G, D]`
    /// - `rows`: `[B, T, K]`, K = (N-1) * H
    /// - output: `[B, T, G, D]` (the update, in the dtype of `hidden`)
    pub fn forward(
        &self,
        hidden: Tensor<4>,
        rows: Tensor<3, Int>,
        mode: GateMode,
    ) -> Result<Tensor<4>> {
        self.check_shapes(hidden.dims(), rows.dims())?;
        Ok(self.forward_memory(hidden, self.read_memory(rows), mode))
    }

    /// [`forward`](Self::forward) reading the memory from `table` (`[U, head_dim]`, e.g. a
    /// sub-table of this layer's touched rows, see [`crate::memory::SparseTables`]) at local
    /// row indices `rows: [B, T, K]` instead of from the layer's own table.
    ///
    /// # Shapes
    /// - `hidden`: `[B, T, G, D]`
    /// - `table`: `[U, head_dim]`
    /// - `rows`: `[B, T, K]` indices into `table`
    /// - output: `[B, T, G, D]`
    pub fn forward_with_table(
        &self,
        hidden: Tensor<4>,
        table: Tensor<2>,
        rows: Tensor<3, Int>,
        mode: GateMode,
    ) -> Result<Tensor<4>> {
        let [b, t, g, d] = hidden.dims();
        self.check_shapes([b, t, g, d], rows.dims())?;
        let [_, td] = table.dims();
        if td != self.multi_head_embedding.head_dim() {
            return Err(EngramError::ShapeMismatch {
                what: "Engram sub-table",
                expected: format!("[U, {}]", self.multi_head_embedding.head_dim()),
                got: table.dims().to_vec(),
            });
        }
        let memory = super::gather::read_rows(table, rows);
        Ok(self.forward_memory(hidden, memory, mode))
    }

    /// [`forward`](Self::forward) for new positions that continue earlier ones (incremental
    /// decoding): `conv_history` is the short conv's input of the positions before these
    /// (see [`ShortConv::forward_step`]; `None` at the start of a sequence). Returns the
    /// update and the history the next positions continue from. The hash rows must be those
    /// of the whole sequence at these positions (see [`crate::EngramLayers::prepare_step`]).
    ///
    /// # Shapes
    /// - `hidden`: `[B, T, G, D]`
    /// - `rows`: `[B, T, K]`
    /// - `conv_history`: `[B, (kernel - 1) * N, G * D]`
    /// - output: `[B, T, G, D]` and the next `conv_history`
    pub fn forward_step(
        &self,
        hidden: Tensor<4>,
        rows: Tensor<3, Int>,
        mode: GateMode,
        conv_history: Option<Tensor<3>>,
    ) -> Result<(Tensor<4>, Option<Tensor<3>>)> {
        self.check_shapes(hidden.dims(), rows.dims())?;
        let [b, _, g, d] = hidden.dims();
        let want = [b, self.short_conv.history_len(), g * d];
        if let Some(h) = &conv_history
            && h.dims() != want
        {
            return Err(EngramError::ShapeMismatch {
                what: "Engram short-conv history",
                expected: format!("{want:?}"),
                got: h.dims().to_vec(),
            });
        }
        Ok(self.forward_memory_step(hidden, self.read_memory(rows), mode, conv_history))
    }

    fn forward_memory(&self, hidden: Tensor<4>, memory: Tensor<3>, mode: GateMode) -> Tensor<4> {
        self.forward_memory_step(hidden, memory, mode, None).0
    }

    fn forward_memory_step(
        &self,
        hidden: Tensor<4>,
        memory: Tensor<3>,
        mode: GateMode,
        conv_history: Option<Tensor<3>>,
    ) -> (Tensor<4>, Option<Tensor<3>>) {
        let hidden_dtype = hidden.dtype();
        let hidden = hidden.cast(self.multi_head_embedding.weight.dtype());
        let gates = self.gate.forward(memory.clone(), hidden, mode); // [B, T, G, 1]
        let value = self.value_proj.forward(memory).unsqueeze_dim::<4>(2); // [B, T, 1, D]
        let value = gates * value; // [B, T, G, D]
        let (conv, next) = self.short_conv.forward_step(value.clone(), conv_history);
        ((value + conv).cast(hidden_dtype), next)
    }

    fn check_shapes(&self, [b, t, g, d]: [usize; 4], [rb, rt, rk]: [usize; 3]) -> Result<()> {
        if g != self.groups() || d != self.hidden_size() || b == 0 || t == 0 {
            return Err(EngramError::ShapeMismatch {
                what: "Engram hidden states",
                expected: format!(
                    "[B >= 1, T >= 1, {}, {}]",
                    self.groups(),
                    self.hidden_size()
                ),
                got: vec![b, t, g, d],
            });
        }
        if rb != b || rt != t || rk != self.heads() {
            return Err(EngramError::ShapeMismatch {
                what: "Engram hash rows",
                expected: format!("[{b}, {t}, {}]", self.heads()),
                got: vec![rb, rt, rk],
            });
        }
        Ok(())
    }
}
