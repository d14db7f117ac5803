//! The SwiGLU MLP of a Qwen3 decoder layer.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use crate::lora::forward_linear;

/// `down_proj(silu(gate_proj(x)) * up_proj(x))`, no biases.
#[derive(Module, Debug)]
pub struct Qwen3Mlp {
    /// `hidden -> intermediate`.
    pub gate_proj: Linear,
    /// `hidden -> intermediate`.
    pub up_proj: Linear,
    /// `intermediate -> hidden`.
    pub down_proj: Linear,
}

impl Qwen3Mlp {
    /// Fresh (lazily initialized) weights.
    pub fn new(hidden: usize, intermediate: usize, device: &Device) -> Self {
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self {
            gate_proj: lin(hidden, intermediate),
            up_proj: lin(hidden, intermediate),
            down_proj: lin(intermediate, hidden),
        }
    }

    /// `[B, T, hidden] -> [B, T, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let hidden =
            silu(forward_linear(&self.gate_proj, x.clone())) * forward_linear(&self.up_proj, x);
        forward_linear(&self.down_proj, hidden)
    }
}
