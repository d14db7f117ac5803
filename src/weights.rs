//! Engram weights as safetensors with TinyEngram's state-dict names and PyTorch layouts
//! (REFERENCE §1.6), so files pass both ways between this crate and the Python reference.
//!
//! A saved folder ([`EngramLayers::save_pretrained`]) holds:
//! * `engram.safetensors`: `model.engram_layers.{L}.…` tensors, f32, torch layouts
//!   (Linear `[out, in]`, conv `[channels, 1, kernel]`), and the int64 `offsets` buffers;
//! * `engram_config.json`: the [`EngramConfig`] fields plus `hidden_size`;
//! * `compressed_vocab.safetensors`: the tokenizer compression table.
//!
//! Loading ([`EngramLayers::load_weights`]) accepts any safetensors file whose Engram
//! tensors end in `engram_layers.{L}.<name>`, whatever comes before (a full TinyEngram
//! `model.safetensors` works), in f32, f16, bf16 or f64.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::config::EngramConfig;
use crate::error::{EngramError, Result};
use crate::io::safetensors::{
    OwnedTensor, f32_bytes, pt_metadata, transpose, view_to_f32, write_safetensors,
};
use crate::io::{read_json, write_json};
use crate::memory::{EngramLayers, LayerDims, LayerWeights};
use crate::vocab::CompressedVocab;

/// File names inside a saved Engram folder.
pub const WEIGHTS_FILE: &str = "engram.safetensors";
/// See [`WEIGHTS_FILE`].
pub const CONFIG_FILE: &str = "engram_config.json";
/// See [`WEIGHTS_FILE`].
pub const VOCAB_FILE: &str = "compressed_vocab.safetensors";

/// The prefix TinyEngram's Qwen3 wrapper gives Engram tensors.
pub const TINYENGRAM_PREFIX: &str = "model.engram_layers";

const MARKER: &str = "engram_layers.";

/// `engram_config.json`: the Engram config and the backbone width it was built for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedEngramConfig {
    /// The Engram configuration (reference field names, flattened).
    #[serde(flatten)]
    pub engram: EngramConfig,
    /// Backbone width D.
    pub hidden_size: usize,
}

/// The tensor names (after `engram_layers.{L}.`) of one layer with `groups` groups, in file
/// order (read off the layout table that saving and loading share).
pub fn layer_tensor_names(groups: usize) -> Vec<String> {
    slots(groups).into_iter().map(Slot::name).collect()
}

/// One tensor of a layer in the file: which host-side weight it holds. [`slots`] lists them,
/// and [`Slot::name`], [`Slot::file_shape`] and [`Slot::burn_matrix`] say how each is
/// stored: THE name/layout table, read by [`EngramLayers::save_weights`] and
/// [`EngramLayers::load_weights`] alike (a new parameter is one more variant here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Embedding,
    ConvWeight,
    ValueWeight,
    ValueBias,
    ConvNorm(usize),
    KeyWeight(usize),
    KeyBias(usize),
    Norm1(usize),
    Norm2(usize),
}

/// Every tensor of a layer with `groups` groups, in file order.
fn slots(groups: usize) -> Vec<Slot> {
    let mut all = vec![
        Slot::Embedding,
        Slot::ConvWeight,
        Slot::ValueWeight,
        Slot::ValueBias,
    ];
    for g in 0..groups {
        all.extend([
            Slot::ConvNorm(g),
            Slot::KeyWeight(g),
            Slot::KeyBias(g),
            Slot::Norm1(g),
            Slot::Norm2(g),
        ]);
    }
    all
}

impl Slot {
    /// The reference's name after `engram_layers.{L}.`.
    fn name(self) -> String {
        match self {
            Self::Embedding => "multi_head_embedding.embedding.weight".into(),
            Self::ConvWeight => "short_conv.conv.weight".into(),
            Self::ValueWeight => "value_proj.weight".into(),
            Self::ValueBias => "value_proj.bias".into(),
            Self::ConvNorm(g) => format!("short_conv.norms.{g}.weight"),
            Self::KeyWeight(g) => format!("key_projs.{g}.weight"),
            Self::KeyBias(g) => format!("key_projs.{g}.bias"),
            Self::Norm1(g) => format!("norm1.{g}.weight"),
            Self::Norm2(g) => format!("norm2.{g}.weight"),
        }
    }

    /// The shape in the file (PyTorch layouts: Linear `[out, in]`, conv `[C, 1, K]`).
    fn file_shape(self, d: &LayerDims) -> Vec<usize> {
        match self {
            Self::Embedding => vec![d.table_rows, d.head_dim],
            Self::ConvWeight => vec![d.channels(), 1, d.kernel],
            Self::ValueWeight | Self::KeyWeight(_) => vec![d.hidden, d.engram_hidden],
            _ => vec![d.hidden],
        }
    }

    /// `Some((rows, cols))` when Burn holds the tensor as the `[rows, cols]` transpose of the
    /// file's (Linear weights: Burn `[in, out]`); other tensors have the same element order.
    fn burn_matrix(self, d: &LayerDims) -> Option<(usize, usize)> {
        matches!(self, Self::ValueWeight | Self::KeyWeight(_))
            .then_some((d.engram_hidden, d.hidden))
    }

    /// The host-side weight it holds.
    fn of(self, w: &mut LayerWeights) -> &mut Vec<f32> {
        match self {
            Self::Embedding => &mut w.embedding,
            Self::ConvWeight => &mut w.conv_weight,
            Self::ValueWeight => &mut w.value_weight,
            Self::ValueBias => &mut w.value_bias,
            Self::ConvNorm(g) => &mut w.conv_norms[g],
            Self::KeyWeight(g) => &mut w.key_weight[g],
            Self::KeyBias(g) => &mut w.key_bias[g],
            Self::Norm1(g) => &mut w.norm1[g],
            Self::Norm2(g) => &mut w.norm2[g],
        }
    }
}

const OFFSETS: &str = "multi_head_embedding.offsets";

/// The Engram tensors of a file, keyed by (layer id, name after the layer id).
struct EngramTensors<'a> {
    path: &'a Path,
    st: SafeTensors<'a>,
    index: BTreeMap<(usize, String), String>,
}

impl<'a> EngramTensors<'a> {
    fn parse(path: &'a Path, bytes: &'a [u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| EngramError::bad_file(path, format!("not a safetensors file: {e}")))?;
        let mut index = BTreeMap::new();
        for name in st.names() {
            let Some(pos) = name.find(MARKER) else {
                continue;
            };
            let rest = &name[pos + MARKER.len()..];
            let parsed = rest
                .split_once('.')
                .and_then(|(l, n)| l.parse::<usize>().ok().map(|l| (l, n.to_string())));
            let Some(key) = parsed else {
                return Err(EngramError::tensor(
                    path,
                    name.to_string(),
                    "no layer id after `engram_layers.`",
                ));
            };
            if let Some(prev) = index.insert(key, name.to_string()) {
                return Err(EngramError::tensor(
                    path,
                    name.to_string(),
                    format!("ambiguous: `{prev}` names the same Engram tensor"),
                ));
            }
        }
        if index.is_empty() {
            return Err(EngramError::bad_file(
                path,
                "holds no `engram_layers.{L}.*` tensors",
            ));
        }
        Ok(Self { path, st, index })
    }

    fn layer_ids(&self) -> Vec<usize> {
        let mut ids: Vec<usize> = self.index.keys().map(|(l, _)| *l).collect();
        ids.dedup();
        ids
    }

    fn full_name(&self, layer: usize, name: &str) -> String {
        self.index
            .get(&(layer, name.to_string()))
            .cloned()
            .unwrap_or_else(|| format!("{TINYENGRAM_PREFIX}.{layer}.{name}"))
    }

    fn view(&self, layer: usize, name: &str) -> Result<TensorView<'a>> {
        let full = self.full_name(layer, name);
        self.st
            .tensor(&full)
            .map_err(|_| EngramError::tensor(self.path, full, "missing"))
    }

    fn float(&self, layer: usize, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self.view(layer, name)?;
        if view.shape() != shape {
            return Err(EngramError::tensor(
                self.path,
                self.full_name(layer, name),
                format!("shape {:?}, expected {shape:?}", view.shape()),
            ));
        }
        view_to_f32(self.path, &self.full_name(layer, name), &view)
    }
}

impl EngramLayers {
    /// Writes the weights as safetensors with TinyEngram's names (`model.engram_layers.…`)
    /// and PyTorch layouts, atomically.
    pub fn save_weights(&self, path: impl AsRef<Path>) -> Result<()> {
        write_safetensors(path.as_ref(), &self.weight_tensors()?, pt_metadata())
    }

    /// The tensors [`save_weights`](Self::save_weights) writes: TinyEngram's names, PyTorch
    /// layouts, int64 offsets.
    pub(crate) fn weight_tensors(&self) -> Result<Vec<OwnedTensor>> {
        let mut buffers: Vec<OwnedTensor> = Vec::new();
        for (engram, lh) in self.layers.iter().zip(self.hasher().layers()) {
            let mut w = engram.to_weights()?;
            let d: LayerDims = engram.dims();
            let p = |n: &str| format!("{TINYENGRAM_PREFIX}.{}.{n}", lh.layer_id);
            for slot in slots(d.groups) {
                let shape = slot.file_shape(&d);
                let data = slot.of(&mut w);
                let bytes = match slot.burn_matrix(&d) {
                    Some((rows, cols)) => f32_bytes(&transpose(data, rows, cols)),
                    None => f32_bytes(data),
                };
                buffers.push((p(&slot.name()), Dtype::F32, shape, bytes));
            }
            let offsets: Vec<u8> = lh
                .offsets()
                .iter()
                .flat_map(|o| (*o as i64).to_le_bytes())
                .collect();
            buffers.push((p(OFFSETS), Dtype::I64, vec![lh.head_sizes.len()], offsets));
        }
        Ok(buffers)
    }

    /// Builds layers for `config` from the Engram tensors of a safetensors file (an Engram
    /// file or a full model checkpoint). The backbone width is read from the file. Every
    /// tensor is checked: missing, mis-shaped, non-float, non-finite, offsets that disagree
    /// with the config's primes, and Engram tensors of layers or names the config does not
    /// have are errors naming the tensor.
    pub fn load_weights(
        path: impl AsRef<Path>,
        config: &EngramConfig,
        vocab: Arc<CompressedVocab>,
        device: &Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| EngramError::io(path, e))?;
        let file = EngramTensors::parse(path, &bytes)?;
        config.validate(Some(vocab.tokenizer_vocab_size()))?;
        if let Some(extra) = file
            .layer_ids()
            .into_iter()
            .find(|l| !config.layer_ids.contains(l))
        {
            return Err(EngramError::tensor(
                path,
                file.full_name(extra, "*"),
                format!(
                    "layer {extra} is not in the config's layer_ids {:?}",
                    config.layer_ids
                ),
            ));
        }
        let first = config.layer_ids[0];
        let bias = file.view(first, "value_proj.bias")?;
        let hidden_size = match bias.shape() {
            [d] if *d > 0 => *d,
            other => {
                return Err(EngramError::tensor(
                    path,
                    file.full_name(first, "value_proj.bias"),
                    format!("shape {other:?}, expected [hidden_size]"),
                ));
            }
        };
        let groups = config.hc_mult;
        let expected = layer_tensor_names(groups);
        if let Some(((layer, name), full)) = file
            .index
            .iter()
            .find(|((_, n), _)| n != OFFSETS && !expected.contains(n))
        {
            return Err(EngramError::tensor(
                path,
                full.clone(),
                format!(
                    "unexpected in layer {layer} (`{name}` is not an Engram tensor for hc_mult = {groups})"
                ),
            ));
        }
        let layers = EngramLayers::build(config, vocab, hidden_size, device, |layer, d| {
            let mut w = LayerWeights::empty(d.groups);
            for slot in slots(d.groups) {
                let data = file.float(layer, &slot.name(), &slot.file_shape(d))?;
                *slot.of(&mut w) = match slot.burn_matrix(d) {
                    // the file holds the [cols, rows] transpose
                    Some((rows, cols)) => transpose(&data, cols, rows),
                    None => data,
                };
            }
            Ok(w)
        })?;
        for lh in layers.hasher().layers() {
            let Ok(view) = file.view(lh.layer_id, OFFSETS) else {
                continue;
            };
            let stored: Vec<i64> = match view.dtype() {
                Dtype::I64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                other => {
                    return Err(EngramError::tensor(
                        path,
                        file.full_name(lh.layer_id, OFFSETS),
                        format!("dtype {other:?}, expected I64"),
                    ));
                }
            };
            let expected: Vec<i64> = lh.offsets().iter().map(|o| *o as i64).collect();
            if stored != expected {
                return Err(EngramError::tensor(
                    path,
                    file.full_name(lh.layer_id, OFFSETS),
                    format!(
                        "offsets {stored:?} disagree with the config's table sizes (expected {expected:?}): engram_vocab_size, n_head_per_ngram or layer_ids differ from the run that wrote this file"
                    ),
                ));
            }
        }
        Ok(layers)
    }

    /// Saves weights, config and compression table as the folder `dir`, written whole
    /// ([`crate::io::write_dir_atomic`]: an existing `dir` is replaced entirely; an
    /// interrupted write leaves the old folder or none).
    pub fn save_pretrained(&self, dir: impl AsRef<Path>) -> Result<()> {
        crate::io::write_dir_atomic(dir.as_ref(), |dir| {
            self.save_weights(dir.join(WEIGHTS_FILE))?;
            write_json(
                &dir.join(CONFIG_FILE),
                &SavedEngramConfig {
                    engram: self.config().clone(),
                    hidden_size: self.hidden_size(),
                },
            )?;
            self.hasher().vocab().save(dir.join(VOCAB_FILE))
        })
    }

    /// Loads a folder written by [`save_pretrained`](Self::save_pretrained).
    pub fn load_pretrained(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join(CONFIG_FILE);
        let value: serde_json::Value = read_json(&config_path)?;
        let mut known = crate::io::field_names(&EngramConfig::default());
        known.push("hidden_size".into());
        if let Some(f) = crate::io::unknown_fields(&value, &known, &[]).first() {
            return Err(EngramError::bad_file(
                &config_path,
                format!(
                    "unknown field `{f}` (expected the Engram config's fields and `hidden_size`)"
                ),
            ));
        }
        let saved: SavedEngramConfig =
            serde_json::from_value(value).map_err(|source| EngramError::Json {
                path: config_path.clone(),
                source,
            })?;
        let vocab = Arc::new(CompressedVocab::load(dir.join(VOCAB_FILE))?);
        let layers = Self::load_weights(dir.join(WEIGHTS_FILE), &saved.engram, vocab, device)?;
        if layers.hidden_size() != saved.hidden_size {
            return Err(EngramError::bad_file(
                dir.join(CONFIG_FILE),
                format!(
                    "hidden_size {} but the weights are {} wide",
                    saved.hidden_size,
                    layers.hidden_size()
                ),
            ));
        }
        Ok(layers)
    }
}
