//! How well a fine-tuned model produces the held-out answers: the loss on every token (the
//! seed study's `eval_loss`), the loss and greedy accuracy on the answer tokens only, and the
//! share of rows whose greedy answer equals the reference exactly, all from one
//! teacher-forced pass.
//!
//! **Why one pass gives the greedy exact match.** Greedy decoding from the prompt reproduces
//! the reference answer (through its closing eos) if and only if, at every answer position,
//! the argmax of the model's next-token distribution *given the reference prefix* is the
//! reference token: if every teacher-forced argmax is right, each greedy step sees the
//! reference prefix and emits the reference token, up to the eos that stops it; if one is
//! wrong, the first wrong one is exactly where greedy decoding leaves the reference. A token
//! counts as the argmax when its log-prob equals the maximum (an exact tie with a lower id,
//! which [`generate_greedy`](crate::host::qwen3::generate_greedy) would pick, is the only
//! case where the two could differ); a test checks the equivalence against real greedy
//! decoding.

use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::{EngramError, Result};
use crate::io::read_f32;
use crate::memory::GateMode;
use crate::study::data::dataset::make_batch;
use crate::study::train::TrainableLm;

/// The held-out scores of one model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswerMetrics {
    /// Token-mean loss over every counted token of the rows (prompt and answer: the seed's
    /// metric, equal to [`eval_loss`](crate::study::train::eval_loss)).
    pub eval_loss: f64,
    /// Token-mean loss over the answer tokens only (the assistant's output and its closing
    /// eos).
    pub answer_loss: f64,
    /// Share of answer tokens that are the argmax of the model's prediction.
    pub answer_accuracy: f64,
    /// Share of rows whose greedy answer equals the reference (every answer token right).
    pub call_exact_match: f64,
    /// Answer tokens scored.
    pub answer_tokens: usize,
    /// Rows scored (rows whose answer was cut off entirely by truncation are left out of
    /// the answer metrics).
    pub rows: usize,
}

/// Scores `seqs` (prompt + answer token ids) whose answers start at `answer_start[i]` and end
/// at the first `eos_id` from there (inclusive; the end of the row if truncated, which then
/// cannot match exactly).
///
/// # Shapes
/// `seqs[i]` and `answer_start[i]` are host data; `micro_batch` rows go through the model at
/// a time as a padded `[B, T]` batch.
pub fn score_answers<M: TrainableLm>(
    model: &M,
    seqs: &[Vec<u32>],
    answer_start: &[usize],
    eos_id: u32,
    pad_id: u32,
    micro_batch: usize,
    device: &Device,
) -> Result<AnswerMetrics> {
    if seqs.len() != answer_start.len() {
        return Err(EngramError::BadBatch(format!(
            "{} rows but {} answer starts",
            seqs.len(),
            answer_start.len()
        )));
    }
    let model = model.valid();
    let device = &device.clone().without_autodiff();
    let (mut all_sum, mut all_n) = (0.0f64, 0usize);
    let (mut ans_sum, mut ans_n, mut ans_right) = (0.0f64, 0usize, 0usize);
    let (mut rows, mut exact) = (0usize, 0usize);
    let mb = micro_batch.max(1);
    for (chunk, starts) in seqs.chunks(mb).zip(answer_start.chunks(mb)) {
        let refs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        let batch = make_batch(&refs, pad_id)?;
        let (b, t) = (batch.batch, batch.seq_len);
        let logits = model.batch_logits(&batch, GateMode::Learned, device)?;
        let logp = log_softmax(logits.narrow(1, 0, t - 1).cast(DType::F32), 2);
        let targets: Vec<i32> = (0..b)
            .flat_map(|r| batch.ids[r * t + 1..(r + 1) * t].iter().map(|&x| x as i32))
            .collect();
        let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, t - 1, 1]), device);
        let target_logp = read_f32("target log-probs", logp.clone().gather(2, targets))?;
        // Only two numbers per position come back to the host (not the `[B, T, vocab]`
        // log-probs): the target's log-prob and the maximum.
        let best = read_f32("max log-probs", logp.max_dim(2))?;
        for (r, (seq, &start)) in chunk.iter().zip(starts).enumerate() {
            for p in 0..t - 1 {
                if batch.label_mask[r * (t - 1) + p] {
                    all_sum -= target_logp[r * (t - 1) + p] as f64;
                    all_n += 1;
                }
            }
            if start == 0 || start >= seq.len() {
                continue; // no prompt, or the answer was cut off
            }
            let end = seq[start..]
                .iter()
                .position(|&id| id == eos_id)
                .map(|i| start + i + 1);
            let stop = end.unwrap_or(seq.len());
            let mut all_right = end.is_some();
            for pos in start..stop {
                let k = r * (t - 1) + pos - 1; // the prediction of token `pos`
                ans_sum -= target_logp[k] as f64;
                ans_n += 1;
                if target_logp[k] >= best[k] {
                    ans_right += 1;
                } else {
                    all_right = false;
                }
            }
            rows += 1;
            exact += usize::from(all_right);
        }
    }
    if all_n == 0 || ans_n == 0 {
        return Err(EngramError::BadBatch(
            "the eval rows have no loss tokens or no answer tokens".into(),
        ));
    }
    Ok(AnswerMetrics {
        eval_loss: all_sum / all_n as f64,
        answer_loss: ans_sum / ans_n as f64,
        answer_accuracy: ans_right as f64 / ans_n as f64,
        call_exact_match: exact as f64 / rows as f64,
        answer_tokens: ans_n,
        rows,
    })
}
