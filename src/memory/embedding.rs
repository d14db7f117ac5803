//! [`MultiHeadEmbedding`]: one table holding every hash head's rows.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::gather::read_rows;
use super::lazy_adam::{LazyAdamState, LazyAdamW};
use super::sparse::TouchedRows;

/// All `(N-1) * H` hash heads of a layer in ONE table of `sum(primes)` rows of width
/// `n_embed_per_ngram / H`; head `h` owns the rows `offset[h]..offset[h] + prime[h]`.
///
/// The forward takes global row indices (hash id + head offset, added on the host when a
/// batch is uploaded, see [`crate::EngramLayers::upload`]) and returns the heads' rows
/// concatenated per token.
#[derive(Module, Debug)]
pub struct MultiHeadEmbedding {
    /// The table, `[rows, head_dim]`.
    pub weight: Param<Tensor<2>>,
}

impl MultiHeadEmbedding {
    /// `rows: [B, T, K]` global row indices -> `[B, T, K * head_dim]`.
    ///
    /// # Shapes
    /// - `rows`: `[B, T, K]` global row indices, K = (N-1) * H
    /// - output: `[B, T, K * head_dim]`
    pub fn forward(&self, rows: Tensor<3, Int>) -> Tensor<3> {
        read_rows(self.weight.val(), rows)
    }

    /// Width of one head's row.
    pub fn head_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Rows in the table.
    pub fn rows(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The first half of a sparse step: the distinct rows a step reads (`touched`), copied
    /// out of the table (outside autodiff) into a leaf that requires a gradient, on `device`
    /// (an autodiff device). A forward reads the leaf at `touched.local()` indices (reads of
    /// one row add up in the leaf's gradient); [`apply_lazy_adam`](Self::apply_lazy_adam)
    /// writes the rows back.
    ///
    /// # Shapes
    /// - returns `rows: [U]` (the table rows, `touched.unique()`) and `leaf: [U, head_dim]`
    pub fn touched_leaf(
        &self,
        touched: &TouchedRows,
        device: &Device,
    ) -> (Tensor<1, Int>, Tensor<2>) {
        let u = touched.unique().len();
        let data = TensorData::new(touched.unique().to_vec(), [u]);
        let rows = Tensor::<1, Int>::from_data(data, device);
        let leaf = self
            .weight
            .val()
            .inner()
            .select(0, rows.clone().inner())
            .autodiff()
            .require_grad();
        (rows, leaf)
    }

    /// The second half of a sparse step: one [`LazyAdamW`] step with learning rate `lr` on
    /// the table rows `rows`, whose current values are `leaf` and whose summed gradient is
    /// `grad`; every other row, and its moments, stay bit-identical. `state` is the table's
    /// optimizer state from the previous step (`None` at the first).
    ///
    /// # Shapes
    /// - `rows: [U]`, `leaf: [U, head_dim]`, `grad: [U, head_dim]`
    pub fn apply_lazy_adam(
        &mut self,
        optim: &LazyAdamW,
        lr: f64,
        rows: Tensor<1, Int>,
        leaf: Tensor<2>,
        grad: Tensor<2>,
        state: Option<LazyAdamState>,
    ) -> LazyAdamState {
        // the leaf is a copy of the rows (not a view of the table): its values are the rows'
        // current values
        let values = leaf.inner();
        let weight = std::mem::replace(
            &mut self.weight,
            Param::from_tensor(Tensor::empty([0, 0], &grad.device())),
        );
        let mut new_state = None;
        self.weight = weight.map(|t| {
            let (t, s) = optim.step_with_values(lr, t, rows, values, grad, state);
            new_state = Some(s);
            t
        });
        new_state.expect("Param::map calls its function once")
    }
}
