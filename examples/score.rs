//! Log-probability of a continuation under a Qwen3 model (optionally with Engram or a LoRA
//! adapter), the lm-evaluation-harness way.
//!
//! ```text
//! cargo run --release --example score -- --model-dir DIR [--engram DIR | --lora DIR] \
//!     --context "..." --continuation "..." [--device cpu|wgpu|cuda] [--dtype auto|f32|bf16]
//! ```
//! Prints `{"logprob": <sum of log-probs of the continuation tokens>, "n_tokens": <count>}`.

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use burn_engram::device::select_device;
use burn_engram::host::AdaptedQwen3;
use burn_engram::host::qwen3::{Qwen3Tokenizer, score_continuations};
use burn_engram::precision::Precision;
use clap::{ArgGroup, Parser};

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS, saving the page faults of each new
// buffer (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Sum of log-probs of a continuation under a Qwen3 model")]
#[command(group(ArgGroup::new("adapter").args(["engram", "lora"])))]
struct Args {
    /// Hugging Face Qwen3 folder (config.json, *.safetensors, tokenizer.json).
    #[arg(long)]
    model_dir: PathBuf,
    /// Engram folder written by `EngramLayers::save_pretrained`, or a TinyEngram model folder
    /// whose weights hold `model.engram_layers.*` (with engram_config.json).
    #[arg(long)]
    engram: Option<PathBuf>,
    /// PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors).
    #[arg(long)]
    lora: Option<PathBuf>,
    /// The context.
    #[arg(long)]
    context: String,
    /// The continuation (usually starting with a space).
    #[arg(long)]
    continuation: String,
    /// cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Backbone precision: auto (bf16 on a GPU that computes in it, f32 on the CPU), f32 or
    /// bf16 (Engram and LoRA weights stay f32).
    #[arg(long, default_value = "auto")]
    dtype: String,
}

fn run(args: Args) -> burn_engram::Result<String> {
    let device = select_device(&args.device)?;
    let precision = Precision::select(&args.dtype, &device)?;
    let tok = Qwen3Tokenizer::from_dir(&args.model_dir)?;
    let model = AdaptedQwen3::load(
        &args.model_dir,
        args.engram.as_deref(),
        args.lora.as_deref(),
        &tok,
        &device,
        precision.dtype(),
    )?;
    eprintln!(
        "method: {}, trainable params: {}",
        model.method(),
        model.added_params()
    );
    let score = score_continuations(&model, &tok, &args.context, &[args.continuation.as_str()])?;
    Ok(
        serde_json::json!({ "logprob": score[0].logprob, "n_tokens": score[0].n_tokens })
            .to_string(),
    )
}

fn main() -> ExitCode {
    common::init_logging();
    match run(Args::parse()) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
