//! Picking a device by name, for command-line tools: `cpu` (flex), `wgpu`, `cuda`.

use burn::tensor::Device;

use crate::error::{EngramError, Result};

/// The device names this build supports (depends on the crate features).
pub fn available_devices() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("cpu");
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        v.push("cuda");
    }
    v
}

/// `cpu` (the flex backend), `wgpu` (the default wgpu adapter) or `cuda` (GPU 0), when the
/// matching crate feature is on.
///
/// ```
/// let cpu = burn_engram::device::select_device("cpu").unwrap();
/// assert!(burn_engram::device::select_device("tpu").is_err());
/// # let _ = cpu;
/// ```
pub fn select_device(name: &str) -> Result<Device> {
    match name {
        #[cfg(feature = "flex")]
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        other => Err(EngramError::UnknownDevice {
            name: other.to_string(),
            available: available_devices(),
        }),
    }
}
