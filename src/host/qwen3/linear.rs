//! A Qwen3 projection: Burn's `Linear`, or, when LoRA is applied, PEFT's factored form.

use burn::nn::Linear;
use burn::tensor::{Distribution, Tensor, module};

/// `linear(x)` in the dtype of `x`, for a projection that may carry a LoRA adapter.
///
/// Without an adapter this is [`Linear::forward`]. With one it is PEFT's factored form
/// `x W + scale * B(A(dropout(x))) (+ bias)`, with the factors cast to the dtype of `x` (as
/// PyTorch's autocast does for f32 LoRA weights in a bf16 run); the casts pass gradients back
/// to the f32 factors. `dropout` is PEFT's `lora_dropout` on the adapter's input: it acts only
/// while training (on an autodiff device with factors that require gradients; never on a
/// `valid()` model), zeroing each input
/// element with probability `dropout` and scaling the kept ones by `1 / (1 - dropout)`; the
/// base path always sees the whole `x`. Burn's own forward would materialize
/// `W + scale * A B` in the factors' dtype: with a bf16 backbone that is an f32 weight meeting
/// bf16 activations (Burn does not mix dtypes in a matmul), and casting it back to bf16 would
/// round away the small early updates. The factored form also never builds the full-size
/// weight or its gradient.
///
/// # Shapes
/// - `x`: `[..., d_in]`
/// - output: `[..., d_out]`
pub fn forward_linear<const D: usize>(linear: &Linear, x: Tensor<D>, dropout: f64) -> Tensor<D> {
    let Some(adapter) = linear.weight.adapter() else {
        return linear.forward(x);
    };
    let dtype = x.dtype();
    let a = adapter.a.val().cast(dtype);
    let b = adapter.b.val().cast(dtype);
    let bias = linear.bias.as_ref().map(|p| p.val());
    // Training means: on an autodiff device with trainable factors (`valid()` turns the
    // factors' gradients off; a frozen adapter is not being trained either).
    let training = dropout > 0.0 && x.device().is_autodiff() && adapter.a.val().is_require_grad();
    let lora_in = if training {
        let keep = 1.0 - dropout;
        let mask = x.random_like(Distribution::Bernoulli(keep));
        (x.clone() * mask).div_scalar(keep)
    } else {
        x.clone()
    };
    let delta = module::linear(module::linear(lora_in, a, None), b, None);
    module::linear(x, linear.weight.base(), bias) + delta.mul_scalar(adapter.scale)
}
