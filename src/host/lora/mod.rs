//! LoRA for Qwen3 with Burn's built-in LoRA (its `Lora` reparameterizer, rank and alpha set per
//! projection), and adapter files in PEFT's layout (`adapter_model.safetensors` +
//! `adapter_config.json`), so adapters pass both ways between this crate and PEFT.
//!
//! The adapters are PEFT's: `A` starts as PEFT's default `kaiming_uniform_(a=sqrt(5))`
//! (U(-1/sqrt(in), 1/sqrt(in)); Burn's own `apply_lora` would draw N(0, 1/r)), `B` at 0,
//! and `lora_dropout` (PEFT's default 0.05) acts on the adapter's input in training only
//! ([`forward_linear`](crate::host::qwen3::forward_linear)). Which projections take an
//! adapter, with what rank and scale, is PEFT's decision ([`LoraConfig::plan`]): names, regular
//! expressions and `"all-linear"` in `target_modules`, `exclude_modules`, `layers_to_transform`,
//! `rank_pattern` / `alpha_pattern` and rsLoRA. DoRA, bias training and `modules_to_save` are
//! refused with an error naming the field. [`merge_lora`] folds an adapter into the weights.

mod config;
mod merge;

use config::PEFT_FIELDS;
pub use config::{
    ALL_LINEAR, AdapterShape, LoraConfig, OneOrMany, QWEN3_TARGETS, TargetModules,
    qwen3_projections,
};
pub use merge::{merge_lora, save_merged};

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{
    Lora, LoraAdapter, Module, ModuleMapper, ModuleVisitor, Param, Reparameterizer,
};
use burn::tensor::{Distribution, FloatDType, Tensor, TensorData};
use rand_burn::SeedableRng;
use rand_burn::rngs::StdRng;
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

use crate::error::{EngramError, Result};
use crate::host::qwen3::Qwen3ForCausalLM;
use crate::io::read_f32;
use crate::io::safetensors::{OwnedTensor, f32_bytes, pt_metadata, transpose, write_safetensors};
use crate::io::{read_json_and_value, write_json};

/// PEFT's file names.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// See [`ADAPTER_WEIGHTS`].
pub const ADAPTER_CONFIG: &str = "adapter_config.json";

const PEFT_PREFIX: &str = "base_model.model.";

/// Burn's own [`Lora`] with the rank and alpha of each projection's [`AdapterShape`], and its
/// scale (rsLoRA's included); every other parameter is frozen without an adapter.
struct PeftLora {
    plan: BTreeMap<String, AdapterShape>,
    lora: Lora,
}

impl Reparameterizer for PeftLora {
    type Reparam = LoraAdapter;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
        let shape = path
            .strip_suffix(".weight")
            .and_then(|module| self.plan.get(module));
        match shape {
            Some(shape) if D == 2 => {
                self.lora.rank = shape.r;
                self.lora.alpha = shape.alpha;
                let (base, adapter) = self.lora.reparameterize(path, param);
                let adapter = adapter.map(|a| LoraAdapter {
                    scale: shape.scale,
                    ..a
                });
                (base, adapter)
            }
            _ => (param.set_require_grad(false), None),
        }
    }
}

/// Attaches fresh LoRA factors to the targeted projections as PEFT's default
/// (`init_lora_weights=True`) does, and freezes every other parameter, embeddings and norms
/// included: `A` (`[in, r]` here, `lora_A.weight [r, in]` in PEFT) is drawn from
/// `kaiming_uniform_(a=sqrt(5))`, i.e. U(-1/sqrt(in), 1/sqrt(in)); `B` starts at 0, so a fresh
/// adapter changes nothing. `cfg.lora_dropout` is applied to the adapter's input while
/// training ([`forward_linear`](crate::host::qwen3::forward_linear)). The factors are f32
/// whatever the backbone's dtype (master weights; a bf16 backbone casts them in
/// [`forward_linear`](crate::host::qwen3::forward_linear)). `A` is drawn from the device's
/// generator: seed it (`device.seed(..)`) for a reproducible adapter on that device, or use
/// [`apply_lora_seeded`] for the same adapter on every device.
pub fn apply_lora(model: Qwen3ForCausalLM, cfg: &LoraConfig) -> Result<Qwen3ForCausalLM> {
    attach_lora(model, cfg, None)
}

/// [`apply_lora`] with `A` drawn on the host from a generator seeded with `seed`: the same
/// adapter on every device (wgpu and cuda have generators of their own). The draws are those
/// a flex device seeded with `seed` makes in [`apply_lora`] (Burn's N(0, 1/r) draw of each
/// factor, then PEFT's uniform redraw), so on the CPU, for a model with loaded weights (a
/// lazily initialised one draws its own weights from the device's generator on first use),
/// the two give the same adapter bit for bit.
///
/// ```
/// # use burn::tensor::Device;
/// # use burn_engram::host::lora::{LoraConfig, apply_lora_seeded, lora_factors};
/// # use burn_engram::host::qwen3::{Qwen3Config, Qwen3ForCausalLM};
/// # let cfg: Qwen3Config = serde_json::from_str(r#"{"model_type": "qwen3", "vocab_size": 32,
/// #   "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
/// #   "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4}"#).unwrap();
/// let device = Device::default();
/// let a_of = |seed| -> burn_engram::Result<Vec<f32>> {
///     let base = Qwen3ForCausalLM::new(&cfg, &device);
///     let model = apply_lora_seeded(base, &LoraConfig::default(), seed)?;
///     let (a, _) = lora_factors(&model).into_values().next().expect("an adapter");
///     Ok(a.into_data().to_vec::<f32>().unwrap())
/// };
/// assert_eq!(a_of(7)?, a_of(7)?);
/// # Ok::<(), burn_engram::EngramError>(())
/// ```
pub fn apply_lora_seeded(
    model: Qwen3ForCausalLM,
    cfg: &LoraConfig,
    seed: u64,
) -> Result<Qwen3ForCausalLM> {
    attach_lora(model, cfg, Some(seed))
}

fn attach_lora(
    model: Qwen3ForCausalLM,
    cfg: &LoraConfig,
    seed: Option<u64>,
) -> Result<Qwen3ForCausalLM> {
    let plan = cfg.plan(model.config())?;
    let lora = Lora::new(cfg.r, cfg.lora_alpha).set_dtype(FloatDType::F32);
    let mut model = model.apply_reparameterization(PeftLora { plan, lora });
    let rng = seed.map(|seed| {
        // Burn's reparameterization drew every A from N(0, 1/r) first (on the device): the
        // host generator makes the same draws, so that the uniform redraws below start where
        // a seeded flex device's would
        let mut rng = StdRng::seed_from_u64(seed);
        let mut factors = FactorCollector::default();
        model.visit(&mut factors); // in the order the reparameterization drew them
        for (_, _, a) in factors.found.iter().filter(|(_, which, _)| which == "a") {
            let [d_in, r] = a.dims();
            let std = Distribution::Normal(0.0, 1.0 / r as f64);
            let _ = TensorData::random::<f32, _, _>([d_in, r], std, &mut rng);
        }
        rng
    });
    model = model.map(&mut PeftInitA {
        path: Vec::new(),
        rng,
    });
    for layer in &mut model.model.layers {
        layer.self_attn.lora_dropout = cfg.lora_dropout;
        layer.mlp.lora_dropout = cfg.lora_dropout;
    }
    Ok(model)
}

/// Redraws every LoRA `A` factor `[in, r]` from U(-1/sqrt(in), 1/sqrt(in)) (PEFT's
/// `kaiming_uniform_(a=sqrt(5))` on `lora_A.weight [r, in]`: gain sqrt(2 / (1 + 5)), bound
/// gain * sqrt(3 / fan_in) = 1 / sqrt(in)), from the host generator `rng` if there is one,
/// else from the device's.
struct PeftInitA {
    path: Vec<String>,
    rng: Option<StdRng>,
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
        let rng = &mut self.rng;
        param.map(|old| {
            let grad = old.is_require_grad();
            let d_in = old.dims()[0];
            let bound = 1.0 / (d_in as f64).sqrt();
            let uniform = Distribution::Uniform(-bound, bound);
            let fresh = match rng {
                Some(rng) => Tensor::<D>::from_data(
                    TensorData::random::<f32, _, _>(old.shape(), uniform, rng),
                    &old.device(),
                ),
                None => Tensor::<D>::random(old.shape(), uniform, &old.device()),
            };
            fresh.cast(old.dtype()).set_require_grad(grad)
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
    cfg.plan(model.config())
        .map_err(|e| EngramError::bad_file(&cfg_path, e.to_string()))?;
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
