//! # burn-engram
//!
//! DeepSeek's **Engram** (conditional memory) for the [Burn](https://burn.dev) deep-learning
//! framework. Engram gives a transformer a large table of embeddings addressed by hashed
//! n-grams of the input tokens: each position reads its rows in O(1), a context-aware gate
//! decides how much of the read to keep, and the result is added to the residual stream
//! before chosen blocks.
//!
//! The data path, one direction:
//!
//! ```text
//! token ids [B,T]
//!   -> compressed ids          CompressedVocab   (vocab.rs)
//!   -> hash ids [B,T,(N-1)H]   NgramHasher       (hashing/, host, 64-bit, numpy-exact)
//!   -> table rows              EngramLayers::upload (+ head offsets, to the device)
//!   -> memory e [B,T,(N-1)n]   MultiHeadEmbedding (memory/embedding.rs)
//!   -> gate, value             ContextGate, value_proj (memory/gate.rs, engram.rs)
//!   -> + short conv            ShortConv         (memory/conv.rs)
//!   -> h + engram(h, ids)      ResidualInjector  (inject.rs)
//! ```
//!
//! The crate has three layers, each importing only the ones below it (docs/ARCHITECTURE.md;
//! `tests/layers.rs` fails on an import that goes up or closes a cycle):
//!
//! 1. **The Engram library** (always built): [`config`], [`vocab`], [`hashing`], [`memory`],
//!    [`inject`], [`weights`] (Engram weight files), with [`io`] and [`error`] beneath them.
//!    `default-features = false, features = ["flex"]` builds this layer alone, with burn,
//!    tokenizers, safetensors and serde.
//! 2. **The host models** (feature `host`): `host::qwen3` runs Hugging Face Qwen3 checkpoints
//!    exactly as transformers does and hosts Engram (`Qwen3Engram`); `host::lora` is the LoRA
//!    baseline with PEFT adapter files.
//! 3. **The study harness** (feature `study`, which implies `host`): `study::data`,
//!    `study::train`, `study::eval`, `study::runs` and the TinyEngram study itself (profiles,
//!    runs, reports, plots, the embedded base model).
//!
//! ```
//! # fn main() -> Result<(), burn_engram::EngramError> {
//! use std::sync::Arc;
//! use burn::tensor::{Device, Tensor};
//! use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, InitOptions, ResidualInjector};
//!
//! let device = Device::default();
//! // Normally: CompressedVocab::from_tokenizer_file("tokenizer.json")?
//! let vocab = Arc::new(CompressedVocab::from_lookup((0..1000).collect())?);
//! let cfg = EngramConfig { engram_vocab_size: vec![211, 97], n_embed_per_ngram: 32,
//!     n_head_per_ngram: 4, layer_ids: vec![0, 2], pad_id: 0, ..EngramConfig::default() };
//! let memory = EngramLayers::new(&cfg, vocab, 64, InitOptions::default(), &device)?;
//!
//! let ids: Vec<i64> = (0..16).collect();                 // a [2, 8] batch
//! let batch = memory.prepare(&ids, 2, 8, &device)?;      // in the data loader
//! let mut x = Tensor::<3>::zeros([2, 8, 64], &device);
//! for layer in 0..3 {
//!     x = memory.inject(layer, x, &batch)?;              // before each block
//!     // x = block.forward(x);
//! }
//! assert_eq!(x.dims(), [2, 8, 64]);
//! # Ok(()) }
//! ```

// Layer 1, the Engram library (with generic I/O and the error type beneath it).
pub mod config;
pub mod device;
pub mod error;
pub mod hashing;
pub mod inject;
pub mod inspect;
pub mod io;
pub mod memory;
mod ops;
pub mod precision;
pub mod vocab;
pub mod weights;

#[cfg(test)]
mod test_util;

// Layer 2, the host models: Qwen3 and LoRA.
#[cfg(feature = "host")]
pub mod host;

// Layer 3, the study harness: data, trainer, evaluation, run folders, the study itself.
#[cfg(feature = "study")]
pub mod study;

pub use config::EngramConfig;
pub use error::{EngramError, Result};
pub use hashing::{HashIds, NgramHasher};
pub use inject::{NoInjection, ResidualInjector};
pub use memory::{
    ContextGate, Engram, EngramBatch, EngramInit, EngramLayers, EngramState, GateMode,
    GateSchedule, InitOptions, MultiHeadEmbedding, ShortConv,
};
pub use vocab::CompressedVocab;

// The README's Rust snippets compile (and the runnable ones run) as doc tests.
#[cfg(all(doctest, feature = "study"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
