//! How fresh Engram weights start, and the host-side weight bundle every constructor goes
//! through (initialization and checkpoint loading alike).

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Which initialization a fresh Engram layer gets.
///
/// * [`EngramInit::TinyEngram`] (the default): what the published TinyEngram runs actually
///   started from. Their module zero-inits the conv, but HF `from_pretrained` re-initializes
///   every weight missing from the checkpoint: Linear, conv and embedding weights
///   N(0, 0.02), biases 0, norm weights 1. It is the default because reproducing the study
///   is this crate's first job.
/// * [`EngramInit::Paper`]: as the Engram paper describes: the same, but the short-conv
///   weight is 0, so at step 0 the conv branch adds nothing and the layer is the gated value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngramInit {
    /// Normal(0, std) everywhere, conv included (the published runs).
    #[default]
    TinyEngram,
    /// Normal(0, std), conv weight zero (the paper).
    Paper,
}

/// Initialization options: scheme, standard deviation and seed (host-side RNG, so the same
/// seed gives the same weights on every device).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitOptions {
    /// The scheme.
    pub scheme: EngramInit,
    /// Standard deviation of the normal weights (HF's `initializer_range`, 0.02 for Qwen3).
    pub std: f32,
    /// Seed of the host-side RNG.
    pub seed: u64,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            scheme: EngramInit::TinyEngram,
            std: 0.02,
            seed: 0,
        }
    }
}

/// Shapes of one Engram layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerDims {
    pub table_rows: usize,
    pub head_dim: usize,
    pub engram_hidden: usize,
    pub hidden: usize,
    pub groups: usize,
    pub kernel: usize,
}

impl LayerDims {
    pub fn channels(&self) -> usize {
        self.hidden * self.groups
    }
}

/// One layer's weights on the host, in Burn layouts: Linear weights `[in, out]`, conv weight
/// `[channels, kernel]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LayerWeights {
    pub embedding: Vec<f32>,
    pub key_weight: Vec<Vec<f32>>,
    pub key_bias: Vec<Vec<f32>>,
    pub norm1: Vec<Vec<f32>>,
    pub norm2: Vec<Vec<f32>>,
    pub value_weight: Vec<f32>,
    pub value_bias: Vec<f32>,
    pub conv_norms: Vec<Vec<f32>>,
    pub conv_weight: Vec<f32>,
}

impl LayerWeights {
    /// No values yet, `groups` groups: what loading fills in.
    pub fn empty(groups: usize) -> Self {
        let per_group = || vec![Vec::new(); groups];
        Self {
            embedding: Vec::new(),
            key_weight: per_group(),
            key_bias: per_group(),
            norm1: per_group(),
            norm2: per_group(),
            value_weight: Vec::new(),
            value_bias: Vec::new(),
            conv_norms: per_group(),
            conv_weight: Vec::new(),
        }
    }

    pub fn init(dims: &LayerDims, opts: &InitOptions, layer_id: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(
            opts.seed ^ (layer_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let normal = Normal::new(0.0f32, opts.std.max(0.0)).expect("finite std");
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| normal.sample(&mut rng)).collect() };
        let g = dims.groups;
        let lin = dims.engram_hidden * dims.hidden;
        let embedding = draw(dims.table_rows * dims.head_dim);
        let key_weight = (0..g).map(|_| draw(lin)).collect();
        let value_weight = draw(lin);
        let conv_weight = match opts.scheme {
            EngramInit::TinyEngram => draw(dims.channels() * dims.kernel),
            EngramInit::Paper => vec![0.0; dims.channels() * dims.kernel],
        };
        let ones = |n: usize| vec![vec![1.0f32; n]; g];
        Self {
            embedding,
            key_weight,
            key_bias: vec![vec![0.0; dims.hidden]; g],
            norm1: ones(dims.hidden),
            norm2: ones(dims.hidden),
            value_weight,
            value_bias: vec![0.0; dims.hidden],
            conv_norms: ones(dims.hidden),
            conv_weight,
        }
    }
}
