//! The trainer's sparse table path ([`TableUpdate::Sparse`]): per optimizer step, gather the
//! rows the step's micro-batches read, train them through sub-tables, apply lazy AdamW.

use burn::tensor::{Device, Gradients};

use super::TrainConfig;
use super::loss::TrainableLm;
use super::trainer::TableUpdate;
use crate::error::{EngramError, Result};
use crate::hashing::HashIds;
use crate::memory::LazyAdamW;
use crate::memory::{EngramBatch, GateMode, SparseTableStates, SparseTables};
use crate::study::data::dataset::Batch;

/// Lazy-AdamW state of the tables across steps.
pub(crate) struct SparseUpdater {
    optim: LazyAdamW,
    states: SparseTableStates,
    lr_mult: f64,
}

/// One step's sub-tables and the micro-batches that read them.
pub(crate) struct SparseStep {
    tables: SparseTables,
    batches: Vec<EngramBatch>,
}

impl SparseStep {
    /// The prepared Engram batch of micro-batch `i`.
    pub(crate) fn batch(&self, i: usize) -> &EngramBatch {
        &self.batches[i]
    }

    /// Engram layers whose table-row gradients hold NaN or infinity this step.
    pub(crate) fn non_finite_layers(&self) -> Vec<usize> {
        self.tables.non_finite_layers()
    }

    /// Adds one backward pass's sub-table gradients.
    pub(crate) fn accumulate(&mut self, grads: &Gradients) {
        self.tables.accumulate(grads);
    }
}

impl SparseUpdater {
    /// `None` for dense updates; checks that the run can use sparse ones.
    pub(crate) fn new<M: TrainableLm>(cfg: &TrainConfig, model: &M) -> Result<Option<Self>> {
        if cfg.table_update == TableUpdate::Dense {
            return Ok(None);
        }
        let refuse = |why: &str| {
            Err(EngramError::training(
                "table_update",
                format!("sparse: {why}"),
            ))
        };
        if model.engram_layers().is_none() {
            return refuse("the model has no Engram tables");
        }
        if cfg.max_grad_norm.is_some() {
            return refuse(
                "global-norm clipping would not see the table gradients; unset max_grad_norm",
            );
        }
        Ok(Some(Self {
            optim: LazyAdamW {
                beta1: cfg.beta1,
                beta2: cfg.beta2,
                eps: cfg.eps,
                weight_decay: cfg.table_weight_decay.unwrap_or(cfg.weight_decay),
            },
            states: SparseTableStates::default(),
            lr_mult: cfg.table_lr_mult,
        }))
    }

    /// The lazy-Adam state of the tables, for a checkpoint.
    pub(crate) fn states(&self) -> &SparseTableStates {
        &self.states
    }

    /// Restores the lazy-Adam state from a checkpoint.
    pub(crate) fn set_states(&mut self, states: SparseTableStates) {
        self.states = states;
    }

    /// Gathers the rows the step's micro-batches read, hashing them unless the loader did
    /// (`hashes`).
    pub(crate) fn prepare<M: TrainableLm>(
        &self,
        model: &M,
        batches: &[Batch],
        hashes: Option<&[HashIds]>,
        gate: GateMode,
        device: &Device,
    ) -> Result<SparseStep> {
        let layers = model.engram_layers().ok_or_else(|| {
            EngramError::training("table_update", "sparse: the model has no Engram tables")
        })?;
        let (tables, batches) = match hashes {
            Some(h) => layers.prepare_sparse_hashed(h, gate, device)?,
            None => {
                let micro: Vec<(&[i64], usize, usize)> = batches
                    .iter()
                    .map(|b| (b.ids.as_slice(), b.batch, b.seq_len))
                    .collect();
                layers.prepare_sparse(&micro, gate, device)?
            }
        };
        Ok(SparseStep { tables, batches })
    }

    /// Applies lazy AdamW to the touched rows (learning rate `lr * table_lr_mult`).
    pub(crate) fn apply<M: TrainableLm>(&mut self, model: M, step: SparseStep, lr: f64) -> M {
        let SparseStep { tables, batches } = step;
        drop(batches); // they hold the sub-tables too
        let lr = lr * self.lr_mult;
        model.map_engram_layers(|l| l.apply_sparse(tables, &self.optim, &mut self.states, lr))
    }
}
