//! What a study runs: one [`RunSpec`] per run (a JSON file, so users add their own), the
//! [`Profile`] whose defaults every run starts from, and ablation studies read from folders.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::data::dataset::DataConfig;
use crate::config::EngramConfig;
use crate::error::{EngramError, Result};
use crate::host::lora::LoraConfig;
use crate::io::read_json;
use crate::memory::{EngramInit, InitOptions};
use crate::study::train::TrainConfig;

/// What a run adds to the frozen base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Nothing: the base model evaluated as it is.
    Base,
    /// A LoRA adapter.
    Lora,
    /// Engram layers.
    Engram,
}

impl Method {
    /// "base", "lora" or "engram".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Lora => "lora",
            Self::Engram => "engram",
        }
    }
}

/// One run. `engram`, `lora` and `train` hold only the fields that differ from the profile's
/// defaults (they are laid over them), e.g. an ablation file:
///
/// ```
/// use burn_engram::study::{Method, Profile, RunSpec};
/// let spec: RunSpec = serde_json::from_str(r#"{"name": "late", "method": "engram",
///     "label": "layers 2,3", "engram": {"layer_ids": [2, 3]}}"#).unwrap();
/// let resolved = spec.resolve(&Profile::Miniature.defaults(151_643)).unwrap();
/// assert_eq!(resolved.engram.layer_ids, vec![2, 3]);
/// assert_eq!(resolved.engram.max_ngram_size, 4, "the rest is the profile's headline");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Folder name of the run (letters, digits, `-`, `_`).
    pub name: String,
    /// What the run adds.
    pub method: Method,
    /// Short label for tables and figures (default: the name).
    #[serde(default)]
    pub label: Option<String>,
    /// Engram fields over the profile's Engram config.
    #[serde(default)]
    pub engram: Option<Value>,
    /// LoRA fields over the profile's LoRA config.
    #[serde(default)]
    pub lora: Option<Value>,
    /// Trainer fields over the profile's settings for this method.
    #[serde(default)]
    pub train: Option<Value>,
}

/// The defaults of a profile, per method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Defaults {
    /// The Engram configuration of the headline run.
    pub engram: EngramConfig,
    /// Engram initialization scheme.
    pub engram_init: EngramInit,
    /// Trainer settings of Engram runs.
    pub engram_train: TrainConfig,
    /// The LoRA configuration.
    pub lora: LoraConfig,
    /// Trainer settings of LoRA runs.
    pub lora_train: TrainConfig,
    /// Sequence length, held-out split and shuffle seed of the data.
    pub data: DataConfig,
}

/// A run with every setting filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedRun {
    /// Folder name.
    pub name: String,
    /// Label for tables and figures.
    pub label: String,
    /// What the run adds.
    pub method: Method,
    /// Engram configuration (used by Engram runs).
    pub engram: EngramConfig,
    /// Engram initialization.
    pub engram_init: InitOptions,
    /// LoRA configuration (used by LoRA runs).
    pub lora: LoraConfig,
    /// Trainer settings.
    pub train: TrainConfig,
}

/// Which recipe the defaults follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The study scaled to the embedded base model: runs on a CPU in minutes.
    Miniature,
    /// The published TinyEngram recipe on Qwen3-0.6B (REFERENCE §2): the headline Engram
    /// config (500/100/100, N = 4, 1024 wide, 16 heads, layers 1-4) with lr 2e-5 for 7 epochs,
    /// LoRA r16 with lr 1e-5 for 5 epochs, 192 sequences per step, no clipping.
    Published,
    /// As `Published`, with the Engram paper's optimizer treatment: tables at 5x the
    /// learning rate without weight decay, and the short conv initialized to zero.
    Paper,
}

fn invalid(field: &str, reason: impl Into<String>) -> EngramError {
    EngramError::InvalidStudy {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn overlay(base: &impl Serialize, over: &Option<Value>, what: &'static str) -> Result<Value> {
    let mut v = serde_json::to_value(base)
        .map_err(|e| invalid(what, format!("cannot serialize defaults: {e}")))?;
    if let Some(over) = over {
        let Value::Object(fields) = over else {
            return Err(invalid(what, "must be a JSON object"));
        };
        let Value::Object(target) = &mut v else {
            return Err(invalid(what, "defaults are not an object"));
        };
        for (k, x) in fields {
            if !target.contains_key(k) {
                return Err(invalid(
                    &format!("{what}.{k}"),
                    "is not a field of this section",
                ));
            }
            target.insert(k.clone(), x.clone());
        }
    }
    Ok(v)
}

fn parse<T: serde::de::DeserializeOwned>(v: Value, what: &'static str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| invalid(what, e.to_string()))
}

impl RunSpec {
    /// A run with the profile's settings unchanged.
    pub fn new(name: &str, method: Method) -> Self {
        Self {
            name: name.into(),
            method,
            label: None,
            engram: None,
            lora: None,
            train: None,
        }
    }

    /// Reads a run file (JSON).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        read_json(path.as_ref())
    }

    /// Lays the run's fields over `defaults`; errors name the bad field.
    pub fn resolve(&self, defaults: &Defaults) -> Result<ResolvedRun> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "name",
                format!("{:?}: use letters, digits, '-' and '_'", self.name),
            ));
        }
        let engram: EngramConfig =
            parse(overlay(&defaults.engram, &self.engram, "engram")?, "engram")?;
        engram.validate(None)?;
        let lora: LoraConfig = parse(overlay(&defaults.lora, &self.lora, "lora")?, "lora")?;
        lora.validate()?;
        let base_train = match self.method {
            Method::Lora => &defaults.lora_train,
            _ => &defaults.engram_train,
        };
        let train: TrainConfig = parse(overlay(base_train, &self.train, "train")?, "train")?;
        Ok(ResolvedRun {
            name: self.name.clone(),
            label: self.label.clone().unwrap_or_else(|| self.name.clone()),
            method: self.method,
            engram,
            engram_init: InitOptions {
                scheme: defaults.engram_init,
                ..InitOptions::default()
            },
            lora,
            train,
        })
    }
}

impl ResolvedRun {
    /// The run's `k`-th seed (k = 0 is the run itself): the data order (`train.seed`) and the
    /// Engram initialization (`engram_init.seed`) move by `k`, LoRA's `A` is drawn from
    /// `train.seed`, and the folder name gets `-seed{k}` for k > 0.
    ///
    /// ```
    /// use burn_engram::study::{Method, Profile, RunSpec};
    /// let run = RunSpec::new("lora", Method::Lora).resolve(&Profile::Miniature.defaults(0)).unwrap();
    /// let again = run.with_seed(2);
    /// assert_eq!((again.name.as_str(), again.train.seed), ("lora-seed2", run.train.seed + 2));
    /// assert_eq!(run.with_seed(0), run);
    /// ```
    pub fn with_seed(&self, k: u64) -> Self {
        if k == 0 {
            return self.clone();
        }
        let mut run = self.clone();
        run.name = format!("{}-seed{k}", self.name);
        run.train.seed = self.train.seed.wrapping_add(k);
        run.engram_init.seed = self.engram_init.seed.wrapping_add(k);
        run
    }
}

impl std::str::FromStr for Profile {
    type Err = EngramError;

    /// `miniature`, `published` or `paper` (the names of its JSON form).
    fn from_str(s: &str) -> Result<Self> {
        serde_json::from_value(Value::String(s.to_string())).map_err(|_| {
            invalid(
                "profile",
                format!("{s:?} is not one of miniature, published, paper"),
            )
        })
    }
}

impl Profile {
    /// The profile's defaults; `pad_id` is the tokenizer's pad id (Engram pads its n-gram
    /// window with it).
    pub fn defaults(self, pad_id: u32) -> Defaults {
        let lora = LoraConfig::default();
        match self {
            Self::Miniature => Defaults {
                engram: EngramConfig {
                    engram_vocab_size: vec![500, 100, 100],
                    max_ngram_size: 4,
                    n_embed_per_ngram: 128,
                    n_head_per_ngram: 16,
                    layer_ids: vec![1, 2],
                    pad_id: pad_id as i64,
                    ..EngramConfig::default()
                },
                engram_init: EngramInit::TinyEngram,
                // Learning rates from the sweep in examples/sweeps/ (docs/EXPERIMENTS.md): the
                // lowest final eval loss, stepping back to a smaller rate within 1% of it.
                engram_train: TrainConfig {
                    lr: 4e-2,
                    epochs: 1,
                    micro_batch: 8,
                    eval_every: 25,
                    ..TrainConfig::default()
                },
                lora,
                lora_train: TrainConfig {
                    lr: 1e-2,
                    epochs: 1,
                    micro_batch: 8,
                    eval_every: 25,
                    ..TrainConfig::default()
                },
                // The miniature's rows are short (512 tokens hold them) and few: 5% held out
                // (60 rows) gives a steadier eval loss.
                data: DataConfig {
                    max_len: 512,
                    eval_fraction: 0.05,
                    ..DataConfig::default()
                },
            },
            Self::Published | Self::Paper => {
                let paper = self == Self::Paper;
                Defaults {
                    engram: EngramConfig {
                        pad_id: pad_id as i64,
                        ..EngramConfig::tinyengram_headline()
                    },
                    engram_init: if paper {
                        EngramInit::Paper
                    } else {
                        EngramInit::TinyEngram
                    },
                    engram_train: TrainConfig {
                        lr: 2e-5,
                        epochs: 7,
                        micro_batch: 8,
                        grad_accum: 24,
                        eval_every: 50,
                        table_lr_mult: if paper { 5.0 } else { 1.0 },
                        table_weight_decay: paper.then_some(0.0),
                        ..TrainConfig::default()
                    },
                    lora,
                    lora_train: TrainConfig {
                        lr: 1e-5,
                        epochs: 5,
                        micro_batch: 8,
                        grad_accum: 24,
                        eval_every: 50,
                        ..TrainConfig::default()
                    },
                    // 2048-token sequences, 1% held out (at most 200 rows), as the study.
                    data: DataConfig::default(),
                }
            }
        }
    }
}

/// An ablation study: a folder with `study.json` (`{"title": ..., "x_label": ...}`) and one
/// [`RunSpec`] file per run (`*.json`, run in file-name order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ablation {
    /// Folder name.
    #[serde(default)]
    pub name: String,
    /// Title of its table and figure.
    pub title: String,
    /// What the runs vary (the figure's x axis).
    #[serde(default)]
    pub x_label: String,
    /// The runs.
    #[serde(default)]
    pub runs: Vec<RunSpec>,
}

/// Reads every ablation folder under `dir` (sub-folders with a `study.json`), in name order.
pub fn load_ablations(dir: impl AsRef<Path>) -> Result<Vec<Ablation>> {
    let dir = dir.as_ref();
    let mut folders: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| EngramError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("study.json").is_file())
        .collect();
    folders.sort();
    let mut out = Vec::new();
    for folder in folders {
        let mut ab: Ablation = read_json(&folder.join("study.json"))?;
        ab.name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .map_err(|e| EngramError::io(&folder, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && p.file_name().is_some_and(|n| n != "study.json")
            })
            .collect();
        files.sort();
        ab.runs = files
            .iter()
            .map(RunSpec::from_file)
            .collect::<Result<Vec<_>>>()?;
        if ab.runs.is_empty() {
            return Err(EngramError::bad_file(&folder, "no run files (*.json)"));
        }
        out.push(ab);
    }
    Ok(out)
}
