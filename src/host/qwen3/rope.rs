//! Rotary position embedding in the `rotate_half` form Qwen3 uses (first half / second half
//! of each head), with cos/sin tables computed in f32 the way transformers computes them.

use burn::tensor::{Device, Tensor, TensorData};

/// Precomputed cos/sin tables, `[max_positions, head_dim]`.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor<2>,
    sin: Tensor<2>,
}

impl Rope {
    /// Tables for `max_positions` positions: `inv_freq[i] = 1 / theta^(2i / head_dim)`,
    /// angle = position * inv_freq, repeated for both halves.
    pub fn new(head_dim: usize, theta: f64, max_positions: usize, device: &Device) -> Self {
        let half = head_dim / 2;
        let base = theta as f32;
        let inv_freq: Vec<f32> = (0..half)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        let mut cos = Vec::with_capacity(max_positions * head_dim);
        let mut sin = Vec::with_capacity(max_positions * head_dim);
        for p in 0..max_positions {
            for _half in 0..2 {
                for f in &inv_freq {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [max_positions, head_dim]), device),
            sin: Tensor::from_data(TensorData::new(sin, [max_positions, head_dim]), device),
        }
    }

    /// Positions covered.
    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Rotates `x: [B, H, T, head_dim]` whose first position is `start`.
    pub fn apply(&self, x: Tensor<4>, start: usize) -> Tensor<4> {
        let [_, _, t, d] = x.dims();
        let cos = self.cos.clone().narrow(0, start, t).reshape([1, 1, t, d]);
        let sin = self.sin.clone().narrow(0, start, t).reshape([1, 1, t, d]);
        let half = d / 2;
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.clone().narrow(3, half, half);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.cast(rotated.dtype()) + rotated.clone() * sin.cast(rotated.dtype())
    }
}
