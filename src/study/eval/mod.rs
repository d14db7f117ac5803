//! Evaluation: TruthfulQA MC1/MC2, and the held-out answers of a fine-tune.

pub mod answers;
pub mod truthfulqa;
