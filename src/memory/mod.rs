//! The Engram modules (REFERENCE §1.5): memory table, gate, value, short conv, and the set of
//! layers one model carries.

#[cfg(feature = "flex")]
mod adam_in_place;
mod conv;
mod conv_silu;
mod decode;
mod embedding;
mod engram;
mod gate;
mod gather;
#[cfg(feature = "flex")]
mod gather_grad;
mod init;
mod layers;
mod lazy_adam;
mod schedule;
mod sparse;

pub use conv::ShortConv;
pub use decode::EngramState;
pub use embedding::MultiHeadEmbedding;
pub use engram::{CONV_NORM_EPS, Engram, GATE_NORM_EPS};
pub use gate::ContextGate;
pub use init::{EngramInit, InitOptions};
pub use layers::{EngramBatch, EngramLayers};
pub use lazy_adam::{LazyAdamState, LazyAdamW};
pub use schedule::{GateMode, GateSchedule};
pub use sparse::{SparseTableStates, SparseTables, TouchedRows};

pub(crate) use init::{LayerDims, LayerWeights};
