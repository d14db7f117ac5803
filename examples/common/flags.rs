//! The flags the tools share, defined once: `--model-dir`, `--engram`, `--lora` (a Qwen3
//! folder and what is added to it) and `--device`, `--dtype`; and the one way a tool ends.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::Device;
use burn_engram::device::select_device;
use burn_engram::host::qwen3::GenerationConfig;
use burn_engram::precision::Precision;
use clap::ArgGroup;
use serde_json::{Map, json};

use super::{at_least_one, fraction, non_negative, non_negative_f64, positive};

/// `--model-dir`: the Hugging Face Qwen3 folder.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelDir {
    /// Hugging Face Qwen3 folder (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    pub model_dir: PathBuf,
}

/// `--engram DIR | --lora DIR`: what is added to the backbone (at most one).
#[derive(clap::Args, Debug, Clone)]
#[command(group(ArgGroup::new("added").args(["engram", "lora"])))]
pub struct Added {
    /// Engram folder (engram_config.json + engram.safetensors, as train and study write it).
    #[arg(long)]
    pub engram: Option<PathBuf>,
    /// PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub lora: Option<PathBuf>,
}

/// `--greedy | --temperature --top-p --top-k`, `--seed`: how the next token is picked.
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingFlags {
    /// Take the most likely token (overrides generation_config.json's do_sample).
    #[arg(long, conflicts_with_all = ["temperature", "top_p", "top_k"])]
    pub greedy: bool,
    /// Sampling temperature (sets do_sample).
    #[arg(long, value_parser = positive)]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass in (0, 1] (sets do_sample).
    #[arg(long, value_parser = fraction)]
    pub top_p: Option<f64>,
    /// Sample among the k most likely tokens, 0 for all (sets do_sample).
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingFlags {
    /// These flags laid over a folder's generation settings.
    pub fn over(&self, cfg: GenerationConfig) -> GenerationConfig {
        cfg.with_overrides(self.greedy, self.temperature, self.top_p, self.top_k)
    }
}

/// `--device`, `--dtype`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceFlags {
    /// cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Backbone precision: auto (bf16 on a GPU that computes in it, f32 on the CPU), f32 or
    /// bf16. Trained parameters stay f32 either way.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
}

impl DeviceFlags {
    /// The device (an autodiff one when `train`) and the precision chosen for it.
    pub fn select(&self, train: bool) -> burn_engram::Result<(Device, Precision)> {
        let device = select_device(&self.device)?;
        let device = if train { device.autodiff() } else { device };
        let precision = Precision::select(&self.dtype, &device)?;
        Ok((device, precision))
    }
}

/// The one way a tool ends: `error: ...` on stderr and a failure status, or success.
pub fn finish(result: burn_engram::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Trainer and LoRA settings laid over a profile's recipe (`study::Profile`): only the
/// flags given change it; the names are the config fields' (`--micro-batch` ->
/// `micro_batch`).
#[derive(clap::Args, Debug, Clone)]
pub struct RecipeFlags {
    /// LoRA rank.
    #[arg(long, value_parser = at_least_one)]
    pub lora_r: Option<usize>,
    #[arg(long, value_parser = positive)]
    pub lora_alpha: Option<f64>,
    /// Comma-separated projections.
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Option<Vec<String>>,
    #[arg(long, value_parser = positive)]
    pub lr: Option<f64>,
    #[arg(long, value_parser = at_least_one)]
    pub epochs: Option<usize>,
    /// Exactly N optimizer steps, the schedule spanning them (Hugging Face's max_steps).
    #[arg(long, value_parser = at_least_one)]
    pub max_steps: Option<usize>,
    /// Stop after N steps of the full run, its schedule unchanged (--resume continues).
    #[arg(long, value_parser = at_least_one)]
    pub stop_after: Option<usize>,
    #[arg(long, value_parser = at_least_one)]
    pub micro_batch: Option<usize>,
    #[arg(long, value_parser = at_least_one)]
    pub grad_accum: Option<usize>,
    #[arg(long, value_parser = fraction)]
    pub warmup_ratio: Option<f64>,
    #[arg(long, value_parser = non_negative)]
    pub weight_decay: Option<f32>,
    #[arg(long, value_parser = non_negative_f64)]
    pub table_lr_mult: Option<f64>,
    #[arg(long, value_parser = non_negative)]
    pub table_weight_decay: Option<f32>,
    /// dense (the study) or sparse (lazy AdamW on the rows each step reads).
    #[arg(long, value_parser = ["dense", "sparse"])]
    pub table_update: Option<String>,
    #[arg(long, value_parser = positive)]
    pub max_grad_norm: Option<f64>,
    #[arg(long)]
    pub eval_every: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Skip a step whose loss or gradients are not finite (default: stop, naming it).
    #[arg(long)]
    pub skip_non_finite: bool,
}

/// The given flags as JSON fields laid over the profile's section, each under its flag's
/// field name unless renamed (`flag => "field"`).
macro_rules! given {
    ($args:ident: $($flag:ident $(=> $name:literal)?),* $(,)?) => {{
        let mut m = Map::new();
        $(if let Some(v) = &$args.$flag {
            m.insert(given!(@name $flag $($name)?).into(), json!(v));
        })*
        m
    }};
    (@name $flag:ident $name:literal) => { $name };
    (@name $flag:ident) => { stringify!($flag) };
}

impl RecipeFlags {
    /// The given flags as (trainer fields, LoRA fields).
    pub fn overrides(
        &self,
    ) -> (
        Map<String, serde_json::Value>,
        Map<String, serde_json::Value>,
    ) {
        let mut train = given!(self: lr, epochs, max_steps, stop_after, micro_batch, grad_accum,
            warmup_ratio, weight_decay, seed, table_lr_mult, table_weight_decay, table_update,
            max_grad_norm, eval_every);
        if self.skip_non_finite {
            train.insert("on_non_finite".into(), json!("skip_step"));
        }
        let lora = given!(self: lora_r => "r", lora_alpha, lora_targets => "target_modules");
        (train, lora)
    }
}
