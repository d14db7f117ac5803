//! Folding a LoRA adapter into the weights (PEFT's `merge_and_unload`), and writing the merged
//! model as a Hugging Face folder that transformers loads as a plain Qwen3.

use std::path::Path;

use burn::module::Module;

use crate::error::{EngramError, Result};
use crate::host::qwen3::{Qwen3ForCausalLM, write_derived_folder};

/// `model` with every adapter folded in: each adapted projection's weight becomes
/// `W + scale * A B` (PEFT's `W + scaling * B @ A` in its `[out, in]` layout) and carries no
/// adapter; a model without LoRA comes back unchanged. The merged weights take the factors'
/// precision (f32): merge a model loaded in f32.
///
/// ```
/// # use burn::tensor::Device;
/// # use burn_engram::host::lora::{LoraConfig, apply_lora, lora_factors, merge_lora};
/// # use burn_engram::host::qwen3::{Qwen3Config, Qwen3ForCausalLM};
/// # let cfg: Qwen3Config = serde_json::from_str(r#"{"model_type": "qwen3", "vocab_size": 32,
/// #   "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
/// #   "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4}"#).unwrap();
/// let device = Device::default();
/// let adapted = apply_lora(Qwen3ForCausalLM::new(&cfg, &device), &LoraConfig::default())?;
/// let merged = merge_lora(adapted);
/// assert!(lora_factors(&merged).is_empty());
/// # Ok::<(), burn_engram::EngramError>(())
/// ```
pub fn merge_lora(model: Qwen3ForCausalLM) -> Qwen3ForCausalLM {
    model.materialize()
}

/// Writes `merged` (from [`merge_lora`]) as the Hugging Face folder `out`: `model.safetensors`
/// (f32, transformers' names), the `config.json` of `base_dir` (the folder the base was
/// loaded from) with its dtype set to `float32`, and whichever of [`FOLDER_FILES`](crate::host::qwen3::FOLDER_FILES) `base_dir`
/// has, copied as they are. The folder is written whole ([`write_dir_atomic`]); `out` must
/// not be `base_dir`, and the model must be f32 (load the base with `DType::F32`).
///
/// [`write_dir_atomic`]: crate::io::write_dir_atomic
pub fn save_merged(
    merged: &Qwen3ForCausalLM,
    base_dir: impl AsRef<Path>,
    out: impl AsRef<Path>,
) -> Result<()> {
    let (base_dir, out) = (base_dir.as_ref(), out.as_ref());
    if !super::lora_factors(merged).is_empty() {
        return Err(EngramError::bad_file(
            out,
            "the model still carries LoRA factors: merge it first (merge_lora)",
        ));
    }
    write_derived_folder(merged, base_dir, out, |_| Ok(()))
}
