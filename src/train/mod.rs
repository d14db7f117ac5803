//! Training only the added parameters: schedule, loss, loop, checkpoints.

mod checkpoint;
mod loss;
mod schedule;
mod trainer;

pub use checkpoint::{
    CheckpointConfig, TrainerState, checkpoints, latest_checkpoint, load_checkpoint,
    save_checkpoint,
};
pub use loss::{TrainableLm, token_loss_sum};
pub use schedule::CosineSchedule;
pub use trainer::{StepMetrics, TrainConfig, eval_loss, train};
