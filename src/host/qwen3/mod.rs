//! Qwen3 (Qwen3-0.6B first) from a Hugging Face folder, exact to transformers: config,
//! model, loading, tokenizer and ChatML, Engram wrapping, scoring and generation.
//!
//! ```no_run
//! # fn main() -> Result<(), burn_engram::EngramError> {
//! use burn::tensor::{DType, Device};
//! use burn_engram::host::qwen3::{Qwen3Tokenizer, load_qwen3, score_continuations};
//! let device = Device::default();
//! let model = load_qwen3("Qwen3-0.6B", &device, DType::F32)?;
//! let tok = Qwen3Tokenizer::from_dir("Qwen3-0.6B")?;
//! let scores = score_continuations(&model, &tok, "Q: What is 2+2?\nA:", &[" 4", " 5"])?;
//! # Ok(()) }
//! ```

mod attention;
mod chat;
mod config;
mod engram;
mod generate;
mod linear;
mod load;
mod mlp;
mod model;
mod rope;
mod save;
mod score;
mod tokenizer;

pub use attention::Qwen3Attention;
pub use chat::{ChatRequest, ChatTemplate, ChatValue, parse_chat_json, read_chat_json, user_turn};
pub use config::Qwen3Config;
pub use engram::Qwen3Engram;
pub use generate::{Generation, GenerationConfig, Sampler, TextStreamer, generate};
pub use linear::forward_linear;
pub use load::{load_qwen3, weight_files};
pub use mlp::Qwen3Mlp;
pub use model::{KvCache, Qwen3DecoderLayer, Qwen3ForCausalLM, Qwen3Model};
pub(crate) use save::write_derived_folder;
pub use save::{FOLDER_FILES, save_qwen3};
pub use score::{CausalLm, ContinuationScore, encode_pair, generate_greedy, score_continuations};
pub use tokenizer::{Qwen3Tokenizer, chatml, chatml_prompt};
