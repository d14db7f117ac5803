//! [`ShortConv`]: a short causal depthwise convolution over the gated memory value.

use burn::module::{Module, Param};
use burn::nn::RmsNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

use super::conv_silu::conv_silu;
use crate::ops::rms_norm;

/// RMSNorm per group (eps 1e-5), the groups side by side as `G * hidden` channels, a
/// depthwise causal convolution of `kernel` taps spaced `dilation` (= N) apart, then SiLU.
///
/// Computed as a sum of shifted, per-channel scaled copies of the left-padded input, which
/// is exactly torch's `Conv1d(groups=channels, padding=(kernel-1)*dilation)` truncated to T,
/// needs no layout change and runs on every backend; on the flex CPU backend the norm and
/// the convolution + SiLU run as fused ops of their own (forward and backward). The weight
/// is stored `[channels, kernel]`; checkpoints use torch's `[channels, 1, kernel]`.
#[derive(Module, Debug)]
pub struct ShortConv {
    /// One RMSNorm per hyper-connection group.
    pub norms: Vec<RmsNorm>,
    /// Depthwise taps, `[channels, kernel]`; tap `kernel - 1` multiplies the current token.
    pub weight: Param<Tensor<2>>,
    /// Spacing of the taps (the reference uses N, the longest n-gram).
    pub dilation: usize,
}

impl ShortConv {
    /// `x: [B, T, G, D]` -> `[B, T, G, D]`.
    ///
    /// # Shapes
    /// - `x`: `[B, T, G, D]` (G hyper-connection groups)
    /// - output: `[B, T, G, D]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_step(x, None).0
    }

    /// Positions of normalized input the convolution reads before the current one:
    /// `(kernel - 1) * dilation`.
    pub fn history_len(&self) -> usize {
        (self.weight.dims()[1] - 1) * self.dilation
    }

    /// [`forward`](Self::forward) for new positions that continue earlier ones: `history`
    /// holds the normalized input of the [`history_len`](Self::history_len) positions before
    /// `x` (`None`: there are none, as at the start of a sequence, which reads zeros). Returns
    /// the output and the history the next positions continue from. Running a sequence in
    /// pieces this way gives what one [`forward`](Self::forward) of the whole gives.
    ///
    /// # Shapes
    /// - `x`: `[B, T, G, D]`
    /// - `history`: `[B, history_len, G * D]`
    /// - output: `[B, T, G, D]` and `[B, history_len, G * D]` (`None` when `history_len` is 0)
    pub fn forward_step(
        &self,
        x: Tensor<4>,
        history: Option<Tensor<3>>,
    ) -> (Tensor<4>, Option<Tensor<3>>) {
        let [b, t, g, d] = x.dims();
        let channels = self.weight.dims()[0];
        let mut normed: Vec<Tensor<4>> = (0..g)
            .map(|i| rms_norm(&self.norms[i], x.clone().narrow(2, i, 1)))
            .collect();
        let normed = match normed.len() {
            1 => normed.remove(0),
            _ => Tensor::cat(normed, 2),
        }
        .reshape([b, t, channels]);
        let pad = self.history_len();
        let weight = self.weight.val();
        if history.is_none()
            && let Some(out) = conv_silu(&normed, &weight, self.dilation)
        {
            // the normalized input of the last `pad` positions, zeros before the start
            let next = (pad > 0).then(|| match t.checked_sub(pad) {
                Some(from) => normed.clone().narrow(1, from, pad),
                None => {
                    let zeros = Tensor::zeros([b, pad - t, channels], &normed.device());
                    Tensor::cat(vec![zeros, normed.clone()], 1)
                }
            });
            return (out.reshape([b, t, g, d]), next);
        }
        let (out, next) = conv_silu_ops(normed, history, weight, self.dilation);
        (out.reshape([b, t, g, d]), next)
    }
}

/// The convolution + SiLU of [`ShortConv::forward_step`] in Burn ops (every backend):
/// `normed: [B, T, C]` after `history: [B, pad, C]` (zeros if `None`), taps `[C, kernel]`.
/// Returns `[B, T, C]` and the next history.
pub(super) fn conv_silu_ops(
    normed: Tensor<3>,
    history: Option<Tensor<3>>,
    weight: Tensor<2>,
    dilation: usize,
) -> (Tensor<3>, Option<Tensor<3>>) {
    let [b, t, channels] = normed.dims();
    let kernel = weight.dims()[1];
    let pad = (kernel - 1) * dilation;
    let padded = if pad > 0 {
        let left = history.unwrap_or_else(|| Tensor::zeros([b, pad, channels], &normed.device()));
        Tensor::cat(vec![left, normed], 1)
    } else {
        normed
    };
    let mut out: Option<Tensor<3>> = None;
    for k in 0..kernel {
        let tap = weight.clone().narrow(1, k, 1).reshape([1, 1, channels]);
        let term = padded.clone().narrow(1, k * dilation, t) * tap;
        out = Some(match out {
            Some(acc) => acc + term,
            None => term,
        });
    }
    let next = (pad > 0).then(|| padded.narrow(1, t, pad));
    (silu(out.expect("kernel >= 1")), next)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::module::Param;
    use burn::nn::RmsNormConfig;
    use burn::tensor::{Device, Distribution, Tensor};

    use super::{ShortConv, conv_silu_ops};

    /// The fused path of `forward_step` from the start of a sequence returns the Burn ops'
    /// output (within rounding) and exactly their next history, for sequences shorter and
    /// longer than the taps' reach, one group and two.
    #[test]
    fn fused_step_equals_the_burn_ops_with_its_history() {
        let device = Device::flex();
        let normal = Distribution::Normal(0.0, 1.0);
        for (g, t) in [(1, 3), (1, 20), (2, 4), (2, 11)] {
            let (b, d, kernel, dilation) = (2, 6, 4, 3);
            let conv = ShortConv {
                norms: (0..g)
                    .map(|_| RmsNormConfig::new(d).with_epsilon(1e-5).init(&device))
                    .collect(),
                weight: Param::from_tensor(Tensor::random([g * d, kernel], normal, &device)),
                dilation,
            };
            let x = Tensor::<4>::random([b, t, g, d], normal, &device);
            let (out, next) = conv.forward_step(x.clone(), None);

            let normed: Vec<Tensor<4>> = (0..g)
                .map(|i| conv.norms[i].forward(x.clone().narrow(2, i, 1)))
                .collect();
            let normed = Tensor::cat(normed, 2).reshape([b, t, g * d]);
            let (want, want_next) = conv_silu_ops(normed, None, conv.weight.val(), dilation);

            let v = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
            for (a, w) in v(out.reshape([b, t, g * d])).iter().zip(v(want)) {
                assert!(
                    (a - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "G {g}, T {t}: {a} vs {w}"
                );
            }
            let (next, want_next) = (next.unwrap(), want_next.unwrap());
            assert_eq!(next.dims(), [b, conv.history_len(), g * d]);
            for (a, w) in v(next).iter().zip(v(want_next)) {
                assert!(
                    (a - w).abs() <= 1e-6 * w.abs().max(1.0),
                    "history, G {g}, T {t}"
                );
            }
        }
    }
}
