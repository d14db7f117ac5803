//! Reading tensors back to the host.

use burn::tensor::Tensor;

use crate::error::{EngramError, Result};

/// The values of a float tensor as f32 (whatever its dtype), or a readback error naming
/// `what`.
pub(crate) fn read_f32<const D: usize>(what: &str, tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| EngramError::Readback {
            what: what.to_string(),
            reason: format!("{e:?}"),
        })
}
