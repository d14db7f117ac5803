//! TruthfulQA MC1/MC2 on the tiny Qwen3 fixture against per-choice scores computed with
//! transformers the lm-evaluation-harness way (scripts/fixtures/gen_truthfulqa_fixture.py).
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use std::path::Path;

use burn::tensor::{DType, Device, Tensor};
use burn_engram::host::qwen3::{CausalLm, KvCache, Qwen3ForCausalLM, Qwen3Tokenizer, load_qwen3};
use burn_engram::study::eval::truthfulqa::{
    TRUTHFULQA_MC_REVISED, TRUTHFULQA_MC_V1, evaluate, mc1, mc2, parse_questions,
};
use common::{fixture, read_json};

/// The same model without its KV cache: every choice runs context + continuation in full.
struct NoCache(Qwen3ForCausalLM);

impl CausalLm for NoCache {
    type Cache = KvCache;
    fn token_logits(
        &self,
        ids: &[u32],
        _cache: Option<&mut KvCache>,
    ) -> burn_engram::Result<Tensor<2>> {
        self.0.token_logits(ids, None)
    }
    fn supports_cache(&self) -> bool {
        false
    }
    fn device(&self) -> Device {
        CausalLm::device(&self.0)
    }
}

#[test]
fn shipped_sets_parse() {
    let v1 = parse_questions(TRUTHFULQA_MC_V1, Path::new("truthfulqa_mc_v1.jsonl")).unwrap();
    let revised = parse_questions(TRUTHFULQA_MC_REVISED, Path::new("truthfulqa_mc.jsonl")).unwrap();
    assert_eq!((v1.len(), revised.len()), (817, 817));
    assert_ne!(v1[0].mc2_targets, revised[0].mc2_targets);
}

#[test]
fn per_choice_scores_match_transformers() {
    let want = read_json("qwen3/truthfulqa_scores.json");
    let n = want["n_questions"].as_u64().unwrap() as usize;
    let questions = parse_questions(TRUTHFULQA_MC_V1, Path::new("v1")).unwrap()[..n].to_vec();
    let device = Device::default();
    let model = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    let tok = Qwen3Tokenizer::from_dir(fixture("qwen3/tied")).unwrap();
    let mut seen = 0;
    let got = evaluate(&model, &tok, &questions, |i| seen = i).unwrap();
    assert_eq!(seen, n);
    let mut worst = 0.0f64;
    for (q, w) in got
        .questions
        .iter()
        .zip(want["questions"].as_array().unwrap())
    {
        for (key, ours) in [
            ("mc1_logprobs", &q.mc1_logprobs),
            ("mc2_logprobs", &q.mc2_logprobs),
        ] {
            let theirs: Vec<f64> = serde_json::from_value(w[key].clone()).unwrap();
            assert_eq!(ours.len(), theirs.len());
            for (a, b) in ours.iter().zip(&theirs) {
                worst = worst.max((a - b).abs());
            }
        }
    }
    eprintln!("max per-choice log-prob diff vs transformers: {worst:e}");
    assert!(worst < 1e-4, "per-choice log-probs differ by {worst}");
    assert!((got.mc1 - want["mc1"].as_f64().unwrap()).abs() < 1e-9);
    assert!((got.mc2 - want["mc2"].as_f64().unwrap()).abs() < 1e-4);

    // the shared-prefix KV cache gives the same scores as running every choice in full
    let full = evaluate(&NoCache(model), &tok, &questions[..2], |_| {}).unwrap();
    for (a, b) in full.questions.iter().zip(&got.questions) {
        for (x, y) in a.mc2_logprobs.iter().zip(&b.mc2_logprobs) {
            assert!((x - y).abs() < 1e-4, "cache {y} vs full {x}");
        }
    }
}

#[test]
fn mc_arithmetic_on_known_logprobs() {
    // MC1: the true answer (index 0) must strictly lead, ties go to the earliest choice
    assert_eq!(mc1(&[-3.0, -4.0, -5.0]), 1.0);
    assert_eq!(mc1(&[-4.0, -3.0]), 0.0);
    // MC2: normalized probability mass on the true choices
    let lp = [0.2f64.ln(), 0.3f64.ln(), 0.1f64.ln(), 0.4f64.ln()];
    assert!((mc2(&lp, &[1, 1, 0, 0]) - 0.5).abs() < 1e-12);
    assert!((mc2(&lp, &[0, 0, 0, 1]) - 0.4).abs() < 1e-12);
    // very negative log-likelihoods do not underflow to 0/0
    let far = [-1000.0, -1000.0 - 2f64.ln()];
    assert!((mc2(&far, &[1, 0]) - 2.0 / 3.0).abs() < 1e-12);
}
