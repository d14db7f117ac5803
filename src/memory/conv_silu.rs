//! The short conv's depthwise causal convolution and SiLU as one op. Burn runs them as
//! a zero pad, `kernel` shifted products, `kernel - 1` sums and the SiLU's sigmoid and
//! product (about a dozen passes over `[B, T, C]` forward and more backward); on the flex
//! CPU backend this is one pass forward, two backward, with a backward of its own under
//! autodiff. The forward adds the taps in the Burn ops' order and uses the same sigmoid as
//! Burn's flex backend; the backward writes the SiLU derivative as one expression, so
//! gradients agree with [`ShortConv`](super::ShortConv)'s Burn ops within float rounding.

use burn::tensor::Tensor;

/// `silu(sum_k x[t - (kernel - 1 - k) * dilation] * weight[:, k])` with zeros before the
/// sequence start, fused on the flex backend; `None` where it does not apply (other
/// backends, dtypes, strided inputs).
///
/// # Shapes
/// - `x`: `[B, T, C]`, `weight`: `[C, kernel]`
/// - output: `[B * T * C]`
pub(super) fn conv_silu(x: &Tensor<3>, weight: &Tensor<2>, dilation: usize) -> Option<Tensor<1>> {
    #[cfg(feature = "flex")]
    return flex::conv_silu(x, weight, dilation);
    #[cfg(not(feature = "flex"))]
    {
        let _ = (x, weight, dilation);
        None
    }
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Tensor, TensorData};
    use rayon::prelude::*;

    use crate::ops::flex::{f32s, sum_partials};

    /// Positions (rows of C channels) per parallel task.
    const CHUNK_ROWS: usize = 64;

    /// `[B, T, C]` and the taps: what the kernels need to know of the shapes.
    #[derive(Debug, Clone, Copy)]
    struct Dims {
        t: usize,
        c: usize,
        kernel: usize,
        dilation: usize,
    }

    impl Dims {
        /// The row `t - (kernel - 1 - k) * dilation` of the sequence of row `r`, if it exists.
        #[inline(always)]
        fn back(&self, r: usize, k: usize) -> Option<usize> {
            let shift = (self.kernel - 1 - k) * self.dilation;
            (r % self.t >= shift).then(|| r - shift)
        }

        /// The row `t + (kernel - 1 - k) * dilation` of the sequence of row `r`, if it exists.
        #[inline(always)]
        fn ahead(&self, r: usize, k: usize) -> Option<usize> {
            let shift = (self.kernel - 1 - k) * self.dilation;
            (r % self.t + shift < self.t).then(|| r + shift)
        }
    }

    pub(super) fn conv_silu(
        x: &Tensor<3>,
        weight: &Tensor<2>,
        dilation: usize,
    ) -> Option<Tensor<1>> {
        let [_, t, c] = x.dims();
        let [wc, kernel] = weight.dims();
        if wc != c || kernel == 0 || t == 0 || c == 0 {
            return None;
        }
        let dims = Dims {
            t,
            c,
            kernel,
            dilation,
        };
        if let (Ok(x), Ok(w)) = (
            x.clone().try_into_primitive::<Flex>(),
            weight.clone().try_into_primitive::<Flex>(),
        ) {
            let (out, _) = forward(f32s(&x)?, f32s(&w)?, dims, false);
            return Some(Tensor::from_primitive::<Flex>(flat(out)));
        }
        let x = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let w = weight.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let (xs, ws) = (f32s(x.primitive())?, f32s(w.primitive())?);
        let prep = ConvSilu
            .prepare::<NoCheckpointing>([x.node(), w.node()])
            .compute_bound()
            .stateful();
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let (out, pre) = forward(xs, ws, dims, true);
                let state = (x.primitive().clone(), w.primitive().clone(), pre, dims);
                prep.finish(state, flat(out))
            }
            OpsKind::UnTracked(prep) => prep.finish(flat(forward(xs, ws, dims, false).0)),
        };
        Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
    }

    fn flat(v: Vec<f32>) -> FlexTensor {
        let n = v.len();
        FlexTensor::from_data(TensorData::new(v, [n]))
    }

    /// As Burn's flex sigmoid.
    #[inline(always)]
    fn sigmoid(x: f32) -> f32 {
        if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        }
    }

    /// The output and (if `keep`) the pre-activation convolution.
    fn forward(x: &[f32], w: &[f32], dims: Dims, keep: bool) -> (Vec<f32>, Vec<f32>) {
        let c = dims.c;
        let taps = by_tap(w, dims);
        let zeros = vec![0.0f32; c];
        let mut out = vec![0.0f32; x.len()];
        let mut pre = vec![0.0f32; if keep { x.len() } else { 0 }];
        let run = |first: usize, out: &mut [f32], mut pre: Option<&mut [f32]>| {
            let mut acc = vec![0.0f32; c];
            for (j, o) in out.chunks_exact_mut(c).enumerate() {
                let r = first + j;
                // as the Burn ops: acc = term_0, then acc + term_k; a padded tap reads zeros
                for (k, tap) in taps.chunks_exact(c).enumerate() {
                    let src = dims
                        .back(r, k)
                        .map_or(&zeros[..], |s| &x[s * c..(s + 1) * c]);
                    if k == 0 {
                        for ((a, v), w) in acc.iter_mut().zip(src).zip(tap) {
                            *a = v * w;
                        }
                    } else {
                        for ((a, v), w) in acc.iter_mut().zip(src).zip(tap) {
                            *a += v * w;
                        }
                    }
                }
                for (o, &y) in o.iter_mut().zip(&acc) {
                    *o = y * sigmoid(y);
                }
                if let Some(p) = pre.as_deref_mut() {
                    p[j * c..(j + 1) * c].copy_from_slice(&acc);
                }
            }
        };
        if keep {
            out.par_chunks_mut(CHUNK_ROWS * c)
                .zip(pre.par_chunks_mut(CHUNK_ROWS * c))
                .enumerate()
                .for_each(|(i, (o, p))| run(i * CHUNK_ROWS, o, Some(p)));
        } else {
            out.par_chunks_mut(CHUNK_ROWS * c)
                .enumerate()
                .for_each(|(i, o)| run(i * CHUNK_ROWS, o, None));
        }
        (out, pre)
    }

    /// The taps `[C, kernel]` laid out `[kernel, C]`: tap `k` of every channel side by side.
    fn by_tap(w: &[f32], dims: Dims) -> Vec<f32> {
        let (c, kernel) = (dims.c, dims.kernel);
        (0..kernel * c)
            .map(|i| w[(i % c) * kernel + i / c])
            .collect()
    }

    /// The op under autodiff; its state is the input, the taps, the pre-activation and the
    /// shapes.
    #[derive(Debug)]
    struct ConvSilu;

    impl Backward<Flex, 2> for ConvSilu {
        type State = (FlexTensor, FlexTensor, Vec<f32>, Dims);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_w] = ops.parents;
            let dout = grads.consume::<Flex>(&ops.node).to_contiguous();
            let (x, w, pre, dims) = ops.state;
            let x_shape = x.layout().shape().clone();
            let (dx, dw) = backward(
                f32s(&x).expect("checked in the forward"),
                f32s(&w).expect("checked in the forward"),
                &pre,
                f32s(&dout).expect("an f32 gradient"),
                dims,
            );
            if let Some(node) = node_x {
                grads
                    .register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dx, x_shape)));
            }
            if let Some(node) = node_w {
                let shape = [dims.c, dims.kernel];
                grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dw, shape)));
            }
        }
    }

    /// With `dy = dout * s * (1 + y * (1 - s))` (`s = sigmoid(y)`, `y` the pre-activation):
    /// `dx[t] = sum_k w[:, k] * dy[t + (kernel - 1 - k) * dilation]` and `dw[:, k] = sum over
    /// positions of x[t - (kernel - 1 - k) * dilation] * dy[t]` (summed per fixed chunk of
    /// positions, then across chunks in order: the same bits whatever the thread count).
    fn backward(
        x: &[f32],
        w: &[f32],
        pre: &[f32],
        dout: &[f32],
        dims: Dims,
    ) -> (Vec<f32>, Vec<f32>) {
        let Dims { c, kernel, .. } = dims;
        assert_eq!(dout.len(), x.len(), "one output gradient per input");
        let mut dy = vec![0.0f32; x.len()];
        dy.par_chunks_mut(CHUNK_ROWS * c)
            .zip(pre.par_chunks(CHUNK_ROWS * c))
            .zip(dout.par_chunks(CHUNK_ROWS * c))
            .for_each(|((dy, y), g)| {
                for ((d, &y), &g) in dy.iter_mut().zip(y).zip(g) {
                    let s = sigmoid(y);
                    *d = g * (s * (1.0 + y * (1.0 - s)));
                }
            });
        let taps = by_tap(w, dims);
        let mut dx = vec![0.0f32; x.len()];
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(CHUNK_ROWS * c)
            .enumerate()
            .map(|(i, dx)| {
                // the taps' gradient of this chunk, `[kernel, C]`
                let mut dw = vec![0.0f32; kernel * c];
                for (j, dxr) in dx.chunks_exact_mut(c).enumerate() {
                    let r = i * CHUNK_ROWS + j;
                    let dyr = &dy[r * c..(r + 1) * c];
                    for (k, (tap, dtap)) in
                        taps.chunks_exact(c).zip(dw.chunks_exact_mut(c)).enumerate()
                    {
                        if let Some(a) = dims.ahead(r, k) {
                            let dya = &dy[a * c..(a + 1) * c];
                            for ((d, w), g) in dxr.iter_mut().zip(tap).zip(dya) {
                                *d += w * g;
                            }
                        }
                        if let Some(s) = dims.back(r, k) {
                            for ((d, v), g) in dtap.iter_mut().zip(&x[s * c..(s + 1) * c]).zip(dyr)
                            {
                                *d += v * g;
                            }
                        }
                    }
                }
                dw
            })
            .collect();
        let by_tap = sum_partials(partials, kernel * c);
        // back to the taps' own `[C, kernel]` layout
        let dw = (0..c * kernel)
            .map(|i| by_tap[(i % kernel) * c + i / kernel])
            .collect();
        (dx, dw)
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use super::super::conv::conv_silu_ops;
    use super::conv_silu;
    use crate::test_util::assert_close as close;

    /// Forward and both gradients equal the Burn ops within float rounding: sequences
    /// longer and shorter than the taps' reach, one tap, parallel sizes, plain and autodiff.
    #[test]
    fn equals_the_burn_ops() {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        for (b, t, c, kernel, dilation) in [
            (1, 5, 3, 4, 3),
            (2, 2, 4, 4, 3),
            (3, 70, 96, 4, 2),
            (2, 9, 8, 1, 3),
        ] {
            let normal = Distribution::Normal(0.0, 1.0);
            let x = Tensor::<3>::random([b, t, c], normal, &ad);
            let w = Tensor::<2>::random([c, kernel], normal, &ad);
            let g = Tensor::<3>::random([b, t, c], normal, &ad);
            let n = b * t * c;

            let (x1, w1) = (x.clone().require_grad(), w.clone().require_grad());
            let ours = conv_silu(&x1, &w1, dilation).expect("fused under autodiff");
            let g1 = (ours.clone() * g.clone().reshape([n])).sum().backward();
            let (x2, w2) = (x.clone().require_grad(), w.clone().require_grad());
            let (burns, _) = conv_silu_ops(x2.clone(), None, w2.clone(), dilation);
            let g2 = (burns.clone() * g).sum().backward();

            close(ours, burns.reshape([n]), "forward");
            close(
                x1.grad(&g1).unwrap().reshape([n]),
                x2.grad(&g2).unwrap().reshape([n]),
                "input grad",
            );
            close(
                w1.grad(&g1).unwrap().reshape([c * kernel]),
                w2.grad(&g2).unwrap().reshape([c * kernel]),
                "taps grad",
            );

            let (xp, wp) = (x.inner(), w.inner());
            let plain = conv_silu(&xp, &wp, dilation).expect("fused outside autodiff");
            let (want, _) = conv_silu_ops(xp, None, wp, dilation);
            close(plain, want.reshape([n]), "plain forward");
        }
    }
}
