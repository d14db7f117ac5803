//! The TinyEngram study in one call: the base model evaluated, LoRA and Engram trained on
//! function-calling data and evaluated (eval loss: how well the format is learnt; MC1/MC2:
//! how much knowledge survives), ablations from run files, tables and figures.
//!
//! Two settings share this code. The **miniature** (the default of `examples/study.rs`) uses
//! the embedded base model ([`base`]: a small Qwen3 pretrained on a committed fact corpus),
//! rows from the glaive-style generator ([`crate::study::data::synth_glaive`]) and the base model's
//! fact probe, and runs on a CPU in minutes. The **real study** points the same runs at a
//! Qwen3-0.6B folder, a glaive export and TruthfulQA, with [`Profile::Published`] or
//! [`Profile::Paper`] settings.
//!
//! Layout of an output folder `runs/<name>/`: one folder per run and seed (`<run>`,
//! `<run>-seed1`, ...: `eval.jsonl` with the held-out rows, `metrics.jsonl`, `scores.jsonl`
//! with the scores at each measured checkpoint, checkpoints while it trains, `adapter/` or
//! `engram/`, `result.json`), then `results.json`, `results.md`, `eval_loss.png`,
//! `truthfulqa.png`, `learning_vs_forgetting.png`; ablations under `ablations/<study>/` with
//! their own `results.json`, `results.md` and `<study>.png`. Finished runs (their
//! `result.json` exists) are read back, unfinished ones resume from their last checkpoint.

pub mod base;
pub mod data;
pub mod eval;
mod job;
mod plot;
mod pretrain;
mod report;
mod runner;
pub mod runs;
mod setup;
mod spec;
pub mod train;

use std::path::Path;

pub use base::{
    CORPUS, CorpusRecord, PROBE, PROBE_PRIMER, base_config, base_model_dir, corpus_records,
    heldout_documents, pretrain_documents, probe_questions, train_tokenizer,
};
pub use job::{JobEvent, TrainJob, TrainSummary, run_train_job};
pub use plot::{ablation_figure, eval_loss_curves, frontier, learning_vs_forgetting, score_bars};
pub use pretrain::{PretrainConfig, PretrainReport, pretrain};
pub use report::{
    MatchedRow, ResultsFile, by_label, matched_loss, matched_table, mean_sd, table, write_results,
};
pub use runner::{CheckpointScore, Event, RunResult, StudyInputs, finished, run_manifest, run_one};
pub use setup::{Study, StudySetup, select_main_runs};
pub use spec::{Ablation, Defaults, Method, Profile, ResolvedRun, RunSpec, load_ablations};

use crate::error::Result;

/// The three runs of the main comparison: the base, LoRA and Engram with the profile's
/// settings.
pub fn main_runs() -> Vec<RunSpec> {
    vec![
        RunSpec::new("base", Method::Base),
        RunSpec::new("lora", Method::Lora),
        RunSpec::new("engram", Method::Engram),
    ]
}

/// Runs `specs` in `out/<run name>/`, each trained run with `seeds` seeds (see
/// [`ResolvedRun::with_seed`]; the base is evaluated once), then writes `results.json`,
/// `results.md`, `eval_loss.png`, `truthfulqa.png` and `learning_vs_forgetting.png` into
/// `out`. `on_event` gets the run's name with each event. Returns the results in order.
pub fn run_main(
    inputs: &StudyInputs,
    defaults: &Defaults,
    specs: &[RunSpec],
    seeds: usize,
    out: &Path,
    on_event: &mut dyn FnMut(&str, Event),
) -> Result<Vec<RunResult>> {
    let mut results = Vec::new();
    for spec in specs {
        let resolved = spec.resolve(defaults)?;
        let n = if resolved.method == Method::Base {
            1
        } else {
            seeds.max(1)
        };
        for k in 0..n {
            let run = resolved.with_seed(k as u64);
            let r = run_one(inputs, &run, &out.join(&run.name), &mut |e| {
                on_event(&run.name, e)
            })?;
            results.push(r);
        }
    }
    let base = results.iter().find(|r| r.method == "base");
    write_results(out, "Study", &results, base)?;
    eval_loss_curves(
        &out.join("eval_loss.png"),
        "Eval loss during training",
        &results,
    )?;
    score_bars(
        &out.join("truthfulqa.png"),
        "Multiple-choice retention",
        &results,
    )?;
    learning_vs_forgetting(
        &out.join("learning_vs_forgetting.png"),
        "Learning the format vs keeping knowledge",
        &results,
    )?;
    Ok(results)
}

/// Runs one ablation in `out/ablations/<study>/`, each run with `seeds` seeds, with its
/// table (changes against `base` when given) and figure. A run whose settings and seed equal
/// a run in `done` (the main runs and earlier ablations) is not trained again: its result is
/// copied under the new name. Finished runs are appended to `done`.
#[allow(clippy::too_many_arguments)]
pub fn run_ablation(
    inputs: &StudyInputs,
    defaults: &Defaults,
    ablation: &Ablation,
    seeds: usize,
    base: Option<&RunResult>,
    done: &mut Vec<RunResult>,
    out: &Path,
    on_event: &mut dyn FnMut(&str, Event),
) -> Result<Vec<RunResult>> {
    let dir = out.join("ablations").join(&ablation.name);
    let mut results = Vec::new();
    for spec in &ablation.runs {
        let resolved = spec.resolve(defaults)?;
        for k in 0..seeds.max(1) as u64 {
            let run = resolved.with_seed(k);
            let run_dir = dir.join(&run.name);
            let same = done.iter().find(|r| {
                r.method == run.method.as_str()
                    && r.config == runner::run_config(&run)
                    && r.seed == run.train.seed
            });
            // a folder that holds a result goes through run_one, which checks its manifest
            let copy = match same {
                Some(same) if finished(&run_dir)?.is_none() => Some(same),
                _ => None,
            };
            let r = match copy {
                Some(same) => {
                    let r = RunResult {
                        name: run.name.clone(),
                        label: run.label.clone(),
                        ..same.clone()
                    };
                    let manifest = runner::run_manifest(inputs, &run)?;
                    let mode = if inputs.overwrite {
                        crate::study::runs::OpenMode::Overwrite
                    } else {
                        crate::study::runs::OpenMode::ResumeOrStart
                    };
                    let no_progress = |_: &Path| Ok(false);
                    let _folder = crate::study::runs::RunFolder::open(
                        &run_dir,
                        mode,
                        &manifest,
                        &no_progress,
                    )?;
                    crate::io::write_json(&run_dir.join("result.json"), &r)?;
                    r
                }
                None => run_one(inputs, &run, &run_dir, &mut |e| on_event(&run.name, e))?,
            };
            done.push(r.clone());
            results.push(r);
        }
    }
    write_results(&dir, &ablation.title, &results, base)?;
    ablation_figure(
        &dir.join(format!("{}.png", ablation.name)),
        &ablation.title,
        &results,
    )?;
    Ok(results)
}

/// Every ablation study under `dir` ([`load_ablations`]) in turn ([`run_ablation`], runs
/// equal to one in `main` or in an earlier study copied, not retrained), then
/// `out/ablations/frontier.png`: every run's final (eval loss, MC1) with the base.
/// `on_done` gets each study's results as it finishes. Returns every ablation run.
#[allow(clippy::too_many_arguments)]
pub fn run_ablations(
    inputs: &StudyInputs,
    defaults: &Defaults,
    dir: &Path,
    seeds: usize,
    main: &[RunResult],
    out: &Path,
    on_event: &mut dyn FnMut(&str, Event),
    on_done: &mut dyn FnMut(&Ablation, &[RunResult]),
) -> Result<Vec<RunResult>> {
    let base = main.iter().find(|r| r.method == "base");
    let mut done = main.to_vec();
    let mut all = Vec::new();
    for ab in load_ablations(dir)? {
        let r = run_ablation(inputs, defaults, &ab, seeds, base, &mut done, out, on_event)?;
        on_done(&ab, &r);
        all.extend(r);
    }
    let mut with_base = all.clone();
    with_base.extend(base.cloned());
    frontier(
        &out.join("ablations").join("frontier.png"),
        "Learning vs keeping knowledge across the ablation runs",
        &with_base,
    )?;
    Ok(all)
}
