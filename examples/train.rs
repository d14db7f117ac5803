//! Trains Engram or LoRA on a frozen Qwen3 with the study's recipe and writes the result.
//!
//! ```text
//! cargo run --release --example train -- --method engram|lora --model-dir DIR --data train.jsonl \
//!     --out runs/NAME [--overwrite | --resume | --resume-or-start] [--engram-config FILE] \
//!     [--lora-r 16 --lora-alpha 16 --lora-targets q_proj,...] [--lr 2e-5 --epochs 7 \
//!     --max-steps N --stop-after N --micro-batch 4 --grad-accum 1 --warmup-ratio 0.03 \
//!     --weight-decay 0.005 --eval-every 0] [--skip-non-finite] [--table-update dense|sparse] \
//!     [--device cpu|wgpu|cuda] [--dtype auto|f32|bf16]
//! ```
//! Every input is read and checked before `--out` is touched. `OUT/run_manifest.json` records
//! what made the run (the model's and data's SHA-256, the resolved settings); a fresh run
//! refuses a non-empty folder unless told `--overwrite`; `--resume` continues only the run
//! the manifest records, naming each setting that differs; `OUT/.lock` keeps a second
//! process out. Writes `OUT/metrics.jsonl` (one line per step), `OUT/train_config.json`,
//! checkpoints `OUT/checkpoint-{step}/` every `--save-every` steps, and the trained
//! parameters: `OUT/engram/` (Engram folder) or `OUT/adapter/` (PEFT adapter). Off a
//! terminal, progress is one plain line every `--log-every` steps.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use burn::module::Module;
use burn_engram::device::select_device;
use burn_engram::host::lora::{LoraConfig, apply_lora, count_lora_params, save_adapter};
use burn_engram::host::qwen3::{Qwen3Engram, Qwen3Tokenizer, load_qwen3};
use burn_engram::precision::Precision;
use burn_engram::study::data::dataset::{
    DataConfig, build, check_run_data, load_samples_with_lines,
};
use burn_engram::study::runs::{InputRecord, OpenMode, Opened, RunFolder, RunManifest};
use burn_engram::study::train::{
    CheckpointConfig, OnNonFinite, StepMetrics, TableUpdate, TrainConfig, latest_checkpoint, train,
};
use burn_engram::{CompressedVocab, EngramConfig, EngramError, InitOptions};
use clap::{ArgGroup, Parser, ValueEnum};
use common::{Progress, at_least_one, fraction, non_negative, positive};

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS (measured in docs/BENCHMARKS.md).
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
#[command(
    about = "Train Engram or LoRA on a frozen Qwen3",
    args_override_self = true
)]
#[command(group(ArgGroup::new("mode").args(["overwrite", "resume", "resume_or_start"])))]
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
    /// Output folder (the run folder).
    #[arg(long)]
    out: PathBuf,
    /// Replace whatever --out holds with this new run (after every input was checked).
    #[arg(long)]
    overwrite: bool,
    /// Continue the run in --out from its latest checkpoint; refused if the folder holds
    /// another run (each differing setting named) or nothing to resume.
    #[arg(long)]
    resume: bool,
    /// As --resume, but start the run when --out is empty or holds it without a checkpoint.
    #[arg(long)]
    resume_or_start: bool,
    /// Engram config (JSON, reference field names); default: TinyEngram's headline run.
    #[arg(long)]
    engram_config: Option<PathBuf>,
    /// LoRA rank.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    lora_r: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 16.0, value_parser = positive)]
    lora_alpha: f64,
    /// LoRA target projections, comma-separated.
    #[arg(
        long,
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    lora_targets: String,
    /// Peak learning rate (default: 2e-5 for Engram, 1e-5 for LoRA).
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// Epochs (default: 7 for Engram, 5 for LoRA); ignored with --max-steps.
    #[arg(long, value_parser = at_least_one)]
    epochs: Option<usize>,
    /// Train for exactly N optimizer steps, the learning-rate schedule spanning them
    /// (Hugging Face's max_steps: overrides --epochs, going over the data as often as needed).
    #[arg(long, value_parser = at_least_one)]
    max_steps: Option<usize>,
    /// Stop after N optimizer steps of the full run, its schedule unchanged (--resume
    /// continues it later).
    #[arg(long, value_parser = at_least_one)]
    stop_after: Option<usize>,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    micro_batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    grad_accum: usize,
    /// Warm-up fraction of the steps.
    #[arg(long, default_value_t = 0.03, value_parser = fraction)]
    warmup_ratio: f64,
    /// AdamW's decoupled weight decay (not on biases).
    #[arg(long, default_value_t = 0.005, value_parser = non_negative)]
    weight_decay: f32,
    /// Learning-rate multiplier of the Engram tables (the paper: 5; 0 freezes them).
    #[arg(long, default_value_t = 1.0, value_parser = common::non_negative_f64)]
    table_lr_mult: f64,
    /// Weight decay of the Engram tables (the paper: 0; default: --weight-decay's value).
    #[arg(long, value_parser = non_negative)]
    table_weight_decay: Option<f32>,
    /// How the Engram tables train: dense AdamW (the study) or sparse lazy AdamW on the rows
    /// each step reads (cost independent of the table size; its state is checkpointed too).
    #[arg(long, value_enum, default_value = "dense")]
    table_update: TableUpdateArg,
    /// Clip the global gradient norm (the study: no clipping).
    #[arg(long, value_parser = positive)]
    max_grad_norm: Option<f64>,
    /// Eval loss every N steps (0: at the end).
    #[arg(long, default_value_t = 0)]
    eval_every: usize,
    /// Longest sequence in tokens (default 2048; may not exceed the model's positions).
    #[arg(long, value_parser = at_least_one)]
    max_len: Option<usize>,
    /// Seed of the data order and of LoRA's initialization.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write a checkpoint every N optimizer steps (0: none).
    #[arg(long, default_value_t = 500)]
    save_every: usize,
    /// Keep the last K checkpoints.
    #[arg(long, default_value_t = 2, value_parser = at_least_one)]
    keep_last: usize,
    /// Off a terminal: a progress line every N steps.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    log_every: usize,
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

/// The settings that decide the run's outcome (what a resumed run must share).
fn recipe(
    cfg: &TrainConfig,
    data: &DataConfig,
    added: serde_json::Value,
    dtype: &str,
) -> serde_json::Value {
    let mut train = serde_json::to_value(cfg).unwrap_or_default();
    if let Some(t) = train.as_object_mut() {
        for free in ["stop_after", "eval_every", "on_non_finite"] {
            t.remove(free); // may change between the processes of one run
        }
    }
    serde_json::json!({"train": train, "data": data, "added": added, "dtype": dtype})
}

fn run(args: Args) -> burn_engram::Result<()> {
    let device = select_device(&args.device)?.autodiff();
    let precision = Precision::select(&args.dtype, &device)?;
    // 1. Every input, read and checked before the output folder is touched.
    let tok = Qwen3Tokenizer::from_dir(&args.model_dir)?;
    let base = load_qwen3(&args.model_dir, &device, precision.dtype())?.no_grad();
    let positions = base.config().max_position_embeddings;
    if let Some(m) = args.max_len.filter(|m| *m > positions) {
        return Err(EngramError::InvalidTraining {
            field: "max_len",
            reason: format!(
                "--max-len {m} exceeds the model's {positions} positions (max_position_embeddings in {}/config.json)",
                args.model_dir.display()
            ),
        });
    }
    let rows = load_samples_with_lines(&args.data)?;
    let (lines, samples): (Vec<usize>, Vec<_>) = rows.into_iter().unzip();
    let dcfg = DataConfig {
        max_len: args.max_len.unwrap_or(2048),
        ..DataConfig::default()
    };
    let data = build(&samples, &tok, &dcfg)?;
    check_run_data(&args.data, &lines, &data, dcfg.max_len, positions)?;
    let (lr, epochs) = match args.method {
        Method::Engram => (2e-5, 7),
        Method::Lora => (1e-5, 5),
    };
    let cfg = TrainConfig {
        lr: args.lr.unwrap_or(lr),
        epochs: args.epochs.unwrap_or(epochs),
        max_steps: args.max_steps,
        stop_after: args.stop_after,
        micro_batch: args.micro_batch,
        grad_accum: args.grad_accum,
        warmup_ratio: args.warmup_ratio,
        weight_decay: args.weight_decay,
        eval_every: args.eval_every,
        max_grad_norm: args.max_grad_norm,
        table_lr_mult: args.table_lr_mult,
        table_weight_decay: args.table_weight_decay,
        table_update: match args.table_update {
            TableUpdateArg::Dense => TableUpdate::Dense,
            TableUpdateArg::Sparse => TableUpdate::Sparse,
        },
        seed: args.seed,
        on_non_finite: if args.skip_non_finite {
            OnNonFinite::SkipStep
        } else {
            OnNonFinite::Stop
        },
        ..TrainConfig::default()
    };
    cfg.validate()?;
    let ecfg = match (&args.method, &args.engram_config) {
        (Method::Engram, Some(p)) => Some(EngramConfig::from_json_file(p)?),
        (Method::Engram, None) => Some(EngramConfig {
            pad_id: tok.pad_id as i64,
            ..EngramConfig::tinyengram_headline()
        }),
        (Method::Lora, _) => None,
    };
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
    let added = match &ecfg {
        Some(e) => {
            e.validate(Some(tok.inner.get_vocab_size(true)))?;
            serde_json::json!({"engram": e, "init": InitOptions::default()})
        }
        None => {
            lcfg.validate()?;
            let mut l = serde_json::to_value(&lcfg).unwrap_or_default();
            l["base_model_name_or_path"] = serde_json::Value::Null; // a path, not a setting
            serde_json::json!({"lora": l})
        }
    };
    let method = if ecfg.is_some() { "engram" } else { "lora" };
    let manifest = RunManifest::new(
        "train",
        method,
        recipe(&cfg, &dcfg, added, precision.name()),
    )
    .with_input("model", InputRecord::model_folder(&args.model_dir)?)
    .with_input("data", InputRecord::file(&args.data)?);

    // 2. The run folder: locked, and fresh, replaced or continued as told.
    let mode = match (args.overwrite, args.resume, args.resume_or_start) {
        (true, ..) => OpenMode::Overwrite,
        (_, true, _) => OpenMode::Resume,
        (.., true) => OpenMode::ResumeOrStart,
        _ => OpenMode::Fresh,
    };
    let has_checkpoint = |d: &Path| Ok(latest_checkpoint(d)?.is_some());
    let folder = RunFolder::open(&args.out, mode, &manifest, &has_checkpoint)?;
    let out = folder.dir().to_path_buf();
    let resumed = folder.opened() == Opened::Continued;
    if let Some(c) = latest_checkpoint(&out)?.filter(|_| resumed) {
        eprintln!("resuming from {}", c.display());
    }
    let text = serde_json::to_string_pretty(&cfg).unwrap_or_default() + "\n";
    burn_engram::io::write_atomic(&out.join("train_config.json"), text.as_bytes())?;
    let metrics_path = out.join("metrics.jsonl");
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&metrics_path)
        .map_err(|e| EngramError::Io {
            path: metrics_path.clone(),
            source: e,
        })?;
    eprintln!(
        "{} training / {} eval sequences; backbone in {}, trained parameters in f32",
        data.train.len(),
        data.eval.len(),
        precision.name()
    );

    // 3. Train.
    let ckpt = CheckpointConfig {
        dir: out.clone(),
        every: args.save_every,
        keep_last: args.keep_last,
        resume: resumed,
    };
    let progress = Progress::new(args.log_every);
    let mut write_err = None;
    let mut on_step = |m: &StepMetrics| {
        progress.step(m);
        let line = serde_json::to_string(m).unwrap_or_default();
        if let Err(e) = writeln!(metrics_file, "{line}") {
            write_err.get_or_insert(EngramError::Io {
                path: metrics_path.clone(),
                source: e,
            });
        }
    };
    let (saved, metrics) = match ecfg {
        Some(ecfg) => {
            let vocab = Arc::new(CompressedVocab::from_tokenizer(&tok.inner)?);
            let model = Qwen3Engram::new(base, &ecfg, vocab, InitOptions::default(), &device)?
                .freeze_backbone();
            eprintln!(
                "method engram, trainable params: {}",
                model.engram.num_params()
            );
            let (model, metrics) = train(
                model,
                &data,
                tok.pad_id,
                &cfg,
                &device,
                Some(&ckpt),
                &mut on_step,
            )?;
            model.engram.save_pretrained(out.join("engram"))?;
            (out.join("engram"), metrics)
        }
        None => {
            device.seed(cfg.seed);
            let model = apply_lora(base, &lcfg)?;
            eprintln!(
                "method lora, trainable params: {} (closed form {})",
                count_lora_params(&model),
                lcfg.trainable_params(model.config())
            );
            let (model, metrics) = train(
                model,
                &data,
                tok.pad_id,
                &cfg,
                &device,
                Some(&ckpt),
                &mut on_step,
            )?;
            save_adapter(&model, &lcfg, out.join("adapter"))?;
            (out.join("adapter"), metrics)
        }
    };
    progress.finish();
    if let Some(e) = write_err {
        return Err(e);
    }
    let last = metrics.last();
    let eval = metrics.iter().rev().find_map(|m| m.eval_loss);
    eprintln!(
        "done: {} steps this process (last step {}), final loss {}, eval loss {}; wrote {}, {}, {}",
        metrics.len(),
        last.map_or(0, |m| m.step),
        last.map_or("-".into(), |m| format!("{:.4}", m.loss)),
        eval.map_or("-".into(), |e| format!("{e:.4}")),
        saved.display(),
        metrics_path.display(),
        out.join("run_manifest.json").display()
    );
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
