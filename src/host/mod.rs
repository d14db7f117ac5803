//! The host models, one layer over the Engram library: Hugging Face Qwen3 ([`qwen3`]), which
//! hosts Engram through [`ResidualInjector`](crate::ResidualInjector), and the LoRA baseline
//! with PEFT adapter files ([`lora`]); [`AdaptedQwen3`] is a Qwen3 folder as a run loads it
//! (plain, with an adapter or with Engram).
//!
//! Behind the `host` feature (on by default).

mod adapted;
pub mod lora;
pub mod qwen3;

pub use adapted::{AdaptedCache, AdaptedQwen3};
