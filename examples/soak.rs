//! Long-run stability soak: trains Engram on the tiny Qwen3 fixture for many steps on the CPU,
//! checkpointing as a real run does, and records the resident memory (VmRSS) along the way.
//!
//! ```text
//! cargo run --example soak -- [--steps 2000] [--warmup 200] [--every 50] [--save-every 250] \
//!     [--out soak.json]
//! ```
//! Writes one JSON object: RSS after warm-up and at the end, the growth between them in
//! percent (the target is under 10%), the samples, and the speed. Linux only (/proc).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{DType, Device};
use burn_engram::host::qwen3::{Qwen3Engram, Qwen3Tokenizer, load_qwen3};
use burn_engram::study::data::dataset::{DataConfig, build};
use burn_engram::study::data::glaive::Sample;
use burn_engram::study::train::{CheckpointConfig, StepMetrics, TrainConfig, train};
use burn_engram::{CompressedVocab, EngramConfig, EngramError, InitOptions};
use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Train the tiny Qwen3 + Engram for many steps and record resident memory")]
struct Args {
    /// Optimizer steps.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Steps before the baseline RSS is taken.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Sample RSS every this many steps.
    #[arg(long, default_value_t = 50)]
    every: usize,
    /// Checkpoint every this many steps (0: never), last 2 kept, into a temporary folder.
    #[arg(long, default_value_t = 250)]
    save_every: usize,
    /// Where to write the JSON (also printed).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Resident set size in KiB, from /proc/self/status.
fn rss_kib() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("/proc/self/status: {e} (the soak needs Linux)"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "/proc/self/status has no VmRSS line".to_string())
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn run(args: Args) -> Result<serde_json::Value, String> {
    let e = |e: EngramError| e.to_string();
    let device = Device::default().autodiff();
    let dir = fixture("qwen3/tied");
    let tok = Qwen3Tokenizer::from_dir(&dir).map_err(e)?;
    let samples: Vec<Sample> = (0..64)
        .map(|i| Sample {
            instruction: format!("Tools: get_weather, get_time. Row {i}."),
            input: format!("Weather in C{}?", i % 7),
            output: format!(
                "<functioncall> {{\"name\": \"get_weather\", \"city\": \"C{}\"}}",
                i % 7
            ),
        })
        .collect();
    let data = build(
        &samples,
        &tok,
        &DataConfig {
            max_len: 64,
            ..DataConfig::default()
        },
    )
    .map_err(e)?;
    let base = load_qwen3(&dir, &device, DType::F32).map_err(e)?;
    let vocab = Arc::new(CompressedVocab::from_tokenizer(&tok.inner).map_err(e)?);
    let cfg = EngramConfig {
        engram_vocab_size: vec![4001, 2003],
        n_embed_per_ngram: 32,
        n_head_per_ngram: 2,
        layer_ids: vec![0, 2],
        pad_id: tok.pad_id as i64,
        ..EngramConfig::default()
    };
    let model = Qwen3Engram::new(base, &cfg, vocab, InitOptions::default(), &device)
        .map_err(e)?
        .freeze_backbone();
    let run_dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
    let ck = CheckpointConfig {
        dir: run_dir.path().to_path_buf(),
        every: args.save_every,
        keep_last: 2,
        resume: false,
    };
    let tcfg = TrainConfig {
        lr: 1e-3,
        // the schedule spans the run: warm-up, then cosine decay to the last step
        epochs: args.steps.div_ceil(data.train.len().div_ceil(8)).max(1),
        stop_after: Some(args.steps),
        micro_batch: 4,
        grad_accum: 2,
        max_grad_norm: Some(1.0),
        ..TrainConfig::default()
    };
    let start_rss = rss_kib()?;
    let t0 = Instant::now();
    let mut samples_kib: Vec<(usize, u64)> = Vec::new();
    let mut rss_error = None;
    let mut last_loss = f64::NAN;
    train(
        model,
        &data,
        tok.pad_id,
        &tcfg,
        &device,
        Some(&ck),
        |m: &StepMetrics| {
            last_loss = m.loss;
            if m.step.is_multiple_of(args.every.max(1))
                || m.step == args.warmup
                || m.step == args.steps
            {
                match rss_kib() {
                    Ok(r) => samples_kib.push((m.step, r)),
                    Err(e) => rss_error = Some(e),
                }
            }
        },
    )
    .map_err(e)?;
    if let Some(err) = rss_error {
        return Err(err);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let at = |step: usize| {
        samples_kib
            .iter()
            .find(|(s, _)| *s >= step)
            .map(|(_, r)| *r)
    };
    let warm = at(args.warmup).ok_or("no RSS sample after warm-up (steps < warmup?)")?;
    let end = samples_kib.last().map(|(_, r)| *r).unwrap_or(warm);
    let peak = samples_kib.iter().map(|(_, r)| *r).max().unwrap_or(end);
    let growth = (end as f64 - warm as f64) / warm as f64 * 100.0;
    // single samples swing with the allocator; the means of the first and last ten samples
    // after warm-up show a trend, if any
    let after: Vec<u64> = samples_kib
        .iter()
        .filter(|(s, _)| *s >= args.warmup)
        .map(|(_, r)| *r)
        .collect();
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let n = after.len().min(10);
    let (first_mean, last_mean) = (mean(&after[..n]), mean(&after[after.len() - n..]));
    let window_growth = (last_mean - first_mean) / first_mean * 100.0;
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    Ok(json!({
        "steps": args.steps,
        "warmup_steps": args.warmup,
        "rss_start_kib": start_rss,
        "rss_after_warmup_kib": warm,
        "rss_end_kib": end,
        "rss_peak_kib": peak,
        "growth_after_warmup_pct": round2(growth),
        "peak_over_warmup_pct": round2((peak as f64 - warm as f64) / warm as f64 * 100.0),
        "mean_first_10_after_warmup_kib": first_mean.round(),
        "mean_last_10_kib": last_mean.round(),
        "growth_of_means_pct": round2(window_growth),
        "under_10_pct": growth < 10.0 && window_growth < 10.0,
        "final_loss": last_loss,
        "seconds": (seconds * 10.0).round() / 10.0,
        "steps_per_s": ((args.steps as f64 / seconds) * 100.0).round() / 100.0,
        "checkpoint_every": args.save_every,
        "samples": samples_kib.iter().map(|(s, r)| json!([s, r])).collect::<Vec<_>>(),
    }))
}

fn main() -> ExitCode {
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
