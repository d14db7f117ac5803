//! Tensor ops of our own on the flex CPU backend, for anything in the crate to use: fused
//! ops with a backward of their own under autodiff, and the host-storage helpers the
//! crate's CPU kernels share. Each op falls back to Burn's ops where its kernel does not
//! apply (other backends, dtypes, strided inputs, gradient checkpointing).

#[cfg(feature = "flex")]
pub(crate) mod flex;
mod rms_norm;

pub(crate) use rms_norm::rms_norm;
