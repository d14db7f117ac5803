//! Training only the added parameters: the [`Trainer`] (one [`Trainer::step`] at a time,
//! dense or sparse table updates), the [`StepLoader`] that prepares steps ahead on a worker
//! thread, schedule, loss, checkpoints.

mod checkpoint;
mod clip;
mod loader;
mod loss;
mod schedule;
mod sparse_step;
mod trainer;

pub use checkpoint::{
    CheckpointConfig, TrainerState, checkpoints, latest_checkpoint, load_checkpoint,
    save_checkpoint,
};
pub use clip::{clip_global_norm, global_grad_norm};
pub use loader::{LoaderPlan, PreparedStep, StepLoader};
pub use loss::{TrainableLm, token_loss_sum};
pub use schedule::CosineSchedule;
pub use trainer::{
    OnNonFinite, StepMetrics, StepOutcome, TableUpdate, TrainConfig, Trainer, eval_loss, train,
    train_observed,
};
