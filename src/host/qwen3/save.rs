//! Writes a Qwen3 model as a Hugging Face folder (`config.json` + `model.safetensors` with
//! transformers' tensor names and PyTorch layouts), which [`load_qwen3`](super::load_qwen3)
//! and transformers both read.

use std::path::Path;

use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};

use super::model::Qwen3ForCausalLM;
use crate::error::{EngramError, Result};

/// Saves `model` as the folder `dir`: `config.json` and `model.safetensors` (f32,
/// `format = pt` metadata). The folder is written whole ([`write_dir_atomic`]): it replaces
/// an existing `dir` entirely, and an interrupted write leaves the old folder or none.
///
/// [`write_dir_atomic`]: crate::io::write_dir_atomic
pub fn save_qwen3(model: &Qwen3ForCausalLM, dir: impl AsRef<Path>) -> Result<()> {
    crate::io::write_dir_atomic(dir.as_ref(), |dir| save_files(model, dir))
}

/// Writes the folder's files into `dir` (which exists).
pub(crate) fn save_files(model: &Qwen3ForCausalLM, dir: &Path) -> Result<()> {
    let config = serde_json::to_vec_pretty(model.config())
        .map_err(|e| EngramError::bad_file(dir.join("config.json"), e.to_string()))?;
    crate::io::write_atomic(&dir.join("config.json"), &config)?;
    let path = dir.join("model.safetensors");
    let mut store = SafetensorsStore::from_file(&path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata("format", "pt")
        .overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| EngramError::bad_file(&path, format!("cannot write safetensors: {e}")))?;
    Ok(())
}
