//! One training run from files, as `examples/train.rs` runs it: a Qwen3 folder, prepared
//! samples and a [`ResolvedRun`] (the profile's recipe with the caller's overrides) in, a run
//! folder out (`run_manifest.json`, `train_config.json`, `metrics.jsonl`, checkpoints, and
//! `engram/` or `adapter/`).
//!
//! Every input is read and checked before the output folder is touched; the folder is
//! opened through [`RunFolder`] (locked, fresh, replaced or continued as `mode` says).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::Device;

use super::data::dataset::{DataConfig, build, check_run_data, load_samples_with_lines};
use super::runs::{InputRecord, JsonLines, OpenMode, Opened, RunFolder, RunManifest};
use super::spec::{Method, ResolvedRun};
use super::train::{CheckpointConfig, StepMetrics, TrainConfig, latest_checkpoint, train};
use crate::error::{EngramError, Result};
use crate::host::lora::{apply_lora_seeded, count_lora_params, save_adapter};
use crate::host::qwen3::{Qwen3Engram, Qwen3Tokenizer, load_qwen3};
use crate::precision::Precision;
use crate::vocab::CompressedVocab;

/// What a training run reads and where it writes.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// Hugging Face Qwen3 folder.
    pub model_dir: PathBuf,
    /// Prepared samples (JSON lines of `{instruction, input, output}`).
    pub data: PathBuf,
    /// The run folder.
    pub out: PathBuf,
    /// Fresh, overwrite, resume or resume-or-start.
    pub mode: OpenMode,
    /// Method, Engram / LoRA config and trainer settings (from a [`Profile`](super::Profile)).
    pub run: ResolvedRun,
    /// Sequence length, split and seed of the data (from the same profile).
    pub data_cfg: DataConfig,
    /// The backbone's compute precision.
    pub precision: Precision,
    /// A checkpoint every this many optimizer steps (0: none).
    pub save_every: usize,
    /// Checkpoints kept.
    pub keep_last: usize,
}

/// What a run reports while it works.
#[derive(Debug)]
pub enum JobEvent<'a> {
    /// A line for the user (data sizes, trainable parameters, resuming).
    Note(String),
    /// An optimizer step finished (also written to `metrics.jsonl`).
    Step(&'a StepMetrics),
}

/// The outcome of [`run_train_job`].
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Steps this process ran.
    pub steps: usize,
    /// The last step's metrics, if any ran.
    pub last: Option<StepMetrics>,
    /// The latest eval loss measured.
    pub eval_loss: Option<f64>,
    /// `engram/` or `adapter/`.
    pub saved: PathBuf,
    /// `metrics.jsonl`.
    pub metrics: PathBuf,
}

/// The settings that decide the run's outcome (what a resumed run must share).
fn recipe(job: &TrainJob) -> Result<serde_json::Value> {
    let json = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| EngramError::InvalidStudy {
            field: job.run.name.clone(),
            reason: format!("settings do not serialize: {e}"),
        })
    };
    let mut train = json(serde_json::to_value(&job.run.train))?;
    if let Some(t) = train.as_object_mut() {
        for free in ["stop_after", "eval_every", "on_non_finite"] {
            t.remove(free); // may change between the processes of one run
        }
    }
    let added = match job.run.method {
        Method::Lora => {
            let mut l = json(serde_json::to_value(&job.run.lora))?;
            l["base_model_name_or_path"] = serde_json::Value::Null; // a path, not a setting
            serde_json::json!({ "lora": l })
        }
        _ => serde_json::json!({"engram": job.run.engram, "init": job.run.engram_init}),
    };
    Ok(serde_json::json!({
        "train": train, "data": job.data_cfg, "added": added, "dtype": job.precision.name()
    }))
}

/// Trains the run `job` describes on `device` (an autodiff device) and writes its folder.
///
/// Refused before anything is written: rows longer than the model's positions (when
/// `max_len` would not cut them), too few rows, settings out of range
/// ([`TrainConfig::validate`], the Engram and LoRA configs), a folder that holds another run.
pub fn run_train_job(
    job: &TrainJob,
    device: &Device,
    on_event: &mut dyn FnMut(JobEvent<'_>),
) -> Result<TrainSummary> {
    // 1. Every input, read and checked before the output folder is touched.
    let cfg: &TrainConfig = &job.run.train;
    cfg.validate()?;
    if job.run.method == Method::Base {
        return Err(EngramError::InvalidStudy {
            field: "method".into(),
            reason: "a base run trains nothing (engram or lora)".into(),
        });
    }
    let tok = Qwen3Tokenizer::from_dir(&job.model_dir)?;
    let base = load_qwen3(&job.model_dir, device, job.precision.dtype())?.no_grad();
    let positions = base.config().max_position_embeddings;
    let max_len = job.data_cfg.max_len; // may exceed the positions; no row may
    let (lines, samples): (Vec<usize>, Vec<_>) =
        load_samples_with_lines(&job.data)?.into_iter().unzip();
    let data = build(&samples, &tok, &job.data_cfg)?;
    check_run_data(&job.data, &lines, &data, max_len, positions)?;
    let method = job.run.method;
    match method {
        Method::Lora => job.run.lora.validate()?,
        _ => job
            .run
            .engram
            .validate(Some(tok.inner.get_vocab_size(true)))?,
    }
    let manifest = RunManifest::new("train", method.as_str(), recipe(job)?)
        .with_input("model", InputRecord::model_folder(&job.model_dir)?)
        .with_input("data", InputRecord::file(&job.data)?);

    // 2. The run folder: locked, and fresh, replaced or continued as told.
    let has_checkpoint = |d: &Path| Ok(latest_checkpoint(d)?.is_some());
    let folder = RunFolder::open(&job.out, job.mode, &manifest, &has_checkpoint)?;
    let out = folder.dir().to_path_buf();
    let resumed = folder.opened() == Opened::Continued;
    if let Some(c) = latest_checkpoint(&out)?.filter(|_| resumed) {
        on_event(JobEvent::Note(format!("resuming from {}", c.display())));
    }
    let text = serde_json::to_string_pretty(cfg).unwrap_or_default() + "\n";
    crate::io::write_atomic(&out.join("train_config.json"), text.as_bytes())?;
    let mut log = JsonLines::append_to(out.join("metrics.jsonl"))?;
    on_event(JobEvent::Note(format!(
        "{} training / {} eval sequences; backbone in {}, trained parameters in f32",
        data.train.len(),
        data.eval.len(),
        job.precision.name()
    )));

    // 3. Train, then save what was trained.
    let ckpt = CheckpointConfig {
        dir: out.clone(),
        every: job.save_every,
        keep_last: job.keep_last,
        resume: resumed,
    };
    let (saved, steps) = if method == Method::Lora {
        device.seed(cfg.seed);
        let mut lcfg = job.run.lora.clone();
        lcfg.base_model_name_or_path = Some(job.model_dir.display().to_string());
        // the same adapter on every device (the device's own seed still drives dropout)
        let model = apply_lora_seeded(base, &lcfg, cfg.seed)?;
        on_event(JobEvent::Note(format!(
            "method lora, trainable params: {} (closed form {})",
            count_lora_params(&model),
            lcfg.trainable_params(model.config())
        )));
        let sink = step_sink(on_event, &mut log);
        let (model, steps) = train(model, &data, tok.pad_id, cfg, device, Some(&ckpt), sink)?;
        save_adapter(&model, &lcfg, out.join("adapter"))?;
        (out.join("adapter"), steps)
    } else {
        let vocab = Arc::new(CompressedVocab::from_tokenizer(&tok.inner)?);
        let model = Qwen3Engram::new(base, &job.run.engram, vocab, job.run.engram_init, device)?
            .freeze_backbone();
        on_event(JobEvent::Note(format!(
            "method engram, trainable params: {}",
            model.engram.num_params()
        )));
        let sink = step_sink(on_event, &mut log);
        let (model, steps) = train(model, &data, tok.pad_id, cfg, device, Some(&ckpt), sink)?;
        model.engram.save_pretrained(out.join("engram"))?;
        (out.join("engram"), steps)
    };
    let metrics = log.path().to_path_buf();
    log.finish()?;
    Ok(TrainSummary {
        steps: steps.len(),
        eval_loss: steps.iter().rev().find_map(|m| m.eval_loss),
        last: steps.last().cloned(),
        saved,
        metrics,
    })
}

/// Each step to the caller and to `metrics.jsonl` (a failed write is reported after the run,
/// which is not stopped for it).
fn step_sink<'a>(
    on_event: &'a mut dyn FnMut(JobEvent<'_>),
    log: &'a mut JsonLines,
) -> impl FnMut(&StepMetrics) + 'a {
    move |m| {
        on_event(JobEvent::Step(m));
        log.record(m);
    }
}
