//! Lazy AdamW: Adam moments and the parameter updated only on the rows a step touched.

use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// AdamW restricted to the touched rows of a table ("lazy Adam").
///
/// For the touched rows `r`, with the summed gradient `g_r` of the step and the table's step
/// count `t` (incremented on every step, touched rows or not, as torch's `SparseAdam`):
///
/// ```text
/// m_r = beta1 * m_r + (1 - beta1) * g_r
/// v_r = beta2 * v_r + (1 - beta2) * g_r^2
/// w_r = w_r * (1 - lr * weight_decay) - lr * (m_r / (1 - beta1^t)) / (sqrt(v_r / (1 - beta2^t)) + eps)
/// ```
///
/// This is Burn's [`AdamW`](burn::optim::AdamW) arithmetic, op for op, so a step that touches
/// every row gives Burn's dense update. Untouched rows are left bit-identical: no moment decay,
/// no weight decay (the dense path decays every row every step, which is where the two differ).
/// Weight decay is decoupled, as in AdamW; torch's `SparseAdam` has none.
///
/// ```
/// use burn::tensor::{Device, Int, Tensor};
/// use burn_engram::memory::LazyAdamW;
///
/// let device = Device::default();
/// let table = Tensor::<2>::ones([4, 2], &device);
/// let rows = Tensor::<1, Int>::from_data([1, 3], &device);
/// let grad = Tensor::<2>::from_data([[1.0, -1.0], [2.0, 0.5]], &device);
/// let (table, state) = LazyAdamW::default().step(1e-2, table, rows, grad, None);
/// let w = table.into_data().try_to_vec::<f32>().unwrap();
/// assert_eq!(&w[..2], &[1.0, 1.0]); // row 0 untouched
/// assert!((w[2] - 0.99).abs() < 1e-6); // Adam's first step moves by lr * sign(g)
/// assert_eq!(state.time, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LazyAdamW {
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Decoupled weight decay, applied to touched rows only.
    pub weight_decay: f32,
}

impl Default for LazyAdamW {
    /// The study's AdamW: betas (0.9, 0.95), eps 1e-8, no weight decay.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// The moments of one table and its step count. The two moments of a row sit side by side
/// (`[rows, 2 * dim]`: `m` then `v`), so a step reads and writes each touched row's state in
/// one random access instead of two.
#[derive(Debug, Clone)]
pub struct LazyAdamState {
    /// `[rows, 2 * dim]`: first moments in columns `..dim`, second moments in `dim..`.
    pub moments: Tensor<2>,
    /// Steps taken.
    pub time: u32,
}

impl LazyAdamState {
    /// First moments, `[rows, dim]`.
    pub fn moment1(&self) -> Tensor<2> {
        let [_, w] = self.moments.dims();
        self.moments.clone().narrow(1, 0, w / 2)
    }

    /// Second moments, `[rows, dim]`.
    pub fn moment2(&self) -> Tensor<2> {
        let [_, w] = self.moments.dims();
        self.moments.clone().narrow(1, w / 2, w / 2)
    }
}

impl LazyAdamW {
    /// One step on `table` (`[rows, dim]`) for the distinct row indices `rows` (`[U]`) and their
    /// summed gradients `grad` (`[U, dim]`); `state` is `None` on the first step. Returns the
    /// updated table and state.
    ///
    /// The table and the moments are updated in place where the backend can (Burn's
    /// `select_assign` on a tensor nobody else holds), so a step costs O(U * dim), not
    /// O(rows * dim). Indices must be distinct and inside the table (the callers build them
    /// with [`crate::memory::TouchedRows`]). Autodiff tensors are accepted; the result keeps
    /// the table's autodiff association and tracks no gradient.
    ///
    /// # Shapes
    /// - `table`: `[rows, dim]`
    /// - `rows`: `[U]` distinct row indices
    /// - `grad`: `[U, dim]`
    /// - output: the table `[rows, dim]` and its state (moments `[rows, 2 * dim]`)
    pub fn step(
        &self,
        lr: f64,
        table: Tensor<2>,
        rows: Tensor<1, Int>,
        grad: Tensor<2>,
        state: Option<LazyAdamState>,
    ) -> (Tensor<2>, LazyAdamState) {
        let values = table.clone().inner().select(0, rows.clone().inner());
        self.step_with_values(lr, table, rows, values, grad, state)
    }

    /// [`step`](Self::step) when the current values of the touched rows are at hand (`values`,
    /// `[U, dim]`, e.g. the sub-table the forward read): saves one gather from the table.
    ///
    /// # Shapes
    /// - `table`: `[rows, dim]`
    /// - `rows`: `[U]`, `values` and `grad`: `[U, dim]`
    /// - output: the table `[rows, dim]` and its state
    pub fn step_with_values(
        &self,
        lr: f64,
        table: Tensor<2>,
        rows: Tensor<1, Int>,
        values: Tensor<2>,
        grad: Tensor<2>,
        state: Option<LazyAdamState>,
    ) -> (Tensor<2>, LazyAdamState) {
        let autodiff = table.is_autodiff();
        let table = table.inner();
        let (values, grad, rows) = (values.inner(), grad.inner(), rows.inner());
        let [n, dim] = table.dims();
        let mut state = state.unwrap_or_else(|| LazyAdamState {
            moments: Tensor::zeros([n, 2 * dim], &table.device()),
            time: 0,
        });
        state.time += 1;
        let t = state.time as i32;
        #[cfg(feature = "flex")]
        let (table, moments) = match super::adam_in_place::step(
            RowRule::new(self, lr, t),
            table,
            state.moments,
            &rows,
            &values,
            &grad,
        ) {
            super::adam_in_place::Stepped::Done(table, moments) => {
                state.moments = moments;
                let table = if autodiff { table.autodiff() } else { table };
                return (table, state);
            }
            super::adam_in_place::Stepped::Declined(table, moments) => (table, moments),
        };
        #[cfg(not(feature = "flex"))]
        let moments = state.moments;
        let mv = moments.clone().select(0, rows.clone());
        let (mv, w) = if on_host(&table.device()) {
            self.rows_host(lr, t, dim, mv, values, grad)
        } else {
            self.rows_tensor(lr, t, dim, mv, values, grad)
        };
        let assign = IndexingUpdateOp::Assign;
        state.moments = moments.select_assign(0, rows.clone(), mv, assign);
        let table = table.select_assign(0, rows, w, assign);
        let table = if autodiff { table.autodiff() } else { table };
        (table, state)
    }

    /// The Adam arithmetic on the touched rows as tensor ops: `mv` (`[U, 2 * dim]`, moments
    /// side by side), `values` and `grad` (`[U, dim]`) in, new moments and values out.
    fn rows_tensor(
        &self,
        lr: f64,
        t: i32,
        dim: usize,
        mv: Tensor<2>,
        values: Tensor<2>,
        grad: Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let (b1, b2) = (self.beta1, self.beta2);
        let m = mv.clone().narrow(1, 0, dim).mul_scalar(b1) + grad.clone().mul_scalar(1.0 - b1);
        let v = mv.narrow(1, dim, dim).mul_scalar(b2) + grad.square().mul_scalar(1.0 - b2);
        let m_hat = m.clone().div_scalar(1f32 - b1.powi(t));
        let v_hat = v.clone().div_scalar(1f32 - b2.powi(t));
        let delta = m_hat.div(v_hat.sqrt().add_scalar(self.eps));
        let decay = lr * self.weight_decay as f64;
        let w = if decay == 0.0 {
            values
        } else {
            values.mul_scalar(1.0 - decay)
        } - delta.mul_scalar(lr);
        (Tensor::cat(vec![m, v], 1), w)
    }

    /// [`rows_tensor`](Self::rows_tensor) in one parallel pass over host memory: the same f32
    /// operations in the same order (bit-identical, tested), without the dozen `[U, dim]`
    /// temporaries that op-by-op execution allocates. For the CPU backend, where those
    /// temporaries (allocation, page faults, strided reads of the moment halves) cost several
    /// times the arithmetic.
    pub(crate) fn rows_host(
        &self,
        lr: f64,
        t: i32,
        dim: usize,
        mv: Tensor<2>,
        values: Tensor<2>,
        grad: Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let device = values.device();
        let [u, _] = values.dims();
        let (mut mv, mut w, g) = (host_f32(mv), host_f32(values), host_f32(grad));
        let rule = RowRule::new(self, lr, t);
        mv.par_chunks_mut(2 * dim)
            .zip(w.par_chunks_mut(dim))
            .zip(g.par_chunks(dim))
            .with_min_len(1024)
            .for_each(|((mv, w), g)| rule.apply(mv, w, g));
        (
            Tensor::from_data(TensorData::new(mv, [u, 2 * dim]), &device),
            Tensor::from_data(TensorData::new(w, [u, dim]), &device),
        )
    }
}

/// The per-row arithmetic of [`LazyAdamW::rows_host`] and of the in-place step: the f32
/// operations of [`LazyAdamW::rows_tensor`], in its order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowRule {
    b1: f32,
    b2: f32,
    eps: f32,
    c1: f32,
    c2: f32,
    ob1: f32,
    ob2: f32,
    decay: bool,
    keep: f32,
    lr: f32,
}

impl RowRule {
    pub(crate) fn new(o: &LazyAdamW, lr: f64, t: i32) -> Self {
        let decay = lr * o.weight_decay as f64;
        Self {
            b1: o.beta1,
            b2: o.beta2,
            eps: o.eps,
            c1: 1f32 - o.beta1.powi(t),
            c2: 1f32 - o.beta2.powi(t),
            ob1: 1.0 - o.beta1,
            ob2: 1.0 - o.beta2,
            decay: decay != 0.0,
            keep: (1.0 - decay) as f32,
            lr: lr as f32,
        }
    }

    /// One row: `mv` (`[2 * dim]`, m then v) and `w` (`[dim]`) updated in place from the
    /// gradient `g` (`[dim]`).
    #[inline]
    pub(crate) fn apply(&self, mv: &mut [f32], w: &mut [f32], g: &[f32]) {
        let dim = g.len();
        let (m, v) = mv.split_at_mut(dim);
        for d in 0..dim {
            let gd = g[d];
            m[d] = m[d] * self.b1 + gd * self.ob1;
            v[d] = v[d] * self.b2 + (gd * gd) * self.ob2;
            let delta = (m[d] / self.c1) / ((v[d] / self.c2).sqrt() + self.eps);
            let kept = if self.decay { w[d] * self.keep } else { w[d] };
            w[d] = kept - delta * self.lr;
        }
    }
}

/// A float tensor's values as f32 on the host.
pub(crate) fn host_f32(x: Tensor<2>) -> Vec<f32> {
    x.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

/// Whether the tensors live in host memory (Burn's CPU backend), where
/// [`LazyAdamW::rows_host`] is the faster path.
fn on_host(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    if *device == Device::flex() {
        return true;
    }
    let _ = device;
    false
}

#[cfg(test)]
mod tests {
    use burn::optim::{AdamWConfig, Optimizer};
    use burn::tensor::{Device, Int, Tensor, TensorData};

    use super::*;

    fn t2(v: &[f32], rows: usize, dev: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [rows, v.len() / rows]), dev)
    }

    fn idx(v: &[i32], dev: &Device) -> Tensor<1, Int> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), dev)
    }

    fn host(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Lazy AdamW by hand, in f64, for comparison.
    struct Hand {
        w: Vec<f64>,
        m: Vec<f64>,
        v: Vec<f64>,
        t: i32,
    }

    impl Hand {
        fn step(&mut self, o: &LazyAdamW, lr: f64, rows: &[i32], g: &[f32], dim: usize) {
            self.t += 1;
            let (b1, b2) = (o.beta1 as f64, o.beta2 as f64);
            for (i, &r) in rows.iter().enumerate() {
                for d in 0..dim {
                    let (j, gi) = (r as usize * dim + d, g[i * dim + d] as f64);
                    self.m[j] = b1 * self.m[j] + (1.0 - b1) * gi;
                    self.v[j] = b2 * self.v[j] + (1.0 - b2) * gi * gi;
                    let mh = self.m[j] / (1.0 - b1.powi(self.t));
                    let vh = self.v[j] / (1.0 - b2.powi(self.t));
                    self.w[j] = self.w[j] * (1.0 - lr * o.weight_decay as f64)
                        - lr * mh / (vh.sqrt() + o.eps as f64);
                }
            }
        }
    }

    #[test]
    fn the_host_pass_is_bit_identical_to_the_tensor_ops() {
        let dev = Device::default();
        let (u, dim) = (37, 5);
        let wave = |n: usize, f: f32| -> Vec<f32> {
            (0..n)
                .map(|i| (i as f32 * f).sin() * (1.0 + i as f32 * 0.01))
                .collect()
        };
        let mv = t2(
            &wave(u * 2 * dim, 0.71)
                .iter()
                .map(|x| x.abs() * 1e-3)
                .collect::<Vec<_>>(),
            u,
            &dev,
        );
        let values = t2(&wave(u * dim, 0.37), u, &dev);
        let grad = t2(&wave(u * dim, 1.13), u, &dev);
        for (weight_decay, t) in [(0.0, 1), (0.1, 7)] {
            let o = LazyAdamW {
                weight_decay,
                ..LazyAdamW::default()
            };
            let (m1, w1) = o.rows_tensor(0.03, t, dim, mv.clone(), values.clone(), grad.clone());
            let (m2, w2) = o.rows_host(0.03, t, dim, mv.clone(), values.clone(), grad.clone());
            let bits = |x: Tensor<2>| host(x).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(m1), bits(m2), "moments, weight decay {weight_decay}");
            assert_eq!(bits(w1), bits(w2), "values, weight decay {weight_decay}");
        }
        assert!(on_host(&dev), "the default test device is the CPU backend");
    }

    #[test]
    fn touched_rows_follow_lazy_adam_and_the_rest_is_bit_identical() {
        let dev = Device::default();
        let (rows, dim) = (6, 3);
        let w0: Vec<f32> = (0..rows * dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let o = LazyAdamW {
            weight_decay: 0.1,
            ..LazyAdamW::default()
        };
        let mut hand = Hand {
            w: w0.iter().map(|&x| x as f64).collect(),
            m: vec![0.0; rows * dim],
            v: vec![0.0; rows * dim],
            t: 0,
        };
        let mut table = t2(&w0, rows, &dev);
        let mut state = None;
        // three steps; row 0 and row 5 are never touched, row 3 in every step
        let steps: [(&[i32], [f32; 6]); 3] = [
            (&[1, 3], [0.5, -1.0, 2.0, 0.1, 0.0, -0.3]),
            (&[3, 4], [-0.2, 0.4, 1.5, 3.0, -2.0, 0.25]),
            (&[2, 3], [1e-3, -1e-3, 0.7, -0.9, 0.6, 0.05]),
        ];
        for (i, (r, g)) in steps.iter().enumerate() {
            let lr = 0.05 / (i + 1) as f64;
            let (t, s) = o.step(lr, table, idx(r, &dev), t2(g, r.len(), &dev), state);
            (table, state) = (t, Some(s));
            hand.step(&o, lr, r, g, dim);
        }
        let got = host(table);
        for (j, (&g, &h)) in got.iter().zip(&hand.w).enumerate() {
            let row = j / dim;
            if row == 0 || row == 5 {
                assert_eq!(g.to_bits(), w0[j].to_bits(), "untouched row {row} changed");
            } else {
                assert!((g as f64 - h).abs() < 1e-6, "w[{j}] = {g}, by hand {h}");
            }
        }
        let state = state.unwrap();
        assert_eq!(state.time, 3);
        let m = host(state.moment1());
        assert!(m[..dim].iter().chain(&m[5 * dim..]).all(|&x| x == 0.0));
        for (j, (&g, &h)) in m.iter().zip(&hand.m).enumerate() {
            assert!((g as f64 - h).abs() < 1e-6, "m[{j}] = {g}, by hand {h}");
        }
    }

    #[test]
    fn touching_every_row_is_burns_dense_adamw() {
        let dev = Device::default();
        let (rows, dim) = (4, 5);
        let w0: Vec<f32> = (0..rows * dim).map(|i| (i as f32 * 0.61).cos()).collect();
        let lazy = LazyAdamW {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.005,
        };
        let dense = AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.95)
            .with_epsilon(1e-8)
            .with_weight_decay(0.005)
            .build();
        let all = [0, 1, 2, 3];
        let (mut a, mut b) = (t2(&w0, rows, &dev), t2(&w0, rows, &dev));
        let (mut sa, mut sb) = (None, None);
        for step in 0..3 {
            let g: Vec<f32> = (0..rows * dim)
                .map(|i| ((i * 7 + step * 3) as f32 * 0.3).sin())
                .collect();
            let lr = 1e-2 * (step + 1) as f64;
            let (ta, s) = lazy.step(lr, a, idx(&all, &dev), t2(&g, rows, &dev), sa);
            (a, sa) = (ta, Some(s));
            let (tb, s) = Optimizer::step(&dense, lr, b, t2(&g, rows, &dev), sb);
            (b, sb) = (tb, s);
        }
        let (a, b) = (host(a), host(b));
        for (j, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= 1e-7, "w[{j}]: lazy {x}, dense {y}");
        }
    }
}
