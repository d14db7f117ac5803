//! Host-storage helpers of the flex CPU kernels (Burn's `extension` feature).

use burn::backend::flex::FlexTensor;
use burn::tensor::DType;

/// The elements of a contiguous f32 flex tensor, `None` for other dtypes or layouts.
pub(crate) fn f32s(t: &FlexTensor) -> Option<&[f32]> {
    if t.dtype() != DType::F32 {
        return None;
    }
    let (start, end) = t.layout().contiguous_offsets()?;
    Some(&t.storage::<f32>()[start..end])
}

/// `[rows, cols]` of a 2-d flex tensor, `None` for any other rank.
pub(crate) fn matrix_dims(t: &FlexTensor) -> Option<[usize; 2]> {
    match t.layout().shape().to_vec()[..] {
        [r, c] => Some([r, c]),
        _ => None,
    }
}

/// Asks the CPU to bring the `len` floats at `row` into cache (x86_64; nothing
/// elsewhere). Never faults, whatever the address.
#[inline(always)]
pub(crate) fn prefetch_row(row: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let at = row.cast::<i8>();
        for line in (0..len * 4).step_by(64) {
            // SAFETY: SSE is part of x86_64; a prefetch never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (row, len);
}

/// The element-wise sum of per-chunk partial sums (each `len` long), added up in chunk
/// order: the same bits whatever the number of threads that made them.
pub(crate) fn sum_partials(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; len];
    for p in partials {
        for (a, b) in sum.iter_mut().zip(p) {
            *a += b;
        }
    }
    sum
}
