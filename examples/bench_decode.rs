//! Per-token cost of decoding and scoring on the embedded model: the base, Engram with its
//! incremental decoding state (KV cache + `EngramState`), and Engram recomputing the whole
//! sequence for every token (the only way before the state existed), measured in interleaved
//! rounds (base, Engram, Engram full, base, ...: drift hits all three).
//!
//! `cargo run --release --example bench_decode -- [--rounds 5] [--new-tokens 48] [--out F]`
//! Writes one JSON object naming the machine (CPU model, AVX2/AVX-512, threads).

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::DType;
use burn_engram::host::qwen3::{
    CausalLm, Qwen3Engram, Qwen3Tokenizer, load_qwen3, score_continuations,
};
use burn_engram::study::{Profile, base_model_dir, probe_questions};
use burn_engram::{EngramError, InitOptions, Result};
use clap::Parser;
use common::flags::{DeviceFlags, finish};
use common::{median, spread};
use serde_json::json;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
struct Args {
    /// Interleaved rounds (the figures are medians over rounds).
    #[arg(long, default_value_t = 5, value_parser = common::at_least_one)]
    rounds: usize,
    /// Tokens decoded after the prompt per round.
    #[arg(long, default_value_t = 48, value_parser = common::at_least_one)]
    new_tokens: usize,
    /// Probe questions scored per round (all their MC1 choices).
    #[arg(long, default_value_t = 3, value_parser = common::at_least_one)]
    questions: usize,
    /// Where to write the JSON (also printed).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    device: DeviceFlags,
}

/// Full recompute: every call runs the whole sequence (no cache).
struct Full<'a>(&'a Qwen3Engram);

impl CausalLm for Full<'_> {
    type Cache = <Qwen3Engram as CausalLm>::Cache;
    fn token_logits(&self, ids: &[u32], _: Option<&mut Self::Cache>) -> Result<burn::Tensor<2>> {
        self.0.token_logits(ids, None)
    }
    fn supports_cache(&self) -> bool {
        false
    }
    fn device(&self) -> burn::tensor::Device {
        CausalLm::device(self.0)
    }
}

/// Seconds per decoded token after a prefill of `prompt`, and the tokens (a fixed
/// continuation, so every model does the same work whatever it would pick).
fn decode_s<M: CausalLm>(m: &M, prompt: &[u32], follow: &[u32]) -> Result<f64> {
    let mut cache = M::Cache::default();
    let cached = m.supports_cache();
    let mut ids = prompt.to_vec();
    let _ = m.token_logits(prompt, cached.then_some(&mut cache))?;
    let t0 = Instant::now();
    for &next in follow {
        ids.push(next);
        let logits = if cached {
            m.token_logits(&[next], Some(&mut cache))?
        } else {
            m.token_logits(&ids, None)?
        };
        std::hint::black_box(logits.into_data()); // waits for the device
    }
    Ok(t0.elapsed().as_secs_f64() / follow.len() as f64)
}

fn run(args: Args) -> Result<()> {
    let (device, _) = args.device.select(true)?;
    let dir = base_model_dir();
    let tok = Qwen3Tokenizer::from_dir(&dir)?;
    let base = load_qwen3(&dir, &device, DType::F32)?;
    let cfg = Profile::Miniature.defaults(tok.pad_id).engram; // the study's Engram
    let vocab = std::sync::Arc::new(burn_engram::CompressedVocab::from_tokenizer(&tok.inner)?);
    let engram = Qwen3Engram::new(base.clone(), &cfg, vocab, InitOptions::default(), &device)?;
    let questions = probe_questions()?;
    let questions = &questions[..args.questions.min(questions.len())];
    let prompt = tok.encode(&format!("Q: {}\nA:", questions[0].question))?;
    let follow: Vec<u32> = (0..args.new_tokens)
        .map(|i| tok.encode(" the answer is").map(|v| v[i % v.len()]))
        .collect::<Result<_>>()?;
    let score = |m: &dyn Fn(&str, &[&str]) -> Result<()>| -> Result<f64> {
        let t0 = Instant::now();
        for q in questions {
            let choices: Vec<&str> = q.mc1_targets.choices.iter().map(|c| c.as_str()).collect();
            m(&format!("Q: {}\nA:", q.question), &choices)?;
        }
        Ok(t0.elapsed().as_secs_f64() / questions.len() as f64)
    };
    let full = Full(&engram);
    let sb = |c: &str, ch: &[&str]| score_continuations(&base, &tok, c, ch).map(drop);
    let se = |c: &str, ch: &[&str]| score_continuations(&engram, &tok, c, ch).map(drop);
    let sf = |c: &str, ch: &[&str]| score_continuations(&full, &tok, c, ch).map(drop);
    let mut t = [(); 6].map(|_| Vec::new());
    decode_s(&engram, &prompt, &follow[..2])?; // warm-up
    for round in 0..args.rounds {
        t[0].push(decode_s(&base, &prompt, &follow)?);
        t[1].push(decode_s(&engram, &prompt, &follow)?);
        t[2].push(decode_s(&full, &prompt, &follow)?);
        t[3].push(score(&sb)?);
        t[4].push(score(&se)?);
        t[5].push(score(&sf)?);
        eprintln!("round {}/{}", round + 1, args.rounds);
    }
    let [db, de, df, sbm, sem, sfm] = t.clone().map(median);
    if ![db, de, df, sbm, sem, sfm]
        .iter()
        .all(|x| x.is_finite() && *x > 0.0)
    {
        return Err(EngramError::BadBatch("a timing is not positive".into()));
    }
    let v = json!({
        "machine": common::machine(), "rounds": args.rounds, "prompt_tokens": prompt.len(),
        "new_tokens": args.new_tokens, "questions": questions.len(),
        "decode_s_per_token": { "base": db, "engram": de, "engram_full_recompute": df },
        "decode_spread_s": { "base": spread(&t[0]), "engram": spread(&t[1]),
            "engram_full_recompute": spread(&t[2]) },
        "score_s_per_question": { "base": sbm, "engram": sem, "engram_full_recompute": sfm },
        "engram_decode_vs_base": de / db, "engram_decode_speedup_vs_full": df / de,
        "engram_score_vs_base": sem / sbm, "engram_score_speedup_vs_full": sfm / sem,
    });
    common::emit(&v, args.out.as_deref())
}

fn main() -> std::process::ExitCode {
    common::init_logging();
    finish(run(Args::parse()))
}
