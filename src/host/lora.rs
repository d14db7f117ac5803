//! LoRA for Qwen3 with Burn's built-in [`Module::apply_lora`], and adapter files in PEFT's
//! layout (`adapter_model.safetensors` + `adapter_config.json`), so adapters pass both ways
//! between this crate and PEFT.
//!
//! The adapters are PEFT's: `A` starts as PEFT's default `kaiming_uniform_(a=sqrt(5))`
//! (U(-1/sqrt(in), 1/sqrt(in)); Burn's own `apply_lora` would draw N(0, 1/r)), `B` at 0,
//! and `lora_dropout` (PEFT's default 0.05) acts on the adapter's input in training only
//! ([`forward_linear`](crate::host::qwen3::forward_linear)). Only plain LoRA is supported: `use_rslora`, `use_dora`, bias training,
//! `rank_pattern`/`alpha_pattern` and `modules_to_save` are refused with an error.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Lora, Module, ModuleMapper, ModuleVisitor, Param, ParamGroup};
use burn::tensor::{Distribution, FloatDType, Tensor, TensorData};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

use crate::error::{EngramError, Result};
use crate::host::qwen3::{Qwen3Config, Qwen3ForCausalLM};
use crate::io::read_f32;
use crate::io::safetensors::{OwnedTensor, f32_bytes, pt_metadata, transpose, write_safetensors};
use crate::io::{read_json_and_value, write_json};

/// The projections LoRA may target in Qwen3.
pub const QWEN3_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// PEFT's file names.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// See [`ADAPTER_WEIGHTS`].
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

const PEFT_PREFIX: &str = "base_model.model.";

/// The fields of PEFT's `adapter_config.json` this crate reads and writes (others are
/// ignored on reading). Defaults are the study's: r 16, alpha 16, dropout 0.05, all seven
/// projections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraConfig {
    /// Rank.
    pub r: usize,
    /// Scale numerator: the update is `alpha / r * B A`.
    pub lora_alpha: f64,
    /// Dropout on the adapter's input while training (PEFT's `lora_dropout`).
    pub lora_dropout: f64,
    /// Projection names.
    pub target_modules: Vec<String>,
    /// Must be "none".
    pub bias: String,
    /// "LORA".
    pub peft_type: String,
    /// "CAUSAL_LM".
    pub task_type: String,
    /// The base model the adapter was trained on, informational.
    pub base_model_name_or_path: Option<String>,
    /// Must be false.
    pub use_rslora: bool,
    /// Must be false.
    pub use_dora: bool,
    /// Must be false (Burn stores Linear weights `[in, out]`; PEFT files are `[out, in]`).
    pub fan_in_fan_out: bool,
    /// Must be empty.
    pub rank_pattern: BTreeMap<String, serde_json::Value>,
    /// Must be empty.
    pub alpha_pattern: BTreeMap<String, serde_json::Value>,
    /// Must be absent.
    pub modules_to_save: Option<Vec<String>>,
    /// PEFT writes it; true.
    pub inference_mode: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 16,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: QWEN3_TARGETS.iter().map(|s| s.to_string()).collect(),
            bias: "none".into(),
            peft_type: "LORA".into(),
            task_type: "CAUSAL_LM".into(),
            base_model_name_or_path: None,
            use_rslora: false,
            use_dora: false,
            fan_in_fan_out: false,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            modules_to_save: None,
            inference_mode: true,
        }
    }
}

/// Fields of PEFT's `LoraConfig` (0.17) that this crate does not use: read quietly (a file
/// that sets one of them to something that matters is caught by [`LoraConfig::validate`]
/// through the fields it does read).
const PEFT_FIELDS: &[&str] = &[
    "auto_mapping",
    "revision",
    "init_lora_weights",
    "layers_to_transform",
    "layers_pattern",
    "loftq_config",
    "eva_config",
    "corda_config",
    "megatron_config",
    "megatron_core",
    "layer_replication",
    "runtime_config",
    "lora_bias",
    "exclude_modules",
    "trainable_token_indices",
    "target_parameters",
    "qalora_group_size",
    "use_qalora",
];

impl LoraConfig {
    /// Checks that this is a plain LoRA on Qwen3 projections.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, why: String| Err(EngramError::lora(field, why));
        if self.r == 0 {
            return bad("r", "must be >= 1".into());
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return bad(
                "lora_alpha",
                format!("{} is not a positive number", self.lora_alpha),
            );
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(
                "lora_dropout",
                format!("{} is not a probability in [0, 1)", self.lora_dropout),
            );
        }
        if self.target_modules.is_empty() {
            return bad("target_modules", "names no projection".into());
        }
        if let Some(t) = self
            .target_modules
            .iter()
            .find(|t| !QWEN3_TARGETS.contains(&t.as_str()))
        {
            return bad(
                "target_modules",
                format!("\"{t}\" is not one of {QWEN3_TARGETS:?}"),
            );
        }
        if self.peft_type != "LORA" {
            return bad(
                "peft_type",
                format!("\"{}\" is not \"LORA\"", self.peft_type),
            );
        }
        if self.bias != "none" {
            return bad(
                "bias",
                format!("\"{}\" is not supported (only \"none\")", self.bias),
            );
        }
        for (field, on) in [
            ("use_rslora", self.use_rslora),
            ("use_dora", self.use_dora),
            ("fan_in_fan_out", self.fan_in_fan_out),
        ] {
            if on {
                return bad(field, "is not supported".into());
            }
        }
        if !self.rank_pattern.is_empty() {
            return bad("rank_pattern", "per-module ranks are not supported".into());
        }
        if !self.alpha_pattern.is_empty() {
            return bad(
                "alpha_pattern",
                "per-module alphas are not supported".into(),
            );
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return bad("modules_to_save", "is not supported".into());
        }
        Ok(())
    }

    /// Trainable parameters on a Qwen3 model, in closed form:
    /// `r * (d_in + d_out)` per targeted projection per layer.
    ///
    /// ```
    /// # use burn_engram::host::lora::LoraConfig;
    /// let cfg: burn_engram::host::qwen3::Qwen3Config = serde_json::from_str(r#"{"model_type": "qwen3",
    ///   "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072,
    ///   "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
    ///   "head_dim": 128}"#).unwrap();
    /// assert_eq!(LoraConfig::default().trainable_params(&cfg), 10_092_544);
    /// ```
    pub fn trainable_params(&self, cfg: &Qwen3Config) -> usize {
        let (h, q, kv, i) = (
            cfg.hidden_size,
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.intermediate_size,
        );
        let per_layer: usize = self
            .target_modules
            .iter()
            .map(|t| match t.as_str() {
                "q_proj" => h + q,
                "k_proj" | "v_proj" => h + kv,
                "o_proj" => q + h,
                "gate_proj" | "up_proj" | "down_proj" => h + i,
                _ => 0,
            })
            .sum();
        self.r * per_layer * cfg.num_hidden_layers
    }

    fn param_group(&self) -> Result<ParamGroup> {
        let targets = self.target_modules.join("|");
        ParamGroup::from_regex(format!(
            r"^model\.layers\.\d+\.(self_attn|mlp)\.({targets})\.weight$"
        ))
        .map_err(|e| EngramError::lora("target_modules", format!("{e:?}")))
    }
}

/// Attaches fresh LoRA factors to the targeted projections as PEFT's default
/// (`init_lora_weights=True`) does, and freezes every other parameter, embeddings and norms
/// included: `A` (`[in, r]` here, `lora_A.weight [r, in]` in PEFT) is drawn from
/// `kaiming_uniform_(a=sqrt(5))`, i.e. U(-1/sqrt(in), 1/sqrt(in)); `B` starts at 0, so a fresh
/// adapter changes nothing. `cfg.lora_dropout` is applied to the adapter's input while
/// training ([`forward_linear`](crate::host::qwen3::forward_linear)). The factors are f32 whatever the backbone's dtype (master
/// weights; a bf16 backbone casts them in [`forward_linear`]). `A` is drawn from the device's
/// generator: seed it (`device.seed(..)`) for a reproducible adapter.
pub fn apply_lora(model: Qwen3ForCausalLM, cfg: &LoraConfig) -> Result<Qwen3ForCausalLM> {
    cfg.validate()?;
    let mut model = model.apply_lora(
        Lora::new(cfg.r, cfg.lora_alpha)
            .set_param_group(cfg.param_group()?)
            .set_dtype(FloatDType::F32),
    );
    model = model.map(&mut PeftInitA::default());
    for layer in &mut model.model.layers {
        layer.self_attn.lora_dropout = cfg.lora_dropout;
        layer.mlp.lora_dropout = cfg.lora_dropout;
    }
    Ok(model)
}

/// Redraws every LoRA `A` factor `[in, r]` from U(-1/sqrt(in), 1/sqrt(in)) (PEFT's
/// `kaiming_uniform_(a=sqrt(5))` on `lora_A.weight [r, in]`: gain sqrt(2 / (1 + 5)), bound
/// gain * sqrt(3 / fan_in) = 1 / sqrt(in)).
#[derive(Default)]
struct PeftInitA {
    path: Vec<String>,
}

impl ModuleMapper for PeftInitA {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let n = self.path.len();
        if D != 2 || n < 2 || self.path[n - 2] != "lora" || self.path[n - 1] != "a" {
            return param;
        }
        param.map(|old| {
            let grad = old.is_require_grad();
            let d_in = old.dims()[0];
            let bound = 1.0 / (d_in as f64).sqrt();
            Tensor::<D>::random(
                old.shape(),
                Distribution::Uniform(-bound, bound),
                &old.device(),
            )
            .cast(old.dtype())
            .set_require_grad(grad)
        })
    }
}

/// Path-tracking visitor collecting LoRA factors: (weight path, "a" | "b", tensor).
#[derive(Default)]
struct FactorCollector {
    path: Vec<String>,
    found: Vec<(String, String, Tensor<2>)>,
}

impl ModuleVisitor for FactorCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if D != 2 || self.path.len() < 3 {
            return;
        }
        let n = self.path.len();
        if self.path[n - 2] == "lora" && (self.path[n - 1] == "a" || self.path[n - 1] == "b") {
            let weight = self.path[..n - 2].join(".");
            let value = param.val();
            let dims = value.dims();
            let t: Tensor<2> = value.reshape([dims[0], dims[1]]);
            self.found.push((weight, self.path[n - 1].clone(), t));
        }
    }
}

/// The LoRA factors of a model: weight path (Burn's, e.g.
/// `model.layers.0.self_attn.q_proj.weight`) -> (A `[in, r]`, B `[r, out]`).
pub fn lora_factors(model: &Qwen3ForCausalLM) -> BTreeMap<String, (Tensor<2>, Tensor<2>)> {
    let mut v = FactorCollector::default();
    model.visit(&mut v);
    let mut a = HashMap::new();
    let mut b = HashMap::new();
    for (w, which, t) in v.found {
        if which == "a" {
            a.insert(w, t)
        } else {
            b.insert(w, t)
        };
    }
    a.into_iter()
        .filter_map(|(w, ta)| b.remove(&w).map(|tb| (w, (ta, tb))))
        .collect()
}

/// Trainable LoRA parameters actually attached to `model`.
pub fn count_lora_params(model: &Qwen3ForCausalLM) -> usize {
    lora_factors(model)
        .values()
        .map(|(a, b)| a.shape().num_elements() + b.shape().num_elements())
        .sum()
}

fn peft_name(weight_path: &str, which: &str) -> String {
    let module = weight_path.strip_suffix(".weight").unwrap_or(weight_path);
    let ab = if which == "a" { "lora_A" } else { "lora_B" };
    format!("{PEFT_PREFIX}{module}.{ab}.weight")
}

/// Writes `adapter_model.safetensors` (`lora_A.weight [r, in]`, `lora_B.weight [out, r]`,
/// f32) and `adapter_config.json` as the folder `dir`, as PEFT's `save_pretrained` does; the
/// folder is written whole ([`crate::io::write_dir_atomic`]).
pub fn save_adapter(
    model: &Qwen3ForCausalLM,
    cfg: &LoraConfig,
    dir: impl AsRef<Path>,
) -> Result<()> {
    let mut buffers: Vec<OwnedTensor> = Vec::new();
    for (w, (a, b)) in lora_factors(model) {
        let [d_in, r] = a.dims();
        let [_, d_out] = b.dims();
        let a_t = transpose(&read_f32("LoRA factor", a)?, d_in, r); // [r, in]
        let b_t = transpose(&read_f32("LoRA factor", b)?, r, d_out); // [out, r]
        buffers.push((
            peft_name(&w, "a"),
            Dtype::F32,
            vec![r, d_in],
            f32_bytes(&a_t),
        ));
        buffers.push((
            peft_name(&w, "b"),
            Dtype::F32,
            vec![d_out, r],
            f32_bytes(&b_t),
        ));
    }
    crate::io::write_dir_atomic(dir.as_ref(), |dir| {
        write_safetensors(&dir.join(ADAPTER_WEIGHTS), &buffers, pt_metadata())?;
        write_json(&dir.join(ADAPTER_CONFIG), cfg)
    })
}

/// Replaces LoRA factors by path.
struct FactorLoader {
    path: Vec<String>,
    values: HashMap<String, TensorData>,
    used: usize,
}

impl ModuleMapper for FactorLoader {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let key = self.path.join(".");
        match self.values.remove(&key) {
            Some(data) => {
                self.used += 1;
                param.map(|old| {
                    let grad = old.is_require_grad();
                    Tensor::<D>::from_data(data, &old.device()).set_require_grad(grad)
                })
            }
            None => param,
        }
    }
}

/// Reads a PEFT adapter folder and applies it to `model` (which must not carry LoRA yet):
/// the config is validated, every factor must be present with the right shape, and no
/// tensor may be left over.
pub fn load_adapter(
    model: Qwen3ForCausalLM,
    dir: impl AsRef<Path>,
) -> Result<(Qwen3ForCausalLM, LoraConfig)> {
    let dir = dir.as_ref();
    let cfg_path = dir.join(ADAPTER_CONFIG);
    let (cfg, value): (LoraConfig, _) = read_json_and_value(&cfg_path)?;
    let known = crate::io::field_names(&cfg);
    crate::io::warn_unknown(
        &cfg_path,
        &crate::io::unknown_fields(&value, &known, PEFT_FIELDS),
    );
    cfg.validate()
        .map_err(|e| EngramError::bad_file(dir.join(ADAPTER_CONFIG), e.to_string()))?;
    let model = apply_lora(model, &cfg)?;
    let path = dir.join(ADAPTER_WEIGHTS);
    let bytes = std::fs::read(&path).map_err(|e| EngramError::io(&path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| EngramError::bad_file(&path, format!("not a safetensors file: {e}")))?;
    let mut values = HashMap::new();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    let mut expected_names = std::collections::HashSet::new();
    for (w, (a, b)) in lora_factors(&model) {
        let [d_in, r] = a.dims();
        let [_, d_out] = b.dims();
        for (which, shape_file) in [("a", [r, d_in]), ("b", [d_out, r])] {
            let name = peft_name(&w, which);
            expected_names.insert(name.clone());
            let Ok(view) = st.tensor(&name) else {
                missing.push(name);
                continue;
            };
            if view.shape() != shape_file {
                mismatched.push(format!(
                    "{name}: shape {:?}, expected {shape_file:?}",
                    view.shape()
                ));
                continue;
            }
            let data = crate::io::safetensors::view_to_f32(&path, &name, &view)?;
            let data = transpose(&data, shape_file[0], shape_file[1]); // back to Burn's layout
            let shape = if which == "a" { [d_in, r] } else { [r, d_out] };
            values.insert(format!("{w}.lora.{which}"), TensorData::new(data, shape));
        }
    }
    let unexpected: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !expected_names.contains(*n))
        .map(|n| n.to_string())
        .collect();
    if !missing.is_empty() || !mismatched.is_empty() || !unexpected.is_empty() {
        return Err(EngramError::WeightsMismatch {
            path: path.clone(),
            missing,
            unexpected,
            mismatched,
        });
    }
    let expected = values.len();
    let mut loader = FactorLoader {
        path: Vec::new(),
        values,
        used: 0,
    };
    let model = model.map(&mut loader);
    if loader.used != expected {
        return Err(EngramError::bad_file(
            &path,
            format!(
                "placed {} of {expected} LoRA factors; unplaced: {:?}",
                loader.used,
                loader.values.keys().collect::<Vec<_>>()
            ),
        ));
    }
    Ok((model, cfg))
}
