//! Text generation: greedy or sampled decoding with the KV cache (and, with Engram, its
//! decoding state), settings from `generation_config.json`, stopping at any eos id.

use std::path::Path;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use super::score::CausalLm;
use super::tokenizer::Qwen3Tokenizer;
use crate::error::{EngramError, Result};
use crate::io::read_f32;

/// The decoding settings of a model folder's `generation_config.json` that generation reads
/// (other fields are ignored). Missing fields take transformers' `GenerationConfig` defaults:
/// greedy, temperature 1, top-k 50, top-p 1, no eos.
///
/// ```
/// use burn_engram::host::qwen3::GenerationConfig;
/// // Qwen3-0.6B's file
/// let cfg: GenerationConfig = serde_json::from_str(r#"{"bos_token_id": 151643, "do_sample": true,
///     "eos_token_id": [151645, 151643], "pad_token_id": 151643, "temperature": 0.6,
///     "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"}"#).unwrap();
/// assert_eq!(cfg.eos_token_id, vec![151645, 151643]);
/// assert!(cfg.do_sample && cfg.top_k == 20);
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// Sample (true) or take the argmax (false).
    pub do_sample: bool,
    /// Logits are divided by it before sampling.
    pub temperature: f64,
    /// Sample among the k most likely tokens (0: all).
    pub top_k: usize,
    /// Sample among the smallest set of tokens whose probability reaches p.
    pub top_p: f64,
    /// Generation stops after any of these (one id or a list in the file).
    #[serde(deserialize_with = "one_or_many")]
    pub eos_token_id: Vec<u32>,
    /// The file's limit on new tokens, if it sets one.
    pub max_new_tokens: Option<usize>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            do_sample: false,
            temperature: 1.0,
            top_k: 50,
            top_p: 1.0,
            eos_token_id: Vec::new(),
            max_new_tokens: None,
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ids {
        One(u32),
        Many(Vec<u32>),
        None(()),
    }
    Ok(match Ids::deserialize(d)? {
        Ids::One(i) => vec![i],
        Ids::Many(v) => v,
        Ids::None(()) => Vec::new(),
    })
}

impl GenerationConfig {
    /// `dir/generation_config.json`, or the defaults when the folder has none.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join("generation_config.json");
        if !path.is_file() {
            return Ok(Self::default());
        }
        let cfg: Self = crate::io::read_json(&path)?;
        cfg.validate()
            .map_err(|r| EngramError::bad_file(&path, r))?;
        Ok(cfg)
    }

    /// Settings given on a command line laid over these: `greedy` turns sampling off; any of
    /// `temperature`, `top_p`, `top_k` replaces the value and turns sampling on.
    pub fn with_overrides(
        mut self,
        greedy: bool,
        temperature: Option<f64>,
        top_p: Option<f64>,
        top_k: Option<usize>,
    ) -> Self {
        let sampling = temperature.is_some() || top_p.is_some() || top_k.is_some();
        self.do_sample = !greedy && (self.do_sample || sampling);
        self.temperature = temperature.unwrap_or(self.temperature);
        self.top_p = top_p.unwrap_or(self.top_p);
        self.top_k = top_k.unwrap_or(self.top_k);
        self
    }

    /// The eos ids, or the tokenizer's `<|endoftext|>` and `<|im_end|>` when the file names
    /// none.
    pub fn with_default_eos(mut self, tok: &Qwen3Tokenizer) -> Self {
        if self.eos_token_id.is_empty() {
            self.eos_token_id = vec![tok.eos_id, tok.im_end_id];
        }
        self
    }

    /// One line for a log: `greedy`, or the sampling settings.
    pub fn describe(&self) -> String {
        if self.do_sample {
            format!(
                "sampling (temperature {}, top-k {}, top-p {})",
                self.temperature, self.top_k, self.top_p
            )
        } else {
            "greedy".into()
        }
    }

    /// Checks the sampling settings (temperature > 0, top-p in (0, 1]).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.do_sample && !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(format!(
                "temperature {} must be > 0 to sample",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        Ok(())
    }
}

/// Picks the next token from a row of logits: the argmax, or a draw after temperature,
/// top-k and top-p (in that order, as transformers' logits warpers), seeded.
#[derive(Debug, Clone)]
pub struct Sampler {
    config: GenerationConfig,
    rng: StdRng,
}

impl Sampler {
    /// A sampler for `config`, drawing from a generator seeded with `seed`.
    pub fn new(config: GenerationConfig, seed: u64) -> Result<Self> {
        config
            .validate()
            .map_err(|r| EngramError::config("generation", r))?;
        Ok(Self {
            config,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self::new(GenerationConfig::default(), 0).expect("the defaults are valid")
    }

    /// The next token among the first `logits.len()` ids. NaN logits are an error.
    pub fn pick(&mut self, logits: &[f32]) -> Result<u32> {
        if let Some(i) = logits.iter().position(|x| x.is_nan()) {
            return Err(EngramError::NonFiniteLogits {
                what: "the next token".into(),
                detail: format!("logit {i} is NaN"),
            });
        }
        let argmax = || {
            logits
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv { (i, v) } else { (bi, bv) }
                })
                .0 as u32
        };
        if !self.config.do_sample {
            return Ok(argmax());
        }
        let t = self.config.temperature;
        let mut cand: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l as f64 / t))
            .collect();
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if self.config.top_k > 0 {
            cand.truncate(self.config.top_k);
        }
        let max = cand[0].1;
        let mut probs: Vec<f64> = cand.iter().map(|(_, l)| (l - max).exp()).collect();
        let sum: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= sum);
        // top-p keeps the smallest prefix whose mass reaches p (at least one token)
        let mut mass = 0.0;
        let keep = probs
            .iter()
            .position(|p| {
                mass += p;
                mass >= self.config.top_p
            })
            .map_or(probs.len(), |i| i + 1);
        let total: f64 = probs[..keep].iter().sum();
        let mut u = self.rng.random::<f64>() * total;
        for (i, p) in probs[..keep].iter().enumerate() {
            u -= p;
            if u <= 0.0 {
                return Ok(cand[i].0);
            }
        }
        Ok(cand[keep - 1].0)
    }
}

/// Text of the tokens so far, handed out as it becomes whole (transformers' `TextStreamer`):
/// each [`push`](Self::push) returns the text the ids decode to beyond what was returned
/// before, or nothing while the last character is still incomplete (a character can span
/// tokens).
///
/// ```no_run
/// # use burn_engram::host::qwen3::{Qwen3Tokenizer, TextStreamer};
/// # let tok = Qwen3Tokenizer::from_dir("Qwen3-0.6B")?;
/// let mut stream = TextStreamer::new(&tok);
/// for id in [9707, 11, 1879] {
///     if let Some(text) = stream.push(id)? {
///         print!("{text}");
///     }
/// }
/// print!("{}", stream.finish()?);
/// # Ok::<(), burn_engram::EngramError>(())
/// ```
pub struct TextStreamer<'a> {
    tok: &'a Qwen3Tokenizer,
    ids: Vec<u32>,
    shown: usize,
}

impl<'a> TextStreamer<'a> {
    /// An empty stream.
    pub fn new(tok: &'a Qwen3Tokenizer) -> Self {
        Self {
            tok,
            ids: Vec::new(),
            shown: 0,
        }
    }

    /// Adds a token; the new whole text, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let text = self.tok.decode(&self.ids)?;
        if text.len() > self.shown && !text.ends_with('\u{fffd}') {
            let new = text[self.shown..].to_string();
            self.shown = text.len();
            return Ok(Some(new));
        }
        Ok(None)
    }

    /// What is left to show (an incomplete last character as U+FFFD).
    pub fn finish(&mut self) -> Result<String> {
        let text = self.tok.decode(&self.ids)?;
        let rest = text.get(self.shown..).unwrap_or_default().to_string();
        self.shown = text.len();
        Ok(rest)
    }
}

/// What [`generate`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The new token ids (the eos id that stopped generation included, as transformers).
    pub token_ids: Vec<u32>,
    /// Whether an eos id stopped generation (otherwise the limit did).
    pub stopped_at_eos: bool,
    /// Seconds of the prompt's forward.
    pub prefill_s: f64,
    /// Seconds of the forwards of the tokens after the first.
    pub decode_s: f64,
}

impl Generation {
    /// New tokens per second of decoding (after the first token, which the prefill gives).
    pub fn tokens_per_s(&self) -> Option<f64> {
        let n = self.token_ids.len().saturating_sub(1);
        (n > 0 && self.decode_s > 0.0).then(|| n as f64 / self.decode_s)
    }
}

/// Generates up to `max_new` tokens after `prompt`, continuing the model's cache (one forward
/// of one token per new token when the model supports a cache, a full recompute otherwise),
/// among the ids below [`CausalLm::vocab_limit`]; stops after any id in `eos`. `on_token` sees
/// each new id as it is chosen (for streaming).
pub fn generate<M: CausalLm>(
    model: &M,
    prompt: &[u32],
    max_new: usize,
    sampler: &mut Sampler,
    eos: &[u32],
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Generation> {
    if prompt.is_empty() {
        return Err(EngramError::BadBatch("the prompt has no tokens".into()));
    }
    let limit = model.vocab_limit();
    let mut next_of = |logits: burn::Tensor<2>| -> Result<u32> {
        let t = logits.dims()[0];
        let row = read_f32("logits", logits.narrow(0, t - 1, 1))?;
        sampler.pick(&row[..row.len().min(limit)])
    };
    let mut out = Generation {
        token_ids: Vec::with_capacity(max_new),
        stopped_at_eos: false,
        prefill_s: 0.0,
        decode_s: 0.0,
    };
    if max_new == 0 {
        return Ok(out);
    }
    let cached = model.supports_cache();
    let mut cache = M::Cache::default();
    let mut ids = prompt.to_vec();
    let t0 = Instant::now();
    let mut next = next_of(model.token_logits(prompt, cached.then_some(&mut cache))?)?;
    out.prefill_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    loop {
        out.token_ids.push(next);
        on_token(next)?;
        if eos.contains(&next) {
            out.stopped_at_eos = true;
            break;
        }
        if out.token_ids.len() == max_new {
            break;
        }
        let logits = if cached {
            model.token_logits(&[next], Some(&mut cache))?
        } else {
            ids.push(next);
            model.token_logits(&ids, None)?
        };
        next = next_of(logits)?;
    }
    out.decode_s = t0.elapsed().as_secs_f64();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(top_k: usize, top_p: f64, temperature: f64) -> Sampler {
        let cfg = GenerationConfig {
            do_sample: true,
            top_k,
            top_p,
            temperature,
            ..GenerationConfig::default()
        };
        Sampler::new(cfg, 7).unwrap()
    }

    #[test]
    fn top_k_and_top_p_restrict_the_draws() {
        let logits = [0.0, 3.0, 2.9, -1.0, 1.0];
        let mut s = sampler(2, 1.0, 1.0);
        let draws: Vec<u32> = (0..200).map(|_| s.pick(&logits).unwrap()).collect();
        assert!(draws.iter().all(|&d| d == 1 || d == 2), "top-k 2");
        assert!(draws.contains(&1) && draws.contains(&2));
        // p(1) = 0.46 of the mass over all five: top-p 0.4 keeps token 1 alone
        let mut s = sampler(0, 0.4, 1.0);
        assert!((0..50).all(|_| s.pick(&logits).unwrap() == 1));
        // a low temperature makes the draw the argmax in practice
        let mut s = sampler(0, 1.0, 1e-3);
        assert!((0..50).all(|_| s.pick(&logits).unwrap() == 1));
        // seeded: the same draws again
        let (mut a, mut b) = (sampler(0, 1.0, 1.0), sampler(0, 1.0, 1.0));
        let (x, y): (Vec<u32>, Vec<u32>) = (0..30)
            .map(|_| (a.pick(&logits).unwrap(), b.pick(&logits).unwrap()))
            .unzip();
        assert_eq!(x, y);
    }

    #[test]
    fn bad_settings_and_nan_logits_are_errors() {
        let bad = GenerationConfig {
            do_sample: true,
            temperature: 0.0,
            ..GenerationConfig::default()
        };
        assert!(
            Sampler::new(bad, 0)
                .unwrap_err()
                .to_string()
                .contains("temperature")
        );
        let err = Sampler::greedy()
            .pick(&[0.0, f32::NAN])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NaN"), "{err}");
        let cfg: GenerationConfig = serde_json::from_str(r#"{"eos_token_id": 5}"#).unwrap();
        assert_eq!((cfg.eos_token_id, cfg.do_sample), (vec![5], false));
    }
}
