//! [`MultiHeadEmbedding`]: one table holding every hash head's rows.

use burn::module::{Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Int, Tensor};

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
}

/// `rows: [B, T, K]` indices into `table: [R, d]` -> `[B, T, K * d]`.
pub(crate) fn read_rows(table: Tensor<2>, rows: Tensor<3, Int>) -> Tensor<3> {
    let [b, t, k] = rows.dims();
    let [_, d] = table.dims();
    embedding(table, rows.reshape([b, t * k])).reshape([b, t, k * d])
}
