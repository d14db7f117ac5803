//! Text from a Qwen3 model (optionally with Engram or a LoRA adapter): greedy or sampled,
//! defaults from the folder's `generation_config.json`, stopping at any eos id, streaming.
//!
//! ```text
//! cargo run --release --example generate -- --model-dir DIR [--engram DIR | --lora DIR] \
//!     (--prompt "..." [--chat | --chatml] [--system "..."] | --messages chat.json) \
//!     [--chat-kwargs '{"enable_thinking": false}'] [--max-new-tokens 128] \
//!     [--greedy | --temperature T --top-p P --top-k K --seed S] [--json]
//! ```
//! The prompt is encoded as `score` encodes a context (no special tokens added). `--chat`
//! renders it as a user turn with the folder's own chat template (Qwen3's, with its `<think>`
//! handling), and `--messages` a whole conversation, both as transformers'
//! `apply_chat_template(..., add_generation_prompt=True)`; `--chatml` wraps it as the study's
//! fixed ChatML user turn, up to `<|im_start|>assistant\n`. The text streams
//! to stdout, then tokens/s to stderr; with `--json` the last stdout line is
//! `{"token_ids": [...], "text": ..., "tokens_per_s": ..., "stopped_at_eos": ...}`.

#[path = "common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn_engram::Result;
use burn_engram::host::AdaptedQwen3;
use burn_engram::host::qwen3::{
    ChatRequest, ChatTemplate, ChatValue, GenerationConfig, Qwen3Tokenizer, Sampler, generate,
    parse_chat_json, read_chat_json,
};
use clap::Parser;
use common::flags::{Added, DeviceFlags, ModelDir, finish};

// Burn's CPU backend allocates per op; mimalloc reuses freed memory (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Generate text with a Qwen3 model, plain, with Engram or with LoRA")]
struct Args {
    #[command(flatten)]
    model: ModelDir,
    #[command(flatten)]
    added: Added,
    /// The prompt.
    #[arg(
        long,
        required_unless_present = "messages",
        conflicts_with = "messages"
    )]
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
    /// Take the most likely token (overrides generation_config.json's do_sample).
    #[arg(long, conflicts_with_all = ["temperature", "top_p", "top_k"])]
    greedy: bool,
    /// Sampling temperature (sets do_sample).
    #[arg(long, value_parser = common::positive)]
    temperature: Option<f64>,
    /// Nucleus sampling mass in (0, 1] (sets do_sample).
    #[arg(long, value_parser = common::fraction)]
    top_p: Option<f64>,
    /// Sample among the k most likely tokens, 0 for all (sets do_sample).
    #[arg(long)]
    top_k: Option<usize>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON line last (for scripts).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceFlags,
}

fn settings(args: &Args, dir: &std::path::Path, tok: &Qwen3Tokenizer) -> Result<GenerationConfig> {
    let mut cfg = GenerationConfig::from_dir(dir)?;
    if cfg.eos_token_id.is_empty() {
        cfg.eos_token_id = vec![tok.eos_id, tok.im_end_id];
    }
    let sampling = args.temperature.is_some() || args.top_p.is_some() || args.top_k.is_some();
    cfg.do_sample = !args.greedy && (cfg.do_sample || sampling);
    cfg.temperature = args.temperature.unwrap_or(cfg.temperature);
    cfg.top_p = args.top_p.unwrap_or(cfg.top_p);
    cfg.top_k = args.top_k.unwrap_or(cfg.top_k);
    Ok(cfg)
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
        let full = burn_engram::host::qwen3::chatml(system, prompt, "");
        return Ok(full.strip_suffix("<|im_end|>").unwrap_or(&full).to_string());
    }
    if !args.chat && args.messages.is_none() {
        return Ok(prompt.to_string());
    }
    let messages = match &args.messages {
        Some(path) => read_chat_json(path)?,
        None => {
            let mut turns = Vec::new();
            if let Some(system) = &args.system {
                turns.push(serde_json::json!({"role": "system", "content": system}));
            }
            turns.push(serde_json::json!({"role": "user", "content": prompt}));
            ChatValue::from_serialize(&turns)
        }
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
    let cfg = settings(&args, dir, &tok)?;
    let (engram, lora) = (args.added.engram.as_deref(), args.added.lora.as_deref());
    let model = AdaptedQwen3::load(dir, engram, lora, &tok, &device, precision.dtype())?;
    let text = prompt_text(&args, dir)?;
    let prompt = tok.encode(&text)?;
    let max_new = args.max_new_tokens.or(cfg.max_new_tokens).unwrap_or(128);
    eprintln!(
        "method: {}, prompt tokens: {}, {}",
        model.method(),
        prompt.len(),
        if cfg.do_sample {
            format!(
                "sampling (temperature {}, top-k {}, top-p {}, seed {})",
                cfg.temperature, cfg.top_k, cfg.top_p, args.seed
            )
        } else {
            "greedy".into()
        }
    );
    let mut sampler = Sampler::new(cfg.clone(), args.seed)?;
    let (mut shown, mut ids) = (0usize, Vec::new());
    let mut stdout = std::io::stdout();
    let out = generate(
        &model,
        &prompt,
        max_new,
        &mut sampler,
        &cfg.eos_token_id,
        |id| {
            ids.push(id);
            // print what the ids so far decode to beyond what is shown (a character can span
            // tokens: wait until it is whole)
            let text = tok.decode(&ids)?;
            if text.len() > shown && !text.ends_with('\u{fffd}') {
                let _ = write!(stdout, "{}", &text[shown..]);
                let _ = stdout.flush();
                shown = text.len();
            }
            Ok(())
        },
    )?;
    let text = tok.decode(&out.token_ids)?;
    if text.len() > shown {
        print!("{}", &text[shown..]);
    }
    println!();
    let rate = out.tokens_per_s();
    eprintln!(
        "{} new tokens ({}), prefill {:.3} s, {}",
        out.token_ids.len(),
        if out.stopped_at_eos { "eos" } else { "limit" },
        out.prefill_s,
        rate.map_or("too few tokens for a rate".into(), |r| format!(
            "{r:.1} tokens/s"
        ))
    );
    if args.json {
        let v = serde_json::json!({ "token_ids": out.token_ids, "text": text,
            "tokens_per_s": rate, "stopped_at_eos": out.stopped_at_eos,
            "prefill_s": out.prefill_s, "method": model.method() });
        println!("{v}");
    }
    Ok(())
}

fn main() -> ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
