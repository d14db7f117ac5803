//! The SwiGLU MLP of a Qwen3 decoder layer.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use super::linear::forward_linear;

/// `down_proj(silu(gate_proj(x)) * up_proj(x))`, no biases.
#[derive(Module, Debug)]
pub struct Qwen3Mlp {
    /// `hidden -> intermediate`.
    pub gate_proj: Linear,
    /// `hidden -> intermediate`.
    pub up_proj: Linear,
    /// `intermediate -> hidden`.
    pub down_proj: Linear,
    /// Dropout on the input of the LoRA path (training only; set by
    /// `host::lora::apply_lora`).
    pub lora_dropout: f64,
}

impl Qwen3Mlp {
    /// Fresh weights `N(0, std)` (transformers' `initializer_range`).
    pub fn new(hidden: usize, intermediate: usize, std: f64, device: &Device) -> Self {
        let lin = |i, o| {
            LinearConfig::new(i, o)
                .with_bias(false)
                .with_initializer(Initializer::Normal { mean: 0.0, std })
                .init(device)
        };
        Self {
            gate_proj: lin(hidden, intermediate),
            up_proj: lin(hidden, intermediate),
            down_proj: lin(intermediate, hidden),
            lora_dropout: 0.0,
        }
    }

    /// `[B, T, hidden] -> [B, T, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let p = self.lora_dropout;
        let hidden = silu(forward_linear(&self.gate_proj, x.clone(), p))
            * forward_linear(&self.up_proj, x, p);
        forward_linear(&self.down_proj, hidden, p)
    }
}
