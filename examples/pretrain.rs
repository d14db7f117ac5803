//! Pretrains the embedded base model of the study from the committed corpus, reproducibly.
//!
//! ```text
//! cargo run --release --example pretrain                      # writes runs/base-model/
//! cargo run --release --example pretrain -- --out src/study/data/base/model --overwrite  # the shipped one
//! cargo run --release --example pretrain -- --out /tmp/base --epochs 2 --device wgpu
//! ```
//! Steps: train a byte-level BPE tokenizer on the corpus's training records only
//! (`src/study/data/base/corpus.jsonl`), build a small Qwen3 (`study::base_config`) initialized as
//! transformers does (seeded), train every parameter on the corpus documents with the facts
//! packed into new documents every epoch (`study::pretrain_documents`), then measure the
//! held-out corpus documents' loss, the fact probe and the loss on the study's held-out
//! fine-tune rows against the uniform guess ln(vocab), and write a Hugging Face folder
//! (`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`) plus
//! `pretrain_report.json`. The folder is written whole: into a temporary sibling first, put
//! in place at the end in one atomic exchange (`fsutil::write_dir_atomic`), so an interrupted
//! run leaves the old folder or none, never a tokenizer that disagrees with the weights. An
//! existing `--out` is refused up front unless `--overwrite` is given.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::module::Module;
use burn_engram::device::select_device;
use burn_engram::host::qwen3::{Qwen3ForCausalLM, Qwen3Tokenizer, save_qwen3};
use burn_engram::study::data::dataset::{DataConfig, StudyData, build};
use burn_engram::study::data::glaive::prepare;
use burn_engram::study::data::synth_glaive::generate_jsonl;
use burn_engram::study::eval::truthfulqa::evaluate_with_primer;
use burn_engram::study::train::{StepMetrics, TrainConfig, eval_loss, train};
use burn_engram::study::{
    PROBE_PRIMER, base_config, corpus_records, heldout_documents, pretrain_documents,
    probe_questions, train_tokenizer,
};
use burn_engram::{EngramError, Result};
use clap::Parser;
use common::Progress;

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS, saving the page faults of each new
// buffer (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Pretrain the study's embedded base model on the committed corpus")]
struct Args {
    /// Output folder (a Hugging Face model folder).
    #[arg(long, default_value = "runs/base-model")]
    out: PathBuf,
    /// Replace --out if it exists (the shipped model is src/study/data/base/model).
    #[arg(long)]
    overwrite: bool,
    /// Tokenizer vocabulary size (special tokens included).
    #[arg(long, default_value_t = 2048)]
    vocab_size: usize,
    /// Passes over the corpus (the facts packed anew each time).
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Longest training document in tokens (longer ones are cut).
    #[arg(long, default_value_t = 384)]
    max_len: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Documents per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Seed of the initialization and the data order.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> EngramError + '_ {
    move |e| EngramError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn run(args: Args) -> Result<()> {
    if args.out.exists() && !args.overwrite {
        return Err(EngramError::RunFolder {
            path: args.out.clone(),
            reason: "exists: pass --overwrite to replace it (after the new model is complete), or choose another --out".into(),
        });
    }
    let device = select_device(&args.device)?.autodiff();
    // Everything is written into a temporary sibling first and renamed into place at the end:
    // an interrupted run never leaves a folder whose tokenizer and weights disagree.
    let out = args.out.clone();
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".pretrain-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let dir = tmp.path();

    // 1. Tokenizer: the corpus's training records only (no fine-tune row, no held-out text).
    let records = corpus_records()?;
    let texts = records
        .iter()
        .filter(|r| r.split == "train")
        .map(|r| r.text.as_str());
    let tokenizer = train_tokenizer(texts, args.vocab_size)?;
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
    .map_err(io(&cfg_path))?;
    let tok = Qwen3Tokenizer::from_dir(dir)?;

    // 2. Model and data: every epoch's documents (facts packed anew), shuffled together.
    let config = base_config(tokenizer.get_vocab_size(true));
    device.seed(args.seed);
    let model = Qwen3ForCausalLM::new(&config, &device);
    let encode = |docs: &[String]| {
        docs.iter()
            .map(|d| {
                tok.encode(d).map(|mut ids| {
                    ids.truncate(args.max_len);
                    ids
                })
            })
            .collect::<Result<Vec<_>>>()
    };
    let mut train_seqs = Vec::new();
    for epoch in 0..args.epochs.max(1) {
        train_seqs.extend(encode(&pretrain_documents(epoch, args.seed)?)?);
    }
    let heldout = encode(&heldout_documents()?)?;
    let n_tokens: usize = train_seqs.iter().map(Vec::len).sum();
    eprintln!(
        "{} documents over {} epochs, {n_tokens} tokens, {} held out, vocabulary {}, {} parameters",
        train_seqs.len(),
        args.epochs,
        heldout.len(),
        config.vocab_size,
        model.num_params()
    );
    let data = StudyData {
        eval: heldout,
        train: train_seqs,
        ..StudyData::default()
    };
    let cfg = TrainConfig {
        lr: args.lr,
        epochs: 1, // the epochs are in the data, each packed anew
        micro_batch: args.batch,
        warmup_ratio: 0.03,
        weight_decay: 0.01,
        max_grad_norm: Some(1.0),
        eval_every: 200,
        seed: args.seed,
        ..TrainConfig::default()
    };

    // 3. Train every parameter.
    let progress = Progress::new(50);
    let (model, metrics) = train(
        model,
        &data,
        tok.pad_id,
        &cfg,
        &device,
        None,
        |m: &StepMetrics| progress.step(m), // eval loss = held-out corpus loss
    )?;
    progress.finish();

    // 4. Measure: held-out corpus loss, the probe, and the study's held-out fine-tune rows.
    let model = model.valid();
    let cpu = device.clone().without_autodiff();
    let heldout_loss = eval_loss(&model, &data.eval, tok.pad_id, 8, &cpu)?;
    let questions = probe_questions()?;
    let probe = evaluate_with_primer(&model, &tok, &questions, PROBE_PRIMER, |_| {})?;
    let (samples, _) = prepare(&generate_jsonl(1200, 42));
    let study_cfg = DataConfig {
        max_len: 512,
        eval_fraction: 0.05,
        ..DataConfig::default()
    };
    let study_eval = build(&samples, &tok, &study_cfg)?.eval;
    let finetune_loss = eval_loss(&model, &study_eval, tok.pad_id, 8, &cpu)?;
    let uniform = (config.vocab_size as f64).ln();
    save_qwen3(&model, dir)?;
    let last = metrics.last();
    let report = serde_json::json!({
        "seed": args.seed, "epochs": args.epochs, "lr": args.lr, "batch": args.batch,
        "max_len": args.max_len, "vocab_size": config.vocab_size,
        "parameters": model.num_params(), "train_tokens": n_tokens,
        "steps": last.map(|m| m.step), "final_train_loss": last.map(|m| m.loss),
        "heldout_documents": data.eval.len(), "heldout_loss": heldout_loss,
        "finetune_eval_rows": study_eval.len(), "finetune_eval_loss": finetune_loss,
        "uniform_loss": uniform,
        "seconds": last.map(|m| m.elapsed_s),
        "probe_mc1": probe.mc1, "probe_mc2": probe.mc2, "probe_questions": probe.n_questions,
    });
    let report_path = dir.join("pretrain_report.json");
    std::fs::write(
        &report_path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(io(&report_path))?;

    // 5. Into place, whole: the files move into a fresh folder that takes `out`'s place.
    burn_engram::io::write_dir_atomic(&out, |d| {
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let from = entry.map_err(io(dir))?.path();
            let to = d.join(from.file_name().unwrap_or_default());
            std::fs::rename(&from, &to).map_err(io(&to))?;
        }
        Ok(())
    })?;
    println!(
        "held-out corpus loss {heldout_loss:.4}; study eval rows {finetune_loss:.4} nats/token \
         (uniform guess ln({}) = {uniform:.4})",
        config.vocab_size
    );
    println!(
        "probe: MC1 {:.4}  MC2 {:.4}  ({} questions; chance MC1 0.25)",
        probe.mc1, probe.mc2, probe.n_questions
    );
    println!("wrote {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
