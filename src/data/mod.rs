//! Training data: the study's glaive function-calling preparation.

pub mod glaive;
