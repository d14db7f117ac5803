//! Long-run stability soak: trains Engram on the tiny Qwen3 fixture for many steps on the CPU,
//! checkpointing as a real run does, and records the resident memory (VmRSS) along the way.
//!
//! `cargo run --example soak -- [--steps 2000 --warmup 200 --every 50 --save-every 250 --out F]`
//! writes one JSON object: RSS after warm-up and at the end, their growth in percent (target:
//! under 10%), the samples and the speed. Linux only (/proc).

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{DType, Device};
use burn_engram::host::qwen3::{Qwen3Engram, Qwen3Tokenizer, load_qwen3};
use burn_engram::study::data::dataset::{DataConfig, build};
use burn_engram::study::data::glaive::Sample;
use burn_engram::study::train::{CheckpointConfig, StepMetrics, TrainConfig, train};
use burn_engram::{CompressedVocab, EngramConfig, EngramError, InitOptions, Result};
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

/// Resident set size in KiB, from /proc/self/status (Linux only).
fn rss_kib() -> Result<u64> {
    let path = Path::new("/proc/self/status");
    let status = std::fs::read_to_string(path).map_err(|e| EngramError::io(path, e))?;
    let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:"));
    rss.and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| EngramError::io(path, std::io::Error::other("no VmRSS line")))
}

fn run(args: Args) -> Result<()> {
    let device = Device::default().autodiff();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3/tied");
    let tok = Qwen3Tokenizer::from_dir(&dir)?;
    let call = |c| format!("<functioncall> {{\"name\": \"get_weather\", \"city\": \"C{c}\"}}");
    let samples: Vec<Sample> = (0..64)
        .map(|i| Sample {
            instruction: format!("Tools: get_weather, get_time. Row {i}."),
            input: format!("Weather in C{}?", i % 7),
            output: call(i % 7),
        })
        .collect();
    let dcfg = DataConfig {
        max_len: 64,
        ..DataConfig::default()
    };
    let data = build(&samples, &tok, &dcfg)?;
    let base = load_qwen3(&dir, &device, DType::F32)?;
    let vocab = Arc::new(CompressedVocab::from_tokenizer(&tok.inner)?);
    let layers = json!({"engram_vocab_size": [4001, 2003], "n_embed_per_ngram": 32,
        "n_head_per_ngram": 2, "layer_ids": [0, 2], "pad_id": tok.pad_id});
    let cfg: EngramConfig = serde_json::from_value(layers).expect("a valid Engram config");
    let model =
        Qwen3Engram::new(base, &cfg, vocab, InitOptions::default(), &device)?.freeze_backbone();
    let run_dir = tempfile::tempdir().map_err(|e| EngramError::io(std::env::temp_dir(), e))?;
    let (dir, every, keep_last) = (run_dir.path().to_path_buf(), args.save_every, 2);
    let ck = CheckpointConfig {
        dir,
        every,
        keep_last,
        resume: false,
    };
    // the schedule spans the run: warm-up, then cosine decay to the last step
    let epochs = args.steps.div_ceil(data.train.len().div_ceil(8)).max(1);
    let tcfg: TrainConfig = serde_json::from_value(json!({"lr": 1e-3, "epochs": epochs,
        "stop_after": args.steps, "micro_batch": 4, "grad_accum": 2, "max_grad_norm": 1.0}))
    .expect("valid trainer settings");
    let (start_rss, t0) = (rss_kib()?, Instant::now());
    let (mut samples_kib, mut rss_error, mut last_loss) =
        (Vec::<(usize, u64)>::new(), None, f64::NAN);
    let on_step = |m: &StepMetrics| {
        last_loss = m.loss;
        let due = [args.warmup, args.steps].contains(&m.step);
        if due || m.step.is_multiple_of(args.every.max(1)) {
            match rss_kib() {
                Ok(r) => samples_kib.push((m.step, r)),
                Err(e) => rss_error = Some(e),
            }
        }
    };
    train(model, &data, tok.pad_id, &tcfg, &device, Some(&ck), on_step)?;
    rss_error.map_or(Ok(()), Err)?;
    let seconds = t0.elapsed().as_secs_f64();
    // single samples swing with the allocator; the means of the first and last ten samples
    // after warm-up show a trend, if any
    let after: Vec<u64> = samples_kib
        .iter()
        .filter(|(s, _)| *s >= args.warmup)
        .map(|p| p.1)
        .collect();
    let (Some(&warm), Some(&end)) = (after.first(), after.last()) else {
        let reason = "no RSS sample after warm-up (steps < warmup?)".into();
        return Err(EngramError::InvalidTraining {
            field: "warmup",
            reason,
        });
    };
    let peak = samples_kib.iter().map(|p| p.1).max().unwrap_or(end);
    let growth = (end as f64 - warm as f64) / warm as f64 * 100.0;
    let mean = |v: &[u64]| v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
    let n = after.len().min(10);
    let (first_mean, last_mean) = (mean(&after[..n]), mean(&after[after.len() - n..]));
    let window_growth = (last_mean - first_mean) / first_mean * 100.0;
    let pct = |a: f64, b: f64| ((a - b) / b * 10_000.0).round() / 100.0;
    let v = json!({
        "steps": args.steps, "warmup_steps": args.warmup, "rss_start_kib": start_rss,
        "rss_after_warmup_kib": warm, "rss_end_kib": end, "rss_peak_kib": peak,
        "growth_after_warmup_pct": pct(end as f64, warm as f64),
        "peak_over_warmup_pct": pct(peak as f64, warm as f64),
        "mean_first_10_after_warmup_kib": first_mean.round(), "mean_last_10_kib": last_mean.round(),
        "growth_of_means_pct": pct(last_mean, first_mean),
        "under_10_pct": growth < 10.0 && window_growth < 10.0, "final_loss": last_loss,
        "seconds": (seconds * 10.0).round() / 10.0,
        "steps_per_s": ((args.steps as f64 / seconds) * 100.0).round() / 100.0,
        "checkpoint_every": args.save_every,
        "samples": samples_kib.iter().map(|(s, r)| json!([s, r])).collect::<Vec<_>>(),
    });
    println!("{v}");
    match &args.out {
        Some(path) => burn_engram::io::write_atomic(path, format!("{v:#}\n").as_bytes()),
        None => Ok(()),
    }
}

fn main() -> std::process::ExitCode {
    common::flags::finish(run(Args::parse()))
}
