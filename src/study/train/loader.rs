//! The trainer's data loader: yields each optimizer step's micro-batches, padded, with their
//! Engram hash ids computed ahead on a worker thread while the device runs the current step.
//!
//! The order is the trainer's: per epoch, the training rows shuffled with `seed + epoch`,
//! cut into steps of `micro_batch * grad_accum` rows and those into micro-batches. Steps
//! before `start_step` (done before the checkpoint a run resumes from) are passed over
//! without being built.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::Scope;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::trainer::TrainConfig;
use crate::error::Result;
use crate::hashing::{HashIds, NgramHasher};
use crate::study::data::dataset::{Batch, StudyData, make_batch};

/// One optimizer step's data.
#[derive(Debug)]
pub struct PreparedStep {
    /// The step's index (0-based: the step it becomes is `step + 1`).
    pub step: usize,
    /// The epoch it belongs to.
    pub epoch: usize,
    /// Its micro-batches.
    pub batches: Vec<Batch>,
    /// Label tokens over all micro-batches (0: the step has nothing to learn from).
    pub tokens: usize,
    /// Each micro-batch's hash ids, when the loader hashes (the model has Engram) and the
    /// ids hashed; `None` leaves hashing to the step, which then reports any bad id.
    pub hashes: Option<Vec<HashIds>>,
}

/// The steps of a run, prepared `ahead` steps in advance on a scoped worker thread.
pub struct StepLoader {
    rx: Receiver<Result<PreparedStep>>,
}

/// Where a run's steps come from and how many it takes.
#[derive(Debug, Clone, Copy)]
pub struct LoaderPlan {
    /// The first step to build (earlier ones are passed over).
    pub start_step: usize,
    /// Steps in the run.
    pub total_steps: usize,
    /// Epochs the steps span.
    pub epochs: usize,
    /// Prepared steps waiting at most (at least 1).
    pub ahead: usize,
}

impl StepLoader {
    /// Starts the worker in `scope`: it builds the steps of `plan` from `data` (padding with
    /// `pad_id`) and, with a `hasher`, hashes every micro-batch.
    pub fn spawn<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        data: &'env StudyData,
        pad_id: u32,
        cfg: &'env TrainConfig,
        hasher: Option<NgramHasher>,
        plan: LoaderPlan,
    ) -> Self {
        let (tx, rx) = sync_channel(plan.ahead.max(1));
        scope.spawn(move || {
            let per_step = cfg.micro_batch * cfg.grad_accum;
            let mut step = 0usize;
            for epoch in 0..plan.epochs {
                let mut order: Vec<usize> = (0..data.train.len()).collect();
                let mut rng = StdRng::seed_from_u64(cfg.seed.wrapping_add(epoch as u64));
                order.shuffle(&mut rng);
                for items in order.chunks(per_step) {
                    if step >= plan.total_steps {
                        return;
                    }
                    if step >= plan.start_step {
                        let prepared = prepare(data, items, pad_id, cfg, hasher.as_ref());
                        let prepared = prepared.map(|(batches, tokens, hashes)| PreparedStep {
                            step,
                            epoch,
                            batches,
                            tokens,
                            hashes,
                        });
                        if tx.send(prepared).is_err() {
                            return; // the trainer stopped
                        }
                    }
                    step += 1;
                }
            }
        });
        Self { rx }
    }
}

type Prepared = (Vec<Batch>, usize, Option<Vec<HashIds>>);

fn prepare(
    data: &StudyData,
    items: &[usize],
    pad_id: u32,
    cfg: &TrainConfig,
    hasher: Option<&NgramHasher>,
) -> Result<Prepared> {
    let batches = items
        .chunks(cfg.micro_batch.max(1))
        .map(|c| {
            let refs: Vec<&[u32]> = c.iter().map(|&i| data.train[i].as_slice()).collect();
            make_batch(&refs, pad_id)
        })
        .collect::<Result<Vec<_>>>()?;
    let tokens = batches.iter().map(|b| b.label_tokens).sum();
    let hashes = hasher.filter(|_| tokens > 0).and_then(|h| {
        batches
            .iter()
            .map(|b| h.hash(&b.ids, b.batch, b.seq_len))
            .collect::<Result<Vec<_>>>()
            .ok() // a bad id is reported by the step, in the model's words
    });
    Ok((batches, tokens, hashes))
}

impl Iterator for StepLoader {
    type Item = Result<PreparedStep>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}
