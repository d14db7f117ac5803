//! Table row reads: `[B, T, K]` row indices into a `[R, d]` table -> `[B, T, K * d]`.
//!
//! On the flex CPU backend, outside autodiff, a kernel of our own reads the rows straight
//! from the table's host storage: i32 (or i64) ids as uploaded, every id checked once, rows
//! prefetched [`PREFETCH_ROWS`] ahead (a row of a table far larger than the caches is a
//! DRAM miss, and the out-of-order window alone keeps too few of them in flight), and the
//! output written once into fresh memory by all threads. Under autodiff the same kernel is
//! the forward of a tracked op with a parallel backward of its own (`gather_grad.rs`).
//! Everywhere else (wgpu / cuda, other dtypes or strided tables, gradient checkpointing)
//! Burn's `embedding` runs. Both return the same values bit for bit (a copy).

use burn::tensor::module::embedding;
use burn::tensor::{Int, Tensor};

/// How many rows ahead of the one being copied the kernel prefetches.
#[cfg(feature = "flex")]
const PREFETCH_ROWS: usize = 16;

/// Rows per parallel task.
#[cfg(feature = "flex")]
const CHUNK_ROWS: usize = 1024;

/// `rows: [B, T, K]` indices into `table: [R, d]` -> `[B, T, K * d]`.
///
/// # Panics
/// If an index is negative or not below R (as Burn's `embedding`).
pub(crate) fn read_rows(table: Tensor<2>, rows: Tensor<3, Int>) -> Tensor<3> {
    let [b, t, k] = rows.dims();
    let [_, d] = table.dims();
    #[cfg(feature = "flex")]
    if let Some(out) = flex::read_rows(&table, &rows)
        .or_else(|| super::gather_grad::read_rows_tracked(&table, &rows))
    {
        return out.reshape([b, t, k * d]);
    }
    embedding(table, rows.reshape([b, t * k])).reshape([b, t, k * d])
}

#[cfg(feature = "flex")]
pub(super) mod flex {
    use std::mem::MaybeUninit;

    use burn::backend::Flex;
    use burn::backend::flex::FlexTensor;
    use burn::tensor::{DType, Int, Tensor, TensorData};
    use rayon::prelude::*;

    use super::{CHUNK_ROWS, PREFETCH_ROWS};
    use crate::ops::flex::{f32s, matrix_dims, prefetch_row};

    /// The kernel's result `[B * T * K * d]`, or `None` where it does not apply.
    pub(super) fn read_rows(table: &Tensor<2>, rows: &Tensor<3, Int>) -> Option<Tensor<1>> {
        let table = table.clone().try_into_primitive::<Flex>().ok()?;
        let ids = rows.clone().try_into_primitive::<Flex>().ok()?;
        let out = gather_primitive(&table, &ids)?;
        Some(Tensor::from_primitive::<Flex>(out))
    }

    /// The rows `ids` (i32 or i64, any shape, contiguous) of the 2-d contiguous f32 `table`,
    /// as one flat `[ids * d]` tensor; `None` for any other input.
    ///
    /// # Panics
    /// If an id is negative or not below the table's rows.
    pub(in crate::memory) fn gather_primitive(
        table: &FlexTensor,
        ids: &FlexTensor,
    ) -> Option<FlexTensor> {
        let [r, d] = matrix_dims(table)?;
        let data = f32s(table)?;
        if d == 0 {
            return None;
        }
        let out = match ids_of(ids)? {
            Ids::I32(ids) => gather(data, r, d, ids),
            Ids::I64(ids) => gather(data, r, d, ids),
        };
        let n = out.len();
        Some(FlexTensor::from_data(TensorData::new(out, [n])))
    }

    /// Row ids as stored: a contiguous i32 or i64 flex tensor.
    pub(in crate::memory) enum Ids<'a> {
        I32(&'a [i32]),
        I64(&'a [i64]),
    }

    /// The ids of a contiguous i32 / i64 tensor, `None` for other dtypes or layouts.
    pub(in crate::memory) fn ids_of(ids: &FlexTensor) -> Option<Ids<'_>> {
        let (start, end) = ids.layout().contiguous_offsets()?;
        match ids.dtype() {
            DType::I32 => Some(Ids::I32(&ids.storage::<i32>()[start..end])),
            DType::I64 => Some(Ids::I64(&ids.storage::<i64>()[start..end])),
            _ => None,
        }
    }

    /// The rows `ids` of the row-major `[r, d]` table `data`, concatenated.
    fn gather<I: Copy + Into<i64> + Sync>(data: &[f32], r: usize, d: usize, ids: &[I]) -> Vec<f32> {
        if let Some(bad) = ids
            .iter()
            .map(|&i| i.into())
            .find(|&i| i < 0 || i >= r as i64)
        {
            panic!("table row index {bad} is out of bounds for a table of {r} rows");
        }
        let n = ids.len() * d;
        let mut out: Vec<f32> = Vec::with_capacity(n);
        let slots = &mut out.spare_capacity_mut()[..n];
        if n * 4 >= 1 << 20 {
            slots
                .par_chunks_mut(CHUNK_ROWS * d)
                .zip(ids.par_chunks(CHUNK_ROWS))
                .for_each(|(o, ids)| copy_rows(data, d, ids, o));
        } else {
            copy_rows(data, d, ids, slots);
        }
        // SAFETY: `copy_rows` wrote all `ids.len() * d` elements.
        unsafe { out.set_len(n) };
        out
    }

    /// `out[i * d..(i + 1) * d] = data[ids[i] * d..]`, prefetching ahead; every id is
    /// already checked to be a row of `data`.
    fn copy_rows<I: Copy + Into<i64>>(
        data: &[f32],
        d: usize,
        ids: &[I],
        out: &mut [MaybeUninit<f32>],
    ) {
        debug_assert_eq!(out.len(), ids.len() * d);
        let row = |i: usize| ids[i].into() as usize * d;
        for (i, dst) in out.chunks_exact_mut(d).enumerate() {
            if let Some(&ahead) = ids.get(i + PREFETCH_ROWS) {
                prefetch_row(data.as_ptr().wrapping_add(ahead.into() as usize * d), d);
            }
            let src = &data[row(i)..row(i) + d];
            // SAFETY: f32 and MaybeUninit<f32> have one layout; `src` is `d` long.
            let src: &[MaybeUninit<f32>] =
                unsafe { std::slice::from_raw_parts(src.as_ptr().cast(), d) };
            dst.copy_from_slice(src);
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::module::embedding;
    use burn::tensor::{DType, Device, Distribution, Int, Tensor, TensorData};

    use super::read_rows;

    fn table(r: usize, d: usize, device: &Device) -> Tensor<2> {
        Tensor::random([r, d], Distribution::Normal(0.0, 1.0), device)
    }

    fn ids(n: usize, r: usize) -> Vec<i32> {
        let v = crate::test_util::xorshift_below(n, 1, r as u64);
        v.into_iter().map(|x| x as i32).collect()
    }

    fn burn_rows(table: Tensor<2>, rows: Tensor<3, Int>) -> Vec<f32> {
        let [b, t, k] = rows.dims();
        embedding(table, rows.reshape([b, t * k]))
            .into_data()
            .try_to_vec()
            .unwrap()
    }

    /// The kernel (small and parallel sizes, i32 and i64 ids, a row width that is not a
    /// cache line) equals Burn's embedding bit for bit; so does the read under autodiff.
    #[test]
    fn the_kernel_equals_burns_embedding() {
        let device = Device::flex();
        for (b, t, k, r, d) in [
            (1, 3, 2, 10, 4),
            (2, 64, 48, 5000, 64),
            (3, 100, 7, 999, 13),
        ] {
            let tab = table(r, d, &device);
            let idx = ids(b * t * k, r);
            let want = burn_rows(
                tab.clone(),
                Tensor::from_data(TensorData::new(idx.clone(), [b, t, k]), &device),
            );
            let wide: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
            for rows in [
                Tensor::<3, Int>::from_data(TensorData::new(idx.clone(), [b, t, k]), &device),
                Tensor::<3, Int>::from_data(TensorData::new(wide, [b, t, k]), &device),
            ] {
                assert!(
                    super::flex::read_rows(&tab, &rows).is_some(),
                    "the kernel ran"
                );
                let got = read_rows(tab.clone(), rows);
                assert_eq!(got.dims(), [b, t, k * d]);
                assert_eq!(got.into_data().try_to_vec::<f32>().unwrap(), want);
            }
            let (tab, rows) = (
                tab.clone().autodiff(),
                Tensor::from_data(TensorData::new(idx, [b, t, k]), &device.clone().autodiff()),
            );
            assert!(
                super::flex::read_rows(&tab, &rows).is_none(),
                "autodiff tables take the tracked op (gather_grad.rs)"
            );
            let ad = read_rows(tab, rows);
            assert_eq!(ad.into_data().try_to_vec::<f32>().unwrap(), want);
        }
    }

    /// A strided (transposed) table and a row-index view that starts inside its storage
    /// take the right rows.
    #[test]
    fn views_read_the_rows_they_show() {
        let device = Device::flex();
        let base = table(6, 10, &device);
        let tab = base.clone().transpose(); // [10, 6], not contiguous
        let idx = Tensor::<3, Int>::from_data(TensorData::new(ids(40, 10), [2, 5, 4]), &device);
        let view = idx.clone().narrow(0, 1, 1); // starts at element 20
        assert!(
            super::flex::read_rows(&tab, &idx).is_none(),
            "strided falls back"
        );
        for (t, i) in [
            (tab.clone(), idx.clone()),
            (table(10, 6, &device), view.clone()),
        ] {
            let want = burn_rows(t.clone(), i.clone());
            assert_eq!(
                read_rows(t, i).into_data().try_to_vec::<f32>().unwrap(),
                want
            );
        }
        assert_eq!(base.dtype(), DType::F32);
    }

    #[test]
    #[should_panic(expected = "table row index 10 is out of bounds for a table of 10 rows")]
    fn an_index_past_the_table_panics_naming_it() {
        let device = Device::flex();
        let rows = Tensor::<3, Int>::from_data(TensorData::new(vec![1, 10], [1, 1, 2]), &device);
        let _ = read_rows(table(10, 4, &device), rows);
    }
}
