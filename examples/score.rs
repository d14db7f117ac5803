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

use std::process::ExitCode;

use burn_engram::host::AdaptedQwen3;
use burn_engram::host::qwen3::{Qwen3Tokenizer, score_continuations};
use clap::Parser;
use common::flags::{Added, DeviceFlags, ModelDir, finish};

// Burn's CPU backend allocates per op; mimalloc reuses freed memory (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Sum of log-probs of a continuation under a Qwen3 model")]
struct Args {
    #[command(flatten)]
    model: ModelDir,
    #[command(flatten)]
    added: Added,
    /// The context.
    #[arg(long)]
    context: String,
    /// The continuation (usually starting with a space).
    #[arg(long)]
    continuation: String,
    #[command(flatten)]
    device: DeviceFlags,
}

fn run(args: Args) -> burn_engram::Result<()> {
    let (device, precision) = args.device.select(false)?;
    let dir = &args.model.model_dir;
    let tok = Qwen3Tokenizer::from_dir(dir)?;
    let (engram, lora) = (args.added.engram.as_deref(), args.added.lora.as_deref());
    let model = AdaptedQwen3::load(dir, engram, lora, &tok, &device, precision.dtype())?;
    eprintln!(
        "method: {}, trainable params: {}",
        model.method(),
        model.added_params()
    );
    let score = score_continuations(&model, &tok, &args.context, &[args.continuation.as_str()])?;
    let (logprob, n_tokens) = (score[0].logprob, score[0].n_tokens);
    println!(
        "{}",
        serde_json::json!({ "logprob": logprob, "n_tokens": n_tokens })
    );
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
