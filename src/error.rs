//! One error type for the crate. Every variant names the file, field, tensor or value at fault.

use std::path::PathBuf;

/// Everything that can go wrong in `burn-engram`, with enough context to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngramError {
    /// A configuration field holds a value the algorithm cannot use.
    #[error("invalid Engram config: `{field}` {reason}")]
    InvalidConfig {
        /// The field, as spelled in the JSON config.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A LoRA setting (from `adapter_config.json` or the flags that make one) is unusable.
    #[error("invalid LoRA config: `{field}` {reason}")]
    InvalidLora {
        /// The field, as PEFT's `adapter_config.json` spells it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A training or data setting is out of range (`TrainConfig`, `DataConfig`, a flag).
    #[error("invalid training setting: `{field}` {reason}")]
    InvalidTraining {
        /// The field, as `TrainConfig` / `DataConfig` (and their flags) spell it.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A study specification (profile, run list, ablation file) is unusable.
    #[error("invalid study: `{field}` {reason}")]
    InvalidStudy {
        /// The field or run at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A run folder cannot be used as asked: it holds another run, another process holds
    /// it, or it holds nothing to resume.
    #[error("{}: {reason}", path.display())]
    RunFolder {
        /// The run folder.
        path: PathBuf,
        /// What stops it being used, and what to do.
        reason: String,
    },
    /// A run folder's manifest records other inputs or settings than this run's.
    #[error(
        "{}: holds a run made with other inputs or settings ({}); resume it with the settings it was made with, pass --overwrite to replace it, or choose another folder",
        path.display(),
        fields.join("; ")
    )]
    ManifestMismatch {
        /// The manifest file.
        path: PathBuf,
        /// Every field that differs: `name: recorded -> now`.
        fields: Vec<String>,
    },
    /// A model produced NaN or infinite logits where a score was asked for.
    #[error("non-finite logits in {what}: {detail}")]
    NonFiniteLogits {
        /// Which scoring (question, continuation).
        what: String,
        /// What was found.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message (line and column included).
        source: serde_json::Error,
    },
    /// A chat request that cannot be rendered: bad JSON, extra keywords that are not an object.
    #[error("chat input `{what}`: {reason}")]
    InvalidChat {
        /// What was wrong (`JSON`, `kwargs`).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The `tokenizers` library failed (loading a tokenizer.json or decoding an id).
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A token id is outside the tokenizer vocabulary.
    #[error(
        "token id {id} at row {row}, position {pos} is outside the tokenizer vocabulary (size {vocab_size})"
    )]
    TokenOutOfRange {
        /// The offending id.
        id: i64,
        /// Its row in the batch.
        row: usize,
        /// Its position in the row.
        pos: usize,
        /// The size of the raw tokenizer vocabulary.
        vocab_size: usize,
    },
    /// A batch of token ids is empty or not rectangular.
    #[error("bad batch: {0}")]
    BadBatch(String),
    /// A tensor handed to a module has the wrong shape.
    #[error("shape mismatch for {what}: expected {expected}, got {got:?}")]
    ShapeMismatch {
        /// Which input.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape received.
        got: Vec<usize>,
    },
    /// A layer id that has no Engram module was asked for.
    #[error("layer {layer} has no Engram module (configured layers: {configured:?})")]
    UnknownLayer {
        /// The layer asked for.
        layer: usize,
        /// The configured layer ids.
        configured: Vec<usize>,
    },
    /// A safetensors file (weights, adapter, trainer checkpoint) holds a tensor that does not fit.
    #[error("{}: tensor `{name}`: {problem}", path.display())]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor name as stored in the file.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A safetensors file is malformed or is not what was expected.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Weights of a model folder do not fit the model its config describes.
    #[error(
        "{}: weights do not fit the config: missing {missing:?}, unexpected {unexpected:?}, mis-shaped {mismatched:?}",
        path.display()
    )]
    WeightsMismatch {
        /// The model folder.
        path: PathBuf,
        /// Tensors the model needs that no file holds.
        missing: Vec<String>,
        /// Tensors in the files that the model does not have.
        unexpected: Vec<String>,
        /// Tensors whose shape or dtype is wrong, with what was expected.
        mismatched: Vec<String>,
    },
    /// A device name that this build does not support.
    #[error(
        "device `{name}` is not available in this build; choose one of {available:?} (GPU backends need the crate feature `wgpu` or `cuda`)"
    )]
    UnknownDevice {
        /// The name asked for.
        name: String,
        /// The names this build supports.
        available: Vec<&'static str>,
    },
    /// A tensor could not be read back from the device.
    #[error("reading tensor `{what}` from the device: {reason}")]
    Readback {
        /// Which tensor.
        what: String,
        /// The backend's message.
        reason: String,
    },
    /// A compute precision that is unknown or that the device cannot compute in.
    #[error("precision `{name}`: {reason}")]
    Precision {
        /// The name asked for.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Training met a non-finite loss, gradient or parameter.
    #[error("non-finite {what} at step {step}: {detail}")]
    NonFinite {
        /// The optimizer step (1-based) that met it.
        step: usize,
        /// What was not finite: the loss, or the gradients or values of named parameters.
        what: String,
        /// The values found and the state left behind (the latest checkpoint).
        detail: String,
    },
}

/// `Result` with [`EngramError`].
pub type Result<T, E = EngramError> = std::result::Result<T, E>;

impl EngramError {
    /// An I/O error on `path` ([`EngramError::Io`]), for callers that read or write files
    /// beside the crate's own.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }

    #[cfg(feature = "host")]
    pub(crate) fn lora(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidLora {
            field,
            reason: reason.into(),
        }
    }

    #[cfg(feature = "study")]
    pub(crate) fn training(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidTraining {
            field,
            reason: reason.into(),
        }
    }

    #[cfg(feature = "study")]
    pub(crate) fn run_folder(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::RunFolder {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn tensor(
        path: impl Into<PathBuf>,
        name: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self::BadTensor {
            path: path.into(),
            name: name.into(),
            problem: problem.into(),
        }
    }
}
