//! Evaluates a Qwen3 model (plain, with Engram, or with a LoRA adapter): eval loss on the
//! study's held-out split and TruthfulQA MC1/MC2 (lm-evaluation-harness protocol).
//!
//! ```text
//! cargo run --release --example eval -- --model-dir DIR [--engram DIR | --lora DIR] \
//!     [--tasks loss,truthfulqa|truthfulqa_mc1|truthfulqa_mc2] [--data train.jsonl] \
//!     [--limit N|FRACTION] [--device cpu|wgpu|cuda] [--dtype auto|f32|bf16] [--out FILE [--log-samples]]
//! ```
//! Prints (and writes to `--out`) lm-evaluation-harness's result layout: `results.<task>`
//! with `acc,none` / `acc_stderr,none`, `n-samples`, `config`; `--log-samples` writes
//! `<out stem>_samples_<task>.jsonl` beside it.

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::Device;
use burn_engram::Result;
use burn_engram::host::AdaptedQwen3;
use burn_engram::host::qwen3::Qwen3Tokenizer;
use burn_engram::study::data::dataset::{DataConfig, build, load_samples};
use burn_engram::study::eval::lm_eval::{
    Limit, mc_results, resolve_tasks, results_table, sample_records, write_samples,
};
use burn_engram::study::eval::truthfulqa::{evaluate, question_set};
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
    /// Comma-separated: truthfulqa (= truthfulqa_mc1,truthfulqa_mc2), truthfulqa_mc1, truthfulqa_mc2, loss.
    #[arg(long, default_value = "truthfulqa", value_delimiter = ',')]
    tasks: Vec<String>,
    /// Prepared samples (JSON lines) whose held-out split gives the eval loss.
    #[arg(long, required_if_eq("tasks", "loss"))]
    data: Option<PathBuf>,
    /// The first N TruthfulQA questions, or a fraction below 1 of them (as lm-eval).
    #[arg(long)]
    limit: Option<Limit>,
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
    /// Also write each question's per-choice log-likelihoods (lm-eval's per-sample records).
    #[arg(long, requires = "out")]
    log_samples: bool,
}

fn loss_of(m: &AdaptedQwen3, seqs: &[Vec<u32>], pad: u32, mb: usize, d: &Device) -> Result<f64> {
    match m {
        AdaptedQwen3::Base(m) | AdaptedQwen3::Lora(m) => eval_loss(m, seqs, pad, mb, d),
        AdaptedQwen3::Engram(m) => eval_loss(m, seqs, pad, mb, d),
    }
}

fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let tasks = resolve_tasks(&args.tasks)?;
    let has = |t: &str| tasks.iter().any(|x| x.starts_with(t));
    let (device, precision) = args.device.select(false)?;
    let dir = &args.model.model_dir;
    let tok = Qwen3Tokenizer::from_dir(dir)?;
    let (engram, lora) = (args.added.engram.as_deref(), args.added.lora.as_deref());
    let model = AdaptedQwen3::load(dir, engram, lora, &tok, &device, precision.dtype())?;

    let eval_loss = match args.data.as_ref().filter(|_| has("loss")) {
        Some(data) => {
            let (max_len, d) = (args.max_len, DataConfig::default());
            let cfg = DataConfig { max_len, ..d };
            let eval = build(&load_samples(data)?, &tok, &cfg)?.eval;
            Some(loss_of(
                &model,
                &eval,
                tok.pad_id,
                args.micro_batch,
                &device,
            )?)
        }
        None => None,
    };
    let mut v = serde_json::json!({ "results": {} });
    let mut logged = Vec::new();
    if has("truthfulqa") {
        let mut questions = question_set(&args.truthfulqa)?;
        let total = questions.len();
        questions.truncate(args.limit.map_or(total, |l| l.of(total)));
        let style = "truthfulqa {bar:30} {pos}/{len} [{elapsed_precise} < {eta}]";
        let bar = ProgressBar::new(questions.len() as u64)
            .with_style(ProgressStyle::with_template(style).expect("static template"));
        let r = evaluate(&model, &tok, &questions, |i| bar.set_position(i as u64))?;
        bar.finish_and_clear();
        v = mc_results(&tasks, &r, total);
        for t in tasks.iter().filter(|t| t.starts_with("truthfulqa_mc")) {
            logged.push((*t, sample_records(t, &questions, &r)));
        }
    }
    if let Some(loss) = eval_loss {
        v["results"]["loss"] = serde_json::json!({ "alias": "loss", "eval_loss,none": loss });
    }
    let seconds = start.elapsed().as_secs_f64();
    let (method, added) = (model.method(), model.added_params());
    let adapter = engram.or(lora).map(|p| p.display().to_string());
    v["config"] = serde_json::json!({ "model": "burn-engram", "model_dir": dir.display().to_string(),
        "method": method, "adapter": adapter, "truthfulqa": args.truthfulqa,
        "limit": args.limit.map(Limit::to_json), "dtype": precision.name(),
        "device": args.device.device, "trainable_params": added });
    v["burn_engram_version"] = env!("CARGO_PKG_VERSION").into();
    v["total_evaluation_time_seconds"] = format!("{seconds:.1}").into();
    eprint!("{}", results_table(&v));
    eprintln!("{method}, {added} added parameters, {seconds:.1} s");
    println!("{v}");
    let Some(path) = &args.out else { return Ok(()) };
    if args.log_samples {
        write_samples(path, &logged)?;
    }
    burn_engram::io::write_atomic(path, format!("{v:#}\n").as_bytes())
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
