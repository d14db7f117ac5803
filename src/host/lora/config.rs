//! PEFT's `adapter_config.json` for LoRA, and which Qwen3 projections it adapts with what rank
//! and scale, decided the way PEFT 0.17 decides it (`check_target_module_exists`,
//! `get_pattern_key`, `LoraLayer.update_layer`).

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{EngramError, Result};
use crate::host::qwen3::Qwen3Config;

/// The projections LoRA may target in Qwen3.
pub const QWEN3_TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// PEFT's shorthand for every linear layer but the output head.
pub const ALL_LINEAR: &str = "all-linear";

/// PEFT's `target_modules`: a list of names, or one regular expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// A module is targeted when its full name (`model.layers.0.self_attn.q_proj`) equals an
    /// entry or ends with `.entry`.
    Names(Vec<String>),
    /// A module is targeted when the whole of its full name matches this regular expression
    /// (Python's `re.fullmatch`); [`ALL_LINEAR`] names every projection.
    Pattern(String),
}

impl TargetModules {
    /// The seven Qwen3 projections by name, the study's choice.
    pub fn all_projections() -> Self {
        Self::Names(QWEN3_TARGETS.iter().map(|s| s.to_string()).collect())
    }
}

/// A value PEFT accepts as one item or a list (`layers_to_transform`, `layers_pattern`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// One value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            Self::One(t) => std::slice::from_ref(t),
            Self::Many(v) => v,
        }
    }
}

/// The fields of PEFT's `adapter_config.json` this crate reads and writes (others are
/// ignored on reading). Defaults are the study's: r 16, alpha 16, dropout 0.05, all seven
/// projections.
///
/// Supported as PEFT applies them: `target_modules` as names, a regular expression or
/// `"all-linear"`, `exclude_modules`, `layers_to_transform` with `layers_pattern`,
/// `rank_pattern` / `alpha_pattern`, and `use_rslora` (scale `alpha / sqrt(r)`). Refused with
/// an error naming the field: DoRA, bias training, `fan_in_fan_out`, `modules_to_save`, and any
/// target other than the seven projections (`lm_head`, `embed_tokens`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoraConfig {
    /// Rank.
    pub r: usize,
    /// Scale numerator: the update is `alpha / r * B A` (`alpha / sqrt(r)` with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout on the adapter's input while training (PEFT's `lora_dropout`).
    pub lora_dropout: f64,
    /// Which projections carry an adapter.
    pub target_modules: TargetModules,
    /// Projections never adapted, matched as `target_modules` is (PEFT's `exclude_modules`).
    pub exclude_modules: Option<TargetModules>,
    /// Only these decoder layers (with list `target_modules`, as PEFT).
    pub layers_to_transform: Option<OneOrMany<usize>>,
    /// The name before the layer index in a module name (`layers` in Qwen3); unset means any.
    pub layers_pattern: Option<OneOrMany<String>>,
    /// Per-module ranks: pattern -> rank, a pattern matching the end of a module name.
    pub rank_pattern: BTreeMap<String, usize>,
    /// Per-module alphas, matched as `rank_pattern` is.
    pub alpha_pattern: BTreeMap<String, f64>,
    /// Rank-stabilized LoRA: scale `alpha / sqrt(r)`.
    pub use_rslora: bool,
    /// Must be "none".
    pub bias: String,
    /// "LORA".
    pub peft_type: String,
    /// "CAUSAL_LM".
    pub task_type: String,
    /// The base model the adapter was trained on, informational.
    pub base_model_name_or_path: Option<String>,
    /// Must be false.
    pub use_dora: bool,
    /// Must be false (Burn stores Linear weights `[in, out]`; PEFT files are `[out, in]`).
    pub fan_in_fan_out: bool,
    /// Must be absent.
    pub modules_to_save: Option<Vec<String>>,
    /// PEFT writes it; true.
    pub inference_mode: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 16,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: TargetModules::all_projections(),
            exclude_modules: None,
            layers_to_transform: None,
            layers_pattern: None,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            use_rslora: false,
            bias: "none".into(),
            peft_type: "LORA".into(),
            task_type: "CAUSAL_LM".into(),
            base_model_name_or_path: None,
            use_dora: false,
            fan_in_fan_out: false,
            modules_to_save: None,
            inference_mode: true,
        }
    }
}

/// Fields of PEFT's `LoraConfig` (0.17) that this crate does not use: read quietly (a file
/// that sets one of them to something that matters is caught by [`LoraConfig::validate`]
/// through the fields it does read).
pub(crate) const PEFT_FIELDS: &[&str] = &[
    "auto_mapping",
    "revision",
    "init_lora_weights",
    "loftq_config",
    "eva_config",
    "corda_config",
    "megatron_config",
    "megatron_core",
    "layer_replication",
    "runtime_config",
    "lora_bias",
    "trainable_token_indices",
    "target_parameters",
    "qalora_group_size",
    "use_qalora",
];

/// One adapted projection: its rank, alpha and the scale of its update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdapterShape {
    /// Rank (`rank_pattern` or `r`).
    pub r: usize,
    /// Alpha (`alpha_pattern` or `lora_alpha`).
    pub alpha: f64,
    /// `alpha / r`, or `alpha / sqrt(r)` with rsLoRA.
    pub scale: f64,
}

/// `re.fullmatch(pattern, text)`.
fn full_match(field: &'static str, pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        EngramError::lora(
            field,
            format!("\"{pattern}\" is not a regular expression this crate reads: {e}"),
        )
    })
}

/// PEFT's name test for `target_modules` / `exclude_modules` (without the layer filter).
fn name_matches(field: &'static str, targets: &TargetModules, key: &str) -> Result<bool> {
    Ok(match targets {
        TargetModules::Pattern(p) => full_match(field, p)?.is_match(key),
        TargetModules::Names(names) => names.iter().any(|n| names_module(n, key)),
    })
}

/// A listed name targets the module `key` when it is the whole name or its last segments.
fn names_module(name: &str, key: &str) -> bool {
    key == name || key.ends_with(&format!(".{name}"))
}

/// PEFT's `get_pattern_key`: the first pattern `p` for which `(.*\.)?(p)$` matches `key` from
/// its start.
fn pattern_key<'a, V>(
    field: &'static str,
    patterns: &'a BTreeMap<String, V>,
    key: &str,
) -> Result<Option<&'a V>> {
    for (p, v) in patterns {
        let re = Regex::new(&format!(r"^(?:.*\.)?(?:{p})$")).map_err(|e| {
            EngramError::lora(field, format!("\"{p}\" is not a regular expression: {e}"))
        })?;
        if re.is_match(key) {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// The Qwen3 modules of a model with these dimensions that PEFT could adapt: every projection
/// (`model.layers.{i}.{self_attn|mlp}.{proj}`) with its layer and (in, out) sizes.
pub fn qwen3_projections(cfg: &Qwen3Config) -> Vec<(String, usize, (usize, usize))> {
    let (h, q, kv, i) = (
        cfg.hidden_size,
        cfg.q_dim(),
        cfg.kv_dim(),
        cfg.intermediate_size,
    );
    let mut out = Vec::new();
    for layer in 0..cfg.num_hidden_layers {
        for proj in QWEN3_TARGETS {
            let (block, dims) = match proj {
                "q_proj" => ("self_attn", (h, q)),
                "k_proj" | "v_proj" => ("self_attn", (h, kv)),
                "o_proj" => ("self_attn", (q, h)),
                "down_proj" => ("mlp", (i, h)),
                _ => ("mlp", (h, i)),
            };
            out.push((format!("model.layers.{layer}.{block}.{proj}"), layer, dims));
        }
    }
    out
}

/// Modules PEFT could adapt that this crate does not.
const NOT_ADAPTED: [&str; 2] = ["lm_head", "model.embed_tokens"];

impl LoraConfig {
    /// Checks the fields on their own: a plain LoRA (no DoRA, bias, `modules_to_save`,
    /// `fan_in_fan_out`), sane numbers, readable patterns.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, why: String| Err(EngramError::lora(field, why));
        if self.r == 0 {
            return bad("r", "must be >= 1".into());
        }
        let alpha_ok = |a: f64| a.is_finite() && a > 0.0;
        if !alpha_ok(self.lora_alpha) {
            return bad(
                "lora_alpha",
                format!("{} is not a positive number", self.lora_alpha),
            );
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(
                "lora_dropout",
                format!("{} is not a probability in [0, 1)", self.lora_dropout),
            );
        }
        match &self.target_modules {
            TargetModules::Names(n) if n.is_empty() => {
                return bad("target_modules", "names no projection".into());
            }
            TargetModules::Pattern(p) if !p.eq_ignore_ascii_case(ALL_LINEAR) => {
                full_match("target_modules", p)?;
            }
            _ => {}
        }
        let layers_given = self
            .layers_to_transform
            .as_ref()
            .is_some_and(|l| !l.as_slice().is_empty());
        if layers_given && matches!(self.target_modules, TargetModules::Pattern(_)) {
            return bad(
                "layers_to_transform",
                "cannot be used with a regular expression (or \"all-linear\") in \
                 target_modules (PEFT refuses it too)"
                    .into(),
            );
        }
        if !layers_given
            && self
                .layers_pattern
                .as_ref()
                .is_some_and(|p| !p.as_slice().is_empty())
        {
            return bad(
                "layers_pattern",
                "needs layers_to_transform (PEFT refuses it too)".into(),
            );
        }
        if let Some(TargetModules::Pattern(p)) = &self.exclude_modules {
            full_match("exclude_modules", p)?;
        }
        if let Some((p, _)) = self.rank_pattern.iter().find(|(_, r)| **r == 0) {
            return bad("rank_pattern", format!("\"{p}\": rank must be >= 1"));
        }
        if let Some((p, a)) = self.alpha_pattern.iter().find(|(_, a)| !alpha_ok(**a)) {
            return bad(
                "alpha_pattern",
                format!("\"{p}\": {a} is not a positive number"),
            );
        }
        pattern_key("rank_pattern", &self.rank_pattern, "")?;
        pattern_key("alpha_pattern", &self.alpha_pattern, "")?;
        if self.peft_type != "LORA" {
            return bad(
                "peft_type",
                format!("\"{}\" is not \"LORA\"", self.peft_type),
            );
        }
        if self.bias != "none" {
            return bad(
                "bias",
                format!("\"{}\" is not supported (only \"none\")", self.bias),
            );
        }
        for (field, on) in [
            ("use_dora", self.use_dora),
            ("fan_in_fan_out", self.fan_in_fan_out),
        ] {
            if on {
                return bad(field, "is not supported".into());
            }
        }
        if self.modules_to_save.as_ref().is_some_and(|m| !m.is_empty()) {
            return bad("modules_to_save", "is not supported".into());
        }
        Ok(())
    }

    /// Whether PEFT would put an adapter on the module `key` (a full module name such as
    /// `model.layers.3.mlp.up_proj`), and with which rank and scale.
    ///
    /// ```
    /// # use burn_engram::host::lora::{LoraConfig, TargetModules};
    /// let cfg = LoraConfig {
    ///     target_modules: TargetModules::Pattern(r".*\.(q|v)_proj".into()),
    ///     rank_pattern: [("v_proj".to_string(), 4)].into(),
    ///     use_rslora: true,
    ///     ..LoraConfig::default()
    /// };
    /// assert_eq!(cfg.adapter_for("model.layers.0.self_attn.k_proj").unwrap(), None);
    /// let v = cfg.adapter_for("model.layers.0.self_attn.v_proj").unwrap().unwrap();
    /// assert_eq!((v.r, v.scale), (4, 16.0 / 2.0));
    /// ```
    pub fn adapter_for(&self, key: &str) -> Result<Option<AdapterShape>> {
        if let Some(ex) = &self.exclude_modules
            && name_matches("exclude_modules", ex, key)?
        {
            return Ok(None);
        }
        // PEFT replaces "all-linear" by the names of the linear layers but the output head
        // (and writes those names into the adapter's config).
        let all_linear;
        let targets = match &self.target_modules {
            TargetModules::Pattern(p) if p.eq_ignore_ascii_case(ALL_LINEAR) => {
                all_linear = TargetModules::all_projections();
                &all_linear
            }
            t => t,
        };
        let found = match targets {
            TargetModules::Pattern(_) => name_matches("target_modules", targets, key)?,
            TargetModules::Names(names) if names.iter().any(|n| n == key) => true,
            TargetModules::Names(_) => {
                name_matches("target_modules", targets, key)? && self.in_transformed_layer(key)?
            }
        };
        if !found {
            return Ok(None);
        }
        let r = *pattern_key("rank_pattern", &self.rank_pattern, key)?.unwrap_or(&self.r);
        let alpha =
            *pattern_key("alpha_pattern", &self.alpha_pattern, key)?.unwrap_or(&self.lora_alpha);
        let scale = if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        };
        Ok(Some(AdapterShape { r, alpha, scale }))
    }

    /// PEFT's `layers_to_transform` filter (`layers_pattern` names the segment before the
    /// index; unset, any segment does).
    fn in_transformed_layer(&self, key: &str) -> Result<bool> {
        let Some(wanted) = &self.layers_to_transform else {
            return Ok(true);
        };
        if wanted.as_slice().is_empty() {
            return Ok(true);
        }
        let patterns: Vec<String> = match &self.layers_pattern {
            Some(p) if !p.as_slice().is_empty() => p.as_slice().to_vec(),
            _ => vec![r"[^.]*".into()],
        };
        for p in patterns {
            let re = Regex::new(&format!(r"^.*\.(?:{p})\.(\d+)\."))
                .map_err(|e| EngramError::lora("layers_pattern", format!("\"{p}\": {e}")))?;
            if let Some(c) = re.captures(key) {
                let index: usize = c[1].parse().unwrap_or(usize::MAX);
                return Ok(wanted.as_slice().contains(&index));
            }
        }
        Ok(false)
    }

    /// Every adapted projection of a model with these dimensions: full module name -> shape.
    /// Refuses (naming the field) a config that adapts nothing, one whose targets reach a
    /// module this crate does not adapt (`lm_head`, `model.embed_tokens`), and a list entry
    /// that names no projection (a misspelling PEFT would pass over when others match).
    pub fn plan(&self, cfg: &Qwen3Config) -> Result<BTreeMap<String, AdapterShape>> {
        self.validate()?;
        for key in NOT_ADAPTED {
            if self.adapter_for(key)?.is_some() {
                return Err(EngramError::lora(
                    "target_modules",
                    format!("targets `{key}`; only {QWEN3_TARGETS:?} take an adapter here"),
                ));
            }
        }
        let projections = qwen3_projections(cfg);
        if let TargetModules::Names(names) = &self.target_modules
            && let Some(n) = names
                .iter()
                .find(|n| !projections.iter().any(|(key, _, _)| names_module(n, key)))
        {
            return Err(EngramError::lora(
                "target_modules",
                format!("\"{n}\" names no projection (one of {QWEN3_TARGETS:?})"),
            ));
        }
        let mut plan = BTreeMap::new();
        for (key, _, _) in projections {
            if let Some(shape) = self.adapter_for(&key)? {
                plan.insert(key, shape);
            }
        }
        if plan.is_empty() {
            return Err(EngramError::lora(
                "target_modules",
                "adapts no projection of this model (with layers_to_transform and \
                 exclude_modules applied)",
            ));
        }
        Ok(plan)
    }

    /// Trainable parameters on a Qwen3 model: `r * (d_in + d_out)` per adapted projection
    /// (0 for a config [`plan`](Self::plan) refuses).
    ///
    /// ```
    /// # use burn_engram::host::lora::LoraConfig;
    /// let cfg: burn_engram::host::qwen3::Qwen3Config = serde_json::from_str(r#"{"model_type": "qwen3",
    ///   "vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072,
    ///   "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
    ///   "head_dim": 128}"#).unwrap();
    /// assert_eq!(LoraConfig::default().trainable_params(&cfg), 10_092_544);
    /// ```
    pub fn trainable_params(&self, cfg: &Qwen3Config) -> usize {
        let Ok(plan) = self.plan(cfg) else {
            return 0;
        };
        qwen3_projections(cfg)
            .into_iter()
            .filter_map(|(key, _, (i, o))| plan.get(&key).map(|s| s.r * (i + o)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> TargetModules {
        TargetModules::Names(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn target_modules_read_as_peft_writes_them() {
        let list: LoraConfig = serde_json::from_str(r#"{"target_modules": ["q_proj"]}"#).unwrap();
        assert_eq!(list.target_modules, names(&["q_proj"]));
        let re: LoraConfig =
            serde_json::from_str(r#"{"target_modules": ".*\\.v_proj", "layers_to_transform": 1}"#)
                .unwrap();
        assert_eq!(
            re.target_modules,
            TargetModules::Pattern(r".*\.v_proj".into())
        );
        assert_eq!(re.layers_to_transform, Some(OneOrMany::One(1)));
    }

    #[test]
    fn matching_follows_peft() {
        let key = "model.layers.2.mlp.down_proj";
        let with = |f: &dyn Fn(&mut LoraConfig)| {
            let mut c = LoraConfig::default();
            f(&mut c);
            c.adapter_for(key).unwrap().map(|s| (s.r, s.scale))
        };
        assert_eq!(with(&|_| {}), Some((16, 1.0)));
        // a full name in the list bypasses layers_to_transform, as in PEFT
        assert_eq!(
            with(&|c| {
                c.target_modules = names(&[key]);
                c.layers_to_transform = Some(OneOrMany::Many(vec![0]));
            }),
            Some((16, 1.0))
        );
        assert_eq!(
            with(&|c| c.layers_to_transform = Some(OneOrMany::Many(vec![0, 1]))),
            None
        );
        assert_eq!(
            with(&|c| {
                c.layers_to_transform = Some(OneOrMany::One(2));
                c.layers_pattern = Some(OneOrMany::One("layers".into()));
            }),
            Some((16, 1.0))
        );
        assert_eq!(
            with(&|c| {
                c.layers_to_transform = Some(OneOrMany::One(2));
                c.layers_pattern = Some(OneOrMany::One("blocks".into()));
            }),
            None
        );
        // a regex is matched whole and ignores layers_to_transform
        assert_eq!(
            with(&|c| c.target_modules = TargetModules::Pattern("mlp\\.down_proj".into())),
            None
        );
        assert_eq!(
            with(
                &|c| c.target_modules = TargetModules::Pattern(r".*\.layers\.[12]\.mlp\..*".into())
            ),
            Some((16, 1.0))
        );
        assert_eq!(
            with(&|c| c.exclude_modules = Some(names(&["down_proj"]))),
            None
        );
        // rank and alpha patterns match the end of the name; rsLoRA scales by sqrt(r)
        assert_eq!(
            with(&|c| {
                c.rank_pattern = [("mlp.down_proj".into(), 4)].into();
                c.alpha_pattern = [(r"layers\.2\..*".into(), 6.0)].into();
            }),
            Some((4, 1.5))
        );
        assert_eq!(
            with(&|c| {
                c.rank_pattern = [("down".into(), 4)].into(); // not the end of a segment
                c.use_rslora = true;
            }),
            Some((16, 4.0))
        );
        assert_eq!(
            with(&|c| c.target_modules = TargetModules::Pattern("ALL-LINEAR".into())),
            Some((16, 1.0))
        );
    }

    #[test]
    fn plans_refuse_what_would_differ_from_peft() {
        let cfg: Qwen3Config = serde_json::from_str(
            r#"{"model_type": "qwen3", "vocab_size": 64, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 4}"#,
        )
        .unwrap();
        let field_of = |c: LoraConfig| match c.plan(&cfg) {
            Err(EngramError::InvalidLora { field, .. }) => field,
            other => panic!("expected a LoRA error, got {other:?}"),
        };
        for targets in [
            names(&["lm_head"]),
            names(&["q_proj", "qproj"]),
            TargetModules::Pattern(".*".into()),
            TargetModules::Pattern("(?<=x)q".into()),
        ] {
            let c = LoraConfig {
                target_modules: targets,
                ..LoraConfig::default()
            };
            assert_eq!(field_of(c), "target_modules");
        }
        let c = LoraConfig {
            layers_to_transform: Some(OneOrMany::One(5)),
            ..LoraConfig::default()
        };
        assert_eq!(field_of(c), "target_modules");
        let c = LoraConfig {
            target_modules: TargetModules::Pattern(ALL_LINEAR.into()),
            layers_to_transform: Some(OneOrMany::Many(vec![0])),
            ..LoraConfig::default()
        };
        assert_eq!(field_of(c), "layers_to_transform");
        let c = LoraConfig {
            layers_pattern: Some(OneOrMany::One("layers".into())),
            ..LoraConfig::default()
        };
        assert_eq!(field_of(c), "layers_pattern");
        let c = LoraConfig {
            rank_pattern: [("q_proj".into(), 0)].into(),
            ..LoraConfig::default()
        };
        assert_eq!(field_of(c), "rank_pattern");
        let all = LoraConfig {
            target_modules: TargetModules::Pattern(ALL_LINEAR.into()),
            ..LoraConfig::default()
        };
        assert_eq!(all.plan(&cfg).unwrap().len(), 2 * 7);
        assert_eq!(
            all.trainable_params(&cfg),
            LoraConfig::default().trainable_params(&cfg)
        );
    }
}
