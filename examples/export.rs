//! Writes a trained model as a folder Python tools load as it is: a LoRA adapter merged into
//! the backbone (a plain Hugging Face Qwen3 folder for transformers), or Engram as a full
//! TinyEngram folder (backbone + `model.engram_layers.*` in one `model.safetensors`, with
//! `engram_config.json`).
//!
//! ```text
//! cargo run --release --example export -- --model-dir DIR (--lora DIR | --engram DIR) --out DIR
//! ```
//! The backbone is read in f32 and the folder written in f32; the tokenizer, chat template
//! and generation files of `--model-dir` are copied. `--out` is replaced whole.

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::{DType, Device};
use burn_engram::Result;
use burn_engram::host::AdaptedQwen3;
use burn_engram::host::lora::{merge_lora, save_merged};
use burn_engram::host::qwen3::Qwen3Tokenizer;
use clap::Parser;
use common::flags::{Added, ModelDir, finish};

#[derive(Parser, Debug)]
#[command(about = "Merge a LoRA adapter into Qwen3, or export Engram as a TinyEngram folder")]
#[command(group(clap::ArgGroup::new("what").args(["engram", "lora"]).required(true)))]
struct Args {
    #[command(flatten)]
    model: ModelDir,
    #[command(flatten)]
    added: Added,
    /// The folder to write (replaced whole).
    #[arg(long)]
    out: PathBuf,
}

fn run(args: Args) -> Result<()> {
    let dir = &args.model.model_dir;
    let tok = Qwen3Tokenizer::from_dir(dir)?;
    let (engram, lora) = (args.added.engram.as_deref(), args.added.lora.as_deref());
    let device = Device::default();
    match AdaptedQwen3::load(dir, engram, lora, &tok, &device, DType::F32)? {
        AdaptedQwen3::Lora(model) => save_merged(&merge_lora(model), dir, &args.out)?,
        AdaptedQwen3::Engram(model) => model.save_tinyengram(dir, &args.out)?,
        AdaptedQwen3::Base(_) => unreachable!("clap requires --lora or --engram"),
    }
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
