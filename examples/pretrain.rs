//! Pretrains the embedded base model of the study from the committed corpus, reproducibly.
//!
//! ```text
//! cargo run --release --example pretrain                      # writes src/data/base/model/
//! cargo run --release --example pretrain -- --out /tmp/base --epochs 10 --device wgpu
//! ```
//! Steps: train a byte-level BPE tokenizer on the corpus and on generated function-calling
//! conversations (so both tokenize compactly), build a small Qwen3 (`study::base_config`) with
//! a seeded initialization, train every parameter on the corpus documents (optionally also on
//! raw glaive-style conversations, `--conversations N`), score the fact
//! probe, and write a Hugging Face folder (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `tokenizer_config.json`) plus `pretrain_report.json`.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::module::Module;
use burn_engram::data::dataset::StudyData;
use burn_engram::data::glaive::prepare;
use burn_engram::data::synth_glaive::{generate, generate_jsonl};
use burn_engram::device::select_device;
use burn_engram::eval::truthfulqa::evaluate_with_primer;
use burn_engram::models::qwen3::{Qwen3ForCausalLM, Qwen3Tokenizer, chatml, save_qwen3};
use burn_engram::study::{
    PROBE_PRIMER, base_config, corpus_documents, probe_questions, train_tokenizer,
};
use burn_engram::train::{StepMetrics, TrainConfig, train};
use burn_engram::{EngramError, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS, saving the page faults of each new
// buffer (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Pretrain the study's embedded base model on the committed corpus")]
struct Args {
    /// Output folder (a Hugging Face model folder).
    #[arg(long, default_value = "src/data/base/model")]
    out: PathBuf,
    /// Tokenizer vocabulary size (special tokens included).
    #[arg(long, default_value_t = 2048)]
    vocab_size: usize,
    /// Raw glaive-style conversations (seed 1) added to the corpus, so the base has seen JSON
    /// and function names (0 for the shipped model; 100 makes pretraining about 3x longer).
    #[arg(long, default_value_t = 0)]
    conversations: usize,
    /// Passes over the corpus.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 4e-3)]
    lr: f64,
    /// Documents per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Seed of the initialization and the data order.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
}

fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> EngramError + '_ {
    move |e| EngramError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn run(args: Args) -> Result<()> {
    let device = select_device(&args.device)?.autodiff();
    std::fs::create_dir_all(&args.out).map_err(io(&args.out))?;

    // 1. Tokenizer: corpus + function-calling conversations in the study's ChatML format.
    let docs = corpus_documents();
    let (samples, _) = prepare(&generate_jsonl(400, 1));
    let chats: Vec<String> = samples
        .iter()
        .map(|s| chatml(&s.instruction, &s.input, &s.output))
        .collect();
    let texts = docs.iter().copied().chain(chats.iter().map(String::as_str));
    let tokenizer = train_tokenizer(texts, args.vocab_size)?;
    let tok_path = args.out.join("tokenizer.json");
    tokenizer
        .save(&tok_path, false)
        .map_err(|e| EngramError::Tokenizer(format!("{}: {e}", tok_path.display())))?;
    let tok_cfg = serde_json::json!({
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "model_max_length": 1024, "tokenizer_class": "Qwen2Tokenizer"
    });
    let cfg_path = args.out.join("tokenizer_config.json");
    std::fs::write(
        &cfg_path,
        serde_json::to_string_pretty(&tok_cfg).unwrap_or_default(),
    )
    .map_err(io(&cfg_path))?;
    let tok = Qwen3Tokenizer::from_dir(&args.out)?;

    // 2. Model and data.
    let config = base_config(tokenizer.get_vocab_size(true));
    device.seed(args.seed);
    let model = Qwen3ForCausalLM::new(&config, &device);
    // The corpus, plus raw glaive-style conversations (not in the study's ChatML format) so
    // the base has seen JSON and function names, as a real pretrained model has.
    let conversations: Vec<String> = generate(args.conversations, 1)
        .iter()
        .map(|r| format!("{}\n\n{}", r.system, r.chat.trim()))
        .collect();
    let seqs = docs
        .iter()
        .copied()
        .chain(conversations.iter().map(String::as_str))
        .map(|d| {
            tok.encode(d).map(|mut ids| {
                ids.truncate(256);
                ids
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let n_tokens: usize = seqs.iter().map(Vec::len).sum();
    eprintln!(
        "{} documents, {n_tokens} tokens, vocabulary {}, {} parameters",
        seqs.len(),
        config.vocab_size,
        model.num_params()
    );
    let data = StudyData {
        eval: seqs.iter().take(32).cloned().collect(),
        train: seqs,
    };
    let cfg = TrainConfig {
        lr: args.lr,
        epochs: args.epochs,
        micro_batch: args.batch,
        warmup_ratio: 0.05,
        weight_decay: 0.01,
        max_grad_norm: Some(1.0),
        eval_every: 0,
        seed: args.seed,
        ..TrainConfig::default()
    };

    // 3. Train every parameter.
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta}]")
            .expect("static template"),
    );
    let (model, metrics) = train(
        model,
        &data,
        tok.pad_id,
        &cfg,
        &device,
        None,
        |m: &StepMetrics| {
            bar.set_length(m.total_steps as u64);
            bar.set_position(m.step as u64);
            bar.set_message(format!("loss {:.4} {:.0} tok/s", m.loss, m.tokens_per_s));
        },
    )?;
    bar.finish();

    // 4. Probe and save.
    let model = model.valid();
    let questions = probe_questions()?;
    let probe = evaluate_with_primer(&model, &tok, &questions, PROBE_PRIMER, |_| {})?;
    save_qwen3(&model, &args.out)?;
    let last = metrics.last();
    let report = serde_json::json!({
        "seed": args.seed, "epochs": args.epochs, "conversations": args.conversations, "lr": args.lr, "batch": args.batch,
        "vocab_size": config.vocab_size, "parameters": model.num_params(),
        "steps": last.map(|m| m.step), "final_train_loss": last.map(|m| m.loss),
        "final_eval_loss": last.and_then(|m| m.eval_loss),
        "seconds": last.map(|m| m.elapsed_s),
        "probe_mc1": probe.mc1, "probe_mc2": probe.mc2, "probe_questions": probe.n_questions,
    });
    let report_path = args.out.join("pretrain_report.json");
    std::fs::write(
        &report_path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
    .map_err(io(&report_path))?;
    println!(
        "probe: MC1 {:.4}  MC2 {:.4}  ({} questions; chance MC1 0.25)",
        probe.mc1, probe.mc2, probe.n_questions
    );
    println!("wrote {}", args.out.display());
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
