//! Evaluation: TruthfulQA MC1/MC2.

pub mod truthfulqa;
