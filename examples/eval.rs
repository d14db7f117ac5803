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
use burn_engram::Result;
use burn_engram::host::AdaptedQwen3;
use burn_engram::host::qwen3::Qwen3Tokenizer;
use burn_engram::study::data::dataset::{DataConfig, build, load_samples};
use burn_engram::study::eval::truthfulqa::{
    TRUTHFULQA_MC_REVISED, TRUTHFULQA_MC_V1, evaluate, load_questions, parse_questions,
};
use burn_engram::study::train::eval_loss;
use clap::Parser;
use common::flags::{Added, DeviceFlags, ModelDir, finish};
use indicatif::{ProgressBar, ProgressStyle};

// Burn's CPU backend allocates per op; mimalloc reuses freed memory (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Eval loss and TruthfulQA MC1/MC2 of a Qwen3 model")]
struct Args {
    #[command(flatten)]
    model: ModelDir,
    #[command(flatten)]
    added: Added,
    /// Comma-separated: loss, truthfulqa.
    #[arg(long, default_value = "truthfulqa", value_delimiter = ',',
          value_parser = ["loss", "truthfulqa"])]
    tasks: Vec<String>,
    /// Prepared samples (JSON lines) whose held-out split gives the eval loss.
    #[arg(long, required_if_eq("tasks", "loss"))]
    data: Option<PathBuf>,
    /// Only the first N TruthfulQA questions.
    #[arg(long, value_parser = common::at_least_one)]
    limit: Option<usize>,
    /// v1 (the 2021 set lm-eval scores, default), revised, or a path to a JSONL file.
    #[arg(long, default_value = "v1")]
    truthfulqa: String,
    /// Longest training sequence (the eval split is built as for training).
    #[arg(long, default_value_t = DataConfig::default().max_len)]
    max_len: usize,
    /// Sequences per forward pass for the eval loss.
    #[arg(long, default_value_t = 4, value_parser = common::at_least_one)]
    micro_batch: usize,
    #[command(flatten)]
    device: DeviceFlags,
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
) -> Result<f64> {
    match model {
        AdaptedQwen3::Base(m) | AdaptedQwen3::Lora(m) => eval_loss(m, seqs, pad, mb, device),
        AdaptedQwen3::Engram(m) => eval_loss(m, seqs, pad, mb, device),
    }
}

fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let has = |t: &str| args.tasks.iter().any(|x| x == t);
    let (device, precision) = args.device.select(false)?;
    let dir = &args.model.model_dir;
    let tok = Qwen3Tokenizer::from_dir(dir)?;
    let (engram, lora) = (args.added.engram.as_deref(), args.added.lora.as_deref());
    let model = AdaptedQwen3::load(dir, engram, lora, &tok, &device, precision.dtype())?;

    let eval_loss = match args.data.as_ref().filter(|_| has("loss")) {
        Some(data) => {
            let samples = load_samples(data)?;
            let cfg = DataConfig {
                max_len: args.max_len,
                ..DataConfig::default()
            };
            let split = build(&samples, &tok, &cfg)?;
            Some(loss_of(
                &model,
                &split.eval,
                tok.pad_id,
                args.micro_batch,
                &device,
            )?)
        }
        None => None,
    };
    let (mc1, mc2, n) = if has("truthfulqa") {
        let mut questions = match args.truthfulqa.as_str() {
            "v1" => parse_questions(TRUTHFULQA_MC_V1, Path::new("truthfulqa_mc_v1.jsonl"))?,
            "revised" => parse_questions(TRUTHFULQA_MC_REVISED, Path::new("truthfulqa_mc.jsonl"))?,
            path => load_questions(path)?,
        };
        questions.truncate(args.limit.unwrap_or(questions.len()));
        let style = "truthfulqa {bar:30} {pos}/{len} [{elapsed_precise} < {eta}]";
        let bar = ProgressBar::new(questions.len() as u64)
            .with_style(ProgressStyle::with_template(style).expect("static template"));
        let r = evaluate(&model, &tok, &questions, |i| bar.set_position(i as u64))?;
        bar.finish_and_clear();
        (Some(r.mc1), Some(r.mc2), r.n_questions)
    } else {
        (None, None, 0)
    };
    let seconds = start.elapsed().as_secs_f64();
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
    let (method, added) = (model.method(), model.added_params());
    eprintln!(
        "{:<8} {:>12} {:>10} {:>8} {:>8} {:>6} {:>9}",
        "method", "added", "eval_loss", "mc1", "mc2", "n", "seconds"
    );
    eprintln!(
        "{method:<8} {added:>12} {:>10} {:>8} {:>8} {n:>6} {seconds:>8.1}s",
        fmt(eval_loss),
        fmt(mc1),
        fmt(mc2)
    );
    let v = serde_json::json!({
        "truthfulqa_mc1": mc1, "truthfulqa_mc2": mc2, "n_questions": n, "eval_loss": eval_loss,
        "model": dir.display().to_string(), "method": method, "dtype": precision.name(),
        "trainable_params": added, "seconds": seconds,
    });
    println!("{v}");
    match &args.out {
        Some(path) => burn_engram::io::write_atomic(path, format!("{v:#}\n").as_bytes()),
        None => Ok(()),
    }
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
