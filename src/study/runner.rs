//! Runs one [`ResolvedRun`]: train the added parameters on the study data (checkpointed, so a
//! killed run resumes), measuring the held-out answers and the multiple-choice probe at
//! several points of training (every `probe_every` steps and at the end). A run whose
//! `result.json` exists is read back instead of run again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::{DType, Device};
use serde::{Deserialize, Serialize};

use super::spec::{Method, ResolvedRun};
use crate::error::{EngramError, Result};
use crate::host::lora::{apply_lora_seeded, count_lora_params, save_adapter};
use crate::host::qwen3::{CausalLm, Qwen3Engram, Qwen3Tokenizer, load_qwen3};
use crate::io::{read_json, sha256_bytes, sha256_chunks, write_json};
use crate::study::data::dataset::StudyData;
use crate::study::eval::answers::{AnswerMetrics, score_answers};
use crate::study::eval::truthfulqa::{McQuestion, evaluate_with_primer};
use crate::study::runs::{InputRecord, JsonLines, OpenMode, Opened, RunFolder, RunManifest};
use crate::study::train::{
    CheckpointConfig, StepMetrics, TrainableLm, latest_checkpoint, train_observed,
};
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
    /// Measure the answers and the probe every this many steps (on steps that also measure
    /// the eval loss, see `TrainConfig::eval_every`; 0: only at the end).
    pub probe_every: usize,
    /// Replace run folders that hold other runs (or no manifest) instead of refusing them.
    pub overwrite: bool,
}

/// The scores of a model at one point of its training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CheckpointScore {
    /// Optimizer steps taken (0: the untrained model).
    pub step: usize,
    /// Token-mean loss on the held-out rows, every token (the seed's metric).
    pub eval_loss: f64,
    /// Token-mean loss on the held-out answer tokens.
    pub answer_loss: f64,
    /// Share of answer tokens predicted greedily.
    pub answer_accuracy: f64,
    /// Share of held-out rows whose greedy answer equals the reference call.
    pub call_exact_match: f64,
    /// MC1 on the multiple-choice set.
    pub mc1: f64,
    /// MC2 on the multiple-choice set.
    pub mc2: f64,
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
    /// The seed of the run's initialization and data order (`TrainConfig::seed`).
    pub seed: u64,
    /// Parameters the run trained.
    pub trainable_params: usize,
    /// Token-mean loss on the held-out study data, every token (the seed's metric).
    pub eval_loss: Option<f64>,
    /// Token-mean loss on the held-out answer tokens only.
    pub answer_loss: Option<f64>,
    /// Share of held-out answer tokens predicted greedily.
    pub answer_accuracy: Option<f64>,
    /// Share of held-out rows whose greedy answer equals the reference call.
    pub call_exact_match: Option<f64>,
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
    /// Every score at the points of training where the probe was measured, the last one the
    /// final model's.
    pub checkpoints: Vec<CheckpointScore>,
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
    /// A finished run whose manifest matches was read back instead of run again.
    Reused(&'a Path),
    /// An unfinished run whose manifest matches continues from its latest checkpoint.
    Resumed(&'a Path),
}

const RESULT_FILE: &str = "result.json";
const METRICS_FILE: &str = "metrics.jsonl";
const SCORES_FILE: &str = "scores.jsonl";
const EVAL_ROWS_FILE: &str = "eval.jsonl";

/// The result saved in a finished run's folder, if any.
pub fn finished(dir: &Path) -> Result<Option<RunResult>> {
    let path = dir.join(RESULT_FILE);
    if path.is_file() {
        read_json(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// The manifest of `run` on `inputs`: the base model's files, checksums of the tokenized
/// study data and of the probe, and every setting that decides the result.
pub fn run_manifest(inputs: &StudyInputs, run: &ResolvedRun) -> Result<RunManifest> {
    // each row as its length then its ids (little-endian u32), row by row: the study's data
    // can be hundreds of millions of tokens, never gathered into one buffer
    let seqs = |s: &[Vec<u32>]| {
        sha256_chunks(s.iter().map(|r| {
            let mut b = Vec::with_capacity(4 * (r.len() + 1));
            b.extend((r.len() as u32).to_le_bytes());
            b.extend(r.iter().flat_map(|t| t.to_le_bytes()));
            b
        }))
    };
    let questions = serde_json::to_vec(&inputs.questions).unwrap_or_default();
    let data = InputRecord {
        path: "study data (tokenized)".into(),
        sha256: std::collections::BTreeMap::from([
            ("train".to_string(), seqs(&inputs.data.train)),
            ("eval".to_string(), seqs(&inputs.data.eval)),
            ("questions".to_string(), sha256_bytes(&questions)),
            ("primer".to_string(), sha256_bytes(inputs.primer.as_bytes())),
        ]),
    };
    let config = serde_json::json!({
        "run": run_config(run),
        "label": run.label,
        "probe_every": inputs.probe_every,
        "dtype": format!("{:?}", inputs.dtype),
    });
    Ok(RunManifest::new("study", run.method.as_str(), config)
        .with_input("model", InputRecord::model_folder(&inputs.model_dir)?)
        .with_input("data", data))
}

/// Runs `run` in `dir` (created), or returns the result it already holds. The folder must
/// hold this run (its manifest matches, each differing field named otherwise) or nothing;
/// with `inputs.overwrite` another run's folder is replaced instead. The folder is locked
/// while the run lasts.
pub fn run_one(
    inputs: &StudyInputs,
    run: &ResolvedRun,
    dir: &Path,
    on_event: &mut dyn FnMut(Event),
) -> Result<RunResult> {
    let manifest = run_manifest(inputs, run)?;
    let mode = if inputs.overwrite {
        OpenMode::Overwrite
    } else {
        OpenMode::ResumeOrStart
    };
    let progress = |d: &Path| Ok(d.join(RESULT_FILE).is_file() || latest_checkpoint(d)?.is_some());
    let folder = RunFolder::open(dir, mode, &manifest, &progress)?;
    if folder.opened() == Opened::Continued {
        if let Some(done) = finished(dir)? {
            on_event(Event::Reused(dir));
            return Ok(done);
        }
        on_event(Event::Resumed(dir));
    }
    write_eval_rows(inputs, &dir.join(EVAL_ROWS_FILE))?;
    let start = Instant::now();
    let device = &inputs.device;
    let base = load_qwen3(&inputs.model_dir, device, inputs.dtype)?;
    let (trainable, steps, scores) = match run.method {
        Method::Base => {
            let s = measure(inputs, &base.valid(), run, 0, on_event)?;
            (0, 0, vec![s])
        }
        Method::Lora => {
            device.seed(run.train.seed);
            let model = apply_lora_seeded(base, &run.lora, run.train.seed)?;
            let trainable = count_lora_params(&model);
            let (model, n, scores) = fit(inputs, model, run, dir, on_event)?;
            save_adapter(&model, &run.lora, dir.join("adapter"))?;
            (trainable, n, scores)
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
            let (model, n, scores) = fit(inputs, model, run, dir, on_event)?;
            model.engram.save_pretrained(dir.join("engram"))?;
            (trainable, n, scores)
        }
    };
    let last = *scores.last().ok_or_else(|| EngramError::InvalidStudy {
        field: run.name.clone(),
        reason: "the run measured nothing (no checkpoint was scored)".into(),
    })?;
    let result = RunResult {
        name: run.name.clone(),
        label: run.label.clone(),
        method: run.method.as_str().into(),
        config: run_config(run),
        seed: run.train.seed,
        trainable_params: trainable,
        eval_loss: Some(last.eval_loss),
        answer_loss: Some(last.answer_loss),
        answer_accuracy: Some(last.answer_accuracy),
        call_exact_match: Some(last.call_exact_match),
        truthfulqa_mc1: last.mc1,
        truthfulqa_mc2: last.mc2,
        n_questions: inputs.questions.len(),
        steps,
        seconds: start.elapsed().as_secs_f64(),
        eval_curve: eval_curve(dir)?,
        checkpoints: scores,
    };
    write_json(&dir.join(RESULT_FILE), &result)?;
    Ok(result)
}

/// The held-out rows as `{"instruction", "input", "output"}` JSON lines, so other tools can
/// score the same rows.
fn write_eval_rows(inputs: &StudyInputs, path: &Path) -> Result<()> {
    let mut text = String::new();
    for s in &inputs.data.eval_samples {
        let line = serde_json::to_string(s).map_err(|e| EngramError::Json {
            path: path.to_path_buf(),
            source: e,
        })?;
        text += &line;
        text.push('\n');
    }
    crate::io::write_atomic(path, text.as_bytes())
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

/// The held-out answers and the probe of `model` after `step` steps.
fn measure<M: TrainableLm + CausalLm>(
    inputs: &StudyInputs,
    model: &M,
    run: &ResolvedRun,
    step: usize,
    on_event: &mut dyn FnMut(Event),
) -> Result<CheckpointScore> {
    let a: AnswerMetrics = score_answers(
        model,
        &inputs.data.eval,
        &inputs.data.eval_answer_start,
        inputs.tok.eos_id,
        inputs.tok.pad_id,
        run.train.micro_batch, // the run's batch (the answers do not depend on it)
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
    Ok(CheckpointScore {
        step,
        eval_loss: a.eval_loss,
        answer_loss: a.answer_loss,
        answer_accuracy: a.answer_accuracy,
        call_exact_match: a.call_exact_match,
        mc1: r.mc1,
        mc2: r.mc2,
    })
}

/// Trains with checkpoints in `dir` (resuming from the latest), appends the step metrics to
/// `dir/metrics.jsonl` and the scores measured along the way to `dir/scores.jsonl`; returns
/// the model, the last step and every score (earlier processes' included), the final
/// model's last.
fn fit<M: TrainableLm + CausalLm>(
    inputs: &StudyInputs,
    model: M,
    run: &ResolvedRun,
    dir: &Path,
    on_event: &mut dyn FnMut(Event),
) -> Result<(M, usize, Vec<CheckpointScore>)> {
    let mut metrics_log = JsonLines::append_to(dir.join(METRICS_FILE))?;
    let mut scores_log = JsonLines::append_to(dir.join(SCORES_FILE))?;
    let ckpt = CheckpointConfig {
        dir: dir.to_path_buf(),
        every: inputs.save_every,
        keep_last: 1,
        resume: true,
    };
    let on_event = std::cell::RefCell::new(on_event);
    let (model, metrics) = train_observed(
        model,
        &inputs.data,
        inputs.tok.pad_id,
        &run.train,
        &inputs.device,
        Some(&ckpt),
        |m| {
            (on_event.borrow_mut())(Event::Step(m));
            metrics_log.record(m);
        },
        |m, model| {
            let due = m.step == m.total_steps
                || (inputs.probe_every > 0 && m.step.is_multiple_of(inputs.probe_every));
            if !due {
                return Ok(());
            }
            let mut ev = on_event.borrow_mut();
            let score = measure(inputs, &model.valid(), run, m.step, &mut **ev)?;
            scores_log.write(&score)
        },
    )?;
    metrics_log.finish()?;
    let last = match metrics.last() {
        Some(m) => m.step,
        None => read_metrics(dir)?.last().map_or(0, |m| m.step),
    };
    let mut scores = read_scores(dir)?;
    if scores.last().is_none_or(|s| s.step != last) {
        // Killed after the last step but before its scores were written.
        let mut ev = on_event.borrow_mut();
        scores.push(measure(inputs, &model.valid(), run, last, &mut **ev)?);
    }
    Ok((model, last, scores))
}

/// The scores of `dir/scores.jsonl`, the last record of each step kept, in step order.
fn read_scores(dir: &Path) -> Result<Vec<CheckpointScore>> {
    let path = dir.join(SCORES_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path).map_err(|e| EngramError::io(&path, e))?;
    let mut by_step = std::collections::BTreeMap::new();
    // A line cut short by a kill is skipped; a resumed run measures its steps again.
    for s in text
        .lines()
        .filter_map(|l| serde_json::from_str::<CheckpointScore>(l).ok())
    {
        by_step.insert(s.step, s);
    }
    Ok(by_step.into_values().collect())
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
