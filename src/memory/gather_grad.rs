//! The table read under autodiff on the flex CPU backend, with a backward of our own.
//!
//! Burn's `embedding` backward allocates a zeroed `[R, d]` gradient and adds the `n` read
//! gradients into it one after another on one thread (`select_assign` with `Add`). Here the
//! forward is the gather kernel of [`super::gather`], and the backward is a sorted segmented
//! sum: the read positions are counting-sorted by row (stable, so ascending within a row),
//! then every thread owns a range of output rows and sums each row's read gradients in
//! ascending position order, starting from `0.0`: the same additions in the same order as
//! Burn's serial loop, so the gradient is bit-identical. Rows no read touched stay the zero
//! pages of a fresh allocation. Other backends, dtypes, layouts and checkpointing strategies
//! keep Burn's `embedding`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use super::gather::flex::{Ids, gather_primitive, ids_of};
use crate::ops::flex::{f32s, matrix_dims, prefetch_row};

/// Output rows per parallel task of the backward.
const CHUNK_ROWS: usize = 1024;

/// How many read gradients ahead of the one being added the backward prefetches.
const PREFETCH_READS: usize = 16;

/// The read of `rows` from an autodiff flex `table` (no gradient checkpointing) as a tracked
/// op with the segmented-sum backward, `[B * T * K * d]`; `None` where it does not apply.
///
/// # Panics
/// If an index is negative or not below the table's rows (as Burn's `embedding`).
pub(super) fn read_rows_tracked(table: &Tensor<2>, rows: &Tensor<3, Int>) -> Option<Tensor<1>> {
    let table = table.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    // ids made on an autodiff device carry its context; ids made on a plain one do not
    let ids = rows
        .clone()
        .try_into_primitive::<Autodiff<Flex>>()
        .or_else(|_| rows.clone().try_into_primitive::<Flex>())
        .ok()?;
    let dims = matrix_dims(table.primitive())?;
    let out = gather_primitive(table.primitive(), &ids)?;
    let out = match ReadRows
        .prepare::<NoCheckpointing>([table.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((ids, dims), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

/// The tracked table read; its state is the row ids and the table's `[rows, width]`.
#[derive(Debug)]
struct ReadRows;

impl Backward<Flex, 1> for ReadRows {
    type State = (FlexTensor, [usize; 2]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (ids, [r, d]) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            table_grad(&grad.to_contiguous(), &ids, r, d)
        });
    }
}

/// The `[r, d]` table gradient of a read of `ids` whose output gradient is `grad`
/// (`[ids * d]`, contiguous f32).
fn table_grad(grad: &FlexTensor, ids: &FlexTensor, r: usize, d: usize) -> FlexTensor {
    let grad = f32s(grad).expect("a contiguous f32 gradient");
    let ids = ids_of(ids).expect("the forward checked the ids' dtype and layout");
    let out = match ids {
        Ids::I32(ids) => sum_rows(grad, d, ids, r),
        Ids::I64(ids) => sum_rows(grad, d, ids, r),
    };
    FlexTensor::from_data(TensorData::new(out, [r, d]))
}

/// `out[u] = 0 + grad[i0] + grad[i1] + ...` over the reads `i0 < i1 < ...` of row `u`
/// (`ids[i] == u`), for every row of an `[r, d]` output; `grad` is `[ids.len(), d]`.
fn sum_rows<I: Copy + Into<i64> + Sync>(grad: &[f32], d: usize, ids: &[I], r: usize) -> Vec<f32> {
    assert_eq!(grad.len(), ids.len() * d, "one gradient row per read");
    let (start, order) = reads_by_row(ids, r);
    let mut out = vec![0.0f32; r * d];
    if d == 0 {
        return out;
    }
    let sum = |first: usize, out: &mut [f32]| sum_chunk(grad, d, &start, &order, first, out);
    if ids.len() * d * 4 >= 1 << 20 {
        out.par_chunks_mut(CHUNK_ROWS * d)
            .enumerate()
            .for_each(|(c, o)| sum(c * CHUNK_ROWS, o));
    } else {
        sum(0, &mut out);
    }
    out
}

/// A stable counting sort of the read positions by row: the reads of row `u` are
/// `order[start[u]..start[u + 1]]`, ascending.
///
/// # Panics
/// If an id is negative or not below `r`.
fn reads_by_row<I: Copy + Into<i64>>(ids: &[I], r: usize) -> (Vec<u32>, Vec<u32>) {
    assert!(ids.len() < u32::MAX as usize, "fewer than 2^32 reads");
    let row = |i: I| {
        let i: i64 = i.into();
        assert!(
            (0..r as i64).contains(&i),
            "table row index {i} is out of bounds for a table of {r} rows"
        );
        i as usize
    };
    let mut start = vec![0u32; r + 1];
    for &i in ids {
        start[row(i) + 1] += 1;
    }
    for u in 0..r {
        start[u + 1] += start[u];
    }
    let mut next = start.clone();
    let mut order = vec![0u32; ids.len()];
    for (p, &i) in ids.iter().enumerate() {
        // every id was checked by the counting pass above
        let at = &mut next[i.into() as usize];
        order[*at as usize] = p as u32;
        *at += 1;
    }
    (start, order)
}

/// The rows `first..first + out.len() / d` of [`sum_rows`]' output, into zeros.
fn sum_chunk(grad: &[f32], d: usize, start: &[u32], order: &[u32], first: usize, out: &mut [f32]) {
    let rows = out.len() / d;
    let end = start[first + rows] as usize;
    for (j, dst) in out.chunks_exact_mut(d).enumerate() {
        let u = first + j;
        for k in start[u] as usize..start[u + 1] as usize {
            if k + PREFETCH_READS < end {
                let ahead = order[k + PREFETCH_READS] as usize * d;
                prefetch_row(grad.as_ptr().wrapping_add(ahead), d);
            }
            let at = order[k] as usize * d;
            for (o, g) in dst.iter_mut().zip(&grad[at..at + d]) {
                *o += g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::embedding;
    use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

    use super::super::gather::read_rows;

    /// Forward values and table gradient of `sum(read * w)`: by the crate's read and by
    /// Burn's embedding.
    fn both(r: usize, d: usize, ids: &[i32], shape: [usize; 3], ids_on_autodiff: bool) {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let base = Tensor::<2>::random([r, d], Distribution::Normal(0.0, 1.0), &device);
        let [b, t, k] = shape;
        let w = Tensor::<3>::random([b, t, k * d], Distribution::Normal(0.0, 1.0), &ad);
        let id_device = if ids_on_autodiff { &ad } else { &device };
        let rows = Tensor::<3, Int>::from_data(TensorData::new(ids.to_vec(), shape), id_device);

        let ours_table = base.clone().autodiff().require_grad();
        assert!(
            super::read_rows_tracked(&ours_table, &rows).is_some(),
            "the tracked kernel ran"
        );
        let ours = read_rows(ours_table.clone(), rows.clone());
        let ours_grad = (ours.clone() * w.clone()).sum().backward();
        let ours_grad = ours_table.grad(&ours_grad).unwrap();

        let burn_table = base.autodiff().require_grad();
        let burn_rows = Tensor::<2, Int>::from_data(TensorData::new(ids.to_vec(), [b, t * k]), &ad);
        let burns = embedding(burn_table.clone(), burn_rows).reshape([b, t, k * d]);
        let burns_grad = (burns.clone() * w).sum().backward();
        let burns_grad = burn_table.grad(&burns_grad).unwrap();

        let vals = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(vals(ours), vals(burns), "forward");
        let (g, want) = (
            ours_grad.into_data().try_to_vec::<f32>().unwrap(),
            burns_grad.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert_eq!(g.len(), r * d);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&g), bits(&want), "table gradient, {r} x {d}");
    }

    /// Bit for bit Burn's embedding, forward and gradient: serial and parallel sizes, rows
    /// read many times and rows never read, a width that is not a cache line, ids made on
    /// the autodiff device or on the plain one.
    #[test]
    fn the_gradient_equals_burns_bit_for_bit() {
        for (seed, (r, d, shape)) in [
            (10, 4, [1, 3, 2]),
            (50, 13, [2, 40, 6]),
            (3000, 64, [2, 128, 24]),
            (200, 32, [4, 256, 8]),
        ]
        .into_iter()
        .enumerate()
        {
            let n = shape.iter().product();
            let ids: Vec<i32> = crate::test_util::xorshift_below(n, seed as u64 + 7, r as u64)
                .into_iter()
                .map(|x| x as i32)
                .collect();
            both(r, d, &ids, shape, true);
            both(r, d, &ids, shape, false);
        }
    }

    /// The backward's sort places each read once, grouped by row, ascending within a row.
    #[test]
    fn reads_are_grouped_by_row_in_order() {
        let (start, order) = super::reads_by_row(&[2i64, 0, 2, 2, 0], 4);
        assert_eq!(start, [0, 2, 2, 5, 5]);
        assert_eq!(order, [1, 4, 0, 2, 3]);
    }

    /// Reading a table twice adds both reads' gradients; a table without `require_grad`
    /// runs untracked and still reads the right rows.
    #[test]
    fn two_reads_add_and_untracked_tables_read() {
        let device = Device::flex().autodiff();
        let table = Tensor::<2>::from_data(
            TensorData::new((0..12).map(|x| x as f32).collect::<Vec<_>>(), [4, 3]),
            &device,
        );
        let rows = Tensor::<3, Int>::from_data(TensorData::new(vec![3, 1], [1, 1, 2]), &device);
        let plain = read_rows(table.clone(), rows.clone());
        assert_eq!(
            plain.into_data().try_to_vec::<f32>().unwrap(),
            [9.0, 10.0, 11.0, 3.0, 4.0, 5.0]
        );
        let table = table.require_grad();
        let again = Tensor::<3, Int>::from_data(TensorData::new(vec![1], [1, 1, 1]), &device);
        let loss =
            read_rows(table.clone(), rows).sum() + read_rows(table.clone(), again).sum() * 2.0;
        let grad = table.grad(&loss.backward()).unwrap();
        assert_eq!(
            grad.into_data().try_to_vec::<f32>().unwrap(),
            [0.0, 0.0, 0.0, 3.0, 3.0, 3.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
        );
    }

    #[test]
    #[should_panic(expected = "table row index 7 is out of bounds for a table of 5 rows")]
    fn an_index_past_the_table_panics_naming_it() {
        let device = Device::flex().autodiff();
        let table = Tensor::<2>::zeros([5, 2], &device).require_grad();
        let rows = Tensor::<3, Int>::from_data(TensorData::new(vec![1, 7], [1, 1, 2]), &device);
        let _ = read_rows(table, rows);
    }
}
