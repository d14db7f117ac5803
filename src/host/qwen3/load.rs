//! Loading a Hugging Face Qwen3 folder: config.json plus `model.safetensors` or shards listed
//! in `model.safetensors.index.json`, through burn-store (PyTorch layouts adapted, floats cast
//! to the dtype asked for).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::store::{
    FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use burn::tensor::{DType, Device};
use serde::Deserialize;

use super::config::Qwen3Config;
use super::model::Qwen3ForCausalLM;
use crate::error::{EngramError, Result};
use crate::io::read_json;

/// The safetensors files of a model folder: `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(EngramError::bad_file(
            dir,
            "holds neither model.safetensors nor model.safetensors.index.json",
        ));
    }
    #[derive(Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let idx: Index = read_json(&index)?;
    let files: BTreeSet<&String> = idx.weight_map.values().collect();
    let files: Vec<PathBuf> = files.into_iter().map(|f| dir.join(f)).collect();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(EngramError::bad_file(
            &index,
            format!("names shard {} which does not exist", missing.display()),
        ));
    }
    if files.is_empty() {
        return Err(EngramError::bad_file(&index, "weight_map is empty"));
    }
    Ok(files)
}

/// Whether a file tensor that the backbone does not use may be skipped silently: Engram
/// tensors (loaded by [`crate::EngramLayers::load_weights`]) and a redundant `lm_head.weight`
/// of a tied model.
fn ignorable(name: &str, tied: bool) -> bool {
    name.contains("engram_layers.") || (tied && name == "lm_head.weight")
}

/// Loads a Qwen3 model folder onto `device` with float weights cast to `dtype` (f32 on CPU;
/// bf16 where the device supports it). Every tensor the config implies must be present with
/// its shape, and every tensor in the files must belong to the model (Engram tensors and a
/// tied model's `lm_head.weight` excepted); otherwise the error lists them all by name.
pub fn load_qwen3(
    dir: impl AsRef<Path>,
    device: &Device,
    dtype: DType,
) -> Result<Qwen3ForCausalLM> {
    let dir = dir.as_ref();
    let config_path = dir.join("config.json");
    let config = Qwen3Config::from_file(&config_path)?;
    let files = weight_files(dir)?;
    // before allocating: the weights must be able to hold what the config describes (2 bytes
    // a parameter, bf16/f16, is the least a float file stores)
    let file_bytes: u128 = files
        .iter()
        .map(|f| {
            f.metadata()
                .map(|m| m.len() as u128)
                .map_err(|e| EngramError::io(f, e))
        })
        .sum::<Result<u128>>()?;
    // a weight file too short to hold a safetensors header is the file's fault, not the config's
    for f in &files {
        let len = f.metadata().map_err(|e| EngramError::io(f, e))?.len();
        if len < 8 {
            return Err(EngramError::bad_file(
                f,
                format!("{len} bytes: too short to be a safetensors file (empty or truncated)"),
            ));
        }
    }
    let params = config.implied_params();
    if params * 2 > file_bytes {
        return Err(EngramError::bad_file(
            &config_path,
            format!(
                "the dimensions imply {params} parameters ({} bytes even in bf16) but the weight files ({}) hold {file_bytes} bytes: a size in config.json does not match the weights",
                params * 2,
                files
                    .iter()
                    .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let mut model = Qwen3ForCausalLM::new(&config, device);

    let mut applied = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut unexpected = BTreeSet::new();
    let mut mismatched = BTreeSet::new();
    for file in &files {
        let mut store = SafetensorsStore::from_file(file)
            .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(dtype)))
            .validate(false)
            .allow_partial(true);
        let result = model
            .load_from(&mut store)
            .map_err(|e| EngramError::bad_file(file, format!("cannot read safetensors: {e}")))?;
        applied.extend(result.applied);
        missing.extend(result.missing.into_iter().map(|(path, _)| path));
        unexpected.extend(
            result
                .unused
                .into_iter()
                .filter(|n| !ignorable(n, config.tie_word_embeddings)),
        );
        mismatched.extend(result.errors.into_iter().map(|e| e.to_string()));
    }
    let missing: Vec<String> = missing.difference(&applied).cloned().collect();
    if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
        return Err(EngramError::WeightsMismatch {
            path: dir.to_path_buf(),
            missing,
            unexpected: unexpected.into_iter().collect(),
            mismatched: mismatched.into_iter().collect(),
        });
    }
    let bad = crate::io::finite::non_finite_params(&model)?;
    if !bad.is_empty() {
        return Err(EngramError::bad_file(
            dir,
            format!(
                "weights hold NaN or infinite values: {}",
                crate::io::finite::describe(&bad)
            ),
        ));
    }
    Ok(model)
}
