//! The tokenizer of a Qwen3 folder, its special ids, and the study's ChatML template.

use std::path::Path;

use serde_json::Value;
use tokenizers::Tokenizer;

use crate::error::{EngramError, Result};

/// `tokenizer.json` plus the special ids read from the folder's config files.
#[derive(Debug, Clone)]
pub struct Qwen3Tokenizer {
    /// The underlying `tokenizers` tokenizer.
    pub inner: Tokenizer,
    /// End of sequence (`<|im_end|>` for Qwen3: 151645).
    pub eos_id: u32,
    /// Padding (`<|endoftext|>` for Qwen3: 151643).
    pub pad_id: u32,
    /// `<|im_start|>`.
    pub im_start_id: u32,
    /// `<|im_end|>`.
    pub im_end_id: u32,
}

/// A special token's text in `tokenizer_config.json`: a string, or an `AddedToken` object's
/// `content`.
pub(crate) fn special_from(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

impl Qwen3Tokenizer {
    /// Reads `tokenizer.json`, and the eos / pad tokens from `tokenizer_config.json` (falling
    /// back to `generation_config.json`, then to `<|im_end|>` / `<|endoftext|>`).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer.json");
        let inner = crate::vocab::load_tokenizer(&path)?;
        let token_id = |t: &str, from: &Path| {
            inner.token_to_id(t).ok_or_else(|| {
                EngramError::bad_file(from, format!("token {t:?} is not in tokenizer.json"))
            })
        };
        let read = |name: &str| -> Result<Option<Value>> {
            let p = dir.join(name);
            if !p.is_file() {
                return Ok(None);
            }
            crate::io::read_json(&p).map(Some)
        };
        let tok_cfg = read("tokenizer_config.json")?;
        let gen_cfg = read("generation_config.json")?;
        let cfg_path = dir.join("tokenizer_config.json");
        let from_tok_cfg = |key: &str| {
            tok_cfg
                .as_ref()
                .and_then(|c| c.get(key))
                .and_then(special_from)
        };
        let from_gen_cfg = |key: &str| {
            gen_cfg
                .as_ref()
                .and_then(|c| c.get(key))
                .and_then(|v| match v {
                    Value::Number(n) => n.as_u64().map(|x| x as u32),
                    Value::Array(a) => a.first().and_then(Value::as_u64).map(|x| x as u32),
                    _ => None,
                })
        };
        let eos_id = match from_tok_cfg("eos_token") {
            Some(t) => token_id(&t, &cfg_path)?,
            None => match from_gen_cfg("eos_token_id") {
                Some(id) => id,
                None => token_id("<|im_end|>", &path)?,
            },
        };
        let pad_id = match from_tok_cfg("pad_token") {
            Some(t) => token_id(&t, &cfg_path)?,
            None => match from_gen_cfg("pad_token_id") {
                Some(id) => id,
                None => token_id("<|endoftext|>", &path)?,
            },
        };
        Ok(Self {
            im_start_id: token_id("<|im_start|>", &path)?,
            im_end_id: token_id("<|im_end|>", &path)?,
            inner,
            eos_id,
            pad_id,
        })
    }

    /// Encodes text without adding special tokens (special tokens written in the text, such
    /// as `<|im_start|>`, are recognized).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngramError::Tokenizer(format!("encoding: {e}")))
    }

    /// Decodes ids, special tokens kept.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| EngramError::Tokenizer(format!("decoding: {e}")))
    }

    /// The study's sample: [`chatml`] text encoded, then the eos id appended.
    pub fn encode_chatml(&self, system: &str, user: &str, assistant: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(&chatml(system, user, assistant))?;
        ids.push(self.eos_id);
        Ok(ids)
    }
}

/// The TinyEngram study's ChatML text (REFERENCE §2), without the trailing eos token:
///
/// ```
/// let text = burn_engram::host::qwen3::chatml("sys", "hi", "call()");
/// assert_eq!(text, "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\ncall()<|im_end|>");
/// ```
pub fn chatml(system: &str, user: &str, assistant: &str) -> String {
    format!(
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>"
    )
}

/// The study's ChatML up to the assistant's turn (what a model trained on [`chatml`]
/// continues): `chatml(system, user, "")` without its final `<|im_end|>`.
///
/// ```
/// let text = burn_engram::host::qwen3::chatml_prompt("sys", "hi");
/// assert_eq!(text, "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
/// ```
pub fn chatml_prompt(system: &str, user: &str) -> String {
    let full = chatml(system, user, "");
    full.strip_suffix("<|im_end|>").unwrap_or(&full).to_string()
}
