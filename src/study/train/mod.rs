//! Training only the added parameters: schedule, loss, loop, checkpoints.

mod checkpoint;
mod clip;
mod loss;
mod schedule;
mod sparse_step;
mod trainer;

pub use checkpoint::{
    CheckpointConfig, TrainerState, checkpoints, latest_checkpoint, load_checkpoint,
    save_checkpoint,
};
pub use clip::{clip_global_norm, global_grad_norm};
pub use loss::{TrainableLm, token_loss_sum};
pub use schedule::CosineSchedule;
pub use trainer::{
    OnNonFinite, StepMetrics, TableUpdate, TrainConfig, eval_loss, train, train_observed,
};
