//! Pretrains the embedded base model of the study from the committed corpus, reproducibly.
//!
//! ```text
//! cargo run --release --example pretrain                      # writes runs/base-model/
//! cargo run --release --example pretrain -- --out src/study/data/base/model --overwrite  # the shipped one
//! cargo run --release --example pretrain -- --out /tmp/base --epochs 2 --device wgpu
//! ```
//! `study::pretrain` does the work (tokenizer, model, training, measurements, the folder
//! written whole); an existing `--out` is refused up front unless `--overwrite` is given.

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use burn_engram::study::{PretrainConfig, pretrain};
use burn_engram::{EngramError, Result};
use clap::Parser;
use common::Progress;
use common::flags::{DeviceFlags, finish};

// Burn's CPU backend allocates per op; mimalloc reuses freed memory (docs/BENCHMARKS.md).
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
    #[arg(long, default_value_t = PretrainConfig::default().vocab_size)]
    vocab_size: usize,
    /// Passes over the corpus (the facts packed anew each time).
    #[arg(long, default_value_t = PretrainConfig::default().epochs)]
    epochs: usize,
    /// Longest training document in tokens (longer ones are cut).
    #[arg(long, default_value_t = PretrainConfig::default().max_len)]
    max_len: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = PretrainConfig::default().lr)]
    lr: f64,
    /// Documents per step.
    #[arg(long, default_value_t = PretrainConfig::default().batch)]
    batch: usize,
    /// Seed of the initialization and the data order.
    #[arg(long, default_value_t = PretrainConfig::default().seed)]
    seed: u64,
    #[command(flatten)]
    device: DeviceFlags,
}

fn run(args: Args) -> Result<()> {
    if args.out.exists() && !args.overwrite {
        return Err(EngramError::RunFolder {
            path: args.out.clone(),
            reason: "exists: pass --overwrite to replace it (after the new model is complete), or choose another --out".into(),
        });
    }
    let (device, precision) = args.device.select(true)?;
    if args.device.dtype != "auto" && precision.dtype() != burn::tensor::DType::F32 {
        let reason = "pretraining trains every parameter in f32".to_string();
        return Err(EngramError::Precision {
            name: args.device.dtype.clone(),
            reason,
        });
    }
    let cfg = PretrainConfig {
        vocab_size: args.vocab_size,
        epochs: args.epochs,
        max_len: args.max_len,
        lr: args.lr,
        batch: args.batch,
        seed: args.seed,
    };
    let progress = Progress::new(50);
    let note = &mut |line: String| progress.println(line);
    let r = pretrain(&cfg, &args.out, &device, |m| progress.step(m), note)?;
    progress.finish();
    println!(
        "held-out corpus loss {:.4}; study eval rows {:.4} nats/token (uniform guess ln({}) = {:.4})",
        r.heldout_loss, r.finetune_loss, r.vocab_size, r.uniform
    );
    println!(
        "probe: MC1 {:.4}  MC2 {:.4}  ({} questions; chance MC1 0.25)",
        r.probe_mc1, r.probe_mc2, r.probe_questions
    );
    println!("wrote {}", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
