//! The held-out answer metrics: one teacher-forced pass gives exactly what greedy decoding
//! would (exact match iff every answer token is the argmax), and its all-token loss is the
//! trainer's eval loss.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use burn::tensor::{DType, Device};
use burn_engram::host::qwen3::{generate_greedy, load_qwen3};
use burn_engram::study::eval::answers::score_answers;
use burn_engram::study::train::eval_loss;
use common::fixture;

#[test]
fn exact_match_is_greedy_decoding_and_eval_loss_is_the_trainers() {
    let device = Device::default();
    let model = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    let prompts: [&[u32]; 3] = [
        &[5, 17, 42, 9, 3],
        &[100, 7, 7, 31],
        &[2, 88, 64, 12, 19, 4],
    ];
    let mut seqs = Vec::new();
    let mut starts = Vec::new();
    let mut eos = None;
    for (i, prompt) in prompts.iter().enumerate() {
        let greedy = generate_greedy(&model, prompt, 12).unwrap();
        // A stop id that greedy decoding emits after a few tokens (and not before), so the
        // model's own continuation up to it is an answer it reproduces exactly.
        let stop = *eos.get_or_insert_with(|| {
            (3..greedy.len())
                .map(|k| greedy[k])
                .find(|id| {
                    let first = greedy.iter().position(|g| g == id).unwrap();
                    first >= 3
                })
                .expect("a token that first appears after three steps")
        });
        let end = greedy.iter().position(|&g| g == stop);
        let mut answer: Vec<u32> = match end {
            Some(e) => greedy[..=e].to_vec(),
            None => greedy.clone(), // never stops: a truncated answer, which cannot match
        };
        if i == 1 && answer.len() > 2 {
            answer[1] = if answer[1] == 1 { 2 } else { 1 }; // one wrong token: no exact match
        }
        starts.push(prompt.len());
        seqs.push([prompt.to_vec(), answer].concat());
    }
    let stop = eos.unwrap();
    let m = score_answers(&model, &seqs, &starts, stop, 0, 2, &device).unwrap();
    // The reference is greedy decoding itself, checked row by row.
    let mut expect_exact = 0;
    for (seq, &s) in seqs.iter().zip(&starts) {
        let answer = &seq[s..];
        let decoded = generate_greedy(&model, &seq[..s], answer.len()).unwrap();
        let stops = answer.last() == Some(&stop) && !answer[..answer.len() - 1].contains(&stop);
        expect_exact += usize::from(decoded == answer && stops);
    }
    assert!(
        expect_exact >= 1,
        "the untouched rows are matched by construction"
    );
    assert_eq!(
        (m.call_exact_match * seqs.len() as f64).round() as usize,
        expect_exact
    );
    assert!(
        m.answer_accuracy < 1.0,
        "the altered token is not the argmax"
    );
    assert_eq!(m.rows, 3);
    let trainer = eval_loss(&model, &seqs, 0, 2, &device).unwrap();
    assert!(
        (m.eval_loss - trainer).abs() < 1e-6,
        "{} vs {trainer}",
        m.eval_loss
    );
    assert!(m.answer_loss.is_finite() && m.answer_loss > 0.0);
    assert!(score_answers(&model, &seqs, &starts[..2], stop, 0, 2, &device).is_err());
}
