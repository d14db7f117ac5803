//! A study's inputs assembled from what its command line names: the base model (embedded or
//! a Qwen3 folder), the rows (generated or a glaive export, poisoned with the study's rules),
//! the multiple-choice questions (the embedded probe or TruthfulQA MC v1) and the profile's
//! defaults with the caller's step limits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::tensor::Device;

use super::base::{PROBE_PRIMER, base_model_dir, probe_questions};
use super::data::dataset::{DataConfig, build};
use super::data::glaive::prepare;
use super::data::synth_glaive::generate_jsonl;
use super::eval::truthfulqa::{PRIMER, TRUTHFULQA_MC_V1, parse_questions};
use super::runner::StudyInputs;
use super::spec::{Defaults, Profile, RunSpec};
use crate::error::{EngramError, Result};
use crate::host::qwen3::Qwen3Tokenizer;
use crate::precision::Precision;
use crate::vocab::CompressedVocab;

/// What a study runs on; `None` fields take the embedded default.
#[derive(Debug, Clone, Default)]
pub struct StudySetup {
    /// Qwen3 folder (`None`: the embedded base model, [`base_model_dir`]).
    pub model_dir: Option<PathBuf>,
    /// Raw glaive export, JSON array or JSON lines (`None`: `rows` generated rows).
    pub data: Option<PathBuf>,
    /// Rows to generate without `data`.
    pub rows: usize,
    /// The recipe (`None`: miniature on the embedded model, published with `model_dir`).
    pub profile: Option<Profile>,
    /// Score only the first N multiple-choice questions.
    pub limit: Option<usize>,
    /// Longest training sequence (`None`: the profile's).
    pub max_len: Option<usize>,
    /// Every training run takes exactly this many steps (Hugging Face's `max_steps`).
    pub max_steps: Option<usize>,
    /// Every training run stops after this many steps of its schedule.
    pub stop_after: Option<usize>,
    /// A checkpoint every N steps (0: none).
    pub save_every: usize,
    /// Answers and probe measured every N steps (`None`: 25 miniature, 100 otherwise).
    pub probe_every: Option<usize>,
    /// Replace run folders that hold other runs.
    pub overwrite: bool,
}

/// Assembled inputs: what [`run_main`](super::run_main) and
/// [`run_ablation`](super::run_ablation) take.
pub struct Study {
    /// The shared inputs of every run.
    pub inputs: StudyInputs,
    /// The profile's defaults (with the step limits applied).
    pub defaults: Defaults,
    /// The profile used.
    pub profile: Profile,
}

impl StudySetup {
    /// Reads, poisons, tokenizes and splits the rows and loads the questions, on `device`
    /// (an autodiff device) with the backbone in `precision`. `note` gets one line per
    /// stage (row counts, split sizes).
    pub fn assemble(
        &self,
        device: Device,
        precision: Precision,
        note: &mut dyn FnMut(String),
    ) -> Result<Study> {
        let real = self.model_dir.is_some();
        let model_dir = self.model_dir.clone().unwrap_or_else(base_model_dir);
        let profile = self.profile.unwrap_or(if real {
            Profile::Published
        } else {
            Profile::Miniature
        });
        let tok = Qwen3Tokenizer::from_dir(&model_dir)?;
        let raw = match &self.data {
            Some(p) => std::fs::read_to_string(p).map_err(|e| EngramError::io(p, e))?,
            None => generate_jsonl(self.rows, 42),
        };
        let (samples, report) = prepare(&raw);
        note(format!(
            "data: {} rows read, {} kept, {} malformed, dropped {:?}",
            report.read, report.kept, report.malformed, report.dropped
        ));
        let mut defaults = profile.defaults(tok.pad_id);
        for t in [&mut defaults.engram_train, &mut defaults.lora_train] {
            t.max_steps = self.max_steps.or(t.max_steps);
            t.stop_after = self.stop_after.or(t.stop_after);
        }
        let data_cfg = DataConfig {
            max_len: self.max_len.unwrap_or(defaults.data.max_len),
            ..defaults.data
        };
        let data = build(&samples, &tok, &data_cfg)?;
        let (mut questions, primer) = if real {
            let q = parse_questions(TRUTHFULQA_MC_V1, Path::new("truthfulqa_mc_v1.jsonl"))?;
            (q, PRIMER.to_string())
        } else {
            (probe_questions()?, PROBE_PRIMER.to_string())
        };
        if let Some(n) = self.limit {
            questions.truncate(n);
        }
        note(format!(
            "{} training / {} eval sequences, {} questions, profile {profile:?}, {}",
            data.train.len(),
            data.eval.len(),
            questions.len(),
            precision.name()
        ));
        let default_probe = if profile == Profile::Miniature {
            25
        } else {
            100
        };
        let inputs = StudyInputs {
            model_dir,
            vocab: Arc::new(CompressedVocab::from_tokenizer(&tok.inner)?),
            tok,
            data,
            questions,
            primer,
            device,
            dtype: precision.dtype(),
            save_every: self.save_every,
            probe_every: self.probe_every.unwrap_or(default_probe),
            overwrite: self.overwrite,
        };
        Ok(Study {
            inputs,
            defaults,
            profile,
        })
    }
}

/// The runs of the main comparison named in `names` (a subset of base, lora, engram), in
/// the comparison's order; an unknown name is an error naming it.
pub fn select_main_runs(names: &[String]) -> Result<Vec<RunSpec>> {
    let mut specs = super::main_runs();
    if let Some(m) = names.iter().find(|m| !specs.iter().any(|s| s.name == **m)) {
        return Err(EngramError::InvalidStudy {
            field: "main".into(),
            reason: format!("{m:?} is not one of base, lora, engram"),
        });
    }
    specs.retain(|s| names.contains(&s.name));
    Ok(specs)
}
