//! Qwen3 with Engram memory at chosen decoder layers, as TinyEngram wraps it.

use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{DType, Device, Int, Tensor};

use super::load::load_qwen3;
use super::model::{KvCache, Qwen3ForCausalLM};
use crate::config::EngramConfig;
use crate::error::{EngramError, Result};
use crate::memory::{EngramBatch, EngramLayers, EngramState, InitOptions};
use crate::vocab::CompressedVocab;
use crate::weights::{CONFIG_FILE, WEIGHTS_FILE};

/// A Qwen3 backbone plus [`EngramLayers`]: before decoder layer L's input norm the residual
/// stream becomes `h + engram(h, ids)` for every L in `layer_ids`.
#[derive(Module, Debug)]
pub struct Qwen3Engram {
    /// The backbone.
    pub base: Qwen3ForCausalLM,
    /// The Engram layers.
    pub engram: EngramLayers,
}

impl Qwen3Engram {
    /// Adds fresh Engram layers to `base`; layer ids must be decoder layers of `base`.
    pub fn new(
        base: Qwen3ForCausalLM,
        config: &EngramConfig,
        vocab: Arc<CompressedVocab>,
        init: InitOptions,
        device: &Device,
    ) -> Result<Self> {
        check_layers(config, &base)?;
        let engram = EngramLayers::new(config, vocab, base.config().hidden_size, init, device)?;
        Ok(Self { base, engram })
    }

    /// Loads a TinyEngram-style folder: a Qwen3 folder whose `model.safetensors` (or shards)
    /// also hold `model.engram_layers.*`, with `engram_config.json` beside it. The compressed
    /// vocabulary is built from the folder's `tokenizer.json`.
    pub fn load_tinyengram(dir: impl AsRef<Path>, device: &Device, dtype: DType) -> Result<Self> {
        let dir = dir.as_ref();
        let base = load_qwen3(dir, device, dtype)?;
        let config = EngramConfig::from_foreign_json_file(dir.join(CONFIG_FILE))?;
        let vocab = Arc::new(CompressedVocab::from_tokenizer_file(
            dir.join("tokenizer.json"),
        )?);
        Self::with_engram_weights(base, dir, &config, vocab, device)
    }

    /// Adds Engram layers from `dir`: a folder written by
    /// [`EngramLayers::save_pretrained`] (`engram.safetensors`), or a TinyEngram model folder
    /// (`engram_config.json` plus weight files holding `model.engram_layers.*`), whose
    /// compression table is then built from `tokenizer`.
    pub fn attach(
        base: Qwen3ForCausalLM,
        dir: impl AsRef<Path>,
        tokenizer: &tokenizers::Tokenizer,
        device: &Device,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        if dir.join(WEIGHTS_FILE).is_file() {
            let engram = EngramLayers::load_pretrained(dir, device)?;
            check_layers(engram.config(), &base)?;
            check_width(&engram, &base, &dir.join(WEIGHTS_FILE))?;
            return Ok(Self { base, engram });
        }
        let config = EngramConfig::from_foreign_json_file(dir.join(CONFIG_FILE))?;
        let vocab = Arc::new(CompressedVocab::from_tokenizer(tokenizer)?);
        Self::with_engram_weights(base, dir, &config, vocab, device)
    }

    /// Adds Engram layers read from the Engram tensors of the folder's weight files.
    pub fn with_engram_weights(
        base: Qwen3ForCausalLM,
        dir: &Path,
        config: &EngramConfig,
        vocab: Arc<CompressedVocab>,
        device: &Device,
    ) -> Result<Self> {
        check_layers(config, &base)?;
        let files = super::load::weight_files(dir)?;
        let file = files.iter().find(|f| file_has_engram(f)).ok_or_else(|| {
            EngramError::bad_file(dir, "no weight file holds `engram_layers.*` tensors")
        })?;
        let engram = EngramLayers::load_weights(file, config, vocab, device)?;
        check_width(&engram, &base, file)?;
        Ok(Self { base, engram })
    }

    /// Freezes every backbone parameter: only Engram trains.
    pub fn freeze_backbone(self) -> Self {
        Self {
            base: self.base.no_grad(),
            engram: self.engram,
        }
    }

    /// Logits `[B, T, vocab]`; `batch` holds the hash rows of these ids
    /// (`self.engram.prepare(..)`).
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        attention_mask: Option<Tensor<2, Int>>,
        batch: &EngramBatch,
    ) -> Result<Tensor<3>> {
        self.base
            .forward_with(ids, attention_mask, None, &self.engram, batch)
    }

    /// Logits `[B, T, vocab]` of `T` new tokens per row (row-major raw ids) that continue
    /// `cache` (empty at the start): the backbone reads its KV cache and Engram its
    /// [`EngramState`] (the n-grams' last tokens and the short conv's history), so each new
    /// token costs the same whatever the length so far. Equals [`forward`](Self::forward) on
    /// the whole sequences at these positions.
    ///
    /// # Shapes
    /// - `ids`: `B * T` raw token ids, row-major
    /// - output: `[B, T, vocab]`
    pub fn forward_step(
        &self,
        ids: &[i64],
        batch: usize,
        seq_len: usize,
        cache: &mut KvCache<EngramState>,
    ) -> Result<Tensor<3>> {
        let device = self.base.model.embed_tokens.weight.val().device();
        self.base
            .config()
            .check_token_ids(ids.iter().copied(), seq_len)?;
        let step = self
            .engram
            .prepare_step(cache.memory_mut(), ids, batch, seq_len, &device)?;
        let data: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
        let tokens = Tensor::<2, Int>::from_data(
            burn::tensor::TensorData::new(data, [batch, seq_len]),
            &device,
        );
        self.base
            .forward_with(tokens, None, Some(cache), &self.engram, &step)
    }
}

impl Qwen3Engram {
    /// Writes the model as a TinyEngram folder, the layout [`load_tinyengram`] and the Python
    /// reference read: one `model.safetensors` with the backbone (transformers' names) and
    /// `model.engram_layers.{L}.*` (TinyEngram's names, PyTorch layouts, int64 `offsets`),
    /// `engram_config.json` (the reference's field names), the `config.json` of `base_dir` (the
    /// folder the backbone was loaded from) with its dtype set to `float32`, and
    /// whichever of the tokenizer / generation files (see
    /// [`FOLDER_FILES`](super::FOLDER_FILES)) `base_dir` has (`tokenizer.json` is
    /// needed to load the folder back). Written whole ([`write_dir_atomic`]); `out` must not be
    /// `base_dir`, and the backbone must be f32. The whole checkpoint passes through memory
    /// twice while the one file is assembled (about 5 GB for Qwen3-0.6B f32).
    ///
    /// [`load_tinyengram`]: Self::load_tinyengram
    /// [`write_dir_atomic`]: crate::io::write_dir_atomic
    pub fn save_tinyengram(&self, base_dir: impl AsRef<Path>, out: impl AsRef<Path>) -> Result<()> {
        super::write_derived_folder(&self.base, base_dir.as_ref(), out.as_ref(), |dir| {
            // the backbone's file, with the Engram tensors added (safetensors orders the
            // tensors itself)
            let model = dir.join("model.safetensors");
            let bytes = std::fs::read(&model).map_err(|e| EngramError::io(&model, e))?;
            let st = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| EngramError::bad_file(&model, e.to_string()))?;
            let mut tensors: Vec<_> = st
                .tensors()
                .into_iter()
                .map(|(name, v)| (name, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
                .collect();
            tensors.extend(self.engram.weight_tensors()?);
            crate::io::safetensors::write_safetensors(
                &model,
                &tensors,
                crate::io::safetensors::pt_metadata(),
            )?;
            self.engram.config().to_json_file(dir.join(CONFIG_FILE))
        })
    }
}

fn check_layers(config: &EngramConfig, base: &Qwen3ForCausalLM) -> Result<()> {
    let n = base.config().num_hidden_layers;
    if let Some(l) = config.layer_ids.iter().find(|l| **l >= n) {
        return Err(EngramError::config(
            "layer_ids",
            format!("layer {l} does not exist: the model has {n} decoder layers (0-based)"),
        ));
    }
    Ok(())
}

fn check_width(engram: &EngramLayers, base: &Qwen3ForCausalLM, file: &Path) -> Result<()> {
    if engram.hidden_size() != base.config().hidden_size {
        return Err(EngramError::bad_file(
            file,
            format!(
                "Engram tensors are {} wide, the backbone {}",
                engram.hidden_size(),
                base.config().hidden_size
            ),
        ));
    }
    Ok(())
}

fn file_has_engram(path: &Path) -> bool {
    crate::io::safetensors::tensor_names(path)
        .map(|names| names.iter().any(|k| k.contains("engram_layers.")))
        .unwrap_or(false)
}
