//! The compute precision of a run: the float dtype the frozen backbone is loaded and computes
//! in. Trainable parameters (Engram layers, LoRA factors) are f32 master weights whatever the
//! precision, as in the study (bf16 compute, fp32 master weights).
//!
//! Where the two meet, the casts are placed so that gradients reach the f32 parameters:
//! * Engram casts the hidden states it reads to its own dtype (f32), computes, and casts its
//!   update back to the hidden states' dtype ([`crate::Engram::forward`]);
//! * a LoRA projection casts its f32 factors to the activations' dtype (what PyTorch's
//!   autocast does) in the factored form `x W + s (x A) B` (`host::qwen3::forward_linear`);
//! * logits are cast to f32 before `log_softmax` (the loss, eval loss and scoring), attention
//!   scores before their softmax, RMSNorm statistics inside Burn's `RmsNorm`.

use burn::tensor::{DType, Device};
use serde::{Deserialize, Serialize};

use crate::error::{EngramError, Result};

/// Float dtype of the frozen backbone's weights and activations.
///
/// ```
/// use burn::tensor::DType;
/// use burn_engram::precision::Precision;
///
/// let cpu = burn_engram::device::select_device("cpu").unwrap();
/// assert_eq!(Precision::select("auto", &cpu).unwrap(), Precision::F32); // f32 on the CPU
/// assert_eq!(Precision::select("bf16", &cpu).unwrap().dtype(), DType::BF16);
/// assert!(Precision::select("fp8", &cpu).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    F32,
    /// Backbone in bf16; trainable parameters, loss and softmaxes in f32.
    Bf16,
}

impl Precision {
    /// The names [`select`](Self::select) accepts.
    pub const NAMES: [&'static str; 3] = ["auto", "f32", "bf16"];

    /// The backbone's float dtype.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }

    /// "f32" or "bf16".
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }

    /// bf16 on an accelerator that computes in it (Burn's [`Device::supports_dtype`]: storage,
    /// conversion and arithmetic), f32 otherwise. The CPU (flex) backend gets f32: it can
    /// compute in bf16 (the tests run the bf16 path there) but its bf16 matmul converts both
    /// operands to f32 and back, so bf16 only costs time on the CPU.
    pub fn auto(device: &Device) -> Self {
        if is_cpu(device) || !device.supports_dtype(DType::BF16) {
            Self::F32
        } else {
            Self::Bf16
        }
    }

    /// `auto`, `f32` or `bf16` for `device`; an unknown name, or bf16 on a device that cannot
    /// compute in it, is an error.
    pub fn select(name: &str, device: &Device) -> Result<Self> {
        match name {
            "auto" => Ok(Self::auto(device)),
            "f32" => Ok(Self::F32),
            "bf16" if device.supports_dtype(DType::BF16) => Ok(Self::Bf16),
            "bf16" => Err(EngramError::Precision {
                name: name.to_string(),
                reason: format!("{device:?} cannot compute in bf16; use f32 or auto"),
            }),
            other => Err(EngramError::Precision {
                name: other.to_string(),
                reason: format!("unknown; choose one of {:?}", Self::NAMES),
            }),
        }
    }
}

fn is_cpu(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    {
        *device == Device::flex() // device equality ignores autodiff
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let cpu = Device::flex();
        for p in [Precision::F32, Precision::Bf16] {
            assert_eq!(Precision::select(p.name(), &cpu).unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
        }
    }

    #[test]
    fn auto_is_f32_on_the_cpu_with_or_without_autodiff() {
        assert_eq!(Precision::auto(&Device::flex()), Precision::F32);
        assert_eq!(Precision::auto(&Device::flex().autodiff()), Precision::F32);
    }

    #[test]
    fn unknown_names_are_named_in_the_error() {
        let err = Precision::select("fp16", &Device::flex()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("fp16") && msg.contains("bf16"), "{msg}");
    }
}
