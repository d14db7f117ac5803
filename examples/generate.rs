//! Text from a Qwen3 model (optionally with Engram or a LoRA adapter): greedy or sampled,
//! defaults from the folder's `generation_config.json`, stopping at any eos id, streaming.
//!
//! ```text
//! cargo run --release --example generate -- --model-dir DIR [--engram DIR | --lora DIR] \
//!     (--prompt "..." [--chat | --chatml] [--system "..."] | --messages chat.json) \
//!     [--chat-kwargs '{"enable_thinking": false}'] [--max-new-tokens 128] \
//!     [--greedy | --temperature T --top-p P --top-k K --seed S] [--json]
//! ```
//! The prompt is encoded as `score` encodes a context (no special tokens added); `--chat` and
//! `--messages` render with the folder's chat template (transformers' `apply_chat_template`,
//! with a generation prompt), `--chatml` with the study's fixed format. `--json` prints
//! `{"token_ids", "text", "tokens_per_s", "stopped_at_eos", ...}` as the last stdout line.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn_engram::Result;
use burn_engram::host::AdaptedQwen3;
use burn_engram::host::qwen3::{
    ChatRequest, ChatTemplate, GenerationConfig, Qwen3Tokenizer, Sampler, TextStreamer,
    chatml_prompt, generate, parse_chat_json, read_chat_json, user_turn,
};
use clap::Parser;
use common::flags::{Added, DeviceFlags, ModelDir, SamplingFlags, finish};

// Burn's CPU backend allocates per op; mimalloc reuses freed memory (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Generate text with a Qwen3 model, plain, with Engram or with LoRA")]
#[command(group(clap::ArgGroup::new("input").args(["prompt", "messages"]).required(true)))]
struct Args {
    #[command(flatten)]
    model: ModelDir,
    #[command(flatten)]
    added: Added,
    /// The prompt.
    #[arg(long)]
    prompt: Option<String>,
    /// A conversation to continue: a JSON file holding a list of `{"role", "content"}`
    /// messages, rendered with the model folder's chat template.
    #[arg(long)]
    messages: Option<PathBuf>,
    /// Render the prompt as a user turn with the model folder's own chat template
    /// (tokenizer_config.json or chat_template.jinja), as transformers' apply_chat_template.
    #[arg(long, conflicts_with = "chatml")]
    chat: bool,
    /// Extra keywords for the chat template, as a JSON object (Qwen3:
    /// '{"enable_thinking": false}').
    #[arg(long)]
    chat_kwargs: Option<String>,
    /// Wrap the prompt as the study's fixed ChatML user turn (the format the study trains on).
    #[arg(long, conflicts_with = "messages")]
    chatml: bool,
    /// The system message of `--chatml` or `--chat`.
    #[arg(long)]
    system: Option<String>,
    /// New tokens at most (default: generation_config.json's, else 128).
    #[arg(long, value_parser = common::at_least_one)]
    max_new_tokens: Option<usize>,
    #[command(flatten)]
    sampling: SamplingFlags,
    /// Print one JSON line last (for scripts).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceFlags,
}

/// The text to continue: the prompt as it is, in the study's ChatML, or rendered with the
/// folder's chat template (with a generation prompt).
fn prompt_text(args: &Args, dir: &Path) -> Result<String> {
    let prompt = args.prompt.as_deref().unwrap_or_default();
    if args.chatml {
        let system = args
            .system
            .as_deref()
            .unwrap_or("You are a helpful assistant.");
        return Ok(chatml_prompt(system, prompt));
    }
    let messages = match &args.messages {
        Some(path) => read_chat_json(path)?,
        None if args.chat => user_turn(args.system.as_deref(), prompt),
        None => return Ok(prompt.to_string()),
    };
    let mut request = ChatRequest::new(messages).with_generation_prompt();
    if let Some(kwargs) = &args.chat_kwargs {
        request = request.with_kwargs(&parse_chat_json(kwargs)?)?;
    }
    ChatTemplate::from_dir(dir)?.render(&request)
}

fn run(args: Args) -> Result<()> {
    let (device, precision) = args.device.select(false)?;
    let dir = &args.model.model_dir;
    let tok = Qwen3Tokenizer::from_dir(dir)?;
    let cfg = args
        .sampling
        .over(GenerationConfig::from_dir(dir)?.with_default_eos(&tok));
    let (engram, lora) = (args.added.engram.as_deref(), args.added.lora.as_deref());
    let model = AdaptedQwen3::load(dir, engram, lora, &tok, &device, precision.dtype())?;
    let prompt = tok.encode(&prompt_text(&args, dir)?)?;
    let max_new = args.max_new_tokens.or(cfg.max_new_tokens).unwrap_or(128);
    let (method, n) = (model.method(), prompt.len());
    let (how, seed) = (cfg.describe(), args.sampling.seed);
    eprintln!("method: {method}, prompt tokens: {n}, {how}, seed {seed}");
    let mut sampler = Sampler::new(cfg.clone(), args.sampling.seed)?;
    let mut stream = TextStreamer::new(&tok);
    let on_token = |id| {
        if let Some(text) = stream.push(id)? {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
        Ok(())
    };
    let out = generate(
        &model,
        &prompt,
        max_new,
        &mut sampler,
        &cfg.eos_token_id,
        on_token,
    )?;
    println!("{}", stream.finish()?);
    let rate = out.tokens_per_s();
    let end = if out.stopped_at_eos { "eos" } else { "limit" };
    let rate_text = rate.map_or("too few tokens for a rate".into(), |r| {
        format!("{r:.1} tokens/s")
    });
    let (len, prefill) = (out.token_ids.len(), out.prefill_s);
    eprintln!("{len} new tokens ({end}), prefill {prefill:.3} s, {rate_text}");
    if args.json {
        let v = serde_json::json!({ "token_ids": out.token_ids,
            "text": tok.decode(&out.token_ids)?, "tokens_per_s": rate,
            "stopped_at_eos": out.stopped_at_eos, "prefill_s": prefill, "method": method });
        println!("{v}");
    }
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
