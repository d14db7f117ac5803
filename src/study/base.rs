//! The embedded base model: a small Qwen3 pretrained on the committed corpus, its tokenizer,
//! and the retention probe that measures what it knows.
//!
//! Everything here is committed to the repository, so the study runs with no downloads:
//! `src/study/data/base/corpus.jsonl` (the pretraining records, written by
//! `scripts/base_model/gen_corpus.py`: facts, question-and-answer prose, ChatML dialogues,
//! JSON records, numbers and function calls of functions that are not the fine-tune's, with a
//! held-out split), `src/study/data/base/probe.jsonl` (multiple-choice questions about the facts,
//! in TruthfulQA's format) and `src/study/data/base/model/` (a Hugging Face folder: `config.json`,
//! `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`), written by
//! `cargo run --release --example pretrain`.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Deserialize;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{EngramError, Result};
use crate::host::qwen3::Qwen3Config;
use crate::study::eval::truthfulqa::{McQuestion, parse_questions};

/// The pretraining records, one JSON object per line: `{"kind", "split", "text"}` (see
/// [`CorpusRecord`]).
pub const CORPUS: &str = include_str!("data/base/corpus.jsonl");
/// The retention probe (TruthfulQA's JSON-lines format), one question per fact.
pub const PROBE: &str = include_str!("data/base/probe.jsonl");
/// The primer of the probe's scoring context: two question/answer pairs that the corpus
/// states and the probe never asks, as TruthfulQA's primer is six.
pub const PROBE_PRIMER: &str = "Q: How many days are there in a week?\nA: There are seven days in a week.\n\nQ: What do bees make?\nA: Bees make honey.";
/// Special tokens of the base tokenizer, as Qwen's: pad/`<|endoftext|>`, `<|im_start|>`,
/// `<|im_end|>` (eos), with ids 0, 1, 2.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// One line of [`CORPUS`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusRecord {
    /// `fact` (an entry that [`pretrain_documents`] packs with others into a document),
    /// or the kind of a whole document: `qa`, `chat`, `json`, `numbers`, `call`.
    pub kind: String,
    /// `train` or `heldout` (never trained on; the pretraining report states its loss).
    pub split: String,
    /// The text.
    pub text: String,
}

/// The folder of the committed base model.
pub fn base_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/study/data/base/model")
}

/// The records of [`CORPUS`]; a malformed line is an error naming it.
pub fn corpus_records() -> Result<Vec<CorpusRecord>> {
    let path = Path::new("src/study/data/base/corpus.jsonl");
    CORPUS
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| EngramError::bad_file(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// The training documents of one epoch of pretraining: every `train` document of the
/// corpus, plus the fact entries packed twice into new documents of 3 to 6 entries (joined
/// by a blank line), each packing from its own shuffle seeded by `(seed, epoch)`, so no epoch
/// repeats another's grouping and the model learns the facts, not an order of documents.
///
/// ```
/// use burn_engram::study::pretrain_documents;
/// let (a, b) = (pretrain_documents(0, 1).unwrap(), pretrain_documents(1, 1).unwrap());
/// assert_eq!(a, pretrain_documents(0, 1).unwrap(), "deterministic");
/// assert_ne!(a, b, "each epoch packs the facts anew");
/// assert_eq!(a.len(), b.len());
/// ```
pub fn pretrain_documents(epoch: usize, seed: u64) -> Result<Vec<String>> {
    let records = corpus_records()?;
    let mut docs: Vec<String> = records
        .iter()
        .filter(|r| r.kind != "fact" && r.split == "train")
        .map(|r| r.text.clone())
        .collect();
    for packing in 0..2u64 {
        let mut facts: Vec<&str> = records
            .iter()
            .filter(|r| r.kind == "fact")
            .map(|r| r.text.as_str())
            .collect();
        let stream = (2 * epoch as u64 + packing).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        facts.shuffle(&mut StdRng::seed_from_u64(seed ^ stream));
        let (mut i, mut k) = (0, 0usize);
        while i < facts.len() {
            let n = 3 + (k % 4); // 3, 4, 5, 6 entries in turn
            docs.push(facts[i..(i + n).min(facts.len())].join("\n\n"));
            i += n;
            k += 1;
        }
    }
    Ok(docs)
}

/// The held-out documents of the corpus (never trained on).
pub fn heldout_documents() -> Result<Vec<String>> {
    Ok(corpus_records()?
        .into_iter()
        .filter(|r| r.split == "heldout")
        .map(|r| r.text)
        .collect())
}

/// The questions of [`PROBE`].
pub fn probe_questions() -> Result<Vec<McQuestion>> {
    parse_questions(PROBE, Path::new("src/study/data/base/probe.jsonl"))
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
        initializer_range: 0.02,
    }
}
