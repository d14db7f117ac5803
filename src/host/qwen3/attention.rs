//! Qwen3 self-attention: per-head RMSNorm on q and k before rotate_half RoPE, grouped-query
//! attention (K/V heads repeated), causal + padding mask, optional KV cache.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, DType, Device, Tensor};

use super::config::Qwen3Config;
use super::linear::forward_linear;
use super::rope::Rope;
use crate::ops::rms_norm;

/// Keys and values of the positions seen so far, for one layer: `[B, kv_heads, S, head_dim]`.
#[derive(Debug, Clone, Default)]
pub struct LayerKvCache {
    kv: Option<(Tensor<4>, Tensor<4>)>,
}

/// A Linear whose bias (if any) starts at zero, as transformers' `_init_weights` sets it
/// (Burn's default draws biases like the weight).
pub(crate) fn zero_bias(mut linear: Linear) -> Linear {
    linear.bias = linear.bias.map(|b| b.map(|t| t.zeros_like()));
    linear
}

/// Grouped-query self-attention of one decoder layer.
#[derive(Module, Debug)]
pub struct Qwen3Attention {
    /// `hidden -> heads * head_dim`.
    pub q_proj: Linear,
    /// `hidden -> kv_heads * head_dim`.
    pub k_proj: Linear,
    /// `hidden -> kv_heads * head_dim`.
    pub v_proj: Linear,
    /// `heads * head_dim -> hidden`.
    pub o_proj: Linear,
    /// RMSNorm over each query head.
    pub q_norm: RmsNorm,
    /// RMSNorm over each key head.
    pub k_norm: RmsNorm,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Dropout on the input of the LoRA path (training only; set by
    /// `host::lora::apply_lora`).
    pub lora_dropout: f64,
}

impl Qwen3Attention {
    /// Fresh weights as transformers initializes them: projections `N(0,
    /// initializer_range)`, biases 0, norms 1.
    pub fn new(cfg: &Qwen3Config, device: &Device) -> Self {
        let lin = |i, o| {
            let linear = LinearConfig::new(i, o)
                .with_bias(cfg.attention_bias)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: cfg.initializer_range,
                })
                .init(device);
            zero_bias(linear)
        };
        let norm = || {
            RmsNormConfig::new(cfg.head_dim())
                .with_epsilon(cfg.rms_norm_eps)
                .init(device)
        };
        Self {
            q_proj: lin(cfg.hidden_size, cfg.q_dim()),
            k_proj: lin(cfg.hidden_size, cfg.kv_dim()),
            v_proj: lin(cfg.hidden_size, cfg.kv_dim()),
            o_proj: lin(cfg.q_dim(), cfg.hidden_size),
            q_norm: norm(),
            k_norm: norm(),
            n_heads: cfg.num_attention_heads,
            lora_dropout: 0.0,
            n_kv_heads: cfg.num_key_value_heads,
            head_dim: cfg.head_dim(),
        }
    }

    /// `x: [B, T, hidden]` at positions `start..start + T`; `mask: [B, 1, T, S]` (true =
    /// blocked) over all S = cached + T key positions.
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &Rope,
        start: usize,
        mask: &Tensor<4, Bool>,
        cache: Option<&mut LayerKvCache>,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, kvh, d) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let split = |y: Tensor<3>, heads: usize| y.reshape([b, t, heads, d]);
        let q = rms_norm(
            &self.q_norm,
            split(
                forward_linear(&self.q_proj, x.clone(), self.lora_dropout),
                h,
            ),
        )
        .swap_dims(1, 2);
        let k = rms_norm(
            &self.k_norm,
            split(
                forward_linear(&self.k_proj, x.clone(), self.lora_dropout),
                kvh,
            ),
        )
        .swap_dims(1, 2);
        let v = split(forward_linear(&self.v_proj, x, self.lora_dropout), kvh).swap_dims(1, 2);
        let q = rope.apply(q, start);
        let mut k = rope.apply(k, start);
        let mut v = v;
        if let Some(cache) = cache {
            if let Some((pk, pv)) = cache.kv.take() {
                k = Tensor::cat(vec![pk, k], 2);
                v = Tensor::cat(vec![pv, v], 2);
            }
            cache.kv = Some((k.clone(), v.clone()));
        }
        let s = k.dims()[2];
        let rep = h / kvh;
        let repeat = |y: Tensor<4>| {
            if rep == 1 {
                y
            } else {
                y.unsqueeze_dim::<5>(2)
                    .expand([b, kvh, rep, s, d])
                    .reshape([b, h, s, d])
            }
        };
        let (k, v) = (repeat(k), repeat(v));
        let dtype = q.dtype();
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar((d as f64).sqrt())
            .cast(DType::F32);
        let scores = scores.mask_fill(mask.clone().expand([b, h, t, s]), f32::MIN);
        let probs = softmax(scores, 3).cast(dtype);
        let out = probs.matmul(v).swap_dims(1, 2).reshape([b, t, h * d]);
        forward_linear(&self.o_proj, out, self.lora_dropout)
    }
}
