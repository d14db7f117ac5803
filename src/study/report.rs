//! `results.json` and the study's tables: per run (or per run over its seeds, mean ± sample
//! standard deviation) the trainable parameters, eval loss, answer loss, answer accuracy,
//! exact calls, MC1, MC2 and their change from the base model; and the seed study's
//! comparison at a matched eval loss.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::runner::RunResult;
use crate::error::Result;
use crate::io::write_json;

/// The file a study writes: `{"runs": [...], "matched": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsFile {
    /// Every run (every seed of it), in order.
    pub runs: Vec<RunResult>,
    /// The trained methods compared at a matched eval loss (see [`matched_loss`]).
    #[serde(default)]
    pub matched: Vec<MatchedRow>,
}

/// One run (all seeds of it) at the checkpoint where it first reaches a common eval loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchedRow {
    /// Label of the run.
    pub label: String,
    /// "lora" or "engram".
    pub method: String,
    /// The common eval loss: the highest of the runs' final (seed-mean) eval losses, so every
    /// run reaches it.
    pub target_eval_loss: f64,
    /// Per seed: the first measured checkpoint at or below the target.
    pub steps: Vec<usize>,
    /// Per seed: its eval loss.
    pub eval_loss: Vec<f64>,
    /// Per seed: its MC1.
    pub mc1: Vec<f64>,
    /// Per seed: its MC2.
    pub mc2: Vec<f64>,
}

/// Writes `results.json` (atomically) and `results.md` (the tables) into `dir`.
pub fn write_results(
    dir: &Path,
    title: &str,
    runs: &[RunResult],
    base: Option<&RunResult>,
) -> Result<()> {
    let matched = matched_loss(runs);
    write_json(
        &dir.join("results.json"),
        &ResultsFile {
            runs: runs.to_vec(),
            matched: matched.clone(),
        },
    )?;
    let mut md = format!("# {title}\n\n{}", table(runs, base));
    if !matched.is_empty() {
        md += &format!(
            "\n## At a matched eval loss\n\n{}",
            matched_table(&matched, base)
        );
    }
    crate::io::write_atomic(&dir.join("results.md"), md.as_bytes())
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

fn fmt_stat(xs: &[f64], signed: bool) -> String {
    if xs.is_empty() || xs.iter().any(|x| !x.is_finite()) {
        return "-".into();
    }
    let (m, sd) = mean_sd(xs);
    let sign = if signed && m >= 0.0 { "+" } else { "" };
    if xs.len() > 1 {
        format!("{sign}{m:.4} ± {sd:.4}")
    } else {
        format!("{sign}{m:.4}")
    }
}

/// The change of MC1 and MC2 from `base` (mean ± sd over the values), or "-" without one.
fn deltas(mc1: &[f64], mc2: &[f64], base: Option<&RunResult>) -> (String, String) {
    let Some(b) = base else {
        return ("-".into(), "-".into());
    };
    let shift = |xs: &[f64], by: f64| xs.iter().map(|x| x - by).collect::<Vec<_>>();
    (
        fmt_stat(&shift(mc1, b.truthfulqa_mc1), true),
        fmt_stat(&shift(mc2, b.truthfulqa_mc2), true),
    )
}

/// The runs grouped by label (the seeds of one run share it), in order of first appearance.
pub fn by_label(runs: &[RunResult]) -> Vec<Vec<&RunResult>> {
    let mut groups: Vec<Vec<&RunResult>> = Vec::new();
    for r in runs {
        match groups
            .iter_mut()
            .find(|g| g[0].label == r.label && g[0].method == r.method)
        {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

fn opt(v: &[&RunResult], f: impl Fn(&RunResult) -> Option<f64>) -> Vec<f64> {
    v.iter().map(|r| f(r).unwrap_or(f64::NAN)).collect()
}

/// A Markdown table of `runs`, one row per label (seeds averaged: mean ± sample standard
/// deviation); with `base`, the change of MC1/MC2 from it.
///
/// ```
/// # use burn_engram::study::{RunResult, table};
/// let r = |name: &str, mc1| RunResult { name: name.into(), label: name.into(),
///     method: name.into(), config: serde_json::json!({}), seed: 42, trainable_params: 0,
///     eval_loss: None, answer_loss: None, answer_accuracy: None, call_exact_match: None,
///     truthfulqa_mc1: mc1, truthfulqa_mc2: 0.5, n_questions: 10,
///     steps: 0, seconds: 1.0, eval_curve: vec![], checkpoints: vec![] };
/// let (base, lora) = (r("base", 0.5), r("lora", 0.25));
/// let t = table(&[base.clone(), lora], Some(&base));
/// assert!(t.contains("| lora | lora | 1 | 0 | - | - | - | - | 0.2500 | 0.5000 | -0.2500 | +0.0000 |"), "{t}");
/// ```
pub fn table(runs: &[RunResult], base: Option<&RunResult>) -> String {
    let mut s = String::from(
        "| run | method | seeds | trainable params | eval loss | answer loss | answer accuracy | exact calls | MC1 | MC2 | ΔMC1 | ΔMC2 |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for g in by_label(runs) {
        let mc1 = opt(&g, |r| Some(r.truthfulqa_mc1));
        let mc2 = opt(&g, |r| Some(r.truthfulqa_mc2));
        let (d1, d2) = deltas(&mc1, &mc2, base);
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            g[0].label,
            g[0].method,
            g.len(),
            g[0].trainable_params,
            fmt_stat(&opt(&g, |r| r.eval_loss), false),
            fmt_stat(&opt(&g, |r| r.answer_loss), false),
            fmt_stat(&opt(&g, |r| r.answer_accuracy), false),
            fmt_stat(&opt(&g, |r| r.call_exact_match), false),
            fmt_stat(&mc1, false),
            fmt_stat(&mc2, false),
            d1,
            d2
        );
    }
    s
}

/// The trained runs compared the seed study's way, at a matched eval loss: the target is the
/// highest of the runs' final eval losses (seed means), which every run reaches; each run
/// (each seed) is read at its first measured checkpoint at or below it. Empty unless the
/// trained runs hold at least two methods.
pub fn matched_loss(runs: &[RunResult]) -> Vec<MatchedRow> {
    let groups: Vec<Vec<&RunResult>> = by_label(runs)
        .into_iter()
        .filter(|g| g[0].method != "base" && g.iter().all(|r| !r.checkpoints.is_empty()))
        .collect();
    let mut methods: Vec<&str> = groups.iter().map(|g| g[0].method.as_str()).collect();
    methods.dedup();
    if groups.len() < 2 || methods.len() < 2 {
        return Vec::new(); // one method (an ablation or a sweep): nothing to match across
    }
    let target = groups
        .iter()
        .map(|g| mean_sd(&opt(g, |r| r.checkpoints.last().map(|c| c.eval_loss))).0)
        .fold(f64::NEG_INFINITY, f64::max);
    if !target.is_finite() {
        return Vec::new();
    }
    groups
        .iter()
        .map(|g| {
            let picks: Vec<_> = g
                .iter()
                .map(|r| {
                    let c = r.checkpoints.iter().find(|c| c.eval_loss <= target + 1e-12);
                    *c.or(r.checkpoints.last()).expect("checked non-empty")
                })
                .collect();
            MatchedRow {
                label: g[0].label.clone(),
                method: g[0].method.clone(),
                target_eval_loss: target,
                steps: picks.iter().map(|c| c.step).collect(),
                eval_loss: picks.iter().map(|c| c.eval_loss).collect(),
                mc1: picks.iter().map(|c| c.mc1).collect(),
                mc2: picks.iter().map(|c| c.mc2).collect(),
            }
        })
        .collect()
}

/// The Markdown table of [`matched_loss`] rows.
pub fn matched_table(rows: &[MatchedRow], base: Option<&RunResult>) -> String {
    let mut s = String::new();
    if let Some(r) = rows.first() {
        s += &format!(
            "Each run read at its first measured checkpoint with eval loss <= {:.4}.\n\n",
            r.target_eval_loss
        );
    }
    s += "| run | method | steps | eval loss | MC1 | MC2 | ΔMC1 | ΔMC2 |\n|---|---|---|---:|---:|---:|---:|---:|\n";
    for r in rows {
        let (d1, d2) = deltas(&r.mc1, &r.mc2, base);
        let steps: Vec<String> = r.steps.iter().map(|s| s.to_string()).collect();
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.label,
            r.method,
            steps.join(", "),
            fmt_stat(&r.eval_loss, false),
            fmt_stat(&r.mc1, false),
            fmt_stat(&r.mc2, false),
            d1,
            d2
        );
    }
    s
}
