//! The training loop of the study: AdamW (no weight decay on biases), cosine schedule with
//! warm-up, gradient accumulation with a token-mean loss over the accumulated batch, the
//! Engram gate schedule, periodic eval loss, metrics per step.

use std::path::PathBuf;
use std::time::Instant;

use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::checkpoint::{
    CheckpointConfig, latest_checkpoint, load_checkpoint_with, save_checkpoint_with,
};
use super::clip::clip_global_norm;
use super::loader::{LoaderPlan, PreparedStep, StepLoader};
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

/// Training settings. The recipe a command runs is a profile's
/// ([`Profile::defaults`](crate::study::Profile::defaults): `train`, `study` and the
/// benchmarks read it); `Default` is the field values a profile starts from, the study's
/// AdamW and schedule with a small batch (4 sequences per step; the study used 8 x 24).
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
///
/// The loop itself: a [`StepLoader`] prepares the steps (padding, hash ids) on a worker
/// thread, a [`Trainer`] takes them one [`Trainer::step`] at a time.
#[allow(clippy::too_many_arguments)]
pub fn train_observed<M: TrainableLm>(
    model: M,
    data: &StudyData,
    pad_id: u32,
    cfg: &TrainConfig,
    device: &Device,
    checkpoints: Option<&CheckpointConfig>,
    mut on_step: impl FnMut(&StepMetrics),
    mut on_eval: impl FnMut(&StepMetrics, &M) -> Result<()>,
) -> Result<(M, Vec<StepMetrics>)> {
    let mut trainer = Trainer::new(model, cfg, data.train.len(), device, checkpoints)?;
    let plan = trainer.plan();
    let hasher = trainer.model().engram_layers().map(|l| l.hasher().clone());
    let start = Instant::now();
    let mut metrics = Vec::with_capacity(plan.total_steps);
    std::thread::scope(|scope| -> Result<()> {
        for prepared in StepLoader::spawn(scope, data, pad_id, cfg, hasher, plan) {
            let prepared = prepared?;
            let (epoch, t0) = (prepared.epoch, Instant::now());
            let Some(outcome) = trainer.step(prepared)? else {
                continue; // nothing to learn from: the step passes without an update
            };
            if let Some(c) = checkpoints {
                trainer.checkpoint_if_due(c)?;
            }
            let step = trainer.steps_done();
            let eval_loss = if (cfg.eval_every > 0 && step.is_multiple_of(cfg.eval_every))
                || step == plan.total_steps
            {
                let m = trainer.model();
                Some(eval_loss(m, &data.eval, pad_id, cfg.micro_batch, device)?)
            } else {
                None
            };
            let m = StepMetrics {
                step,
                total_steps: plan.total_steps,
                epoch,
                loss: outcome.loss,
                lr: outcome.lr,
                tokens: outcome.tokens,
                tokens_per_s: outcome.tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9),
                elapsed_s: start.elapsed().as_secs_f64(),
                grad_norm: outcome.grad_norm,
                eval_loss,
                skipped: outcome.skipped,
            };
            on_step(&m);
            if m.eval_loss.is_some() {
                on_eval(&m, trainer.model())?;
            }
            metrics.push(m);
        }
        Ok(())
    })?;
    Ok((trainer.finish()?, metrics))
}

/// How the Engram tables get their update: inside the dense AdamW with everything else, or
/// by lazy AdamW on the rows a step reads.
enum TableStrategy {
    Dense,
    Sparse(SparseUpdater),
}

/// What one optimizer step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// Token-mean training loss over the step's micro-batches.
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// Label tokens.
    pub tokens: usize,
    /// Global gradient norm before clipping (when clipping).
    pub grad_norm: Option<f64>,
    /// Why the update was skipped (`OnNonFinite::SkipStep`).
    pub skipped: Option<String>,
}

/// The trainer: the model, its optimizer (AdamW with parameter groups), the schedule, the
/// table-update strategy and the checkpoint it resumed from. [`train_observed`] drives it;
/// a custom loop can too:
///
/// ```no_run
/// # fn demo<M: burn_engram::study::train::TrainableLm>(model: M,
/// #     data: &burn_engram::study::data::dataset::StudyData, device: &burn::tensor::Device)
/// #     -> burn_engram::Result<M> {
/// use burn_engram::study::train::{StepLoader, TrainConfig, Trainer};
/// let cfg = TrainConfig::default();
/// let mut trainer = Trainer::new(model, &cfg, data.train.len(), device, None)?;
/// let plan = trainer.plan();
/// std::thread::scope(|s| -> burn_engram::Result<()> {
///     for prepared in StepLoader::spawn(s, data, 0, &cfg, None, plan) {
///         trainer.step(prepared?)?;
///     }
///     Ok(())
/// })?;
/// trainer.finish()
/// # }
/// ```
pub struct Trainer<'a, M: TrainableLm> {
    model: Option<M>,
    optim: ModuleOptimizer,
    cfg: &'a TrainConfig,
    device: &'a Device,
    schedule: CosineSchedule,
    tables: ParamGroup,
    strategy: TableStrategy,
    plan: LoaderPlan,
    /// Optimizer steps done (the next step's number minus one).
    step: usize,
    latest: Option<PathBuf>,
}

impl<'a, M: TrainableLm> Trainer<'a, M> {
    /// Validates `cfg`, builds the optimizer (no weight decay on biases; the tables' own
    /// decay and learning-rate multiple when set) and, with `checkpoints.resume`, restores
    /// the latest checkpoint under `checkpoints.dir` (parameters, optimizer state, step).
    pub fn new(
        mut model: M,
        cfg: &'a TrainConfig,
        train_len: usize,
        device: &'a Device,
        checkpoints: Option<&CheckpointConfig>,
    ) -> Result<Self> {
        cfg.validate()?;
        if train_len == 0 {
            return Err(EngramError::BadBatch("no training sequences".into()));
        }
        let (schedule_steps, total_steps, epochs) = cfg.plan(train_len);
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
        let mut strategy = match SparseUpdater::new(cfg, &model)? {
            Some(s) => {
                model = model.map_engram_layers(|l| l.with_tables_trainable(false));
                TableStrategy::Sparse(s)
            }
            None => TableStrategy::Dense,
        };
        let (mut step, mut latest) = (0, None);
        if let Some(c) = checkpoints.filter(|c| c.resume)
            && let Some(path) = latest_checkpoint(&c.dir)?
        {
            let host = device.clone().without_autodiff();
            let sparse_device = matches!(strategy, TableStrategy::Sparse(_)).then_some(&host);
            let (m, o, state, states) = load_checkpoint_with(model, optim, &path, sparse_device)?;
            (model, optim, step) = (m, o, state.step);
            if let (TableStrategy::Sparse(s), Some(states)) = (&mut strategy, states) {
                s.set_states(states);
            }
            latest = Some(path);
        }
        Ok(Self {
            model: Some(model),
            optim,
            cfg,
            device,
            schedule: CosineSchedule::new(schedule_steps, cfg.warmup_ratio),
            tables,
            strategy,
            plan: LoaderPlan {
                start_step: step,
                total_steps,
                epochs,
                ahead: 2,
            },
            step,
            latest,
        })
    }

    /// The steps the loader should prepare: from the resumed step to the run's last.
    pub fn plan(&self) -> LoaderPlan {
        self.plan
    }

    /// Optimizer steps done so far (resumed ones included).
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// The model as it is now.
    pub fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the trainer holds its model between steps")
    }

    /// One optimizer step on `prepared`: forward and backward over its micro-batches (the
    /// loss token-mean over the whole step), the non-finite checks, clipping, the dense
    /// AdamW update and, with sparse tables, the lazy-AdamW update of the rows read. `None`
    /// when the step has no label tokens (it passes without an update, as it always did).
    /// An error ends the run: the trainer then holds no model.
    pub fn step(&mut self, prepared: PreparedStep) -> Result<Option<StepOutcome>> {
        let cfg = self.cfg;
        let step = self.step;
        if prepared.step != step {
            return Err(EngramError::BadBatch(format!(
                "the loader prepared step {} while the trainer's next step is {} (a loader of another plan?)",
                prepared.step + 1,
                step + 1
            )));
        }
        self.step += 1;
        let tokens = prepared.tokens;
        if tokens == 0 {
            return Ok(None);
        }
        let mut model = self
            .model
            .take()
            .expect("the trainer holds its model between steps");
        let gate = cfg.gate.at(step);
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut loss_sum = 0.0f64;
        let mut skipped: Option<String> = None;
        let skip = cfg.on_non_finite == OnNonFinite::SkipStep;
        let batches = &prepared.batches;
        let hashes = prepared.hashes.as_deref();
        let mut sparse_step = match &self.strategy {
            TableStrategy::Sparse(s) => {
                Some(s.prepare(&model, batches, hashes, gate, self.device)?)
            }
            TableStrategy::Dense => None,
        };
        for (i, batch) in batches.iter().enumerate() {
            let logits = match (&sparse_step, hashes) {
                (Some(s), _) => model.batch_logits_with(batch, s.batch(i), self.device)?,
                (None, Some(h)) => model.batch_logits_hashed(batch, &h[i], gate, self.device)?,
                (None, None) => model.batch_logits(batch, gate, self.device)?,
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
                return Err(non_finite(step + 1, "training loss", found, &self.latest));
            }
            loss_sum += value;
            let grads = loss.backward();
            if let Some(s) = &mut sparse_step {
                s.accumulate(&grads);
            }
            accumulator.accumulate(&model, GradientsParams::from_grads(grads, &model));
        }
        let lr = cfg.lr * self.schedule.factor(step);
        let mut grad_norm = None;
        if let Some(bad) = sparse_step.as_ref().map(|s| s.non_finite_layers())
            && !bad.is_empty()
            && skipped.is_none()
        {
            let found = format!("NaN or infinite table-row gradients in Engram layers {bad:?}");
            if !skip {
                return Err(non_finite(step + 1, "gradient", found, &self.latest));
            }
            skipped = Some(format!("non-finite gradient: {found}"));
        }
        if skipped.is_none() {
            let mut grads = accumulator.grads();
            if non_finite_grad_count(&model, &grads)? > 0.0 {
                let found = describe(&non_finite_grads(&model, &grads)?);
                if !skip {
                    let found = format!("NaN or infinite gradient elements in {found}");
                    return Err(non_finite(step + 1, "gradient", found, &self.latest));
                }
                skipped = Some(format!("non-finite gradient of {found}"));
            } else if let Some(max) = cfg.max_grad_norm {
                let (clipped, norm) = clip_global_norm(&model, grads, max)?;
                grad_norm = Some(norm);
                grads = clipped;
                if !norm.is_finite() {
                    let found = format!("every element is finite but the norm overflows ({norm})");
                    if !skip {
                        return Err(non_finite(step + 1, "gradient norm", found, &self.latest));
                    }
                    skipped = Some(format!("non-finite gradient norm: {found}"));
                }
            }
            if skipped.is_none() {
                let lr_module: ModuleLearningRate = if cfg.table_lr_mult != 1.0 {
                    ModuleLrScheduler::new(lr)
                        .with_group(self.tables.clone(), lr * cfg.table_lr_mult)
                        .step()
                } else {
                    lr.into()
                };
                model = self.optim.step(lr_module, model, grads);
                if let (TableStrategy::Sparse(s), Some(sparse)) = (&mut self.strategy, sparse_step)
                {
                    model = s.apply(model, sparse, lr);
                }
            }
        }
        self.model = Some(model);
        Ok(Some(StepOutcome {
            loss: loss_sum,
            lr,
            tokens,
            grad_norm,
            skipped,
        }))
    }

    /// Writes a checkpoint when `c.every` divides the steps done (the sparse tables' state
    /// with the rest).
    pub fn checkpoint_if_due(&mut self, c: &CheckpointConfig) -> Result<()> {
        if c.every == 0 || !self.step.is_multiple_of(c.every) {
            return Ok(());
        }
        let model = self.model();
        self.latest = Some(match &self.strategy {
            // the tables train outside the dense optimizer: save them with the rest
            TableStrategy::Sparse(s) => {
                let all = model
                    .clone()
                    .map_engram_layers(|l| l.with_tables_trainable(true));
                save_checkpoint_with(c, self.step, &all, &self.optim, Some(s.states()))?
            }
            TableStrategy::Dense => save_checkpoint_with(c, self.step, model, &self.optim, None)?,
        });
        Ok(())
    }

    /// The trained model (tables trainable again after sparse updates), refused if a
    /// parameter is not finite: what the caller saves next must be a good state too.
    pub fn finish(mut self) -> Result<M> {
        let mut model = self
            .model
            .take()
            .expect("the trainer holds its model between steps");
        if matches!(self.strategy, TableStrategy::Sparse(_)) {
            model = model.map_engram_layers(|l| l.with_tables_trainable(true));
        }
        let bad = non_finite_params(&model)?;
        if !bad.is_empty() {
            return Err(non_finite(
                self.step,
                "parameter",
                format!(
                    "after the last step, {} hold NaN or infinity",
                    describe(&bad)
                ),
                &self.latest,
            ));
        }
        Ok(model)
    }
}
