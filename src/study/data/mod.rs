//! Training data: the study's glaive function-calling preparation and its dataset.

pub mod dataset;
pub mod glaive;
pub mod synth_glaive;
