//! Sparse-row training of the Engram tables: read the rows a step touches through a small
//! gradient-tracking sub-table instead of the whole table.
//!
//! A table read's backward builds a dense gradient of the whole table (REFERENCE §5), so a
//! step would cost O(table rows) however few rows it reads. Here the step's distinct rows are
//! gathered once outside autodiff into a `[U, head_dim]` leaf that requires a gradient; the
//! forward reads that leaf at local indices, so backward produces a `[U, head_dim]` gradient
//! (duplicate reads summed by the read's backward), and
//! [`LazyAdamW`](crate::memory::LazyAdamW) writes the U updated rows back.

use burn::tensor::{Device, Gradients, Int, Tensor, TensorData};

use super::layers::{EngramBatch, EngramLayers};
use super::lazy_adam::{LazyAdamState, LazyAdamW};
use super::schedule::GateMode;
use crate::error::{EngramError, Result};
use crate::hashing::HashIds;

/// Bits of a row index sorted per radix pass.
const RADIX_BITS: u32 = 11;
const RADIX_MASK: u32 = (1 << RADIX_BITS) - 1;

/// The distinct rows of a list of row indices, and where each index sits among them.
///
/// ```
/// use burn_engram::memory::TouchedRows;
/// let t = TouchedRows::new(&[7, 3, 7, 9, 3]);
/// assert_eq!(t.unique(), &[3, 7, 9]);
/// assert_eq!(t.local(), &[1, 0, 1, 2, 0]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchedRows {
    unique: Vec<i32>,
    local: Vec<i32>,
}

impl TouchedRows {
    /// Sorts and dedupes `rows` (row indices, `>= 0`): an LSD radix sort of the positions by
    /// row (11 bits per pass, as many passes as the largest row needs: three for a table
    /// below 2^33 rows), then one pass over them. O(n) in the number of indices, independent
    /// of the table size.
    pub fn new(rows: &[i32]) -> Self {
        let n = rows.len();
        let mut keys: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let mut pos: Vec<u32> = (0..n as u32).collect();
        let (mut keys2, mut pos2) = (vec![0u32; n], vec![0u32; n]);
        let bits = 32 - keys.iter().copied().max().unwrap_or(0).leading_zeros();
        let mut shift = 0;
        while shift < bits {
            // a stable counting sort by the digit at `shift`
            let digit = |k: u32| ((k >> shift) & RADIX_MASK) as usize;
            let mut start = vec![0usize; RADIX_MASK as usize + 1];
            for &k in &keys {
                start[digit(k)] += 1;
            }
            let mut sum = 0;
            for c in &mut start {
                (*c, sum) = (sum, sum + *c);
            }
            for (&k, &p) in keys.iter().zip(&pos) {
                let at = &mut start[digit(k)];
                (keys2[*at], pos2[*at]) = (k, p);
                *at += 1;
            }
            std::mem::swap(&mut keys, &mut keys2);
            std::mem::swap(&mut pos, &mut pos2);
            shift += RADIX_BITS;
        }
        let mut unique = Vec::new();
        let mut local = vec![0i32; n];
        for (&k, &p) in keys.iter().zip(&pos) {
            let row = k as i32;
            if unique.last() != Some(&row) {
                unique.push(row);
            }
            local[p as usize] = unique.len() as i32 - 1;
        }
        Self { unique, local }
    }

    /// The distinct rows, ascending.
    pub fn unique(&self) -> &[i32] {
        &self.unique
    }

    /// For each input index, its position in [`unique`](Self::unique).
    pub fn local(&self) -> &[i32] {
        &self.local
    }
}

/// One layer's touched rows in a step: their global indices, the gradient-tracking sub-table
/// read by the forward, and the gradient summed over the step's backward passes.
#[derive(Debug, Clone)]
struct SparseLayer {
    layer_id: usize,
    rows: Tensor<1, Int>,
    leaf: Tensor<2>,
    grad: Option<Tensor<2>>,
}

/// The sub-tables of one optimizer step (all its micro-batches), made by
/// [`EngramLayers::prepare_sparse`]: call [`accumulate`](Self::accumulate) after each
/// backward pass, then [`EngramLayers::apply_sparse`].
#[derive(Debug, Clone)]
pub struct SparseTables {
    layers: Vec<SparseLayer>,
}

impl SparseTables {
    /// Adds the sub-tables' gradients of one backward pass.
    pub fn accumulate(&mut self, grads: &Gradients) {
        for l in &mut self.layers {
            if let Some(g) = l.leaf.grad(grads) {
                l.grad = Some(match l.grad.take() {
                    Some(acc) => acc + g,
                    None => g,
                });
            }
        }
    }

    /// Layer ids whose accumulated sub-table gradient holds NaN or infinity.
    pub fn non_finite_layers(&self) -> Vec<usize> {
        self.layers
            .iter()
            .filter(|l| {
                l.grad.as_ref().is_some_and(|g| {
                    let finite = g.clone().is_finite().bool_not().int().sum();
                    finite.into_scalar::<i64>() > 0
                })
            })
            .map(|l| l.layer_id)
            .collect()
    }

    /// Distinct rows touched per layer, `(layer_id, rows)`.
    pub fn touched(&self) -> Vec<(usize, usize)> {
        self.layers
            .iter()
            .map(|l| (l.layer_id, l.rows.dims()[0]))
            .collect()
    }
}

/// Lazy-Adam state of every table of an [`EngramLayers`], in configured layer order.
#[derive(Debug, Clone, Default)]
pub struct SparseTableStates {
    states: Vec<Option<LazyAdamState>>,
}

impl SparseTableStates {
    /// The state of each layer that has taken a step: `(layer index in configured order,
    /// moments, step count)`; the moments are `[rows, 2 * dim]` (first moments, then second).
    pub fn layers(&self) -> impl Iterator<Item = (usize, &LazyAdamState)> {
        self.states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }

    /// States from saved layers (`(layer index, state)`); layers not listed start fresh.
    pub fn from_layers(saved: impl IntoIterator<Item = (usize, LazyAdamState)>) -> Self {
        let mut states: Vec<Option<LazyAdamState>> = Vec::new();
        for (i, s) in saved {
            if states.len() <= i {
                states.resize(i + 1, None);
            }
            states[i] = Some(s);
        }
        Self { states }
    }
}

impl EngramLayers {
    /// Hashes the micro-batches of one optimizer step (`(token ids, batch, seq_len)` each),
    /// gathers the distinct table rows they read (per layer, over the whole step) into
    /// gradient-tracking sub-tables on `device` (an autodiff device), and returns the
    /// sub-tables plus one [`EngramBatch`] per micro-batch that reads them. The tables of
    /// `self` should not require gradients (see [`with_tables_trainable`](Self::with_tables_trainable)).
    pub fn prepare_sparse(
        &self,
        micro_batches: &[(&[i64], usize, usize)],
        gate: GateMode,
        device: &Device,
    ) -> Result<(SparseTables, Vec<EngramBatch>)> {
        if micro_batches.is_empty() {
            return Err(EngramError::BadBatch(
                "a sparse step needs at least one micro-batch".into(),
            ));
        }
        let hashes = micro_batches
            .iter()
            .map(|(ids, b, t)| self.hash(ids, *b, *t))
            .collect::<Result<Vec<HashIds>>>()?;
        self.prepare_sparse_hashed(&hashes, gate, device)
    }

    /// [`prepare_sparse`](Self::prepare_sparse) for micro-batches already hashed (by a data
    /// loader, ahead of the step).
    pub fn prepare_sparse_hashed(
        &self,
        hashes: &[HashIds],
        gate: GateMode,
        device: &Device,
    ) -> Result<(SparseTables, Vec<EngramBatch>)> {
        if hashes.is_empty() {
            return Err(EngramError::BadBatch(
                "a sparse step needs at least one micro-batch".into(),
            ));
        }
        let hashed = hashes
            .iter()
            .map(|h| Ok((h, self.global_rows(h)?)))
            .collect::<Result<Vec<(&HashIds, _)>>>()?;
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut locals: Vec<Vec<(usize, Tensor<3, Int>)>> = vec![Vec::new(); hashed.len()];
        for (i, engram) in self.layers.iter().enumerate() {
            let all: Vec<i32> = hashed
                .iter()
                .flat_map(|(_, rows)| rows[i].1.iter().copied())
                .collect();
            let touched = TouchedRows::new(&all);
            let layer_id = hashed[0].1[i].0;
            let mut start = 0;
            for (j, (h, _)) in hashed.iter().enumerate() {
                let n = h.batch * h.seq_len * h.heads;
                let local = touched.local()[start..start + n].to_vec();
                start += n;
                let data = TensorData::new(local, [h.batch, h.seq_len, h.heads]);
                locals[j].push((layer_id, Tensor::from_data(data, device)));
            }
            let (rows, leaf) = engram.multi_head_embedding.touched_leaf(&touched, device);
            layers.push(SparseLayer {
                layer_id,
                rows,
                leaf,
                grad: None,
            });
        }
        let batches = hashed
            .iter()
            .zip(locals)
            .map(|((h, _), rows)| EngramBatch {
                rows,
                tables: layers
                    .iter()
                    .map(|l| (l.layer_id, l.leaf.clone()))
                    .collect(),
                gate,
                batch: h.batch,
                seq_len: h.seq_len,
                start: None,
            })
            .collect();
        Ok((SparseTables { layers }, batches))
    }

    /// Applies one [`LazyAdamW`] step with learning rate `lr` to the rows of `tables` that
    /// received a gradient, updating `states` (start from `SparseTableStates::default()`).
    /// Rows not touched by the step are left bit-identical.
    ///
    /// # Panics
    ///
    /// If `tables` was prepared by different layers (another configuration): its rows would
    /// not address these tables. Prepare and apply with the same `EngramLayers`.
    pub fn apply_sparse(
        mut self,
        tables: SparseTables,
        optim: &LazyAdamW,
        states: &mut SparseTableStates,
        lr: f64,
    ) -> Self {
        states.states.resize(self.layers.len(), None);
        let ids: Vec<usize> = tables.layers.iter().map(|l| l.layer_id).collect();
        assert_eq!(
            ids,
            self.config().layer_ids,
            "sparse tables prepared for layers {ids:?}, applied to layers {:?}",
            self.config().layer_ids
        );
        for (i, l) in tables.layers.into_iter().enumerate() {
            let Some(grad) = l.grad else { continue };
            let state = states.states[i].take();
            let table = &mut self.layers[i].multi_head_embedding;
            let new_state = table.apply_lazy_adam(optim, lr, l.rows, l.leaf, grad, state);
            states.states[i] = Some(new_state);
        }
        self
    }

    /// Sets whether the tables (`multi_head_embedding.weight`) require gradients. Sparse
    /// training turns them off so that no dense table gradient is built and the dense
    /// optimizer leaves them alone; the other Engram parameters are untouched.
    pub fn with_tables_trainable(mut self, trainable: bool) -> Self {
        for engram in &mut self.layers {
            let weight = engram.multi_head_embedding.weight.clone();
            engram.multi_head_embedding.weight = weight.set_require_grad(trainable);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::TouchedRows;

    /// The distinct rows and local positions by a comparison sort of `(row, position)`.
    fn by_sorting(rows: &[i32]) -> TouchedRows {
        let mut pairs: Vec<(u32, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, &r)| (r as u32, i))
            .collect();
        pairs.sort_unstable();
        let (mut unique, mut local) = (Vec::new(), vec![0i32; rows.len()]);
        for (r, i) in pairs {
            if unique.last() != Some(&(r as i32)) {
                unique.push(r as i32);
            }
            local[i] = unique.len() as i32 - 1;
        }
        TouchedRows { unique, local }
    }

    /// The radix sort gives the comparison sort's answer for tables of every size (one to
    /// three passes), many duplicates or none, and no rows at all.
    #[test]
    fn radix_dedup_equals_sorting() {
        let cases = [
            (0, 1),
            (1, 1),
            (5, 3),
            (1000, 10),
            (50_000, 3_000_000),
            (20_000, i32::MAX),
        ];
        for (seed, (n, max)) in cases.into_iter().enumerate() {
            let rows: Vec<i32> = crate::test_util::xorshift_below(n, seed as u64, max as u64)
                .into_iter()
                .map(|x| x as i32)
                .collect();
            let got = TouchedRows::new(&rows);
            assert_eq!(got, by_sorting(&rows), "{n} rows below {max}");
            assert!(got.unique.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
