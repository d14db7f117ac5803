//! Evaluates a Qwen3 model (plain, with Engram, or with a LoRA adapter): eval loss on the
//! study's held-out split and TruthfulQA MC1/MC2 (lm-evaluation-harness protocol).
//!
//! ```text
//! cargo run --release --example eval -- --model-dir DIR [--engram DIR | --lora DIR] \
//!     [--tasks loss,truthfulqa] [--data train.jsonl] [--limit N] [--device cpu|wgpu|cuda] [--dtype auto|f32|bf16] [--out FILE]
//! ```

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::Device;
use burn_engram::device::select_device;
use burn_engram::host::AdaptedQwen3;
use burn_engram::host::qwen3::Qwen3Tokenizer;
use burn_engram::precision::Precision;
use burn_engram::study::data::dataset::{DataConfig, build, load_samples};
use burn_engram::study::eval::truthfulqa::{
    TRUTHFULQA_MC_REVISED, TRUTHFULQA_MC_V1, evaluate, load_questions, parse_questions,
};
use burn_engram::study::train::eval_loss;
use clap::{ArgGroup, Parser};
use indicatif::{ProgressBar, ProgressStyle};

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS, saving the page faults of each new
// buffer (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Eval loss and TruthfulQA MC1/MC2 of a Qwen3 model")]
#[command(group(ArgGroup::new("adapter").args(["engram", "lora"])))]
struct Args {
    /// Hugging Face Qwen3 folder.
    #[arg(long)]
    model_dir: PathBuf,
    /// Engram folder (save_pretrained output or a TinyEngram model folder).
    #[arg(long)]
    engram: Option<PathBuf>,
    /// PEFT LoRA adapter folder.
    #[arg(long)]
    lora: Option<PathBuf>,
    /// Comma-separated: loss, truthfulqa.
    #[arg(long, default_value = "truthfulqa")]
    tasks: String,
    /// Prepared samples (JSON lines) whose held-out split gives the eval loss.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only the first N TruthfulQA questions.
    #[arg(long, value_parser = common::at_least_one)]
    limit: Option<usize>,
    /// v1 (the 2021 set lm-eval scores, default), revised, or a path to a JSONL file.
    #[arg(long, default_value = "v1")]
    truthfulqa: String,
    /// Longest training sequence (the eval split is built as for training).
    #[arg(long, default_value_t = 2048)]
    max_len: usize,
    /// Sequences per forward pass for the eval loss.
    #[arg(long, default_value_t = 4)]
    micro_batch: usize,
    /// cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Backbone precision: auto (bf16 on a GPU that computes in it, f32 on the CPU), f32 or
    /// bf16. Trained parameters stay f32 either way.
    #[arg(long, default_value = "auto")]
    dtype: String,
    /// Write the JSON result here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn loss_of(
    model: &AdaptedQwen3,
    seqs: &[Vec<u32>],
    pad: u32,
    mb: usize,
    device: &Device,
) -> burn_engram::Result<f64> {
    match model {
        AdaptedQwen3::Base(m) | AdaptedQwen3::Lora(m) => eval_loss(m, seqs, pad, mb, device),
        AdaptedQwen3::Engram(m) => eval_loss(m, seqs, pad, mb, device),
    }
}

fn run(args: Args) -> Result<serde_json::Value, String> {
    let start = Instant::now();
    let tasks: Vec<&str> = args.tasks.split(',').map(str::trim).collect();
    if let Some(t) = tasks.iter().find(|t| !["loss", "truthfulqa"].contains(t)) {
        return Err(format!("--tasks: unknown task `{t}` (loss, truthfulqa)"));
    }
    let device = select_device(&args.device).map_err(|e| e.to_string())?;
    let precision = Precision::select(&args.dtype, &device).map_err(|e| e.to_string())?;
    let tok = Qwen3Tokenizer::from_dir(&args.model_dir).map_err(|e| e.to_string())?;
    let model = AdaptedQwen3::load(
        &args.model_dir,
        args.engram.as_deref(),
        args.lora.as_deref(),
        &tok,
        &device,
        precision.dtype(),
    )
    .map_err(|e| e.to_string())?;

    let eval_loss = if tasks.contains(&"loss") {
        let data = args.data.as_ref().ok_or("--tasks loss needs --data")?;
        let samples = load_samples(data).map_err(|e| e.to_string())?;
        let split = build(
            &samples,
            &tok,
            &DataConfig {
                max_len: args.max_len,
                ..DataConfig::default()
            },
        )
        .map_err(|e| e.to_string())?;
        Some(
            loss_of(&model, &split.eval, tok.pad_id, args.micro_batch, &device)
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let (mc1, mc2, n) = if tasks.contains(&"truthfulqa") {
        let mut questions = match args.truthfulqa.as_str() {
            "v1" => parse_questions(TRUTHFULQA_MC_V1, Path::new("truthfulqa_mc_v1.jsonl")),
            "revised" => parse_questions(TRUTHFULQA_MC_REVISED, Path::new("truthfulqa_mc.jsonl")),
            path => load_questions(path),
        }
        .map_err(|e| e.to_string())?;
        questions.truncate(args.limit.unwrap_or(questions.len()));
        let bar = ProgressBar::new(questions.len() as u64).with_style(
            ProgressStyle::with_template(
                "truthfulqa {bar:30} {pos}/{len} [{elapsed_precise} < {eta}]",
            )
            .map_err(|e| e.to_string())?,
        );
        let r = evaluate(&model, &tok, &questions, |i| bar.set_position(i as u64))
            .map_err(|e| e.to_string())?;
        bar.finish_and_clear();
        (Some(r.mc1), Some(r.mc2), r.n_questions)
    } else {
        (None, None, 0)
    };
    let seconds = start.elapsed().as_secs_f64();
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    eprintln!(
        "{:<8} {:>12} {:>10} {:>8} {:>8} {:>6} {:>9}",
        "method", "added", "eval_loss", "mc1", "mc2", "n", "seconds"
    );
    eprintln!(
        "{:<8} {:>12} {:>10} {:>8} {:>8} {:>6} {:>8.1}s",
        model.method(),
        model.added_params(),
        fmt(eval_loss),
        fmt(mc1),
        fmt(mc2),
        n,
        seconds
    );
    Ok(serde_json::json!({
        "truthfulqa_mc1": mc1,
        "truthfulqa_mc2": mc2,
        "n_questions": n,
        "eval_loss": eval_loss,
        "model": args.model_dir.display().to_string(),
        "method": model.method(),
        "dtype": precision.name(),
        "trainable_params": model.added_params(),
        "seconds": seconds,
    }))
}

fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    let out = args.out.clone();
    match run(args) {
        Ok(v) => {
            println!("{v}");
            if let Some(path) = out
                && let Err(e) = std::fs::write(&path, format!("{v:#}\n"))
            {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
