//! Log-likelihood of continuations (the lm-evaluation-harness convention) and greedy decoding.

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use super::engram::Qwen3Engram;
use super::model::{KvCache, Qwen3ForCausalLM};
use super::tokenizer::Qwen3Tokenizer;
use crate::error::{EngramError, Result};
use crate::inject::NoInjection;
use crate::io::read_f32;
use crate::memory::EngramState;

/// A causal LM that returns per-position logits for one sequence of token ids.
pub trait CausalLm {
    /// What the model carries from one call to the next when it continues a sequence: its
    /// KV cache (and, with Engram, the [`EngramState`](crate::EngramState)).
    type Cache: Clone + Default;
    /// Logits `[T, vocab]` for `ids`, continuing `cache` when given and supported.
    fn token_logits(&self, ids: &[u32], cache: Option<&mut Self::Cache>) -> Result<Tensor<2>>;
    /// Whether a cache can be continued (then each new token costs O(1) in the length so
    /// far, apart from attention).
    fn supports_cache(&self) -> bool;
    /// The device the model lives on.
    fn device(&self) -> Device;
    /// Token ids at or above this are never generated: an Engram model reads only ids its
    /// tokenizer knows (the rows of a checkpoint's padded vocabulary have no compressed id).
    fn vocab_limit(&self) -> usize {
        usize::MAX
    }
}

fn ids_tensor(ids: &[u32], device: &Device) -> Tensor<2, Int> {
    let data: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    Tensor::from_data(TensorData::new(data, [1, ids.len()]), device)
}

fn squeeze_batch(logits: Tensor<3>) -> Tensor<2> {
    let [_, t, v] = logits.dims();
    logits.reshape([t, v])
}

impl CausalLm for Qwen3ForCausalLM {
    type Cache = KvCache;
    fn token_logits(&self, ids: &[u32], cache: Option<&mut KvCache>) -> Result<Tensor<2>> {
        self.config()
            .check_token_ids(ids.iter().map(|&i| i as i64), ids.len())?;
        let device = self.model.embed_tokens.weight.val().device();
        let out = self.forward_with(ids_tensor(ids, &device), None, cache, &NoInjection, &())?;
        Ok(squeeze_batch(out))
    }
    fn supports_cache(&self) -> bool {
        true
    }
    fn device(&self) -> Device {
        self.model.embed_tokens.weight.val().device()
    }
}

impl CausalLm for Qwen3Engram {
    type Cache = KvCache<EngramState>;
    fn token_logits(
        &self,
        ids: &[u32],
        cache: Option<&mut KvCache<EngramState>>,
    ) -> Result<Tensor<2>> {
        let raw: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        if let Some(cache) = cache {
            return Ok(squeeze_batch(self.forward_step(
                &raw,
                1,
                raw.len(),
                cache,
            )?));
        }
        let device = self.base.model.embed_tokens.weight.val().device();
        self.base
            .config()
            .check_token_ids(raw.iter().copied(), raw.len())?;
        let batch = self.engram.prepare(&raw, 1, raw.len(), &device)?;
        Ok(squeeze_batch(self.forward(
            ids_tensor(ids, &device),
            None,
            &batch,
        )?))
    }
    fn supports_cache(&self) -> bool {
        true
    }
    fn device(&self) -> Device {
        self.base.model.embed_tokens.weight.val().device()
    }
    fn vocab_limit(&self) -> usize {
        self.engram.hasher().vocab().tokenizer_vocab_size()
    }
}

/// The score of one continuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContinuationScore {
    /// Sum of the log-probabilities of the continuation tokens.
    pub logprob: f64,
    /// Number of continuation tokens.
    pub n_tokens: usize,
    /// Whether every continuation token was the argmax.
    pub is_greedy: bool,
}

/// Context tokens and continuation tokens as lm-evaluation-harness forms them: trailing
/// spaces of the context move to the continuation; the continuation's tokens are those of
/// `encode(context + continuation)` beyond `encode(context)`'s length; no special tokens.
/// An empty context is replaced by the eos token.
pub fn encode_pair(
    tok: &Qwen3Tokenizer,
    context: &str,
    continuation: &str,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let trimmed = context.trim_end();
    let moved = &context[trimmed.len()..];
    let continuation = format!("{moved}{continuation}");
    let whole = tok.encode(&format!("{trimmed}{continuation}"))?;
    let mut ctx = tok.encode(trimmed)?;
    let cont = whole.get(ctx.len()..).unwrap_or(&[]).to_vec();
    if cont.is_empty() {
        return Err(EngramError::BadBatch(format!(
            "continuation {continuation:?} adds no tokens to the context"
        )));
    }
    if ctx.is_empty() {
        ctx.push(tok.eos_id);
    }
    Ok((ctx, cont))
}

fn score_from_logits(
    logits: Tensor<2>,
    targets: &[u32],
    what: &dyn Fn() -> String,
) -> Result<ContinuationScore> {
    // logits[i] predicts targets[i]
    let [t, v] = logits.dims();
    debug_assert_eq!(t, targets.len());
    let logp = read_f32("log-probs", log_softmax(logits.cast(DType::F32), 1))?;
    let mut sum = 0.0f64;
    let mut greedy = true;
    for (i, &tgt) in targets.iter().enumerate() {
        let row = &logp[i * v..(i + 1) * v];
        let lp = row[tgt as usize];
        sum += lp as f64;
        let best = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        greedy &= lp >= best;
    }
    if !sum.is_finite() {
        // log-softmax of finite logits is finite: the model computed NaN or infinity
        let bad = logp.iter().filter(|x| !x.is_finite()).count();
        return Err(EngramError::NonFiniteLogits {
            what: what(),
            detail: format!(
                "the log-likelihood is {sum} ({bad} of {} log-probabilities are NaN or infinite): the model's weights or activations are not finite, so no score can be given",
                logp.len()
            ),
        });
    }
    Ok(ContinuationScore {
        logprob: sum,
        n_tokens: targets.len(),
        is_greedy: greedy,
    })
}

/// `continuation "..." of context "..."`, both shortened, for messages.
fn describe(context: &str, continuation: &str) -> String {
    let short = |s: &str| {
        let head: String = s.chars().take(60).collect();
        if head.len() < s.len() {
            format!("{head}...")
        } else {
            head
        }
    };
    format!(
        "continuation {:?} of context {:?}",
        short(continuation),
        short(context.rsplit('\n').next().unwrap_or(context))
    )
}

/// Scores several continuations of one context. With a model that supports it, the context
/// runs once and its KV cache is shared by every continuation; otherwise each
/// `context + continuation` runs in full. Both give the same numbers.
pub fn score_continuations<M: CausalLm>(
    model: &M,
    tok: &Qwen3Tokenizer,
    context: &str,
    continuations: &[&str],
) -> Result<Vec<ContinuationScore>> {
    let pairs = continuations
        .iter()
        .map(|c| encode_pair(tok, context, c))
        .collect::<Result<Vec<_>>>()?;
    if model.supports_cache() {
        // trailing-space handling can change the context per continuation: group by context
        let mut out = Vec::with_capacity(pairs.len());
        let mut prefix: Option<(Vec<u32>, M::Cache, Tensor<2>)> = None;
        for ((ctx, cont), text) in pairs.iter().zip(continuations) {
            if prefix.as_ref().is_none_or(|(p, _, _)| p != ctx) {
                let mut cache = M::Cache::default();
                let logits = model.token_logits(ctx, Some(&mut cache))?;
                let t = logits.dims()[0];
                let last = logits.narrow(0, t - 1, 1);
                prefix = Some((ctx.clone(), cache, last));
            }
            let (_, cache, last) = prefix.as_ref().expect("set above");
            let logits = if cont.len() > 1 {
                let mut cache = cache.clone();
                let rest = model.token_logits(&cont[..cont.len() - 1], Some(&mut cache))?;
                Tensor::cat(vec![last.clone(), rest], 0)
            } else {
                last.clone()
            };
            out.push(score_from_logits(logits, cont, &|| {
                describe(context, text)
            })?);
        }
        Ok(out)
    } else {
        pairs
            .iter()
            .zip(continuations)
            .map(|((ctx, cont), text)| {
                let mut ids = ctx.clone();
                ids.extend_from_slice(&cont[..cont.len() - 1]);
                let logits = model.token_logits(&ids, None)?;
                let n = cont.len();
                let t = logits.dims()[0];
                score_from_logits(logits.narrow(0, t - n, n), cont, &|| {
                    describe(context, text)
                })
            })
            .collect()
    }
}

/// Greedy decoding of exactly `n` new tokens after `prompt` (no eos stop; see
/// [`generate`](super::generate) for that and for sampling), with the KV cache when
/// supported, over the ids below [`CausalLm::vocab_limit`].
pub fn generate_greedy<M: CausalLm>(model: &M, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
    let out =
        super::generate::generate(model, prompt, n, &mut super::Sampler::greedy(), &[], |_| {
            Ok(())
        })?;
    Ok(out.token_ids)
}
