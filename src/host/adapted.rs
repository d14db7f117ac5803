//! A Qwen3 folder as a run uses it: plain, with a LoRA adapter, or with Engram.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{DType, Device, Tensor};

use super::lora::{count_lora_params, load_adapter};
use super::qwen3::{CausalLm, KvCache, Qwen3Engram, Qwen3ForCausalLM, Qwen3Tokenizer, load_qwen3};
use crate::error::Result;
use crate::memory::EngramState;

/// The model a command-line run scores or evaluates.
#[derive(Debug)]
pub enum AdaptedQwen3 {
    /// The backbone alone.
    Base(Qwen3ForCausalLM),
    /// The backbone with a LoRA adapter.
    Lora(Qwen3ForCausalLM),
    /// The backbone with Engram layers.
    Engram(Qwen3Engram),
}

impl AdaptedQwen3 {
    /// Loads `model_dir`, then the Engram folder or the PEFT adapter folder if given (at most
    /// one of them).
    pub fn load(
        model_dir: &Path,
        engram: Option<&Path>,
        lora: Option<&Path>,
        tok: &Qwen3Tokenizer,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let base = load_qwen3(model_dir, device, dtype)?;
        Ok(match (engram, lora) {
            (Some(dir), _) => Self::Engram(Qwen3Engram::attach(base, dir, &tok.inner, device)?),
            (None, Some(dir)) => Self::Lora(load_adapter(base, dir)?.0),
            (None, None) => Self::Base(base),
        })
    }

    /// "base", "lora" or "engram".
    pub fn method(&self) -> &'static str {
        match self {
            Self::Base(_) => "base",
            Self::Lora(_) => "lora",
            Self::Engram(_) => "engram",
        }
    }

    /// Parameters added to the backbone (0 for the base).
    pub fn added_params(&self) -> usize {
        match self {
            Self::Base(_) => 0,
            Self::Lora(m) => count_lora_params(m),
            Self::Engram(m) => m.engram.num_params(),
        }
    }
}

/// The cache of an [`AdaptedQwen3`]: the plain KV cache for the base and LoRA, the KV cache
/// with the Engram decoding state for Engram (the other stays empty).
#[derive(Debug, Clone, Default)]
pub struct AdaptedCache {
    plain: KvCache,
    engram: KvCache<EngramState>,
}

impl CausalLm for AdaptedQwen3 {
    type Cache = AdaptedCache;
    fn token_logits(&self, ids: &[u32], cache: Option<&mut AdaptedCache>) -> Result<Tensor<2>> {
        match self {
            Self::Base(m) | Self::Lora(m) => m.token_logits(ids, cache.map(|c| &mut c.plain)),
            Self::Engram(m) => m.token_logits(ids, cache.map(|c| &mut c.engram)),
        }
    }
    fn supports_cache(&self) -> bool {
        true
    }
    fn device(&self) -> Device {
        match self {
            Self::Base(m) | Self::Lora(m) => CausalLm::device(m),
            Self::Engram(m) => CausalLm::device(m),
        }
    }
    fn vocab_limit(&self) -> usize {
        match self {
            Self::Base(m) | Self::Lora(m) => m.vocab_limit(),
            Self::Engram(m) => m.vocab_limit(),
        }
    }
}
