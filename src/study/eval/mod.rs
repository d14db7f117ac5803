//! Evaluation: TruthfulQA MC1/MC2 (with lm-evaluation-harness's result layout), and the
//! held-out answers of a fine-tune.

pub mod answers;
pub mod lm_eval;
pub mod truthfulqa;
