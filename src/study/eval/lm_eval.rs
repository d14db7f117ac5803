//! Results as lm-evaluation-harness lays them out: `results.<task>` with `acc,none` and
//! `acc_stderr,none`, `n-samples`, `config`, and per-sample records for `--log-samples`;
//! task names and `--limit` as lm-eval reads them.

use serde_json::{Value, json};

use super::truthfulqa::{McQuestion, TruthfulQaResult};
use crate::error::{EngramError, Result};

/// The protocol this crate's TruthfulQA scoring reproduces (tests/truthfulqa.rs checks the
/// per-choice log-likelihoods against it).
pub const PROTOCOL: &str = "lm-evaluation-harness 0.4.9.1";

/// How many questions a run scores: the first N, or (below 1) a fraction of the task,
/// rounded up as lm-eval does (`ceil(len * limit)`).
///
/// ```
/// use burn_engram::study::eval::lm_eval::Limit;
/// assert_eq!("10".parse::<Limit>().unwrap().of(817), 10);
/// assert_eq!("0.1".parse::<Limit>().unwrap().of(817), 82);
/// assert!("0".parse::<Limit>().unwrap_err().contains("selects no questions"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// The first N questions.
    Count(usize),
    /// This fraction of the questions, in (0, 1).
    Fraction(f64),
}

impl std::str::FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let v: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a count or a fraction"))?;
        if !v.is_finite() || v <= 0.0 {
            return Err(format!(
                "{s} selects no questions: give a count >= 1 or a fraction in (0, 1)"
            ));
        }
        if v < 1.0 {
            return Ok(Self::Fraction(v));
        }
        if v.fract() != 0.0 {
            return Err(format!(
                "{s} is neither a whole count nor a fraction below 1"
            ));
        }
        Ok(Self::Count(v as usize))
    }
}

impl Limit {
    /// Questions selected from a task of `n`.
    pub fn of(self, n: usize) -> usize {
        match self {
            Self::Count(c) => c.min(n),
            Self::Fraction(f) => ((n as f64 * f).ceil() as usize).min(n),
        }
    }

    /// As lm-eval records it (`config.limit`).
    pub fn to_json(self) -> Value {
        match self {
            Self::Count(c) => json!(c),
            Self::Fraction(f) => json!(f),
        }
    }
}

/// The evaluation tasks a name selects: `truthfulqa` (both MC tasks), `truthfulqa_mc1`,
/// `truthfulqa_mc2`, `loss`. An unknown name is an error listing the known ones.
pub fn resolve_tasks(names: &[String]) -> Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for name in names {
        let tasks: &[&'static str] = match name.as_str() {
            "truthfulqa" | "truthfulqa_mc" => &["truthfulqa_mc1", "truthfulqa_mc2"],
            "truthfulqa_mc1" => &["truthfulqa_mc1"],
            "truthfulqa_mc2" => &["truthfulqa_mc2"],
            "loss" | "eval_loss" => &["loss"],
            other => {
                return Err(EngramError::config(
                    "tasks",
                    format!(
                        "unknown task {other:?}: known are truthfulqa (= truthfulqa_mc1 + \
                         truthfulqa_mc2), truthfulqa_mc1, truthfulqa_mc2, loss"
                    ),
                ));
            }
        };
        for t in tasks {
            if !out.contains(t) {
                out.push(*t);
            }
        }
    }
    Ok(out)
}

/// The mean and its standard error as lm-eval computes them (`mean_stderr`: sample standard
/// deviation with n - 1, over sqrt(n)); the error is `None` for fewer than two values.
pub fn mean_and_stderr(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n.max(1.0);
    if xs.len() < 2 {
        return (mean, None);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some((var / n).sqrt()))
}

/// Per-question accuracy of an MC task (`truthfulqa_mc1` or `truthfulqa_mc2`).
fn accs(task: &str, r: &TruthfulQaResult) -> Vec<f64> {
    r.questions
        .iter()
        .map(|q| {
            if task == "truthfulqa_mc1" {
                q.mc1
            } else {
                q.mc2
            }
        })
        .collect()
}

/// `results.<task>`, `n-samples`, `higher_is_better` and `versions` entries of the MC tasks
/// in `tasks` (other names are skipped), from a run over `n_total` questions of which
/// `result` scored the first.
pub fn mc_results(tasks: &[&str], result: &TruthfulQaResult, n_total: usize) -> Value {
    let (mut results, mut samples, mut better, mut versions, mut shots) = (
        serde_json::Map::new(),
        serde_json::Map::new(),
        serde_json::Map::new(),
        serde_json::Map::new(),
        serde_json::Map::new(),
    );
    for &task in tasks.iter().filter(|t| t.starts_with("truthfulqa_mc")) {
        let (acc, se) = mean_and_stderr(&accs(task, result));
        results.insert(
            task.into(),
            json!({ "alias": task, "acc,none": acc, "acc_stderr,none": se }),
        );
        samples.insert(
            task.into(),
            json!({ "original": n_total, "effective": result.n_questions }),
        );
        better.insert(task.into(), json!({ "acc": true }));
        versions.insert(task.into(), json!(PROTOCOL));
        shots.insert(task.into(), json!(0));
    }
    json!({ "results": results, "n-samples": samples, "higher_is_better": better,
        "versions": versions, "n-shot": shots })
}

/// lm-eval's per-sample records of one MC task: `doc_id`, `doc`, `target`, the
/// log-likelihood of each choice (`resps`), and the sample's `acc`.
pub fn sample_records(
    task: &str,
    questions: &[McQuestion],
    result: &TruthfulQaResult,
) -> Vec<Value> {
    questions
        .iter()
        .zip(&result.questions)
        .enumerate()
        .map(|(i, (q, s))| {
            let (targets, logprobs, acc) = if task == "truthfulqa_mc1" {
                (&q.mc1_targets, &s.mc1_logprobs, s.mc1)
            } else {
                (&q.mc2_targets, &s.mc2_logprobs, s.mc2)
            };
            json!({
                "doc_id": i,
                "doc": { "question": q.question, "choices": targets.choices, "labels": targets.labels },
                "target": 0,
                "resps": logprobs.iter().map(|lp| json!([[lp.to_string(), false]])).collect::<Vec<_>>(),
                "filtered_resps": logprobs.iter().map(|lp| json!([lp.to_string(), false])).collect::<Vec<_>>(),
                "acc": acc,
            })
        })
        .collect()
}

/// The human table of a result: one line per task with its value (`acc,none`, or the eval
/// loss) and standard error, `-` where there is none.
pub fn results_table(result: &Value) -> String {
    let fmt = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.4}"));
    let mut out = format!("{:<16} {:>8} {:>8}\n", "task", "value", "stderr");
    for (task, r) in result["results"].as_object().into_iter().flatten() {
        let value = r["acc,none"].as_f64().or(r["eval_loss,none"].as_f64());
        let se = r["acc_stderr,none"].as_f64();
        out.push_str(&format!("{task:<16} {:>8} {:>8}\n", fmt(value), fmt(se)));
    }
    out
}

/// Writes each task's per-sample records beside the results file `out`, as lm-eval's
/// `--log_samples` does: `<out stem>_samples_<task>.jsonl`, one record per line, atomically.
pub fn write_samples(out: &std::path::Path, logged: &[(&str, Vec<Value>)]) -> Result<()> {
    let stem = out
        .file_stem()
        .map_or("results".into(), |s| s.to_string_lossy().into_owned());
    for (task, records) in logged {
        let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
        let file = out.with_file_name(format!("{stem}_samples_{task}.jsonl"));
        crate::io::write_atomic(&file, lines.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_lm_evals_and_tasks_resolve() {
        let (m, se) = mean_and_stderr(&[1.0, 0.0, 1.0, 1.0]);
        assert_eq!(m, 0.75);
        // squared deviations 3 * 0.0625 + 0.5625 = 0.75; sample var 0.75 / 3 = 0.25, sd 0.5;
        // over sqrt(4)
        assert!((se.unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(mean_and_stderr(&[1.0]).1, None);
        let t = resolve_tasks(&["truthfulqa".into(), "truthfulqa_mc2".into(), "loss".into()]);
        assert_eq!(t.unwrap(), ["truthfulqa_mc1", "truthfulqa_mc2", "loss"]);
        let e = resolve_tasks(&["hellaswag".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown task \"hellaswag\""), "{e}");
        assert!("1.5".parse::<Limit>().is_err());
        assert!("-1".parse::<Limit>().is_err());
        assert_eq!("1".parse::<Limit>(), Ok(Limit::Count(1)));
        assert_eq!(Limit::Fraction(0.5).of(3), 2);
    }
}
