//! [`ContextGate`]: how much of the memory read each position takes, decided by comparing a
//! key projected from the memory with the hidden state (one gate per hyper-connection group).

use burn::module::Module;
use burn::nn::{Linear, RmsNorm};
use burn::tensor::Tensor;
use burn::tensor::activation::sigmoid;

use super::schedule::GateMode;
use crate::ops::rms_norm;

/// Per group `g`: `k = norm1_g(key_proj_g(e))`, `q = norm2_g(h_g)`,
/// `s = sum(k * q) / sqrt(hidden)`, `gate_g = sigmoid(sign(s) * sqrt(max(|s|, 1e-6)))`.
/// The norms use `f32::EPSILON` as torch's `nn.RMSNorm` does with `eps` unset.
#[derive(Module, Debug)]
pub struct ContextGate {
    /// `key_proj_g`: `(N-1) * n_embed -> hidden`, with bias.
    pub key_projs: Vec<Linear>,
    /// RMSNorm of the keys.
    pub norm1: Vec<RmsNorm>,
    /// RMSNorm of the queries (the hidden state).
    pub norm2: Vec<RmsNorm>,
}

impl ContextGate {
    /// `memory: [B, T, E]`, `hidden: [B, T, G, D]` -> gates `[B, T, G, 1]`.
    ///
    /// # Shapes
    /// - `memory`: `[B, T, E]`, E = (N-1) * n_embed_per_ngram
    /// - `hidden`: `[B, T, G, D]`
    /// - output: `[B, T, G, 1]` gates in [0, 1]
    pub fn forward(&self, memory: Tensor<3>, hidden: Tensor<4>, mode: GateMode) -> Tensor<4> {
        let [b, t, g, d] = hidden.dims();
        if mode == GateMode::ForcedOpen {
            return Tensor::ones([b, t, g, 1], &hidden.device());
        }
        let scale = (d as f64).sqrt();
        let gates = (0..g)
            .map(|i| {
                let key = rms_norm(&self.norm1[i], self.key_projs[i].forward(memory.clone()));
                let query = rms_norm(
                    &self.norm2[i],
                    hidden.clone().narrow(2, i, 1).reshape([b, t, d]),
                );
                let s = (key * query).sum_dim(2).div_scalar(scale); // [B, T, 1]
                let s = s.clone().abs().clamp_min(1e-6).sqrt() * s.sign();
                sigmoid(s)
            })
            .collect::<Vec<_>>();
        let gates: Tensor<4> = Tensor::stack(gates, 2); // [B, T, G, 1]
        match mode {
            GateMode::AtLeast(min) => gates.clamp_min(min),
            _ => gates,
        }
    }
}
