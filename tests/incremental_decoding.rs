//! Engram incremental decoding (KV cache + `EngramState`) against full recompute: the
//! TinyEngram fixture (its reference weights, conv taps non-zero) and the embedded base model
//! with the study's Engram configuration.
#![cfg(feature = "study")] // uses the host models

mod common;

use std::sync::Arc;

use burn::module::Param;
use burn::tensor::{DType, Device, Distribution, Int, Tensor, TensorData};
use burn_engram::host::qwen3::{
    CausalLm, KvCache, Qwen3Engram, Qwen3Tokenizer, generate_greedy, load_qwen3,
    score_continuations,
};
use burn_engram::study::{Profile, base_model_dir};
use burn_engram::{CompressedVocab, EngramState, InitOptions};
use common::{fixture, max_abs_diff};

/// The same model with full recompute for every call (the path before incremental decoding).
struct FullRecompute<'a>(&'a Qwen3Engram);

impl CausalLm for FullRecompute<'_> {
    type Cache = KvCache<EngramState>;
    fn token_logits(
        &self,
        ids: &[u32],
        _cache: Option<&mut Self::Cache>,
    ) -> burn_engram::Result<Tensor<2>> {
        self.0.token_logits(ids, None)
    }
    fn supports_cache(&self) -> bool {
        false
    }
    fn device(&self) -> Device {
        CausalLm::device(self.0)
    }
    fn vocab_limit(&self) -> usize {
        self.0.vocab_limit()
    }
}

fn host(t: Tensor<3>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Logits of `rows` (`[B, T]` raw ids) in one forward and in steps of `steps` tokens.
fn full_and_stepped(
    model: &Qwen3Engram,
    rows: &[i64],
    b: usize,
    steps: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let device = CausalLm::device(model);
    let t: usize = steps.iter().sum();
    assert_eq!(rows.len(), b * t);
    let ids = Tensor::<2, Int>::from_data(
        TensorData::new(rows.iter().map(|&i| i as i32).collect::<Vec<_>>(), [b, t]),
        &device,
    );
    let batch = model.engram.prepare(rows, b, t, &device).unwrap();
    let full = model.forward(ids, None, &batch).unwrap();
    let mut cache = KvCache::<EngramState>::new();
    let mut parts = Vec::new();
    let mut from = 0;
    for &n in steps {
        let chunk: Vec<i64> = (0..b)
            .flat_map(|r| rows[r * t + from..r * t + from + n].iter().copied())
            .collect();
        parts.push(model.forward_step(&chunk, b, n, &mut cache).unwrap());
        from += n;
    }
    assert_eq!((cache.len(), cache.memory().len()), (t, t));
    (host(full), host(Tensor::cat(parts, 1)))
}

fn conv_taps_nonzero(model: &Qwen3Engram) {
    for layer in &model.engram.layers {
        let w = layer
            .short_conv
            .weight
            .val()
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(w > 1e-3, "the test needs non-zero conv taps, max |w| = {w}");
    }
}

#[test]
fn stepped_logits_equal_full_recompute_on_the_tinyengram_fixture() {
    let device = Device::default();
    let model = Qwen3Engram::load_tinyengram(fixture("qwen3/engram"), &device, DType::F32).unwrap();
    conv_taps_nonzero(&model);
    let cfg = model.engram.config().clone();
    // longer than the conv's reach ((kernel - 1) * N = 9) and the n-grams' (N - 1 = 2)
    let t = 20;
    let rows: Vec<i64> = (0..2 * t as i64).map(|i| (i * 37 + 11) % 400).collect();
    for steps in [vec![20], vec![1; 20], vec![5, 1, 1, 1, 12], vec![2, 9, 9]] {
        let (full, stepped) = full_and_stepped(&model, &rows, 2, &steps);
        let d = max_abs_diff(&full, &stepped);
        eprintln!("steps {steps:?}: max abs logit diff {d:e}");
        assert!(d < 1e-5, "steps {steps:?}: {d}");
    }
    assert_eq!((cfg.max_ngram_size, cfg.kernel_size), (3, 4));
}

#[test]
fn greedy_tokens_and_scores_equal_full_recompute() {
    let device = Device::default();
    let model = Qwen3Engram::load_tinyengram(fixture("qwen3/engram"), &device, DType::F32).unwrap();
    let prompt: Vec<u32> = vec![5, 17, 300, 42, 9];
    let cached = generate_greedy(&model, &prompt, 24).unwrap();
    assert!(
        cached.iter().all(|&i| (i as usize) < model.vocab_limit()),
        "{cached:?}"
    );
    let full = generate_greedy(&FullRecompute(&model), &prompt, 24).unwrap();
    assert_eq!(cached, full);

    let tok = Qwen3Tokenizer::from_dir(fixture("qwen3/engram")).unwrap();
    let (context, choices) = (
        "The quick brown fox jumps over the",
        [" lazy dog", " fox", " quick brown"],
    );
    let a = score_continuations(&model, &tok, context, &choices).unwrap();
    let b = score_continuations(&FullRecompute(&model), &tok, context, &choices).unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x.logprob - y.logprob).abs() < 1e-4, "{x:?} vs {y:?}");
        assert_eq!((x.n_tokens, x.is_greedy), (y.n_tokens, y.is_greedy));
    }
}

#[test]
fn stepped_logits_equal_full_recompute_on_the_embedded_model() {
    let device = Device::default();
    let dir = base_model_dir();
    let tok = Qwen3Tokenizer::from_dir(&dir).unwrap();
    let base = load_qwen3(&dir, &device, DType::F32).unwrap();
    let cfg = Profile::Miniature.defaults(tok.pad_id).engram;
    let vocab = Arc::new(CompressedVocab::from_tokenizer(&tok.inner).unwrap());
    let mut model = Qwen3Engram::new(base, &cfg, vocab, InitOptions::default(), &device).unwrap();
    device.seed(11);
    // trained-like conv taps and values (fresh ones start at zero or near it)
    for layer in &mut model.engram.layers {
        let [c, k] = layer.short_conv.weight.dims();
        layer.short_conv.weight = Param::from_tensor(Tensor::random(
            [c, k],
            Distribution::Normal(0.0, 0.5),
            &device,
        ));
        let rows = layer.multi_head_embedding.weight.dims();
        layer.multi_head_embedding.weight = Param::from_tensor(Tensor::random(
            rows,
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
    }
    conv_taps_nonzero(&model);
    let text = "Q: What is the capital of France?\nA: The capital of France is Paris.";
    let ids: Vec<i64> = tok
        .encode(text)
        .unwrap()
        .iter()
        .map(|&i| i as i64)
        .collect();
    let t = ids.len();
    assert!(t > 15, "{t} tokens");
    let mut steps = vec![6];
    steps.extend(std::iter::repeat_n(1, t - 6));
    let (full, stepped) = full_and_stepped(&model, &ids, 1, &steps);
    let d = max_abs_diff(&full, &stepped);
    let scale = full.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    eprintln!("embedded model: max abs logit diff {d:e}, largest logit {scale}");
    // f32 reassociation only: a step multiplies [1, D] rows where the full forward runs
    // [T, D] blocks, so the differences are a few ulps of the largest logits
    assert!(d / scale < 1e-6, "{d} of {scale}");
    let prompt: Vec<u32> = ids[..8].iter().map(|&i| i as u32).collect();
    assert_eq!(
        generate_greedy(&model, &prompt, 16).unwrap(),
        generate_greedy(&FullRecompute(&model), &prompt, 16).unwrap()
    );
}

#[test]
fn misuse_of_the_decoding_state_is_a_clear_error() {
    let device = Device::default();
    let model = Qwen3Engram::load_tinyengram(fixture("qwen3/engram"), &device, DType::F32).unwrap();
    let mut cache = KvCache::<EngramState>::new();
    model.forward_step(&[1, 2, 3, 4], 2, 2, &mut cache).unwrap();
    // a batch from `prepare` (no history) cannot continue a cache
    let fresh = model.engram.prepare(&[5, 6], 2, 1, &device).unwrap();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![5, 6], [2, 1]), &device);
    let err = model
        .base
        .forward_with(ids, None, Some(&mut cache.clone()), &model.engram, &fresh)
        .unwrap_err()
        .to_string();
    assert!(err.contains("prepare_step"), "{err}");
    // another batch size
    let err = model
        .forward_step(&[5, 6, 7], 3, 1, &mut cache.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds 2 sequences"), "{err}");
    // a step prepared but not run through the layers
    let mut state = cache.memory().clone();
    model
        .engram
        .prepare_step(&mut state, &[5, 6], 2, 1, &device)
        .unwrap();
    let err = model
        .engram
        .prepare_step(&mut state, &[7, 8], 2, 1, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("every Engram layer must run"), "{err}");
}
