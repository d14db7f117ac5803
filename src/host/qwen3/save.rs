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

/// Files of a Hugging Face model folder besides its config and weights that a derived folder
/// (a merged LoRA, an exported Engram model) keeps: the tokenizer's, the chat template and
/// the generation defaults.
pub const FOLDER_FILES: [&str; 8] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "generation_config.json",
];

/// Writes a folder derived from the Hugging Face folder `base_dir` (a merged LoRA, an Engram
/// export) as the folder `out`, whole ([`write_dir_atomic`](crate::io::write_dir_atomic)):
/// `model`'s `model.safetensors`, then whatever `extra` adds in the new folder, then
/// `base_dir`'s `config.json` with its dtype set to `float32` and whichever of
/// [`FOLDER_FILES`] it has. Refuses `out == base_dir` and a model that is not f32.
pub(crate) fn write_derived_folder(
    model: &Qwen3ForCausalLM,
    base_dir: &Path,
    out: &Path,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    check_derived_folder(model, base_dir, out)?;
    crate::io::write_dir_atomic(out, |dir| {
        save_files(model, dir)?;
        extra(dir)?;
        write_f32_config(base_dir, dir)?;
        copy_folder_files(base_dir, dir)
    })
}

/// Copies whichever of [`FOLDER_FILES`] `from` has into `to`, as they are.
fn copy_folder_files(from: &Path, to: &Path) -> Result<()> {
    for name in FOLDER_FILES {
        let src = from.join(name);
        if src.is_file() {
            std::fs::copy(&src, to.join(name)).map_err(|e| EngramError::io(&src, e))?;
        }
    }
    Ok(())
}

/// Writes `base_dir`'s `config.json` into `dir` with its dtype set to `float32` (the
/// spelling found kept: transformers 4.56+ writes `dtype`, earlier ones `torch_dtype`), so a
/// derived folder keeps every field of the original (`architectures`, ...).
fn write_f32_config(base_dir: &Path, dir: &Path) -> Result<()> {
    let path = base_dir.join("config.json");
    let mut config: serde_json::Value = crate::io::read_json(&path)?;
    let Some(fields) = config.as_object_mut() else {
        return Err(EngramError::bad_file(&path, "is not a JSON object"));
    };
    let key = if fields.contains_key("dtype") {
        "dtype"
    } else {
        "torch_dtype"
    };
    fields.insert(key.into(), "float32".into());
    crate::io::write_json(&dir.join("config.json"), &config)
}

/// Refuses to write a folder derived from `base_dir` (a merged LoRA, an Engram export) over
/// `base_dir` itself, or from a model that is not f32 (the folder's config says float32).
fn check_derived_folder(model: &Qwen3ForCausalLM, base_dir: &Path, out: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (base_dir.canonicalize(), out.canonicalize())
        && a == b
    {
        return Err(EngramError::bad_file(
            out,
            "is the base model's folder; write the new folder elsewhere",
        ));
    }
    let dtype = model.model.embed_tokens.weight.val().dtype();
    if dtype != burn::tensor::DType::F32 {
        return Err(EngramError::bad_file(
            out,
            format!("the model is {dtype:?}: load the base in f32 to write an f32 folder"),
        ));
    }
    Ok(())
}
