//! Global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_` does it: one norm over
//! every gradient, all scaled by `max_norm / (norm + 1e-6)` when that is below 1. (Burn's
//! `GradientClippingConfig::Norm` clips each tensor on its own.)

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::error::Result;
use crate::io::read_f32;

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s = g.powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(acc) => acc + s,
                None => s,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// The global L2 norm of the gradients of `model`'s parameters.
pub fn global_grad_norm<M: Module>(model: &M, grads: &GradientsParams) -> Result<f64> {
    let mut v = SquaredNorm { grads, sum: None };
    model.visit(&mut v);
    Ok(match v.sum {
        Some(s) => (read_f32("gradient norm", s)?[0] as f64).sqrt(),
        None => 0.0,
    })
}

/// Scales the gradients so their global norm is at most `max_norm`; returns the norm before
/// clipping.
pub fn clip_global_norm<M: Module>(
    model: &M,
    mut grads: GradientsParams,
    max_norm: f64,
) -> Result<(GradientsParams, f64)> {
    let norm = global_grad_norm(model, &grads)?;
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        let mut v = Scale {
            grads: &mut grads,
            factor,
        };
        model.visit(&mut v);
    }
    Ok((grads, norm))
}
