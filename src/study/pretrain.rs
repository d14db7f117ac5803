//! Pretraining the study's embedded base model from the committed corpus, reproducibly:
//! a byte-level BPE tokenizer trained on the corpus's training records only, a small Qwen3
//! ([`base_config`]) initialized as transformers does (seeded), every parameter trained on
//! the corpus documents with the facts packed anew every epoch ([`pretrain_documents`]),
//! then the held-out corpus loss, the fact probe and the loss on the miniature study's
//! held-out rows measured against the uniform guess ln(vocab). The Hugging Face folder
//! (`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`,
//! `pretrain_report.json`) is written whole ([`write_dir_atomic`](crate::io::write_dir_atomic)):
//! an interrupted run never leaves a tokenizer that disagrees with the weights.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;

use super::base::{
    PROBE_PRIMER, base_config, corpus_records, heldout_documents, pretrain_documents,
    probe_questions, train_tokenizer,
};
use super::data::dataset::{StudyData, build};
use super::data::glaive::prepare;
use super::data::synth_glaive::generate_jsonl;
use super::eval::truthfulqa::evaluate_with_primer;
use super::spec::Profile;
use super::train::{StepMetrics, TrainConfig, eval_loss, train};
use crate::error::{EngramError, Result};
use crate::host::qwen3::{Qwen3ForCausalLM, Qwen3Tokenizer, save_qwen3};

/// The recipe of the shipped base model (`src/study/data/base/model/`).
#[derive(Debug, Clone, PartialEq)]
pub struct PretrainConfig {
    /// Tokenizer vocabulary size (special tokens included).
    pub vocab_size: usize,
    /// Passes over the corpus (the facts packed anew each time).
    pub epochs: usize,
    /// Longest training document in tokens (longer ones are cut).
    pub max_len: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Documents per step.
    pub batch: usize,
    /// Seed of the initialization and the data order.
    pub seed: u64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        Self {
            vocab_size: 2048,
            epochs: 5,
            max_len: 384,
            lr: 3e-3,
            batch: 16,
            seed: 1234,
        }
    }
}

/// What the pretrained model measures (also written as `pretrain_report.json`).
#[derive(Debug, Clone)]
pub struct PretrainReport {
    /// Token-mean loss on the held-out corpus documents.
    pub heldout_loss: f64,
    /// Token-mean loss on the miniature study's held-out fine-tune rows.
    pub finetune_loss: f64,
    /// ln(vocab): the uniform guess.
    pub uniform: f64,
    /// The fact probe's MC1.
    pub probe_mc1: f64,
    /// The fact probe's MC2.
    pub probe_mc2: f64,
    /// Probe questions.
    pub probe_questions: usize,
    /// The tokenizer's vocabulary.
    pub vocab_size: usize,
    /// The report file's content.
    pub json: serde_json::Value,
}

fn io_at(path: &Path) -> impl Fn(std::io::Error) -> EngramError + '_ {
    move |e| EngramError::io(path, e)
}

/// Pretrains the base model with `cfg` on `device` (an autodiff device) and writes its
/// folder to `out` (replacing it at the end when it exists; the caller decides whether it
/// may). `on_step` sees every step (its eval loss is the held-out corpus loss); `note` gets
/// the data summary.
pub fn pretrain(
    cfg: &PretrainConfig,
    out: &Path,
    device: &Device,
    on_step: impl FnMut(&StepMetrics),
    note: &mut dyn FnMut(String),
) -> Result<PretrainReport> {
    // Everything is written into a temporary sibling first and renamed into place at the end:
    // an interrupted run never leaves a folder whose tokenizer and weights disagree.
    let out = out.to_path_buf();
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".pretrain-")
        .tempdir_in(parent)
        .map_err(io_at(parent))?;
    let dir = tmp.path();

    // 1. Tokenizer: the corpus's training records only (no fine-tune row, no held-out text).
    let records = corpus_records()?;
    let texts = records
        .iter()
        .filter(|r| r.split == "train")
        .map(|r| r.text.as_str());
    let tokenizer = train_tokenizer(texts, cfg.vocab_size)?;
    let tok_path = dir.join("tokenizer.json");
    tokenizer
        .save(&tok_path, false)
        .map_err(|e| EngramError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
    let tok_cfg = serde_json::json!({
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "model_max_length": 1024, "tokenizer_class": "Qwen2Tokenizer"
    });
    let cfg_path = dir.join("tokenizer_config.json");
    std::fs::write(
        &cfg_path,
        serde_json::to_string_pretty(&tok_cfg).unwrap_or_default(),
    )
    .map_err(io_at(&cfg_path))?;
    let tok = Qwen3Tokenizer::from_dir(dir)?;

    // 2. Model and data: every epoch's documents (facts packed anew), shuffled together.
    let config = base_config(tokenizer.get_vocab_size(true));
    device.seed(cfg.seed);
    let model = Qwen3ForCausalLM::new(&config, device);
    let encode = |docs: &[String]| {
        docs.iter()
            .map(|d| {
                tok.encode(d).map(|mut ids| {
                    ids.truncate(cfg.max_len);
                    ids
                })
            })
            .collect::<Result<Vec<_>>>()
    };
    let mut train_seqs = Vec::new();
    for epoch in 0..cfg.epochs.max(1) {
        train_seqs.extend(encode(&pretrain_documents(epoch, cfg.seed)?)?);
    }
    let heldout = encode(&heldout_documents()?)?;
    let n_tokens: usize = train_seqs.iter().map(Vec::len).sum();
    note(format!(
        "{} documents over {} epochs, {n_tokens} tokens, {} held out, vocabulary {}, {} parameters",
        train_seqs.len(),
        cfg.epochs,
        heldout.len(),
        config.vocab_size,
        model.num_params()
    ));
    let data = StudyData {
        eval: heldout,
        train: train_seqs,
        ..StudyData::default()
    };
    let train_cfg = TrainConfig {
        lr: cfg.lr,
        epochs: 1, // the epochs are in the data, each packed anew
        micro_batch: cfg.batch,
        warmup_ratio: 0.03,
        weight_decay: 0.01,
        max_grad_norm: Some(1.0),
        eval_every: 200,
        seed: cfg.seed,
        ..TrainConfig::default()
    };

    // 3. Train every parameter.
    let (model, metrics) = train(model, &data, tok.pad_id, &train_cfg, device, None, on_step)?;

    // 4. Measure: held-out corpus loss, the probe, and the study's held-out fine-tune rows.
    let model = model.valid();
    let cpu = device.clone().without_autodiff();
    let heldout_loss = eval_loss(&model, &data.eval, tok.pad_id, 8, &cpu)?;
    let questions = probe_questions()?;
    let probe = evaluate_with_primer(&model, &tok, &questions, PROBE_PRIMER, |_| {})?;
    let (samples, _) = prepare(&generate_jsonl(1200, 42));
    // the miniature study's held-out rows, as the study splits them
    let study_cfg = Profile::Miniature.defaults(tok.pad_id).data;
    let study_eval = build(&samples, &tok, &study_cfg)?.eval;
    let finetune_loss = eval_loss(&model, &study_eval, tok.pad_id, 8, &cpu)?;
    let uniform = (config.vocab_size as f64).ln();
    save_qwen3(&model, dir)?;
    let last = metrics.last();
    let report = PretrainReport {
        heldout_loss,
        finetune_loss,
        uniform,
        probe_mc1: probe.mc1,
        probe_mc2: probe.mc2,
        probe_questions: probe.n_questions,
        vocab_size: config.vocab_size,
        json: serde_json::json!({
        "seed": cfg.seed, "epochs": cfg.epochs, "lr": cfg.lr, "batch": cfg.batch,
        "max_len": cfg.max_len, "vocab_size": config.vocab_size,
        "parameters": model.num_params(), "train_tokens": n_tokens,
        "steps": last.map(|m| m.step), "final_train_loss": last.map(|m| m.loss),
        "heldout_documents": data.eval.len(), "heldout_loss": heldout_loss,
        "finetune_eval_rows": study_eval.len(), "finetune_eval_loss": finetune_loss,
        "uniform_loss": uniform,
        "seconds": last.map(|m| m.elapsed_s),
        "probe_mc1": probe.mc1, "probe_mc2": probe.mc2, "probe_questions": probe.n_questions,
        }),
    };
    let report_path = dir.join("pretrain_report.json");
    std::fs::write(
        &report_path,
        serde_json::to_string_pretty(&report.json).unwrap_or_default(),
    )
    .map_err(io_at(&report_path))?;

    // 5. Into place, whole: the files move into a fresh folder that takes `out`'s place.
    crate::io::write_dir_atomic(&out, |d| {
        for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
            let from = entry.map_err(io_at(dir))?.path();
            let to = d.join(from.file_name().unwrap_or_default());
            std::fs::rename(&from, &to).map_err(io_at(&to))?;
        }
        Ok(())
    })?;
    Ok(report)
}
