//! Runs one [`ResolvedRun`]: train the added parameters on the study data (checkpointed, so a
//! killed run resumes), then measure eval loss and the multiple-choice probe. A run whose
//! `result.json` exists is read back instead of run again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{DType, Device};
use serde::{Deserialize, Serialize};

use super::spec::{Method, ResolvedRun};
use crate::config::{read_json, write_json};
use crate::data::dataset::StudyData;
use crate::error::{EngramError, Result};
use crate::eval::truthfulqa::{McQuestion, evaluate_with_primer};
use crate::lora::{apply_lora, count_lora_params, save_adapter};
use crate::models::qwen3::{CausalLm, Qwen3Engram, Qwen3Tokenizer, load_qwen3};
use crate::train::{CheckpointConfig, StepMetrics, TrainableLm, eval_loss, train};
use crate::vocab::CompressedVocab;

/// What every run of a study shares.
pub struct StudyInputs {
    /// The Hugging Face folder of the base model.
    pub model_dir: PathBuf,
    /// Its tokenizer.
    pub tok: Qwen3Tokenizer,
    /// Its compressed vocabulary (for Engram).
    pub vocab: Arc<CompressedVocab>,
    /// Tokenized train / eval sequences.
    pub data: StudyData,
    /// The multiple-choice questions (TruthfulQA or the embedded probe).
    pub questions: Vec<McQuestion>,
    /// The primer of their scoring context.
    pub primer: String,
    /// The device, with autodiff (`select_device(..)?.autodiff()`).
    pub device: Device,
    /// The dtype the frozen base computes in (`Precision::dtype`; the added parameters stay
    /// f32).
    pub dtype: DType,
    /// Write a training checkpoint every this many steps (0: none).
    pub save_every: usize,
}

/// The outcome of one run, as `results.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// Run folder name.
    pub name: String,
    /// Label for tables and figures.
    pub label: String,
    /// "base", "lora" or "engram".
    pub method: String,
    /// The settings of the run (Engram or LoRA config and trainer settings).
    pub config: serde_json::Value,
    /// Parameters the run trained.
    pub trainable_params: usize,
    /// Token-mean loss on the held-out study data.
    pub eval_loss: Option<f64>,
    /// MC1 on the multiple-choice set.
    pub truthfulqa_mc1: f64,
    /// MC2 on the multiple-choice set.
    pub truthfulqa_mc2: f64,
    /// Questions scored.
    pub n_questions: usize,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Wall time of the run (the last process's share when it was resumed).
    pub seconds: f64,
    /// Eval loss during training: (step, loss).
    pub eval_curve: Vec<(usize, f64)>,
}

/// Progress of a run, for progress bars.
pub enum Event<'a> {
    /// An optimizer step finished.
    Step(&'a StepMetrics),
    /// `done` of `total` probe questions scored.
    Probe {
        /// Scored so far.
        done: usize,
        /// All.
        total: usize,
    },
}

const RESULT_FILE: &str = "result.json";
const METRICS_FILE: &str = "metrics.jsonl";

/// The result saved in a finished run's folder, if any.
pub fn finished(dir: &Path) -> Result<Option<RunResult>> {
    let path = dir.join(RESULT_FILE);
    if path.is_file() {
        read_json(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// Runs `run` in `dir` (created), or returns the result it already holds.
pub fn run_one(
    inputs: &StudyInputs,
    run: &ResolvedRun,
    dir: &Path,
    on_event: &mut dyn FnMut(Event),
) -> Result<RunResult> {
    if let Some(done) = finished(dir)? {
        return Ok(done);
    }
    std::fs::create_dir_all(dir).map_err(|e| EngramError::io(dir, e))?;
    let start = Instant::now();
    let device = &inputs.device;
    let base = load_qwen3(&inputs.model_dir, device, inputs.dtype)?;
    let mut steps = 0;
    let (config, trainable, measured) = match run.method {
        Method::Base => {
            let m = measure(inputs, &base.valid(), on_event)?;
            (run_config(run), 0, m)
        }
        Method::Lora => {
            device.seed(run.train.seed);
            let model = apply_lora(base, &run.lora)?;
            let trainable = count_lora_params(&model);
            let (model, n) = fit(inputs, model, run, dir, on_event)?;
            steps = n;
            save_adapter(&model, &run.lora, dir.join("adapter"))?;
            let m = measure(inputs, &model.valid(), on_event)?;
            (run_config(run), trainable, m)
        }
        Method::Engram => {
            let model = Qwen3Engram::new(
                base.no_grad(),
                &run.engram,
                inputs.vocab.clone(),
                run.engram_init,
                device,
            )?
            .freeze_backbone();
            let trainable = model.engram.num_params();
            let (model, n) = fit(inputs, model, run, dir, on_event)?;
            steps = n;
            model.engram.save_pretrained(dir.join("engram"))?;
            let m = measure(inputs, &model.valid(), on_event)?;
            (run_config(run), trainable, m)
        }
    };
    let result = RunResult {
        name: run.name.clone(),
        label: run.label.clone(),
        method: run.method.as_str().into(),
        config,
        trainable_params: trainable,
        eval_loss: Some(measured.eval_loss),
        truthfulqa_mc1: measured.mc1,
        truthfulqa_mc2: measured.mc2,
        n_questions: measured.n,
        steps,
        seconds: start.elapsed().as_secs_f64(),
        eval_curve: eval_curve(dir)?,
    };
    write_json(&dir.join(RESULT_FILE), &result)?;
    Ok(result)
}

/// The settings that decide a run's outcome, as its result records them.
pub(crate) fn run_config(run: &ResolvedRun) -> serde_json::Value {
    match run.method {
        Method::Base => serde_json::json!({}),
        Method::Lora => serde_json::json!({"lora": run.lora, "train": run.train}),
        Method::Engram => serde_json::json!({
            "engram": run.engram, "init": run.engram_init, "train": run.train
        }),
    }
}

struct Measured {
    eval_loss: f64,
    mc1: f64,
    mc2: f64,
    n: usize,
}

fn measure<M: TrainableLm + CausalLm>(
    inputs: &StudyInputs,
    model: &M,
    on_event: &mut dyn FnMut(Event),
) -> Result<Measured> {
    let loss = eval_loss(
        model,
        &inputs.data.eval,
        inputs.tok.pad_id,
        8,
        &inputs.device,
    )?;
    let total = inputs.questions.len();
    let r = evaluate_with_primer(
        model,
        &inputs.tok,
        &inputs.questions,
        &inputs.primer,
        |done| on_event(Event::Probe { done, total }),
    )?;
    Ok(Measured {
        eval_loss: loss,
        mc1: r.mc1,
        mc2: r.mc2,
        n: r.n_questions,
    })
}

/// Trains with checkpoints in `dir` (resuming from the latest) and appends the step metrics
/// to `dir/metrics.jsonl`; returns the model and the last step.
fn fit<M: TrainableLm>(
    inputs: &StudyInputs,
    model: M,
    run: &ResolvedRun,
    dir: &Path,
    on_event: &mut dyn FnMut(Event),
) -> Result<(M, usize)> {
    let path = dir.join(METRICS_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| EngramError::io(&path, e))?;
    let ckpt = CheckpointConfig {
        dir: dir.to_path_buf(),
        every: inputs.save_every,
        keep_last: 1,
        resume: true,
    };
    let mut write_err = None;
    let (model, metrics) = train(
        model,
        &inputs.data,
        inputs.tok.pad_id,
        &run.train,
        &inputs.device,
        Some(&ckpt),
        |m| {
            on_event(Event::Step(m));
            let line = serde_json::to_string(m).unwrap_or_default();
            if let Err(e) = writeln!(file, "{line}") {
                write_err.get_or_insert(EngramError::io(&path, e));
            }
        },
    )?;
    if let Some(e) = write_err {
        return Err(e);
    }
    let last = match metrics.last() {
        Some(m) => m.step,
        None => read_metrics(dir)?.last().map_or(0, |m| m.step),
    };
    Ok((model, last))
}

fn read_metrics(dir: &Path) -> Result<Vec<StepMetrics>> {
    let path = dir.join(METRICS_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| EngramError::io(&path, e))?;
    // A line cut short by a kill is skipped; a resumed run rewrites its steps.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<StepMetrics>(l).ok())
        .collect())
}

/// (step, eval loss) from the metrics file, the last record of each step kept.
fn eval_curve(dir: &Path) -> Result<Vec<(usize, f64)>> {
    let mut curve = std::collections::BTreeMap::new();
    for m in read_metrics(dir)? {
        if let Some(e) = m.eval_loss {
            curve.insert(m.step, e);
        }
    }
    Ok(curve.into_iter().collect())
}
