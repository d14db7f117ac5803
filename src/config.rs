//! [`EngramConfig`]: the reference's configuration, with its JSON field names and defaults.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EngramError, Result};
use crate::io::{field_names, read_json, unknown_fields, warn_unknown, write_json};

/// Configuration of the Engram memory, field for field as in the reference (`EngramConfig` in
/// DeepSeek's demo and TinyEngram). A config file of ours (`--engram-config`,
/// [`EngramConfig::from_json_file`]) must hold only these fields: a misspelt one is an error
/// naming it, not a silent default. The `engram_config.json` of a TinyEngram folder, whose
/// format is TinyEngram's, is read leniently ([`EngramConfig::from_foreign_json_file`]).
///
/// | field | meaning | default |
/// |---|---|---|
/// | `engram_vocab_size` | table size per n-gram order 2..=N (each head gets the next primes above it) | `[646400, 646400]` |
/// | `max_ngram_size` | N, the longest n-gram hashed | 3 |
/// | `n_embed_per_ngram` | embedding width per n-gram order (split over the heads) | 512 |
/// | `n_head_per_ngram` | H, hash heads per n-gram order | 8 |
/// | `layer_ids` | the backbone blocks (0-based) that receive Engram memory | `[1, 15]` |
/// | `pad_id` | raw tokenizer id used to pad the n-gram window at the start of a row | 2 |
/// | `seed` | seeds the hash multipliers (`seed + 10007 * layer`) | 0 |
/// | `kernel_size` | width of the short causal convolution | 4 |
/// | `hc_mult` | hyper-connection groups G of the backbone (Qwen3: 1) | 1 |
///
/// ```
/// use burn_engram::EngramConfig;
/// let cfg: EngramConfig = serde_json::from_str(r#"{"engram_vocab_size": [500, 100, 100],
///     "max_ngram_size": 4, "n_embed_per_ngram": 1024, "n_head_per_ngram": 16,
///     "layer_ids": [1, 2, 3, 4], "pad_id": 151643}"#).unwrap();
/// assert_eq!(cfg.seed, 0);
/// assert_eq!(cfg.kernel_size, 4);
/// cfg.validate(Some(151669)).unwrap();
/// assert_eq!(cfg.engram_hidden_size(), 3 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawEngramConfig")]
pub struct EngramConfig {
    /// Table size per n-gram order 2..=N; length must be `max_ngram_size - 1`.
    pub engram_vocab_size: Vec<u64>,
    /// N, the longest n-gram hashed (>= 2).
    pub max_ngram_size: usize,
    /// Embedding width per n-gram order; divisible by `n_head_per_ngram`.
    pub n_embed_per_ngram: usize,
    /// H, hash heads per n-gram order.
    pub n_head_per_ngram: usize,
    /// Backbone blocks (0-based) that get Engram memory; unique.
    pub layer_ids: Vec<usize>,
    /// Raw tokenizer id that pads the n-gram window before the first token.
    pub pad_id: i64,
    /// Seed of the hash multipliers.
    pub seed: u64,
    /// Width of the short causal convolution (>= 1).
    pub kernel_size: usize,
    /// Hyper-connection groups of the backbone (>= 1; 1 for ordinary transformers).
    pub hc_mult: usize,
}

/// What an Engram config file may hold: the fields, plus the reference's
/// `tokenizer_name_or_path` (a Hub id, accepted and not used: the tokenizer comes with the
/// model folder). Anything else is refused, naming it.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawEngramConfig {
    engram_vocab_size: Vec<u64>,
    max_ngram_size: usize,
    n_embed_per_ngram: usize,
    n_head_per_ngram: usize,
    layer_ids: Vec<usize>,
    pad_id: i64,
    seed: u64,
    kernel_size: usize,
    hc_mult: usize,
    #[allow(dead_code)]
    tokenizer_name_or_path: Option<serde_json::Value>,
}

impl Default for RawEngramConfig {
    fn default() -> Self {
        let d = EngramConfig::default();
        Self {
            engram_vocab_size: d.engram_vocab_size,
            max_ngram_size: d.max_ngram_size,
            n_embed_per_ngram: d.n_embed_per_ngram,
            n_head_per_ngram: d.n_head_per_ngram,
            layer_ids: d.layer_ids,
            pad_id: d.pad_id,
            seed: d.seed,
            kernel_size: d.kernel_size,
            hc_mult: d.hc_mult,
            tokenizer_name_or_path: None,
        }
    }
}

impl From<RawEngramConfig> for EngramConfig {
    fn from(r: RawEngramConfig) -> Self {
        Self {
            engram_vocab_size: r.engram_vocab_size,
            max_ngram_size: r.max_ngram_size,
            n_embed_per_ngram: r.n_embed_per_ngram,
            n_head_per_ngram: r.n_head_per_ngram,
            layer_ids: r.layer_ids,
            pad_id: r.pad_id,
            seed: r.seed,
            kernel_size: r.kernel_size,
            hc_mult: r.hc_mult,
        }
    }
}

impl Default for EngramConfig {
    fn default() -> Self {
        Self {
            engram_vocab_size: vec![129_280 * 5, 129_280 * 5],
            max_ngram_size: 3,
            n_embed_per_ngram: 512,
            n_head_per_ngram: 8,
            layer_ids: vec![1, 15],
            pad_id: 2,
            seed: 0,
            kernel_size: 4,
            hc_mult: 1,
        }
    }
}

impl EngramConfig {
    /// The configuration of TinyEngram's headline run on Qwen3-0.6B: tables 500/100/100
    /// (N = 4), 1024 wide, 16 heads, layers 1-4, padding with `<|endoftext|>` (151643).
    pub fn tinyengram_headline() -> Self {
        Self {
            engram_vocab_size: vec![500, 100, 100],
            max_ngram_size: 4,
            n_embed_per_ngram: 1024,
            n_head_per_ngram: 16,
            layer_ids: vec![1, 2, 3, 4],
            pad_id: 151_643,
            ..Self::default()
        }
    }

    /// Width of the concatenated memory read, `(N - 1) * n_embed_per_ngram`.
    pub fn engram_hidden_size(&self) -> usize {
        (self.max_ngram_size - 1) * self.n_embed_per_ngram
    }

    /// Width of one head's embedding row, `n_embed_per_ngram / n_head_per_ngram`.
    pub fn head_dim(&self) -> usize {
        self.n_embed_per_ngram / self.n_head_per_ngram
    }

    /// Hash heads per layer, `(N - 1) * H`.
    pub fn heads_per_layer(&self) -> usize {
        (self.max_ngram_size - 1) * self.n_head_per_ngram
    }

    /// Checks every field; `tokenizer_vocab_size` (raw ids, added tokens included), when
    /// given, also bounds `pad_id`. The error names the first bad field.
    pub fn validate(&self, tokenizer_vocab_size: Option<usize>) -> Result<()> {
        if self.max_ngram_size < 2 {
            return Err(EngramError::config(
                "max_ngram_size",
                format!("must be >= 2, got {}", self.max_ngram_size),
            ));
        }
        if self.engram_vocab_size.len() != self.max_ngram_size - 1 {
            return Err(EngramError::config(
                "engram_vocab_size",
                format!(
                    "must have max_ngram_size - 1 = {} entries (one per n-gram order 2..={}), got {}",
                    self.max_ngram_size - 1,
                    self.max_ngram_size,
                    self.engram_vocab_size.len()
                ),
            ));
        }
        if let Some((i, v)) = self
            .engram_vocab_size
            .iter()
            .enumerate()
            .find(|(_, v)| **v < 2 || **v > i32::MAX as u64)
        {
            return Err(EngramError::config(
                "engram_vocab_size",
                format!("entry {i} is {v}; each size must be in 2..=2147483647 (hash ids are i32)"),
            ));
        }
        if self.n_head_per_ngram == 0 {
            return Err(EngramError::config(
                "n_head_per_ngram",
                "must be >= 1, got 0",
            ));
        }
        if self.n_embed_per_ngram == 0
            || !self.n_embed_per_ngram.is_multiple_of(self.n_head_per_ngram)
        {
            return Err(EngramError::config(
                "n_embed_per_ngram",
                format!(
                    "must be a positive multiple of n_head_per_ngram ({}), got {}",
                    self.n_head_per_ngram, self.n_embed_per_ngram
                ),
            ));
        }
        if self.layer_ids.is_empty() {
            return Err(EngramError::config(
                "layer_ids",
                "must name at least one layer",
            ));
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = self.layer_ids.iter().find(|l| !seen.insert(**l)) {
            return Err(EngramError::config(
                "layer_ids",
                format!("layer {dup} appears more than once in {:?}", self.layer_ids),
            ));
        }
        if self.kernel_size == 0 {
            return Err(EngramError::config("kernel_size", "must be >= 1, got 0"));
        }
        if self.hc_mult == 0 {
            return Err(EngramError::config("hc_mult", "must be >= 1, got 0"));
        }
        if let Some(vocab) = tokenizer_vocab_size
            && (self.pad_id < 0 || self.pad_id as u64 >= vocab as u64)
        {
            return Err(EngramError::config(
                "pad_id",
                format!(
                    "{} is not a token of the tokenizer (ids 0..{vocab})",
                    self.pad_id
                ),
            ));
        }
        Ok(())
    }

    /// Reads a JSON config file (no validation: call [`EngramConfig::validate`]). A field
    /// that is not one of the config's is an error naming it and the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self> {
        read_json(path.as_ref())
    }

    /// Reads the config of a folder in another project's format (a TinyEngram checkpoint's
    /// `engram_config.json`): fields this crate does not know are logged as warnings (`log`
    /// crate) naming the file and field, and otherwise ignored.
    pub fn from_foreign_json_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut value: serde_json::Value = read_json(path)?;
        let known = field_names(&Self::default());
        warn_unknown(
            path,
            &unknown_fields(&value, &known, &["tokenizer_name_or_path"]),
        );
        if let Some(map) = value.as_object_mut() {
            map.retain(|k, _| known.contains(k));
        }
        serde_json::from_value(value).map_err(|source| EngramError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the config as pretty JSON, atomically.
    pub fn to_json_file(&self, path: impl AsRef<Path>) -> Result<()> {
        write_json(path.as_ref(), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: EngramError) -> &'static str {
        match err {
            EngramError::InvalidConfig { field, .. } => field,
            other => panic!("expected InvalidConfig, got {other}"),
        }
    }

    #[test]
    fn defaults_match_the_reference() {
        let cfg: EngramConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg.engram_vocab_size, vec![646_400, 646_400]);
        assert_eq!(cfg.max_ngram_size, 3);
        assert_eq!(cfg.n_embed_per_ngram, 512);
        assert_eq!(cfg.n_head_per_ngram, 8);
        assert_eq!(cfg.layer_ids, vec![1, 15]);
        assert_eq!(cfg.pad_id, 2);
        assert_eq!(cfg.seed, 0);
        assert_eq!(cfg.kernel_size, 4);
        assert_eq!(cfg.hc_mult, 1);
        cfg.validate(Some(151_669)).unwrap();
    }

    #[test]
    fn each_bad_field_is_named() {
        let ok = EngramConfig::tinyengram_headline();
        type Mutation = Box<dyn Fn(&mut EngramConfig)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("max_ngram_size", Box::new(|c| c.max_ngram_size = 1)),
            (
                "engram_vocab_size",
                Box::new(|c| c.engram_vocab_size = vec![500, 100]),
            ),
            (
                "engram_vocab_size",
                Box::new(|c| c.engram_vocab_size[1] = 1),
            ),
            (
                "n_embed_per_ngram",
                Box::new(|c| c.n_embed_per_ngram = 1000),
            ),
            ("n_head_per_ngram", Box::new(|c| c.n_head_per_ngram = 0)),
            ("layer_ids", Box::new(|c| c.layer_ids = vec![1, 2, 1])),
            ("layer_ids", Box::new(|c| c.layer_ids.clear())),
            ("kernel_size", Box::new(|c| c.kernel_size = 0)),
            ("hc_mult", Box::new(|c| c.hc_mult = 0)),
            ("pad_id", Box::new(|c| c.pad_id = 151_669)),
            ("pad_id", Box::new(|c| c.pad_id = -1)),
        ];
        for (field, mutate) in cases {
            let mut cfg = ok.clone();
            mutate(&mut cfg);
            assert_eq!(field_of(cfg.validate(Some(151_669)).unwrap_err()), field);
        }
    }

    #[test]
    fn json_round_trip_and_unknown_fields() {
        let cfg: EngramConfig = serde_json::from_str(
            r#"{"max_ngram_size": 2, "engram_vocab_size": [10], "tokenizer_name_or_path": "x"}"#,
        )
        .unwrap();
        assert_eq!(cfg.max_ngram_size, 2);
        let back: EngramConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let err =
            serde_json::from_str::<EngramConfig>(r#"{"max_ngram_size": "three"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"));
        // a misspelt field is named, not ignored
        let err = serde_json::from_str::<EngramConfig>(r#"{"n_heads_per_ngram": 4}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown field `n_heads_per_ngram`"),
            "{err}"
        );
    }
}
