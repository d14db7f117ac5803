//! Trains Engram or LoRA on a frozen Qwen3 with the study's recipe and writes the result.
//!
//! ```text
//! cargo run --release --example train -- --method engram|lora --model-dir DIR --data train.jsonl \
//!     --out runs/NAME [--engram-config FILE] [--lora-r 16 --lora-alpha 16 --lora-targets q_proj,...] \
//!     [--lr 2e-5 --epochs 7 --micro-batch 4 --grad-accum 1 --warmup-ratio 0.03 --eval-every 0] \
//!     [--skip-non-finite] [--table-update dense|sparse] [--device cpu|wgpu|cuda]
//!     [--dtype auto|f32|bf16]
//! ```
//! Writes `OUT/metrics.jsonl` (one line per step), `OUT/train_config.json`, checkpoints
//! `OUT/checkpoint-{step}/` every `--save-every` steps (`--resume` continues from the latest),
//! and the trained parameters: `OUT/engram/` (Engram folder) or `OUT/adapter/` (PEFT adapter).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use burn::module::Module;
use burn_engram::data::dataset::{DataConfig, build, load_samples};
use burn_engram::device::select_device;
use burn_engram::lora::{LoraConfig, apply_lora, count_lora_params, save_adapter};
use burn_engram::models::qwen3::{Qwen3Engram, Qwen3Tokenizer, load_qwen3};
use burn_engram::precision::Precision;
use burn_engram::train::{
    CheckpointConfig, OnNonFinite, StepMetrics, TableUpdate, TrainConfig, train,
};
use burn_engram::{CompressedVocab, EngramConfig, InitOptions};
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS, saving the page faults of each new
// buffer (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Method {
    Engram,
    Lora,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TableUpdateArg {
    Dense,
    Sparse,
}

#[derive(Parser, Debug)]
#[command(about = "Train Engram or LoRA on a frozen Qwen3")]
struct Args {
    /// engram or lora.
    #[arg(long, value_enum)]
    method: Method,
    /// Hugging Face Qwen3 folder.
    #[arg(long)]
    model_dir: PathBuf,
    /// Prepared samples (JSON lines of {instruction, input, output}).
    #[arg(long)]
    data: PathBuf,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Engram config (JSON, reference field names); default: TinyEngram's headline run.
    #[arg(long)]
    engram_config: Option<PathBuf>,
    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    lora_r: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 16.0)]
    lora_alpha: f64,
    /// LoRA target projections, comma-separated.
    #[arg(
        long,
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    lora_targets: String,
    /// Peak learning rate (default: 2e-5 for Engram, 1e-5 for LoRA).
    #[arg(long)]
    lr: Option<f64>,
    /// Epochs (default: 7 for Engram, 5 for LoRA).
    #[arg(long)]
    epochs: Option<usize>,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    max_steps: Option<usize>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 4)]
    micro_batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// Warm-up fraction of the steps.
    #[arg(long, default_value_t = 0.03)]
    warmup_ratio: f64,
    /// Learning-rate multiplier of the Engram tables (the paper: 5).
    #[arg(long, default_value_t = 1.0)]
    table_lr_mult: f64,
    /// Weight decay of the Engram tables (the paper: 0; default: --weight-decay's 0.005).
    #[arg(long)]
    table_weight_decay: Option<f32>,
    /// How the Engram tables train: dense AdamW (the study) or sparse lazy AdamW on the rows
    /// each step reads (cost independent of the table size; needs --save-every 0).
    #[arg(long, value_enum, default_value = "dense")]
    table_update: TableUpdateArg,
    /// Clip the global gradient norm (the study: no clipping).
    #[arg(long)]
    max_grad_norm: Option<f64>,
    /// Eval loss every N steps (0: at the end).
    #[arg(long, default_value_t = 0)]
    eval_every: usize,
    /// Longest sequence in tokens.
    #[arg(long, default_value_t = 2048)]
    max_len: usize,
    /// Write a checkpoint every N optimizer steps (0: none).
    #[arg(long, default_value_t = 500)]
    save_every: usize,
    /// Keep the last K checkpoints.
    #[arg(long, default_value_t = 2)]
    keep_last: usize,
    /// Continue from the latest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Skip an optimizer step whose loss or gradients are NaN or infinite (default: stop,
    /// naming the step and the parameter; the latest checkpoint holds the last good state).
    #[arg(long)]
    skip_non_finite: bool,
    /// cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Backbone precision: auto (bf16 on a GPU that computes in it, f32 on the CPU), f32 or
    /// bf16. Trained parameters stay f32 either way.
    #[arg(long, default_value = "auto")]
    dtype: String,
}

fn run(args: Args) -> burn_engram::Result<()> {
    let device = select_device(&args.device)?.autodiff();
    let precision = Precision::select(&args.dtype, &device)?;
    eprintln!(
        "backbone in {}, trained parameters in f32",
        precision.name()
    );
    let tok = Qwen3Tokenizer::from_dir(&args.model_dir)?;
    let samples = load_samples(&args.data)?;
    let data = build(
        &samples,
        &tok,
        &DataConfig {
            max_len: args.max_len,
            ..DataConfig::default()
        },
    )?;
    eprintln!(
        "{} training / {} eval sequences",
        data.train.len(),
        data.eval.len()
    );
    std::fs::create_dir_all(&args.out).map_err(|e| burn_engram::EngramError::Io {
        path: args.out.clone(),
        source: e,
    })?;
    let (lr, epochs) = match args.method {
        Method::Engram => (2e-5, 7),
        Method::Lora => (1e-5, 5),
    };
    let cfg = TrainConfig {
        lr: args.lr.unwrap_or(lr),
        epochs: args.epochs.unwrap_or(epochs),
        max_steps: args.max_steps,
        micro_batch: args.micro_batch,
        grad_accum: args.grad_accum,
        warmup_ratio: args.warmup_ratio,
        eval_every: args.eval_every,
        max_grad_norm: args.max_grad_norm,
        table_lr_mult: args.table_lr_mult,
        table_weight_decay: args.table_weight_decay,
        table_update: match args.table_update {
            TableUpdateArg::Dense => TableUpdate::Dense,
            TableUpdateArg::Sparse => TableUpdate::Sparse,
        },
        on_non_finite: if args.skip_non_finite {
            OnNonFinite::SkipStep
        } else {
            OnNonFinite::Stop
        },
        ..TrainConfig::default()
    };
    let cfg_path = args.out.join("train_config.json");
    std::fs::write(
        &cfg_path,
        serde_json::to_string_pretty(&cfg).unwrap_or_default(),
    )
    .map_err(|e| burn_engram::EngramError::Io {
        path: cfg_path,
        source: e,
    })?;

    let ckpt = CheckpointConfig {
        dir: args.out.clone(),
        every: args.save_every,
        keep_last: args.keep_last,
        resume: args.resume,
    };
    let metrics_path = args.out.join("metrics.jsonl");
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .append(args.resume)
        .write(true)
        .truncate(!args.resume)
        .open(&metrics_path)
        .map_err(|e| burn_engram::EngramError::Io {
            path: metrics_path.clone(),
            source: e,
        })?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta}]")
            .expect("static template"),
    );
    let mut on_step = |m: &StepMetrics| {
        bar.set_length(m.total_steps as u64);
        bar.set_position(m.step as u64);
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.0} tok/s",
            m.loss, m.lr, m.tokens_per_s
        ));
        if let Some(why) = &m.skipped {
            bar.println(format!("step {}: skipped ({why})", m.step));
        }
        if let Some(e) = m.eval_loss {
            bar.println(format!("step {}: eval loss {e:.4}", m.step));
        }
        let _ = writeln!(
            metrics_file,
            "{}",
            serde_json::to_string(m).unwrap_or_default()
        );
    };

    let base = load_qwen3(&args.model_dir, &device, precision.dtype())?.no_grad();
    match args.method {
        Method::Engram => {
            let ecfg = match &args.engram_config {
                Some(p) => EngramConfig::from_json_file(p)?,
                None => EngramConfig {
                    pad_id: tok.pad_id as i64,
                    ..EngramConfig::tinyengram_headline()
                },
            };
            let vocab = Arc::new(CompressedVocab::from_tokenizer(&tok.inner)?);
            let model = Qwen3Engram::new(base, &ecfg, vocab, InitOptions::default(), &device)?
                .freeze_backbone();
            eprintln!(
                "method engram, trainable params: {}",
                model.engram.num_params()
            );
            let (model, _) = train(
                model,
                &data,
                tok.pad_id,
                &cfg,
                &device,
                Some(&ckpt),
                &mut on_step,
            )?;
            model.engram.save_pretrained(args.out.join("engram"))?;
        }
        Method::Lora => {
            let lcfg = LoraConfig {
                r: args.lora_r,
                lora_alpha: args.lora_alpha,
                target_modules: args
                    .lora_targets
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .collect(),
                base_model_name_or_path: Some(args.model_dir.display().to_string()),
                ..LoraConfig::default()
            };
            let model = apply_lora(base, &lcfg)?;
            eprintln!(
                "method lora, trainable params: {} (closed form {})",
                count_lora_params(&model),
                lcfg.trainable_params(model.config())
            );
            let (model, _) = train(
                model,
                &data,
                tok.pad_id,
                &cfg,
                &device,
                Some(&ckpt),
                &mut on_step,
            )?;
            save_adapter(&model, &lcfg, args.out.join("adapter"))?;
        }
    }
    bar.finish();
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
