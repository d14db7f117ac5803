//! Non-finite values among a model's parameters or gradients, found by parameter name.
//!
//! The trainer (`study::train`) checks every step with one readback ([`non_finite_grad_count`]); only when
//! something is wrong does it look tensor by tensor for the names ([`non_finite_grads`],
//! [`non_finite_params`]).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use super::read_f32;
use crate::error::Result;

/// `(!is_finite(t)).sum()` as a float tensor of one element.
fn bad_count<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    t.is_finite().bool_not().float().sum()
}

struct Scan<'a> {
    grads: Option<&'a GradientsParams>,
    path: Vec<String>,
    /// Per tensor (path, non-finite count), when naming.
    named: Option<Vec<(String, Tensor<1>)>>,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for Scan<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = match self.grads {
            Some(g) => match g.get::<D>(param.id) {
                Some(t) => t,
                None => return,
            },
            None => param.val(),
        };
        let count = bad_count(tensor);
        match &mut self.named {
            Some(named) => named.push((self.path.join("."), count)),
            None => {
                self.total = Some(match self.total.take() {
                    Some(acc) => acc + count,
                    None => count,
                })
            }
        }
    }
}

/// How many gradient elements of `model`'s parameters are NaN or infinite (one readback).
pub(crate) fn non_finite_grad_count<M: Module>(model: &M, grads: &GradientsParams) -> Result<f64> {
    let mut scan = Scan {
        grads: Some(grads),
        path: Vec::new(),
        named: None,
        total: None,
    };
    model.visit(&mut scan);
    Ok(match scan.total {
        Some(t) => read_f32("non-finite gradient count", t)?[0] as f64,
        None => 0.0,
    })
}

fn named<M: Module>(model: &M, grads: Option<&GradientsParams>) -> Result<Vec<(String, usize)>> {
    let mut scan = Scan {
        grads,
        path: Vec::new(),
        named: Some(Vec::new()),
        total: None,
    };
    model.visit(&mut scan);
    let mut out = Vec::new();
    for (name, count) in scan.named.unwrap_or_default() {
        let n = read_f32(&name, count)?[0] as usize;
        if n > 0 {
            out.push((name, n));
        }
    }
    Ok(out)
}

/// The parameters (module paths) whose gradient holds NaN or infinite elements, with how
/// many.
pub(crate) fn non_finite_grads<M: Module>(
    model: &M,
    grads: &GradientsParams,
) -> Result<Vec<(String, usize)>> {
    named(model, Some(grads))
}

/// The parameters (module paths) holding NaN or infinite values, with how many.
pub(crate) fn non_finite_params<M: Module>(model: &M) -> Result<Vec<(String, usize)>> {
    named(model, None)
}

/// `a.b.weight (3 elements), …` for an error message.
pub(crate) fn describe(found: &[(String, usize)]) -> String {
    found
        .iter()
        .map(|(n, c)| format!("`{n}` ({c} element{})", if *c == 1 { "" } else { "s" }))
        .collect::<Vec<_>>()
        .join(", ")
}
