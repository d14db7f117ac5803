//! Trains Engram or LoRA on a frozen Qwen3 with a profile's recipe and writes the run folder.
//!
//! ```text
//! cargo run --release --example train -- --method engram|lora --model-dir DIR --data train.jsonl \
//!     --out runs/NAME [--profile published|paper|miniature] [--overwrite | --resume |
//!     --resume-or-start] [--engram-config FILE] [--lora-r R --lora-alpha A --lora-targets q_proj,...]
//!     [trainer flags: --lr --epochs --max-steps --micro-batch ... (--help)] [--device D --dtype T]
//! ```
//! Settings not given come from the profile (`study::Profile`, default `published`), as in
//! `study`. `study::run_train_job` does the work: inputs checked before `--out` is touched,
//! manifest, lock, metrics.jsonl, checkpoints, `engram/` or `adapter/`.

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use burn_engram::host::qwen3::{Qwen3Config, Qwen3Tokenizer};
use burn_engram::study::data::dataset::DataConfig;
use burn_engram::study::runs::OpenMode;
use burn_engram::study::{JobEvent, Method, Profile, RunSpec, TrainJob, run_train_job};
use burn_engram::{EngramConfig, EngramError};
use clap::{ArgGroup, Parser};
use common::flags::{DeviceFlags, ModelDir, RecipeFlags, finish};
use common::{Progress, at_least_one};
use serde_json::{Value, json};

// Burn's CPU backend allocates per op; mimalloc reuses freed memory (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    about = "Train Engram or LoRA on a frozen Qwen3",
    args_override_self = true
)]
#[command(group(ArgGroup::new("mode").args(["overwrite", "resume", "resume_or_start"])))]
struct Args {
    #[arg(long, value_parser = ["engram", "lora"])]
    method: String,
    #[command(flatten)]
    model: ModelDir,
    /// Samples, JSON lines of {instruction, input, output}, {"messages": [...]} or {prompt, completion}.
    #[arg(long)]
    data: PathBuf,
    /// Output folder (the run folder).
    #[arg(long)]
    out: PathBuf,
    /// The recipe every setting not given here comes from (miniature, published, paper).
    #[arg(long, default_value = "published")]
    profile: Profile,
    /// Replace whatever --out holds with this new run (after every input was checked).
    #[arg(long)]
    overwrite: bool,
    /// Continue the run in --out from its latest checkpoint (refused for another run).
    #[arg(long)]
    resume: bool,
    /// As --resume, but start the run when --out holds no checkpoint of it.
    #[arg(long)]
    resume_or_start: bool,
    /// Engram config (JSON, reference field names) instead of the profile's.
    #[arg(long)]
    engram_config: Option<PathBuf>,
    #[command(flatten)]
    recipe: RecipeFlags,
    /// Longest sequence in tokens (may not exceed the model's positions).
    #[arg(long, value_parser = at_least_one)]
    max_len: Option<usize>,
    /// A checkpoint every N optimizer steps (0: none).
    #[arg(long, default_value_t = 500)]
    save_every: usize,
    #[arg(long, default_value_t = 2, value_parser = at_least_one)]
    keep_last: usize,
    /// Off a terminal: a progress line every N steps.
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    log_every: usize,
    #[command(flatten)]
    device: DeviceFlags,
}

fn run(args: Args) -> burn_engram::Result<()> {
    let (device, precision) = args.device.select(true)?;
    let tok = Qwen3Tokenizer::from_dir(&args.model.model_dir)?;
    let defaults = args.profile.defaults(tok.pad_id);
    let config = args.model.model_dir.join("config.json");
    let positions = Qwen3Config::from_file(config)?.max_position_embeddings;
    if let Some(m) = args.max_len.filter(|m| *m > positions) {
        let reason = format!("--max-len {m} exceeds the model's {positions} positions");
        return Err(EngramError::InvalidTraining {
            field: "max_len",
            reason,
        });
    }
    let (train, lora) = args.recipe.overrides();
    let engram = match &args.engram_config {
        Some(p) => Some(json!(EngramConfig::from_json_file(p)?)),
        None => None,
    };
    let method = [Method::Engram, Method::Lora][usize::from(args.method == "lora")];
    let spec = RunSpec {
        engram,
        lora: Some(Value::Object(lora)),
        train: Some(Value::Object(train)),
        ..RunSpec::new("train", method)
    };
    let job = TrainJob {
        model_dir: args.model.model_dir.clone(),
        data: args.data.clone(),
        out: args.out.clone(),
        mode: match (args.overwrite, args.resume, args.resume_or_start) {
            (true, ..) => OpenMode::Overwrite,
            (_, true, _) => OpenMode::Resume,
            (.., true) => OpenMode::ResumeOrStart,
            _ => OpenMode::Fresh,
        },
        run: spec.resolve(&defaults)?,
        data_cfg: DataConfig {
            max_len: args.max_len.unwrap_or(defaults.data.max_len),
            ..defaults.data
        },
        precision,
        save_every: args.save_every,
        keep_last: args.keep_last,
    };
    let progress = Progress::new(args.log_every);
    let done = run_train_job(&job, &device, &mut |e| match e {
        JobEvent::Note(line) => progress.println(line),
        JobEvent::Step(m) => progress.step(m),
    })?;
    progress.finish();
    let last = done.last.as_ref();
    eprintln!(
        "done: {} steps this process (last step {}), final loss {}, eval loss {}; wrote {}, {}, {}",
        done.steps,
        last.map_or(0, |m| m.step),
        last.map_or("-".into(), |m| format!("{:.4}", m.loss)),
        done.eval_loss.map_or("-".into(), |e| format!("{e:.4}")),
        done.saved.display(),
        done.metrics.display(),
        args.out.join("run_manifest.json").display()
    );
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
