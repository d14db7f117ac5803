//! The training loop of the study: AdamW (no weight decay on biases), cosine schedule with
//! warm-up, gradient accumulation with a token-mean loss over the accumulated batch, the
//! Engram gate schedule, periodic eval loss, metrics per step.

use std::path::PathBuf;
use std::time::Instant;

use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams};
use burn::tensor::Device;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::checkpoint::{
    CheckpointConfig, latest_checkpoint, load_checkpoint_with, save_checkpoint_with,
};
use super::clip::clip_global_norm;
use super::loss::{TrainableLm, token_loss_sum};
use super::schedule::CosineSchedule;
use super::sparse_step::SparseUpdater;
use crate::error::{EngramError, Result};
use crate::io::finite::{describe, non_finite_grad_count, non_finite_grads, non_finite_params};
use crate::memory::{GateMode, GateSchedule};
use crate::study::data::dataset::{StudyData, make_batch};

/// How the trainer updates the Engram tables (`multi_head_embedding.weight`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableUpdate {
    /// Burn's AdamW on the dense gradient of the whole table: every row's moments decay and
    /// every row is updated on every step (exactly what the study's PyTorch AdamW did). Cost
    /// grows with the table size.
    #[default]
    Dense,
    /// [`LazyAdamW`](crate::memory::LazyAdamW) on the rows the step's batches read (lazy Adam, as torch's `SparseAdam`):
    /// cost grows with the rows touched, not with the table size. Rows not read in a step keep
    /// their value and their moments.
    Sparse,
}

/// What the trainer does when a step's loss or gradients are not finite.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNonFinite {
    /// Stop with [`EngramError::NonFinite`](crate::EngramError::NonFinite) naming the step
    /// and the tensor; checkpoints already written stay as they are, so the latest one is the
    /// last good state.
    #[default]
    Stop,
    /// Skip the update (parameters and optimizer state untouched) and go on with the next
    /// step; the step's metrics say why (`StepMetrics::skipped`). A non-finite *parameter*
    /// still stops the run: no later step can recover from it.
    SkipStep,
}

/// Training settings; the defaults are the study's Engram run (REFERENCE §2) except the batch
/// size, which the caller sizes to its device (`micro_batch * grad_accum` sequences per step;
/// the study used 192).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Peak learning rate (Engram 2e-5, LoRA 1e-5 in the study).
    pub lr: f64,
    /// Passes over the training set (Engram 7, LoRA 5); ignored when `max_steps` is set.
    pub epochs: usize,
    /// Train for exactly this many optimizer steps, the schedule spanning them, going over
    /// the data as often as that takes (Hugging Face's `max_steps`: it overrides `epochs`).
    pub max_steps: Option<usize>,
    /// Stop after this many optimizer steps of the run the other fields describe, its
    /// schedule unchanged (a run cut short, to be resumed later or looked at early).
    pub stop_after: Option<usize>,
    /// Sequences per forward pass.
    pub micro_batch: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Fraction of the steps spent warming up.
    pub warmup_ratio: f64,
    /// AdamW beta 1.
    pub beta1: f32,
    /// AdamW beta 2.
    pub beta2: f32,
    /// AdamW epsilon (Burn's default is 1e-5; PyTorch's and the study's 1e-8).
    pub eps: f32,
    /// Decoupled weight decay, not applied to biases.
    pub weight_decay: f32,
    /// Learning-rate multiplier for the Engram tables (`multi_head_embedding.weight`); the
    /// paper uses 5, TinyEngram 1.
    pub table_lr_mult: f64,
    /// Weight decay of the Engram tables when it differs (the paper: 0); `None` = `weight_decay`.
    pub table_weight_decay: Option<f32>,
    /// Clip the global gradient norm to this value (the study: none).
    pub max_grad_norm: Option<f64>,
    /// Evaluate the eval loss every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Seed of the per-epoch data order.
    pub seed: u64,
    /// The Engram gate schedule (ignored for LoRA).
    pub gate: GateSchedule,
    /// How the Engram tables are updated: dense AdamW (the study, default) or lazy AdamW on
    /// the rows each step reads ([`TableUpdate::Sparse`]: checkpointed and resumed like dense; no clipping yet).
    pub table_update: TableUpdate,
    /// Stop (default) or skip the step when the loss or a gradient is NaN or infinite.
    pub on_non_finite: OnNonFinite,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 2e-5,
            epochs: 7,
            max_steps: None,
            stop_after: None,
            micro_batch: 4,
            grad_accum: 1,
            warmup_ratio: 0.03,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.005,
            table_lr_mult: 1.0,
            table_weight_decay: None,
            max_grad_norm: None,
            eval_every: 0,
            seed: 42,
            gate: GateSchedule::default(),
            table_update: TableUpdate::Dense,
            on_non_finite: OnNonFinite::Stop,
        }
    }
}

impl TrainConfig {
    /// Checks every field's range: a learning rate that is not a positive finite number, a
    /// zero batch size or step count, betas outside [0, 1) and the like are refused naming
    /// the field ([`EngramError::InvalidTraining`]). The trainer calls it before its first
    /// step.
    ///
    /// ```
    /// use burn_engram::study::train::TrainConfig;
    /// assert!(TrainConfig::default().validate().is_ok());
    /// let bad = TrainConfig { lr: f64::NAN, ..TrainConfig::default() };
    /// assert!(bad.validate().unwrap_err().to_string().contains("`lr`"));
    /// ```
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, why: String| Err(EngramError::training(field, why));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !positive(self.lr) {
            return bad("lr", format!("{} is not a positive finite number", self.lr));
        }
        for (field, v) in [
            ("epochs", self.epochs),
            ("micro_batch", self.micro_batch),
            ("grad_accum", self.grad_accum),
        ] {
            if v == 0 {
                return bad(field, "must be >= 1, got 0".into());
            }
        }
        for (field, v) in [
            ("max_steps", self.max_steps),
            ("stop_after", self.stop_after),
        ] {
            if v == Some(0) {
                return bad(field, "must be >= 1 when set, got 0".into());
            }
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad(
                "warmup_ratio",
                format!("{} is not a fraction in [0, 1]", self.warmup_ratio),
            );
        }
        for (field, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(field, format!("{v} is not in [0, 1)"));
            }
        }
        if !positive(self.eps as f64) {
            return bad(
                "eps",
                format!("{} is not a positive finite number", self.eps),
            );
        }
        if !non_negative(self.weight_decay as f64) {
            return bad(
                "weight_decay",
                format!("{} is not a finite number >= 0", self.weight_decay),
            );
        }
        if let Some(wd) = self.table_weight_decay
            && !non_negative(wd as f64)
        {
            return bad(
                "table_weight_decay",
                format!("{wd} is not a finite number >= 0"),
            );
        }
        if !non_negative(self.table_lr_mult) {
            return bad(
                "table_lr_mult",
                format!("{} is not a finite number >= 0", self.table_lr_mult),
            );
        }
        if let Some(n) = self.max_grad_norm
            && !positive(n)
        {
            return bad(
                "max_grad_norm",
                format!("{n} is not a positive finite number"),
            );
        }
        Ok(())
    }

    /// `(optimizer steps of the whole run, steps this call takes, passes over the data)` for
    /// a training set of `train_len` sequences.
    pub fn plan(&self, train_len: usize) -> (usize, usize, usize) {
        let per_step = self.micro_batch.max(1) * self.grad_accum.max(1);
        let steps_per_epoch = train_len.div_ceil(per_step).max(1);
        let (schedule_steps, epochs) = match self.max_steps {
            Some(m) => (m, m.div_ceil(steps_per_epoch)),
            None => (
                steps_per_epoch.saturating_mul(self.epochs.max(1)),
                self.epochs.max(1),
            ),
        };
        let total = self
            .stop_after
            .map_or(schedule_steps, |s| s.min(schedule_steps));
        (schedule_steps, total, epochs)
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer step (1-based once taken).
    pub step: usize,
    /// Steps this run will take.
    pub total_steps: usize,
    /// Epoch of the step.
    pub epoch: usize,
    /// Token-mean training loss of the accumulated batch.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Loss tokens in the step.
    pub tokens: usize,
    /// Training throughput over the step.
    pub tokens_per_s: f64,
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Global gradient norm before clipping (when clipping is on).
    pub grad_norm: Option<f64>,
    /// Eval loss, when evaluated after this step.
    pub eval_loss: Option<f64>,
    /// Why the update was skipped (`OnNonFinite::SkipStep`); `None` for a normal step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The error that stops a run at `step` on a non-finite `what`.
fn non_finite(step: usize, what: &str, found: String, latest: &Option<PathBuf>) -> EngramError {
    let state = match latest {
        Some(p) => format!(
            "the latest checkpoint, {}, holds the last good state",
            p.display()
        ),
        None => "no checkpoint was written in this run".to_string(),
    };
    EngramError::NonFinite {
        step,
        what: what.to_string(),
        detail: format!(
            "{found}; training stopped, {state} (on_non_finite = skip_step skips such steps instead)"
        ),
    }
}

/// Token-mean eval loss of `seqs` (no gradients).
pub fn eval_loss<M: TrainableLm>(
    model: &M,
    seqs: &[Vec<u32>],
    pad_id: u32,
    micro_batch: usize,
    device: &Device,
) -> Result<f64> {
    let model = model.valid();
    let device = &device.clone().without_autodiff();
    let (mut sum, mut tokens) = (0.0f64, 0usize);
    for chunk in seqs.chunks(micro_batch.max(1)) {
        let refs: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        let batch = make_batch(&refs, pad_id)?;
        let logits = model.batch_logits(&batch, GateMode::Learned, device)?;
        sum += token_loss_sum(logits, &batch).into_scalar::<f32>() as f64;
        tokens += batch.label_tokens;
    }
    if tokens == 0 {
        return Err(EngramError::BadBatch(
            "the eval set has no loss tokens".into(),
        ));
    }
    Ok(sum / tokens as f64)
}

/// Trains the parameters of `model` that require gradients (freeze the rest first) on
/// `data.train`, calling `on_step` after every optimizer step. Returns the trained model and
/// the metrics. A non-finite loss or gradient stops training with
/// [`EngramError::NonFinite`] naming the step and the parameters at fault (or, with
/// `cfg.on_non_finite = SkipStep`, skips that step's update).
///
/// With `checkpoints`, a checkpoint is written every `every` steps (the last `keep_last`
/// kept), and with `resume` the run continues from the latest one exactly: same parameters,
/// optimizer state, step, schedule and data order (the order of each epoch is a function of
/// the seed and the epoch). The returned metrics cover the steps this call ran.
pub fn train<M: TrainableLm>(
    model: M,
    data: &StudyData,
    pad_id: u32,
    cfg: &TrainConfig,
    device: &Device,
    checkpoints: Option<&CheckpointConfig>,
    on_step: impl FnMut(&StepMetrics),
) -> Result<(M, Vec<StepMetrics>)> {
    train_observed(
        model,
        data,
        pad_id,
        cfg,
        device,
        checkpoints,
        on_step,
        |_, _| Ok(()),
    )
}

/// [`train`], calling `on_eval(metrics, model)` after every step that measured the eval loss
/// (every `cfg.eval_every` steps and the last), with the model as it is after that step, so
/// the caller can score it further (the study measures its answers and the multiple-choice
/// probe there). An error from `on_eval` stops training.
#[allow(clippy::too_many_arguments)]
pub fn train_observed<M: TrainableLm>(
    mut model: M,
    data: &StudyData,
    pad_id: u32,
    cfg: &TrainConfig,
    device: &Device,
    checkpoints: Option<&CheckpointConfig>,
    mut on_step: impl FnMut(&StepMetrics),
    mut on_eval: impl FnMut(&StepMetrics, &M) -> Result<()>,
) -> Result<(M, Vec<StepMetrics>)> {
    cfg.validate()?;
    let per_step = cfg.micro_batch * cfg.grad_accum;
    if data.train.is_empty() {
        return Err(EngramError::BadBatch("no training sequences".into()));
    }
    let (schedule_steps, total_steps, n_epochs) = cfg.plan(data.train.len());
    let schedule = CosineSchedule::new(schedule_steps, cfg.warmup_ratio);
    let adamw = |wd: f32| {
        AdamWConfig::new()
            .with_beta_1(cfg.beta1)
            .with_beta_2(cfg.beta2)
            .with_epsilon(cfg.eps)
            .with_weight_decay(wd)
    };
    // constant patterns: a failure to compile one is a bug here, not a user error
    let biases = ParamGroup::from_regex(r"(^|\.)bias$").expect("the bias pattern compiles");
    let tables = ParamGroup::from_regex(r"(^|\.)multi_head_embedding\.weight$")
        .expect("the table pattern compiles");
    let mut optim = adamw(cfg.weight_decay)
        .init()
        .with_group(biases, adamw(0.0).build(), None);
    if let Some(wd) = cfg.table_weight_decay {
        optim = optim.with_group(tables.clone(), adamw(wd).build(), None);
    }
    let mut sparse = SparseUpdater::new(cfg, &model)?;
    if sparse.is_some() {
        model = model.map_engram_layers(|l| l.with_tables_trainable(false));
    }
    let mut start_step = 0;
    let mut latest: Option<PathBuf> = None;
    if let Some(c) = checkpoints.filter(|c| c.resume)
        && let Some(path) = latest_checkpoint(&c.dir)?
    {
        let host = device.clone().without_autodiff();
        let sparse_device = sparse.as_ref().map(|_| &host);
        let (m, o, state, states) = load_checkpoint_with(model, optim, &path, sparse_device)?;
        (model, optim, start_step) = (m, o, state.step);
        if let (Some(s), Some(states)) = (&mut sparse, states) {
            s.set_states(states);
        }
        latest = Some(path);
    }

    let start = Instant::now();
    let mut metrics = Vec::with_capacity(total_steps);
    let mut step = 0usize;
    'epochs: for epoch in 0..n_epochs {
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            cfg.seed.wrapping_add(epoch as u64),
        ));
        for step_items in order.chunks(per_step) {
            if step >= total_steps {
                break 'epochs;
            }
            if step < start_step {
                step += 1; // done before the checkpoint this run resumed from
                continue;
            }
            let t0 = Instant::now();
            let micro: Vec<Vec<&[u32]>> = step_items
                .chunks(cfg.micro_batch.max(1))
                .map(|c| c.iter().map(|&i| data.train[i].as_slice()).collect())
                .collect();
            let batches = micro
                .iter()
                .map(|refs| make_batch(refs, pad_id))
                .collect::<Result<Vec<_>>>()?;
            let tokens: usize = batches.iter().map(|b| b.label_tokens).sum();
            if tokens == 0 {
                step += 1; // nothing to learn from: the step passes without an update
                continue;
            }
            let gate = cfg.gate.at(step);
            let mut accumulator = GradientsAccumulator::<M>::new();
            let mut loss_sum = 0.0f64;
            let mut skipped: Option<String> = None;
            let skip = cfg.on_non_finite == OnNonFinite::SkipStep;
            let mut sparse_step = match &sparse {
                Some(s) => Some(s.prepare(&model, &batches, gate, device)?),
                None => None,
            };
            for (i, batch) in batches.iter().enumerate() {
                let logits = match &sparse_step {
                    Some(s) => model.batch_logits_with(batch, s.batch(i), device)?,
                    None => model.batch_logits(batch, gate, device)?,
                };
                let loss = token_loss_sum(logits, batch).div_scalar(tokens as f64);
                let value = loss.clone().into_scalar::<f32>() as f64;
                if !value.is_finite() {
                    let bad = non_finite_params(&model)?;
                    if bad.is_empty() && skip {
                        skipped = Some(format!("non-finite training loss ({value})"));
                        loss_sum = value;
                        break;
                    }
                    let found = if bad.is_empty() {
                        format!("the loss is {value} while every parameter is finite")
                    } else {
                        format!(
                            "the loss is {value}; parameters holding NaN or infinity: {}",
                            describe(&bad)
                        )
                    };
                    return Err(non_finite(step + 1, "training loss", found, &latest));
                }
                loss_sum += value;
                let grads = loss.backward();
                if let Some(s) = &mut sparse_step {
                    s.accumulate(&grads);
                }
                accumulator.accumulate(&model, GradientsParams::from_grads(grads, &model));
            }
            let lr = cfg.lr * schedule.factor(step);
            let mut grad_norm = None;
            if let Some(bad) = sparse_step.as_ref().map(|s| s.non_finite_layers())
                && !bad.is_empty()
                && skipped.is_none()
            {
                let found = format!("NaN or infinite table-row gradients in Engram layers {bad:?}");
                if !skip {
                    return Err(non_finite(step + 1, "gradient", found, &latest));
                }
                skipped = Some(format!("non-finite gradient: {found}"));
            }
            if skipped.is_none() {
                let mut grads = accumulator.grads();
                if non_finite_grad_count(&model, &grads)? > 0.0 {
                    let found = describe(&non_finite_grads(&model, &grads)?);
                    if !skip {
                        let found = format!("NaN or infinite gradient elements in {found}");
                        return Err(non_finite(step + 1, "gradient", found, &latest));
                    }
                    skipped = Some(format!("non-finite gradient of {found}"));
                } else if let Some(max) = cfg.max_grad_norm {
                    let (clipped, norm) = clip_global_norm(&model, grads, max)?;
                    grad_norm = Some(norm);
                    grads = clipped;
                    if !norm.is_finite() {
                        let found =
                            format!("every element is finite but the norm overflows ({norm})");
                        if !skip {
                            return Err(non_finite(step + 1, "gradient norm", found, &latest));
                        }
                        skipped = Some(format!("non-finite gradient norm: {found}"));
                    }
                }
                if skipped.is_none() {
                    let lr_module: ModuleLearningRate = if cfg.table_lr_mult != 1.0 {
                        ModuleLrScheduler::new(lr)
                            .with_group(tables.clone(), lr * cfg.table_lr_mult)
                            .step()
                    } else {
                        lr.into()
                    };
                    model = optim.step(lr_module, model, grads);
                    if let (Some(s), Some(step)) = (&mut sparse, sparse_step) {
                        model = s.apply(model, step, lr);
                    }
                }
            }
            step += 1;
            if let Some(c) = checkpoints
                && c.every > 0
                && step.is_multiple_of(c.every)
            {
                latest = Some(match &sparse {
                    // the tables train outside the dense optimizer: save them with the rest
                    Some(s) => {
                        let all = model
                            .clone()
                            .map_engram_layers(|l| l.with_tables_trainable(true));
                        save_checkpoint_with(c, step, &all, &optim, Some(s.states()))?
                    }
                    None => save_checkpoint_with(c, step, &model, &optim, None)?,
                });
            }
            let eval_loss = if (cfg.eval_every > 0 && step.is_multiple_of(cfg.eval_every))
                || step == total_steps
            {
                Some(eval_loss(
                    &model,
                    &data.eval,
                    pad_id,
                    cfg.micro_batch,
                    device,
                )?)
            } else {
                None
            };
            let m = StepMetrics {
                step,
                total_steps,
                epoch,
                loss: loss_sum,
                lr,
                tokens,
                tokens_per_s: tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9),
                elapsed_s: start.elapsed().as_secs_f64(),
                grad_norm,
                eval_loss,
                skipped,
            };
            on_step(&m);
            if m.eval_loss.is_some() {
                on_eval(&m, &model)?;
            }
            metrics.push(m);
        }
    }
    if sparse.is_some() {
        model = model.map_engram_layers(|l| l.with_tables_trainable(true));
    }
    // what the caller saves next must be a good state too
    let bad = non_finite_params(&model)?;
    if !bad.is_empty() {
        return Err(non_finite(
            step,
            "parameter",
            format!(
                "after the last step, {} hold NaN or infinity",
                describe(&bad)
            ),
            &latest,
        ));
    }
    Ok((model, metrics))
}
