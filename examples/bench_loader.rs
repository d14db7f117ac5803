//! How much of the hashing the trainer's loader hides: two trainers on the miniature Engram
//! run, one whose `StepLoader` hashes ahead on its thread, one hashing inline in the step,
//! stepped alternately (A, B, A, B: drift hits both), plus the hashing alone per step.
//!
//! `cargo run --release --example bench_loader -- [--steps 12] [--out loader.json]`
//! Writes one JSON object naming the machine (CPU model, AVX2/AVX-512, threads).

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use burn_engram::host::qwen3::{Qwen3Engram, load_qwen3};
use burn_engram::study::train::{StepLoader, TrainConfig, TrainableLm, Trainer};
use burn_engram::study::{Method, RunSpec, StudySetup};
use burn_engram::{EngramError, Result};
use clap::Parser;
use common::flags::{DeviceFlags, finish};
use common::{median, spread};
use serde_json::json;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
struct Args {
    /// Measured steps per trainer (after one warm-up step each).
    #[arg(long, default_value_t = 12, value_parser = common::at_least_one)]
    steps: usize,
    /// Where to write the JSON (also printed).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceFlags,
}

fn run(args: Args) -> Result<()> {
    let (device, precision) = args.device.select(true)?;
    let setup = StudySetup {
        rows: 1200,
        ..StudySetup::default()
    };
    let study = setup.assemble(device.clone(), precision, &mut |l| eprintln!("{l}"))?;
    let inputs = &study.inputs;
    let run = RunSpec::new("engram", Method::Engram).resolve(&study.defaults)?; // as the study
    let cfg = TrainConfig {
        max_steps: Some(args.steps + 1),
        eval_every: 0,
        ..run.train.clone()
    };
    let model = || -> Result<Qwen3Engram> {
        let base = load_qwen3(&inputs.model_dir, &device, inputs.dtype)?;
        let vocab = inputs.vocab.clone();
        Ok(Qwen3Engram::new(base, &run.engram, vocab, run.engram_init, &device)?.freeze_backbone())
    };
    let (mut ahead, mut inline) = (
        Trainer::new(model()?, &cfg, inputs.data.train.len(), &device, None)?,
        Trainer::new(model()?, &cfg, inputs.data.train.len(), &device, None)?,
    );
    let hasher = ahead
        .model()
        .engram_layers()
        .map(|l| l.hasher().clone())
        .expect("Engram");
    let (pad, plan) = (inputs.tok.pad_id, ahead.plan());
    let (mut t_ahead, mut t_inline, mut t_hash) = (Vec::new(), Vec::new(), Vec::new());
    std::thread::scope(|s| -> Result<()> {
        let data = &inputs.data;
        let mut la = StepLoader::spawn(s, data, pad, &cfg, Some(hasher.clone()), plan);
        let mut lb = StepLoader::spawn(s, data, pad, &cfg, None, plan);
        for i in 0..=args.steps {
            let t0 = Instant::now();
            let a = ahead.step(la.next().expect("a step")?)?.expect("labels");
            let ta = t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            let prepared = lb.next().expect("a step")?;
            let tb0 = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            for b in &prepared.batches {
                std::hint::black_box(hasher.hash(&b.ids, b.batch, b.seq_len)?);
            }
            let th = t1.elapsed().as_secs_f64();
            let t0 = Instant::now();
            let b = inline.step(prepared)?.expect("labels");
            let tb = tb0 + t0.elapsed().as_secs_f64();
            if a.loss.to_bits() != b.loss.to_bits() {
                let reason = format!("step {i}: loss {} ahead vs {} inline", a.loss, b.loss);
                return Err(EngramError::InvalidTraining {
                    field: "hashing",
                    reason,
                });
            }
            if i > 0 {
                t_ahead.push(ta);
                t_inline.push(tb);
                t_hash.push(th);
            }
        }
        Ok(())
    })?;
    let noise = spread(&t_ahead).max(spread(&t_inline));
    let (a, b, h) = (median(t_ahead), median(t_inline), median(t_hash));
    // (b - a) / h is the hidden share of the hashing only when the difference stands out of
    // the spread; otherwise nothing about the overlap can be claimed from this run
    let hidden = ((b - a).abs() > noise).then(|| (b - a) / h);
    let v = json!({
        "machine": common::machine(), "steps": args.steps, "micro_batch": cfg.micro_batch,
        "grad_accum": cfg.grad_accum, "step_hash_ahead_s": a, "step_inline_s": b,
        "hash_s": h, "hash_share_of_step": h / b,
        "step_spread_s": noise, "step_difference_s": b - a, "hidden_fraction": hidden,
        "same_losses": true,
    });
    common::emit(&v, args.out.as_deref())
}

fn main() -> std::process::ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
