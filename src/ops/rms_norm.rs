//! RMSNorm as one op: Burn's `RmsNorm::forward` runs it as square, mean, add, sqrt, divide
//! and multiply (six passes over the input forward, about a dozen backward); on the flex CPU
//! backend this reads each row once and writes it once, forward and backward, with a
//! backward of its own under autodiff. Same formula as Burn (`x / sqrt(mean(x^2) + eps) *
//! gamma`, f32), within float rounding of it (the mean sums in another order). Used by the
//! Engram gate and short conv and by the Qwen3 host's norms. Other backends, dtypes (a bf16
//! backbone) and strided inputs run Burn's module.

use burn::nn::RmsNorm;
use burn::tensor::Tensor;

/// `norm.forward(x)`, fused on the flex backend (see the module docs).
///
/// # Shapes
/// - `x`: `[..., d_model]`
/// - output: `[..., d_model]`
pub(crate) fn rms_norm<const D: usize>(norm: &RmsNorm, x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if let Some(out) = flex::rms_norm(norm, &x) {
        return out.reshape(x.dims());
    }
    norm.forward(x)
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::flex::FlexTensor;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::RmsNorm;
    use burn::tensor::{Tensor, TensorData};
    use rayon::prelude::*;

    use super::super::flex::{f32s, sum_partials};

    /// Rows per parallel task.
    const CHUNK_ROWS: usize = 64;

    /// The fused norm as a flat `[rows * d]` tensor, or `None` where it does not apply.
    pub(super) fn rms_norm<const D: usize>(norm: &RmsNorm, x: &Tensor<D>) -> Option<Tensor<1>> {
        let gamma = norm.gamma.val();
        let eps = norm.epsilon as f32;
        if let (Ok(x), Ok(g)) = (
            x.clone().try_into_primitive::<Flex>(),
            gamma.clone().try_into_primitive::<Flex>(),
        ) {
            let (x_data, g_data) = (f32s(&x)?, f32s(&g)?);
            let (out, _) = forward(x_data, g_data, eps)?;
            let n = out.len();
            return Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(
                TensorData::new(out, [n]),
            )));
        }
        let x = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let g = gamma.try_into_primitive::<Autodiff<Flex>>().ok()?;
        let (out, rms) = forward(f32s(x.primitive())?, f32s(g.primitive())?, eps)?;
        let n = out.len();
        let out = FlexTensor::from_data(TensorData::new(out, [n]));
        let out = match Norm
            .prepare::<NoCheckpointing>([x.node(), g.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = (x.primitive().clone(), g.primitive().clone(), rms);
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
    }

    /// `x / rms * gamma` row by row (rows of `gamma.len()`), and each row's `rms =
    /// sqrt(mean(x^2) + eps)`; `None` if `x` is not whole rows.
    fn forward(x: &[f32], gamma: &[f32], eps: f32) -> Option<(Vec<f32>, Vec<f32>)> {
        let d = gamma.len();
        if d == 0 || !x.len().is_multiple_of(d) {
            return None;
        }
        let rows = x.len() / d;
        let mut out = vec![0.0f32; x.len()];
        let mut rms = vec![0.0f32; rows];
        let norm_row = |x: &[f32], out: &mut [f32]| -> f32 {
            let mean = dot(x, x) / d as f32;
            let r = (mean + eps).sqrt();
            for ((o, v), g) in out.iter_mut().zip(x).zip(gamma) {
                *o = (v / r) * g;
            }
            r
        };
        out.par_chunks_mut(CHUNK_ROWS * d)
            .zip(rms.par_chunks_mut(CHUNK_ROWS))
            .zip(x.par_chunks(CHUNK_ROWS * d))
            .for_each(|((out, rms), x)| {
                for ((o, r), x) in out.chunks_exact_mut(d).zip(rms).zip(x.chunks_exact(d)) {
                    *r = norm_row(x, o);
                }
            });
        Some((out, rms))
    }

    /// `sum(a * b)` in 16 interleaved partial sums (so that it vectorises), added up in a
    /// fixed order.
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        const LANES: usize = 16;
        let mut acc = [0.0f32; LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ca.zip(cb) {
            for i in 0..LANES {
                acc[i] += x[i] * y[i];
            }
        }
        acc.iter().sum::<f32>() + tail
    }

    /// The norm under autodiff; its state is the input, gamma and each row's rms.
    #[derive(Debug)]
    struct Norm;

    impl Backward<Flex, 2> for Norm {
        type State = (FlexTensor, FlexTensor, Vec<f32>);

        fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_g] = ops.parents;
            let dout = grads.consume::<Flex>(&ops.node).to_contiguous();
            let (x, g, rms) = ops.state;
            let shape = x.layout().shape().clone();
            let (dx, dg) = backward(
                f32s(&x).expect("checked in the forward"),
                f32s(&g).expect("checked in the forward"),
                &rms,
                f32s(&dout).expect("an f32 gradient"),
            );
            if let Some(node) = node_x {
                let dx = FlexTensor::from_data(TensorData::new(dx, shape));
                grads.register::<Flex>(node.id, dx);
            }
            if let Some(node) = node_g {
                let n = dg.len();
                grads.register::<Flex>(node.id, FlexTensor::from_data(TensorData::new(dg, [n])));
            }
        }
    }

    /// Gradients of the input and of gamma for output gradient `dout`: with `xh = x / rms`
    /// and `gd = dout * gamma`, `dx = (gd - xh * mean(gd * xh)) / rms` (divisions by rms
    /// taken as products with its inverse) and `dgamma = sum over rows of dout * xh` (summed
    /// per fixed chunk of rows, then across chunks in order: the same bits whatever the
    /// thread count).
    fn backward(x: &[f32], gamma: &[f32], rms: &[f32], dout: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let d = gamma.len();
        assert_eq!(dout.len(), x.len(), "one output gradient per input");
        let mut dx = vec![0.0f32; x.len()];
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(CHUNK_ROWS * d)
            .zip(x.par_chunks(CHUNK_ROWS * d))
            .zip(dout.par_chunks(CHUNK_ROWS * d))
            .zip(rms.par_chunks(CHUNK_ROWS))
            .map(|(((dx, x), dout), rms)| {
                let mut dg = vec![0.0f32; d];
                let rows = dx.chunks_exact_mut(d).zip(x.chunks_exact(d));
                let mut gd = vec![0.0f32; d];
                for (((dx, x), dout), &r) in rows.zip(dout.chunks_exact(d)).zip(rms) {
                    let inv = 1.0 / r;
                    for ((g, o), w) in gd.iter_mut().zip(dout).zip(gamma) {
                        *g = o * w;
                    }
                    let mean = dot(&gd, x) * inv / d as f32;
                    for i in 0..d {
                        let xh = x[i] * inv;
                        dg[i] += dout[i] * xh;
                        dx[i] = (gd[i] - xh * mean) * inv;
                    }
                }
                dg
            })
            .collect();
        (dx, sum_partials(partials, d))
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::module::Module;
    use burn::nn::{RmsNorm, RmsNormConfig};
    use burn::tensor::{Device, Distribution, Tensor};

    use super::rms_norm;
    use crate::test_util::assert_close as close;

    /// Forward, input gradient and gamma gradient equal Burn's module within float
    /// rounding: serial and parallel sizes, a random gamma, plain and autodiff tensors.
    #[test]
    fn equals_burns_module() {
        let device = Device::flex();
        for (rows, d, eps) in [
            (3, 8, 1e-5),
            (300, 1024, f32::EPSILON as f64),
            (129, 13, 1e-6),
        ] {
            let ad = device.clone().autodiff();
            let mut norm: RmsNorm = RmsNormConfig::new(d).with_epsilon(eps).init(&ad);
            let gamma = Tensor::<1>::random([d], Distribution::Uniform(0.5, 1.5), &ad);
            norm.gamma = burn::module::Param::from_tensor(gamma);
            let x = Tensor::<2>::random([rows, d], Distribution::Normal(0.0, 2.0), &ad);
            let w = Tensor::<2>::random([rows, d], Distribution::Normal(0.0, 1.0), &ad);

            let x1 = x.clone().require_grad();
            assert!(
                super::flex::rms_norm(&norm, &x1).is_some(),
                "fused under autodiff"
            );
            let ours = rms_norm(&norm, x1.clone());
            let g1 = (ours.clone() * w.clone()).sum().backward();
            let x2 = x.clone().require_grad();
            let burns = norm.forward(x2.clone());
            let g2 = (burns.clone() * w).sum().backward();

            let flat = |t: Tensor<2>| t.reshape([rows * d]);
            close(flat(ours), flat(burns), "forward");
            close(
                flat(x1.grad(&g1).unwrap()),
                flat(x2.grad(&g2).unwrap()),
                "input grad",
            );
            close(
                norm.gamma.val().grad(&g1).unwrap(),
                norm.gamma.val().grad(&g2).unwrap(),
                "gamma grad",
            );

            let plain = norm.valid();
            let xp = x.inner();
            assert!(
                super::flex::rms_norm(&plain, &xp).is_some(),
                "fused outside autodiff"
            );
            close(
                flat(rms_norm(&plain, xp.clone())),
                flat(plain.forward(xp)),
                "plain forward",
            );
        }
    }

    /// The gradients (gamma's summed across rows) are the same bits on one thread and on
    /// three.
    #[test]
    fn gradients_do_not_depend_on_the_thread_count() {
        let ad = Device::flex().autodiff();
        let (rows, d) = (1000, 96);
        let norm: RmsNorm = RmsNormConfig::new(d).init(&ad);
        let x = Tensor::<2>::random([rows, d], Distribution::Normal(0.0, 1.0), &ad);
        let w = Tensor::<2>::random([rows, d], Distribution::Normal(0.0, 1.0), &ad);
        let grads = || {
            let x = x.clone().require_grad();
            let g = (rms_norm(&norm, x.clone()) * w.clone()).sum().backward();
            let bits = |t: Tensor<1>| {
                let v = t.into_data().try_to_vec::<f32>().unwrap();
                v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            };
            (
                bits(x.grad(&g).unwrap().reshape([rows * d])),
                bits(norm.gamma.val().grad(&g).unwrap()),
            )
        };
        let on = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(grads)
        };
        assert_eq!(on(1), on(3));
    }

    /// A strided input (a narrowed group) runs Burn's module and reads the right values.
    #[test]
    fn strided_inputs_fall_back() {
        let device = Device::flex();
        let norm: RmsNorm = RmsNormConfig::new(4).init(&device);
        let x = Tensor::<3>::random([2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let view = x.clone().swap_dims(0, 1);
        assert!(super::flex::rms_norm(&norm, &view).is_none());
        let got = rms_norm(&norm, view.clone()).reshape([24]);
        close(got, norm.forward(view).reshape([24]), "strided");
    }
}
