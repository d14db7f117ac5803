//! The embedded base model: a small Qwen3 pretrained on the committed fact corpus, its
//! tokenizer, and the retention probe that measures what it knows.
//!
//! Everything here is committed to the repository, so the study runs with no downloads:
//! `src/data/base/corpus.txt` (the pretraining text, written by
//! `scripts/base_model/gen_corpus.py`), `src/data/base/probe.jsonl` (multiple-choice questions
//! about the same facts, in TruthfulQA's format) and `src/data/base/model/` (a Hugging Face
//! folder: `config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`),
//! written by `cargo run --release --example pretrain`.

use std::path::{Path, PathBuf};

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{EngramError, Result};
use crate::eval::truthfulqa::{McQuestion, parse_questions};
use crate::models::qwen3::Qwen3Config;

/// The pretraining text: documents separated by two blank lines, entries by one.
pub const CORPUS: &str = include_str!("../data/base/corpus.txt");
/// The retention probe (TruthfulQA's JSON-lines format), one question per fact.
pub const PROBE: &str = include_str!("../data/base/probe.jsonl");
/// The primer of the probe's scoring context: two question/answer pairs from the corpus,
/// as TruthfulQA's primer is six.
pub const PROBE_PRIMER: &str = "Q: What colour is grass?\nA: Grass is green.\n\nQ: What is two plus three?\nA: Two plus three is five.";
/// Special tokens of the base tokenizer, as Qwen's: pad/`<|endoftext|>`, `<|im_start|>`,
/// `<|im_end|>` (eos), with ids 0, 1, 2.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// The folder of the committed base model.
pub fn base_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/data/base/model")
}

/// The pretraining documents of [`CORPUS`].
pub fn corpus_documents() -> Vec<&'static str> {
    CORPUS
        .split("\n\n\n")
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect()
}

/// The questions of [`PROBE`].
pub fn probe_questions() -> Result<Vec<McQuestion>> {
    parse_questions(PROBE, Path::new("src/data/base/probe.jsonl"))
}

/// Trains a byte-level BPE tokenizer (the kind Qwen uses) on `texts` with `vocab_size`
/// entries, [`SPECIAL_TOKENS`] first. Deterministic: the same texts give the same tokenizer.
///
/// ```
/// let t = burn_engram::study::train_tokenizer(["the cat sat on the mat"; 8], 300).unwrap();
/// assert_eq!(t.token_to_id("<|im_end|>"), Some(2));
/// let ids = t.encode("the cat<|im_end|>", false).unwrap().get_ids().to_vec();
/// assert_eq!(*ids.last().unwrap(), 2);
/// assert_eq!(t.decode(&ids, false).unwrap(), "the cat<|im_end|>");
/// ```
pub fn train_tokenizer<'a>(
    texts: impl IntoIterator<Item = &'a str>,
    vocab_size: usize,
) -> Result<Tokenizer> {
    let err = |e: tokenizers::Error| EngramError::Tokenizer(format!("training the tokenizer: {e}"));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(specials.clone())
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    let texts: Vec<&str> = texts.into_iter().collect();
    tok.train(&mut trainer, texts.into_iter()).map_err(err)?;
    tok.add_special_tokens(&specials);
    Ok(tok)
}

/// The base model's architecture for a tokenizer of `vocab_size` entries: Qwen3 with 4
/// layers, width 128, 4 query / 2 key-value heads of 32, MLP 384, tied embeddings.
pub fn base_config(vocab_size: usize) -> Qwen3Config {
    Qwen3Config {
        model_type: "qwen3".into(),
        vocab_size,
        hidden_size: 128,
        intermediate_size: 384,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: Some(32),
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        max_position_embeddings: 1024,
        attention_bias: false,
        hidden_act: "silu".into(),
        bos_token_id: None,
        eos_token_id: Some(serde_json::json!(2)),
        torch_dtype: Some("float32".into()),
        use_sliding_window: false,
        rope_scaling: None,
    }
}
