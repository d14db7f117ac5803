//! The gate schedule of TinyEngram: the gate forced open while the memory warms up, then held
//! above a floor for a while. Driven by a step the caller passes in: no global state.

use serde::{Deserialize, Serialize};

/// How the gate of every Engram layer behaves for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum GateMode {
    /// The learned, context-aware gate (the normal case).
    #[default]
    Learned,
    /// The gate is 1 everywhere: the memory value passes unscaled.
    ForcedOpen,
    /// The learned gate clamped from below.
    AtLeast(f32),
}

/// TinyEngram's gate schedule: while `step < warmup_steps` the gate is forced to 1; for the
/// next `soft_constraint_steps` steps it is clamped to at least `soft_min`; then it is free.
/// Both lengths were 0 in the published runs (the default).
///
/// ```
/// use burn_engram::{GateMode, GateSchedule};
/// let s = GateSchedule { warmup_steps: 2, soft_constraint_steps: 3, ..Default::default() };
/// assert_eq!(s.at(1), GateMode::ForcedOpen);
/// assert_eq!(s.at(4), GateMode::AtLeast(0.1));
/// assert_eq!(s.at(5), GateMode::Learned);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateSchedule {
    /// Steps with the gate forced to 1.
    pub warmup_steps: usize,
    /// Steps after the warm-up with the gate clamped to at least `soft_min`.
    pub soft_constraint_steps: usize,
    /// The floor during the soft constraint.
    pub soft_min: f32,
}

impl Default for GateSchedule {
    fn default() -> Self {
        Self {
            warmup_steps: 0,
            soft_constraint_steps: 0,
            soft_min: 0.1,
        }
    }
}

impl GateSchedule {
    /// The gate mode at optimizer step `step` (0-based).
    pub fn at(&self, step: usize) -> GateMode {
        if step < self.warmup_steps {
            GateMode::ForcedOpen
        } else if step < self.warmup_steps + self.soft_constraint_steps {
            GateMode::AtLeast(self.soft_min)
        } else {
            GateMode::Learned
        }
    }
}
