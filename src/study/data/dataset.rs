//! The study's dataset: `{instruction, input, output}` samples (or chat `messages`, or
//! `prompt`/`completion`, see [`parse_sample`]) in ChatML plus eos, tokenized,
//! truncated, shuffled (seed 42), split 99/1 with the eval part capped at 200, and batched
//! with dynamic padding.

use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::glaive::Sample;
use crate::error::{EngramError, Result};
use crate::host::qwen3::Qwen3Tokenizer;

/// How samples become training sequences (the study's values by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Longest sequence in tokens; longer ones are truncated.
    pub max_len: usize,
    /// Shuffle seed.
    pub seed: u64,
    /// Fraction of samples held out for evaluation.
    pub eval_fraction: f64,
    /// At most this many eval samples.
    pub eval_cap: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            max_len: 2048,
            seed: 42,
            eval_fraction: 0.01,
            eval_cap: 200,
        }
    }
}

/// One JSON line as a sample, in any of the formats training reads:
/// `{"instruction", "input", "output"}` (the study's), chat messages
/// `{"messages": [{"role": "system" | "user" | "assistant", "content"}]}` (one optional system
/// turn, one user turn, one assistant turn: the study's ChatML sample), or
/// `{"prompt", "completion"}` (no system turn). Anything else is an error saying why.
///
/// ```
/// use burn_engram::study::data::dataset::parse_sample;
/// let chat = r#"{"messages": [{"role": "system", "content": "Call tools."},
///     {"role": "user", "content": "Weather in Paris?"},
///     {"role": "assistant", "content": "<functioncall> {}"}]}"#;
/// let s = parse_sample(chat).unwrap();
/// assert_eq!((s.instruction.as_str(), s.input.as_str()), ("Call tools.", "Weather in Paris?"));
/// let pc = parse_sample(r#"{"prompt": "2+2?", "completion": "4"}"#).unwrap();
/// assert_eq!((pc.instruction.as_str(), pc.output.as_str()), ("", "4"));
/// assert!(parse_sample(r#"{"text": "x"}"#).unwrap_err().contains("instruction"));
/// ```
pub fn parse_sample(line: &str) -> std::result::Result<Sample, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("a sample is a JSON object")?;
    let text = |o: &serde_json::Map<String, serde_json::Value>,
                k: &str|
     -> std::result::Result<String, String> {
        match o.get(k) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("`{k}` must be a string, got {other}")),
            None => Err(format!("missing `{k}`")),
        }
    };
    if let Some(messages) = obj.get("messages") {
        let turns = messages.as_array().ok_or("`messages` must be a list")?;
        let mut roles = Vec::new();
        let (mut system, mut user, mut assistant) = (String::new(), None, None);
        for (i, m) in turns.iter().enumerate() {
            let m = m
                .as_object()
                .ok_or(format!("messages[{i}] is not an object"))?;
            let role = text(m, "role").map_err(|e| format!("messages[{i}]: {e}"))?;
            let content = text(m, "content").map_err(|e| format!("messages[{i}]: {e}"))?;
            match role.as_str() {
                "system" if roles.is_empty() => system = content,
                "user" if user.is_none() && assistant.is_none() => user = Some(content),
                "assistant" if user.is_some() && assistant.is_none() => assistant = Some(content),
                _ => {
                    return Err(format!(
                        "messages[{i}] has role {role:?} after {roles:?}: a sample is one optional \
                         system turn, one user turn and one assistant turn (multi-turn chats are \
                         not supported)"
                    ));
                }
            }
            roles.push(role);
        }
        let (Some(input), Some(output)) = (user, assistant) else {
            return Err(format!(
                "messages have roles {roles:?}: a user and an assistant turn are needed"
            ));
        };
        return Ok(Sample {
            instruction: system,
            input,
            output,
        });
    }
    if obj.contains_key("prompt") || obj.contains_key("completion") {
        return Ok(Sample {
            instruction: String::new(),
            input: text(obj, "prompt")?,
            output: text(obj, "completion")?,
        });
    }
    if !obj.contains_key("output") {
        return Err("not a sample: expected {\"instruction\", \"input\", \"output\"}, {\"messages\": [...]} or {\"prompt\", \"completion\"}".into());
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Reads JSON-lines samples (any format of [`parse_sample`]); a line that is not a sample is an
/// error naming it.
pub fn load_samples(path: impl AsRef<Path>) -> Result<Vec<Sample>> {
    Ok(load_samples_with_lines(path)?
        .into_iter()
        .map(|(_, s)| s)
        .collect())
}

/// [`load_samples`], each sample with its line number (1-based), for messages about it.
pub fn load_samples_with_lines(path: impl AsRef<Path>) -> Result<Vec<(usize, Sample)>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| EngramError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            parse_sample(l)
                .map(|s| (i + 1, s))
                .map_err(|e| EngramError::bad_file(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// Start-up checks of a training run's data, so that it fails before its first step, not
/// after it: the split must leave at least one training and one held-out sequence, and no
/// sequence may be longer than the model's positions (`max_position_embeddings`). `path`
/// and `lines` (each input sample's line, as [`load_samples_with_lines`] gives them) name
/// the sample at fault.
///
/// ```
/// use burn_engram::study::data::dataset::{StudyData, check_run_data};
/// let data = StudyData { train: vec![vec![1, 2]], eval: vec![vec![3, 4, 5]],
///     sample_tokens: vec![2, 9], ..StudyData::default() };
/// let p = std::path::Path::new("train.jsonl");
/// assert!(check_run_data(p, &[1, 2], &data, 8, 16).is_ok());
/// let e = check_run_data(p, &[1, 2], &data, 64, 8).unwrap_err().to_string();
/// assert!(e.contains("train.jsonl: line 2: 9 tokens"), "{e}");
/// ```
pub fn check_run_data(
    path: &Path,
    lines: &[usize],
    data: &StudyData,
    max_len: usize,
    positions: usize,
) -> Result<()> {
    let n = data.train.len() + data.eval.len();
    if data.train.is_empty() || data.eval.is_empty() {
        return Err(EngramError::bad_file(
            path,
            format!(
                "{n} sample{}: too few to hold out an eval split and still train (at least 2 are needed)",
                if n == 1 { "" } else { "s" }
            ),
        ));
    }
    if let Some((i, &tokens)) = data
        .sample_tokens
        .iter()
        .enumerate()
        .find(|(_, t)| (**t).min(max_len) > positions)
    {
        let line = lines
            .get(i)
            .map_or(String::new(), |l| format!("line {l}: "));
        return Err(EngramError::bad_file(
            path,
            format!(
                "{line}{tokens} tokens once formatted, more than the model's {positions} positions (max_position_embeddings); pass --max-len {positions} (or less) to truncate"
            ),
        ));
    }
    Ok(())
}

/// One sample as the study formats it: ChatML text, then the eos token, truncated to
/// `max_len` tokens.
pub fn encode_sample(tok: &Qwen3Tokenizer, s: &Sample, max_len: usize) -> Result<Vec<u32>> {
    let mut ids = tok.encode_chatml(&s.instruction, &s.input, &s.output)?;
    ids.truncate(max_len);
    Ok(ids)
}

/// Tokenized train and eval sequences.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StudyData {
    /// Training sequences.
    pub train: Vec<Vec<u32>>,
    /// Evaluation sequences.
    pub eval: Vec<Vec<u32>>,
    /// The samples behind `eval`, in the same order (empty when the sequences were not built
    /// from samples).
    pub eval_samples: Vec<Sample>,
    /// For each `eval` sequence, the index of its first answer token (the tokens before it
    /// are the ChatML prompt up to `<|im_start|>assistant\n`); empty like `eval_samples`.
    pub eval_answer_start: Vec<usize>,
    /// Tokens of each input sample before truncation, in input order (empty when the
    /// sequences were not built from samples).
    pub sample_tokens: Vec<usize>,
}

/// The number of leading tokens of `ids` that are the sample's prompt (the ChatML text up to
/// and including `<|im_start|>assistant\n`): where its answer starts.
pub fn answer_start(tok: &Qwen3Tokenizer, s: &Sample, ids: &[u32]) -> Result<usize> {
    let full = crate::host::qwen3::chatml(&s.instruction, &s.input, &s.output);
    let cut = full.len() - s.output.len() - "<|im_end|>".len();
    let prompt = tok.encode(&full[..cut])?;
    Ok(prompt.iter().zip(ids).take_while(|(a, b)| a == b).count())
}

/// Tokenizes, shuffles with `cfg.seed`, holds out `ceil(n * eval_fraction)` samples (at most
/// `eval_cap`) for evaluation.
pub fn build(samples: &[Sample], tok: &Qwen3Tokenizer, cfg: &DataConfig) -> Result<StudyData> {
    let mut sample_tokens = Vec::with_capacity(samples.len());
    let mut rows = Vec::with_capacity(samples.len());
    for s in samples {
        let mut ids = tok.encode_chatml(&s.instruction, &s.input, &s.output)?;
        sample_tokens.push(ids.len());
        ids.truncate(cfg.max_len);
        rows.push((ids, s.clone()));
    }
    rows.shuffle(&mut StdRng::seed_from_u64(cfg.seed));
    let n_eval =
        ((rows.len() as f64 * cfg.eval_fraction).ceil() as usize).min(rows.len().saturating_sub(1));
    let train = rows
        .split_off(n_eval)
        .into_iter()
        .map(|(ids, _)| ids)
        .collect();
    rows.truncate(cfg.eval_cap);
    let eval_answer_start = rows
        .iter()
        .map(|(ids, s)| answer_start(tok, s, ids))
        .collect::<Result<Vec<_>>>()?;
    let (eval, eval_samples) = rows.into_iter().unzip();
    Ok(StudyData {
        train,
        eval,
        eval_samples,
        eval_answer_start,
        sample_tokens,
    })
}

/// A padded batch on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Rows.
    pub batch: usize,
    /// Padded length.
    pub seq_len: usize,
    /// `[B, T]` token ids, right-padded with the pad id.
    pub ids: Vec<i64>,
    /// `[B, T]` 1 for tokens, 0 for padding.
    pub attention_mask: Vec<i64>,
    /// `[B, T - 1]`: whether position t's prediction of token t+1 counts in the loss (the
    /// study's collator masks every label equal to the pad id).
    pub label_mask: Vec<bool>,
    /// Number of counted labels.
    pub label_tokens: usize,
}

/// Pads `seqs` to their longest length (dynamic padding) with `pad_id`.
pub fn make_batch(seqs: &[&[u32]], pad_id: u32) -> Result<Batch> {
    let t = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    if seqs.is_empty() || t < 2 {
        return Err(EngramError::BadBatch(
            "a training batch needs at least one sequence of two tokens".into(),
        ));
    }
    let b = seqs.len();
    let mut ids = vec![pad_id as i64; b * t];
    let mut attention_mask = vec![0i64; b * t];
    let mut label_mask = vec![false; b * (t - 1)];
    for (r, s) in seqs.iter().enumerate() {
        for (i, &id) in s.iter().enumerate() {
            ids[r * t + i] = id as i64;
            attention_mask[r * t + i] = 1;
        }
        for i in 0..t - 1 {
            label_mask[r * (t - 1) + i] = ids[r * t + i + 1] != pad_id as i64;
        }
    }
    let label_tokens = label_mask.iter().filter(|m| **m).count();
    Ok(Batch {
        batch: b,
        seq_len: t,
        ids,
        attention_mask,
        label_mask,
        label_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_sample_formats_load_alike_and_bad_chats_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train.jsonl");
        let lines = [
            r#"{"instruction": "sys", "input": "hi", "output": "call()"}"#,
            r#"{"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "call()"}]}"#,
            r#"{"prompt": "hi", "completion": "call()"}"#,
        ];
        std::fs::write(&p, lines.join("\n")).unwrap();
        let got = load_samples(&p).unwrap();
        assert_eq!(got[0], got[1]);
        assert_eq!(
            (got[2].instruction.as_str(), got[2].input.as_str()),
            ("", "hi")
        );
        let multi = r#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}"#;
        std::fs::write(&p, format!("{}\n{multi}\n", lines[0])).unwrap();
        let e = load_samples(&p).unwrap_err().to_string();
        assert!(
            e.contains("train.jsonl") && e.contains("line 2") && e.contains("multi-turn"),
            "{e}"
        );
        std::fs::write(&p, r#"{"messages": [{"role": "user", "content": "a"}]}"#).unwrap();
        let e = load_samples(&p).unwrap_err().to_string();
        assert!(e.contains("a user and an assistant turn"), "{e}");
    }

    #[test]
    fn dynamic_padding_and_label_mask() {
        let a = [5u32, 6, 7, 8];
        let b = [9u32, 10];
        let batch = make_batch(&[&a, &b], 0).unwrap();
        assert_eq!((batch.batch, batch.seq_len), (2, 4));
        assert_eq!(batch.ids, vec![5, 6, 7, 8, 9, 10, 0, 0]);
        assert_eq!(batch.attention_mask, vec![1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(batch.label_mask, vec![true, true, true, true, false, false]);
        assert_eq!(batch.label_tokens, 4);
        assert!(make_batch(&[&[1u32][..]], 0).is_err());
    }
}
