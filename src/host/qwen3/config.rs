//! [`Qwen3Config`]: config.json of a Hugging Face Qwen3 checkpoint.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EngramError, Result};
use crate::io::{field_names, read_json_and_value, unknown_fields, warn_unknown};

/// The fields of a Qwen3 `config.json` that the model uses (unknown fields are ignored).
///
/// ```
/// let cfg: burn_engram::host::qwen3::Qwen3Config = serde_json::from_str(r#"{
///   "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 1024,
///   "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
///   "num_key_value_heads": 8, "head_dim": 128, "rope_theta": 1000000,
///   "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "max_position_embeddings": 40960
/// }"#).unwrap();
/// cfg.validate(std::path::Path::new("config.json")).unwrap();
/// assert_eq!(cfg.q_dim(), 2048);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen3Config {
    /// Must be "qwen3".
    pub model_type: String,
    /// Rows of the embedding table (may exceed the tokenizer's size).
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// Width of one head (Qwen3 sets it explicitly; default hidden / heads).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RoPE base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// Whether lm_head shares the embedding table.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Longest position the RoPE tables cover.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    /// Bias on q/k/v/o projections (false for Qwen3).
    #[serde(default)]
    pub attention_bias: bool,
    /// Activation of the MLP (only "silu" is supported).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Beginning-of-sequence id, if any.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id (an integer or a list in some configs).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    /// dtype on disk, informational.
    #[serde(default)]
    pub torch_dtype: Option<String>,
    /// Sliding-window attention (not supported: must be false or absent).
    #[serde(default)]
    pub use_sliding_window: bool,
    /// RoPE scaling (not supported: must be null or absent).
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Standard deviation of fresh weights (transformers' `initializer_range`, 0.02 in Qwen3
    /// configs): every Linear and Embedding weight of [`Qwen3ForCausalLM::new`] starts
    /// `N(0, initializer_range)`.
    ///
    /// [`Qwen3ForCausalLM::new`]: super::Qwen3ForCausalLM::new
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
}

fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    32_768
}
fn default_initializer_range() -> f64 {
    0.02
}
fn default_act() -> String {
    "silu".into()
}

impl Qwen3Config {
    /// Reads and validates `config.json`. Fields that neither this crate nor transformers'
    /// `Qwen3Config` / `PretrainedConfig` define are logged as warnings (`log` crate) naming
    /// the file and the field; transformers' own fields that do not change the forward pass
    /// (`use_cache`, `architectures`, ...) are ignored quietly.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (cfg, value): (Self, _) = read_json_and_value(path)?;
        let known = field_names(&cfg);
        warn_unknown(path, &unknown_fields(&value, &known, HF_FIELDS));
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Output width of q_proj.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim()
    }

    /// Output width of k_proj and v_proj.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim()
    }

    /// Checks the fields the model depends on; errors name the file and field.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, why: String| {
            Err(EngramError::bad_file(
                path,
                format!("field `{field}`: {why}"),
            ))
        };
        if self.model_type != "qwen3" {
            return bad(
                "model_type",
                format!("\"{}\" is not \"qwen3\"", self.model_type),
            );
        }
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v == 0 {
                return bad(field, "must be >= 1".into());
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            );
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(
                "head_dim",
                format!("{} is odd; RoPE needs an even width", self.head_dim()),
            );
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return bad(
                "rms_norm_eps",
                format!("{} is not a positive number", self.rms_norm_eps),
            );
        }
        if !(self.initializer_range >= 0.0 && self.initializer_range.is_finite()) {
            return bad(
                "initializer_range",
                format!("{} is not a finite number >= 0", self.initializer_range),
            );
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) {
            return bad(
                "rope_theta",
                format!("{} is not a positive number", self.rope_theta),
            );
        }
        if self.hidden_act != "silu" {
            return bad(
                "hidden_act",
                format!("\"{}\" is not supported (only \"silu\")", self.hidden_act),
            );
        }
        if self.use_sliding_window {
            return bad(
                "use_sliding_window",
                "sliding-window attention is not supported".into(),
            );
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return bad("rope_scaling", "RoPE scaling is not supported".into());
        }
        // sizes a corrupt config could blow up: the RoPE tables are built up front
        let rope = self.max_position_embeddings as u128 * self.head_dim() as u128;
        if rope > MAX_ROPE_ELEMENTS {
            return bad(
                "max_position_embeddings",
                format!(
                    "{} positions x head_dim {} = {rope} RoPE entries (more than {MAX_ROPE_ELEMENTS})",
                    self.max_position_embeddings,
                    self.head_dim()
                ),
            );
        }
        let params = self.implied_params();
        if params > MAX_PARAMS {
            return bad(
                self.largest_factor(),
                format!(
                    "the dimensions imply {params} parameters (more than {MAX_PARAMS}): a size is wrong"
                ),
            );
        }
        Ok(())
    }

    /// Checks that every id of a `[rows, seq_len]` batch (row-major) indexes the embedding
    /// table, naming the first that does not.
    pub fn check_token_ids(
        &self,
        ids: impl IntoIterator<Item = i64>,
        seq_len: usize,
    ) -> Result<()> {
        for (i, id) in ids.into_iter().enumerate() {
            if id < 0 || id as u64 >= self.vocab_size as u64 {
                return Err(EngramError::BadBatch(format!(
                    "token id {id} at row {}, position {} is outside the model's vocabulary (vocab_size {} in config.json)",
                    i / seq_len.max(1),
                    i % seq_len.max(1),
                    self.vocab_size
                )));
            }
        }
        Ok(())
    }

    /// The size field that the implied parameter count depends on most: the one whose
    /// setting to 1 shrinks the count the most (so a vocabulary of 10^12 is blamed on
    /// `vocab_size`, not on the width it multiplies).
    fn largest_factor(&self) -> &'static str {
        let with = |f: &dyn Fn(&mut Self)| {
            let mut c = self.clone();
            f(&mut c);
            c.implied_params()
        };
        let candidates: [(&'static str, u128); 6] = [
            ("vocab_size", with(&|c| c.vocab_size = 1)),
            ("hidden_size", with(&|c| c.hidden_size = 1)),
            ("intermediate_size", with(&|c| c.intermediate_size = 1)),
            ("num_hidden_layers", with(&|c| c.num_hidden_layers = 1)),
            // the key/value heads divide the attention heads: both go to 1 together
            (
                "num_attention_heads",
                with(&|c| {
                    c.num_attention_heads = 1;
                    c.num_key_value_heads = 1;
                }),
            ),
            ("head_dim", with(&|c| c.head_dim = Some(1))),
        ];
        candidates
            .iter()
            .min_by_key(|(_, p)| *p)
            .map_or("hidden_size", |(f, _)| f)
    }

    /// The backbone parameters these dimensions imply (u128: no overflow on any config;
    /// attention biases left out).
    pub fn implied_params(&self) -> u128 {
        let (v, h, i) = (
            self.vocab_size as u128,
            self.hidden_size as u128,
            self.intermediate_size as u128,
        );
        let d = self.head_dim() as u128;
        let q = self.num_attention_heads as u128 * d;
        let kv = self.num_key_value_heads as u128 * d;
        let layer = h * q * 2 + h * kv * 2 + 2 * d + 3 * h * i + 2 * h;
        let head = if self.tie_word_embeddings { 0 } else { v * h };
        v * h + self.num_hidden_layers as u128 * layer + h + head
    }
}

/// Fields of transformers' `Qwen3Config` (4.57) and `PretrainedConfig` that leave the forward
/// pass of a plain checkpoint unchanged (or are checked through other fields): read quietly.
const HF_FIELDS: &[&str] = &[
    "architectures",
    "attention_dropout",
    "sliding_window",
    "max_window_layers",
    "layer_types",
    "use_cache",
    "transformers_version",
    "dtype",
    "pad_token_id",
    "_name_or_path",
    "_attn_implementation_autoset",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "is_encoder_decoder",
    "id2label",
    "label2id",
    "pretraining_tp",
    "tokenizer_class",
    "task_specific_params",
    "problem_type",
    "chunk_size_feed_forward",
    "add_cross_attention",
    "tie_encoder_decoder",
    "finetuning_task",
    "prefix",
    "decoder_start_token_id",
    "sep_token_id",
];

/// At most this many RoPE table entries (2^31 per table, 8 GiB in f32).
const MAX_ROPE_ELEMENTS: u128 = 1 << 31;
/// At most this many backbone parameters (2^40, about a trillion).
const MAX_PARAMS: u128 = 1 << 40;
