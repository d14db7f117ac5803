//! `results.json` and the study's table (method, trainable parameters, eval loss, MC1, MC2,
//! and their change from the base model).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::runner::RunResult;
use crate::config::write_json;
use crate::error::Result;

/// The file a study writes: `{"runs": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsFile {
    /// Every run, in order.
    pub runs: Vec<RunResult>,
}

/// Writes `results.json` (atomically) and `results.md` (the table) into `dir`.
pub fn write_results(
    dir: &Path,
    title: &str,
    runs: &[RunResult],
    base: Option<&RunResult>,
) -> Result<()> {
    write_json(
        &dir.join("results.json"),
        &ResultsFile {
            runs: runs.to_vec(),
        },
    )?;
    let md = format!("# {title}\n\n{}", table(runs, base));
    crate::fsutil::write_atomic(&dir.join("results.md"), md.as_bytes())
}

fn signed(x: f64) -> String {
    format!("{}{:.4}", if x >= 0.0 { "+" } else { "" }, x)
}

/// A Markdown table of `runs`; with `base`, the change of MC1/MC2 from it.
///
/// ```
/// # use burn_engram::study::{RunResult, table};
/// let r = |name: &str, mc1| RunResult { name: name.into(), label: name.into(),
///     method: name.into(), config: serde_json::json!({}), trainable_params: 0,
///     eval_loss: None, truthfulqa_mc1: mc1, truthfulqa_mc2: 0.5, n_questions: 10,
///     steps: 0, seconds: 1.0, eval_curve: vec![] };
/// let (base, lora) = (r("base", 0.5), r("lora", 0.25));
/// let t = table(&[base.clone(), lora], Some(&base));
/// assert!(t.contains("| lora | lora | 0 | - | 0.2500 | 0.5000 | -0.2500 | +0.0000 |"));
/// ```
pub fn table(runs: &[RunResult], base: Option<&RunResult>) -> String {
    let mut s = String::from(
        "| run | method | trainable params | eval loss | MC1 | MC2 | ΔMC1 | ΔMC2 |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let loss = r.eval_loss.map_or("-".to_string(), |l| format!("{l:.4}"));
        let (d1, d2) = match base {
            Some(b) => (
                signed(r.truthfulqa_mc1 - b.truthfulqa_mc1),
                signed(r.truthfulqa_mc2 - b.truthfulqa_mc2),
            ),
            None => ("-".into(), "-".into()),
        };
        s += &format!(
            "| {} | {} | {} | {} | {:.4} | {:.4} | {} | {} |\n",
            r.label, r.method, r.trainable_params, loss, r.truthfulqa_mc1, r.truthfulqa_mc2, d1, d2
        );
    }
    s
}
