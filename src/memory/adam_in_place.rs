//! The lazy AdamW step in place on the flex CPU backend: each touched row of the table and
//! of its moments is read, updated and written back where it lies, by all threads at once
//! (the rows are distinct, so every thread owns its rows), with the next rows prefetched.
//! No gather of the moments, no scatter of the results, no `[U, dim]` temporaries.
//!
//! It runs only where that is exact and safe: flex f32 tensors, contiguous, held by nobody
//! else (a table another handle still shares is not written behind that handle's back:
//! [`step`] hands it back and the caller's copy-on-write path runs), row ids strictly
//! ascending and inside the table. The arithmetic is [`RowRule`]'s, so both paths agree bit
//! for bit.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Int, Tensor};
use rayon::prelude::*;

use super::lazy_adam::{RowRule, host_f32};
use crate::ops::flex::{matrix_dims, prefetch_row};

/// How many rows ahead the update prefetches (a touched row of a large table is a DRAM
/// miss).
const PREFETCH_ROWS: usize = 8;

/// Rows per parallel task.
const CHUNK_ROWS: usize = 2048;

/// What [`step`] did: the table and moments after the step, or both handed back unchanged
/// where the in-place step does not apply.
pub(crate) enum Stepped {
    Done(Tensor<2>, Tensor<2>),
    Declined(Tensor<2>, Tensor<2>),
}

/// One lazy AdamW step in place, if it applies (see the module docs).
///
/// # Shapes
/// - `table: [rows, dim]`, `moments: [rows, 2 * dim]`, `ids: [U]`, `values`, `grad: [U, dim]`
pub(crate) fn step(
    rule: RowRule,
    table: Tensor<2>,
    moments: Tensor<2>,
    ids: &Tensor<1, Int>,
    values: &Tensor<2>,
    grad: &Tensor<2>,
) -> Stepped {
    let (Ok(mut tab), Ok(mut mom)) = (
        table.clone().try_into_primitive::<Flex>(),
        moments.clone().try_into_primitive::<Flex>(),
    ) else {
        return Stepped::Declined(table, moments);
    };
    // the clones above were the second handles: drop the originals so `tab` and `mom` are
    // unique exactly when the caller held the only other handle
    drop((table, moments));
    let back = |tab: FlexTensor, mom: FlexTensor| {
        Stepped::Declined(
            Tensor::from_primitive::<Flex>(tab),
            Tensor::from_primitive::<Flex>(mom),
        )
    };
    let (Some([n, dim]), Some([mn, mdim])) = (matrix_dims(&tab), matrix_dims(&mom)) else {
        return back(tab, mom);
    };
    let plain = |t: &FlexTensor| {
        t.dtype() == DType::F32 && t.is_contiguous() && t.layout().start_offset() == 0
    };
    if !plain(&tab) || !plain(&mom) || mn != n || mdim != 2 * dim || dim == 0 {
        return back(tab, mom);
    }
    let rows: Vec<i64> = ids
        .to_data()
        .convert::<i64>()
        .try_into_vec()
        .expect("int data");
    let ascending = rows.windows(2).all(|w| w[0] < w[1]);
    if !ascending
        || rows.first().is_some_and(|&r| r < 0)
        || rows.last().is_some_and(|&r| r >= n as i64)
    {
        return back(tab, mom);
    }
    let (vals, grads) = (host_f32(values.clone()), host_f32(grad.clone()));
    if vals.len() != rows.len() * dim || grads.len() != rows.len() * dim {
        return back(tab, mom);
    }
    let (Some(t), Some(m)) = (tab.try_storage_mut::<f32>(), mom.try_storage_mut::<f32>()) else {
        return back(tab, mom);
    };
    let (t, m) = (Rows(t.as_mut_ptr()), Rows(m.as_mut_ptr()));
    let update = |(c, ids): (usize, &[i64])| {
        let first = c * CHUNK_ROWS;
        for (i, &r) in ids.iter().enumerate() {
            let r = r as usize;
            if let Some(&ahead) = ids.get(i + PREFETCH_ROWS) {
                let a = ahead as usize;
                prefetch_row(t.ptr().wrapping_add(a * dim), dim);
                prefetch_row(m.ptr().wrapping_add(a * 2 * dim), 2 * dim);
            }
            let u = first + i;
            // SAFETY: `r < n` (checked above) so both rows lie inside their tensors, whose
            // storage nobody else holds (`try_storage_mut`); the rows are strictly ascending,
            // so no other iteration, on this thread or another, touches row `r`.
            let (w, mv) = unsafe { (t.row(r, dim), m.row(r, 2 * dim)) };
            w.copy_from_slice(&vals[u * dim..(u + 1) * dim]);
            rule.apply(mv, w, &grads[u * dim..(u + 1) * dim]);
        }
    };
    rows.par_chunks(CHUNK_ROWS).enumerate().for_each(update);
    Stepped::Done(
        Tensor::from_primitive::<Flex>(tab),
        Tensor::from_primitive::<Flex>(mom),
    )
}

/// The base of a tensor's rows, shared by the threads of one step (each writes only its
/// own, distinct rows).
#[derive(Clone, Copy)]
struct Rows(*mut f32);

impl Rows {
    fn ptr(self) -> *const f32 {
        self.0.cast_const()
    }

    /// Row `r` of width `width`.
    ///
    /// # Safety
    /// The row lies inside the storage and no other live reference reaches it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row<'a>(self, r: usize, width: usize) -> &'a mut [f32] {
        // SAFETY: the caller's.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(r * width), width) }
    }
}
// SAFETY: see the use in `step`: threads write disjoint rows of storage nobody else holds.
unsafe impl Send for Rows {}
// SAFETY: as above.
unsafe impl Sync for Rows {}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, IndexingUpdateOp, Int, Tensor, TensorData};

    use super::{Stepped, step};
    use crate::memory::LazyAdamW;
    use crate::memory::lazy_adam::RowRule;

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (i as f32 * f).sin() * (1.0 + i as f32 * 0.01))
            .collect()
    }

    fn t2(v: Vec<f32>, cols: usize, dev: &Device) -> Tensor<2> {
        let rows = v.len() / cols;
        Tensor::from_data(TensorData::new(v, [rows, cols]), dev)
    }

    fn bits(t: Tensor<2>) -> Vec<u32> {
        let v = t.into_data().try_to_vec::<f32>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The gather / host pass / scatter path of `LazyAdamW`, written out.
    fn gathered(
        o: &LazyAdamW,
        lr: f64,
        t: i32,
        (table, moments): (Tensor<2>, Tensor<2>),
        ids: &Tensor<1, Int>,
        values: Tensor<2>,
        grad: Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let dim = values.dims()[1];
        let mv = moments.clone().select(0, ids.clone());
        let (mv, w) = o.rows_host(lr, t, dim, mv, values, grad);
        let a = IndexingUpdateOp::Assign;
        (
            table.select_assign(0, ids.clone(), w, a),
            moments.select_assign(0, ids.clone(), mv, a),
        )
    }

    /// In place equals the gather / scatter path bit for bit (several parallel chunks,
    /// weight decay on and off); rows it does not touch keep their bits.
    #[test]
    fn in_place_equals_gather_and_scatter_bit_for_bit() {
        let dev = Device::flex();
        let (n, dim) = (20_000, 5);
        let rows: Vec<i32> = (0..n as i32).filter(|r| r % 3 != 1).collect();
        let u = rows.len();
        let ids = Tensor::<1, Int>::from_data(TensorData::new(rows.clone(), [u]), &dev);
        for (weight_decay, t) in [(0.0, 1), (0.1, 7)] {
            let o = LazyAdamW {
                weight_decay,
                ..LazyAdamW::default()
            };
            let make = || {
                let m: Vec<f32> = wave(n * 2 * dim, 0.71)
                    .iter()
                    .map(|x| x.abs() * 1e-3)
                    .collect();
                (t2(wave(n * dim, 0.37), dim, &dev), t2(m, 2 * dim, &dev))
            };
            let values = make().0.select(0, ids.clone());
            let grad = t2(wave(u * dim, 1.13), dim, &dev);
            let (tw, tm) = gathered(&o, 0.03, t, make(), &ids, values.clone(), grad.clone());
            let (table, moments) = make();
            let rule = RowRule::new(&o, 0.03, t);
            let Stepped::Done(iw, im) = step(rule, table, moments, &ids, &values, &grad) else {
                panic!("the in-place step applies to unique flex tensors");
            };
            assert_eq!(bits(iw), bits(tw), "table, weight decay {weight_decay}");
            assert_eq!(bits(im), bits(tm), "moments, weight decay {weight_decay}");
        }
    }

    /// A table another handle still holds, rows out of order and autodiff tensors are handed
    /// back untouched, so the copy-on-write path runs and the other handle keeps its values.
    #[test]
    fn shared_or_unordered_inputs_are_handed_back() {
        let dev = Device::flex();
        let o = LazyAdamW::default();
        let rule = RowRule::new(&o, 0.1, 1);
        let table = t2(wave(40, 0.3), 4, &dev);
        let moments = Tensor::<2>::zeros([10, 8], &dev);
        let grad = t2(wave(8, 0.9), 4, &dev);
        let ids = |v: Vec<i32>| Tensor::<1, Int>::from_data(TensorData::new(v, [2]), &dev);
        let values = table.clone().select(0, ids(vec![2, 5]));
        let held = table.clone();
        let before = bits(held.clone());
        let r = step(
            rule,
            table.clone(),
            moments.clone(),
            &ids(vec![2, 5]),
            &values,
            &grad,
        );
        let Stepped::Declined(table, moments) = r else {
            panic!("a shared table is handed back");
        };
        assert_eq!(bits(held), before, "the other handle's table is unchanged");
        let r = step(rule, table, moments, &ids(vec![5, 2]), &values, &grad);
        let Stepped::Declined(table, moments) = r else {
            panic!("rows out of order are handed back");
        };
        let r = step(
            rule,
            table.autodiff(),
            moments,
            &ids(vec![2, 5]),
            &values,
            &grad,
        );
        assert!(
            matches!(r, Stepped::Declined(..)),
            "autodiff tensors are handed back"
        );
        // LazyAdamW itself still steps a shared table correctly (through copy-on-write)
        let table = t2(wave(40, 0.3), 4, &dev);
        let keep = table.clone();
        let (stepped, _) = o.step(0.1, table, ids(vec![2, 5]), grad, None);
        assert_eq!(bits(keep.clone()), bits(t2(wave(40, 0.3), 4, &dev)));
        assert_ne!(bits(stepped), bits(keep));
    }
}
