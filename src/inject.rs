//! The injection trait: how a transformer takes memory into its residual stream.
//!
//! A host model calls [`ResidualInjector::inject`] once before each of its blocks. Where the
//! injector has memory for that block, the residual stream gains it (`h + memory(h, batch)`);
//! everywhere else `h` passes unchanged. The host stays generic over the injector, so the
//! same model runs with Engram ([`EngramLayers`]) or without ([`NoInjection`]).

use burn::tensor::Tensor;

use crate::error::Result;
use crate::memory::{EngramBatch, EngramLayers, EngramState};

/// Something that adds memory to a transformer's residual stream before chosen blocks.
///
/// [`inject`](Self::inject) runs a whole sequence; [`inject_step`](Self::inject_step) runs
/// the new positions of an incremental decode (beside a KV cache), carrying
/// [`State`](Self::State) from one step to the next. An injector whose update at a position
/// reads only that position has `type State = ()` and `inject_step` calls `inject`.
///
/// ```
/// use burn::tensor::Tensor;
/// use burn_engram::{ResidualInjector, Result};
///
/// /// A user's own stack of blocks, generic over the injector.
/// fn run_blocks<I: ResidualInjector>(
///     blocks: &[fn(Tensor<3>) -> Tensor<3>],
///     memory: &I,
///     batch: &I::Batch,
///     mut x: Tensor<3>,
/// ) -> Result<Tensor<3>> {
///     for (i, block) in blocks.iter().enumerate() {
///         x = memory.inject(i, x, batch)?; // identity where block i has no memory
///         x = block(x);
///     }
///     Ok(x)
/// }
/// # let device = Default::default();
/// # let x = Tensor::<3>::ones([1, 2, 4], &device);
/// # let y = run_blocks(&[|t| t * 2.0], &burn_engram::NoInjection, &(), x).unwrap();
/// # assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), vec![2.0; 8]);
/// ```
pub trait ResidualInjector {
    /// What the injector reads per batch besides the hidden states (for Engram: the hash
    /// rows and the gate mode, prepared on the host by the data loader).
    type Batch;

    /// What incremental decoding carries between steps (for Engram: the last tokens of the
    /// n-grams and the short conv's history, [`EngramState`]); start from `Default`.
    type State: Clone + std::fmt::Debug + Default;

    /// Whether block `layer` (0-based) receives memory.
    fn injects_at(&self, layer: usize) -> bool;

    /// `hidden: [B, T, D]` before block `layer` -> the residual stream that block should see.
    fn inject(&self, layer: usize, hidden: Tensor<3>, batch: &Self::Batch) -> Result<Tensor<3>>;

    /// [`inject`](Self::inject) for the new positions `hidden: [B, T, D]` of sequences that
    /// `state` has seen so far, advancing `state`: a sequence run in steps gives what one
    /// `inject` of the whole gives.
    fn inject_step(
        &self,
        layer: usize,
        hidden: Tensor<3>,
        batch: &Self::Batch,
        state: &mut Self::State,
    ) -> Result<Tensor<3>>;
}

/// The injector that adds nothing: the plain model. A Burn [`Module`](burn::module::Module)
/// without parameters, so a model with a `memory: M` field (`M: Module + ResidualInjector`)
/// can be built with it as well as with [`EngramLayers`].
///
/// ```
/// use burn::module::Module;
/// use burn::nn::{Linear, LinearConfig};
///
/// #[derive(Module, Debug)]
/// struct Model<M: Module> {
///     head: Linear,
///     memory: M,
/// }
///
/// let device = Default::default();
/// let plain = Model { head: LinearConfig::new(2, 2).init(&device), memory: burn_engram::NoInjection };
/// assert_eq!(plain.num_params(), 6); // the head's 4 weights and 2 biases, nothing else
/// ```
#[derive(burn::module::Module, Debug, Copy, Default)]
pub struct NoInjection;

impl ResidualInjector for NoInjection {
    type Batch = ();
    type State = ();

    fn injects_at(&self, _layer: usize) -> bool {
        false
    }

    fn inject(&self, _layer: usize, hidden: Tensor<3>, _batch: &()) -> Result<Tensor<3>> {
        Ok(hidden)
    }

    fn inject_step(
        &self,
        _layer: usize,
        hidden: Tensor<3>,
        _batch: &(),
        _state: &mut (),
    ) -> Result<Tensor<3>> {
        Ok(hidden)
    }
}

impl ResidualInjector for EngramLayers {
    type Batch = EngramBatch;
    type State = EngramState;

    fn injects_at(&self, layer: usize) -> bool {
        self.layer(layer).is_some()
    }

    fn inject(&self, layer: usize, hidden: Tensor<3>, batch: &EngramBatch) -> Result<Tensor<3>> {
        EngramLayers::inject(self, layer, hidden, batch)
    }

    fn inject_step(
        &self,
        layer: usize,
        hidden: Tensor<3>,
        batch: &EngramBatch,
        state: &mut EngramState,
    ) -> Result<Tensor<3>> {
        EngramLayers::inject_step(self, layer, hidden, batch, state)
    }
}
