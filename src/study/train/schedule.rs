//! The learning-rate schedule of the study: linear warm-up then cosine decay to 0
//! (transformers' `get_cosine_schedule_with_warmup`, half a cycle).

/// Cosine schedule with warm-up over `total_steps` optimizer steps.
///
/// ```
/// use burn_engram::study::train::CosineSchedule;
/// let s = CosineSchedule::new(100, 0.03); // warm-up = ceil(3.0) = 3 steps
/// assert_eq!(s.warmup_steps, 3);
/// assert_eq!(s.factor(0), 0.0);
/// assert!((s.factor(3) - 1.0).abs() < 1e-12);
/// assert!(s.factor(99) < 0.001);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineSchedule {
    /// Steps of linear warm-up (`ceil(total * warmup_ratio)`, as transformers computes it).
    pub warmup_steps: usize,
    /// Optimizer steps in the whole run.
    pub total_steps: usize,
}

impl CosineSchedule {
    /// A schedule for `total_steps` with `warmup_ratio` of them warming up.
    pub fn new(total_steps: usize, warmup_ratio: f64) -> Self {
        Self {
            warmup_steps: (total_steps as f64 * warmup_ratio).ceil() as usize,
            total_steps,
        }
    }

    /// The multiplier of the base learning rate at optimizer step `step` (0-based).
    pub fn factor(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        let progress = (step - self.warmup_steps) as f64
            / (self.total_steps.saturating_sub(self.warmup_steps)).max(1) as f64;
        (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
    }
}
