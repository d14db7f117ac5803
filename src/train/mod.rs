//! Training only the added parameters: schedule, loss, loop.

mod loss;
mod schedule;
mod trainer;

pub use loss::{TrainableLm, token_loss_sum};
pub use schedule::CosineSchedule;
pub use trainer::{StepMetrics, TrainConfig, eval_loss, train};
