//! The `eval` example's lm-evaluation-harness layout: results, standard errors, config,
//! `--log-samples` records, fractional `--limit`, and one clear line for bad tasks or limits.
#![cfg(feature = "study")] // runs the example binaries (study feature)

mod common;

use std::process::Command;

use common::{example, fixture};

fn eval(args: &[&str]) -> std::process::Output {
    let dir = fixture("qwen3/tied");
    Command::new(example("eval"))
        .arg("--model-dir")
        .arg(&dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn results_and_samples_in_lm_eval_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results.json");
    let o = eval(&[
        "--limit",
        "0.005",
        "--log-samples",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    // ceil(817 * 0.005) = 5 questions
    for task in ["truthfulqa_mc1", "truthfulqa_mc2"] {
        assert_eq!(v["n-samples"][task]["effective"], 5, "{v}");
        assert_eq!(v["n-samples"][task]["original"], 817);
        let r = &v["results"][task];
        assert_eq!(r["alias"], task);
        let text =
            std::fs::read_to_string(tmp.path().join(format!("results_samples_{task}.jsonl")))
                .unwrap();
        let samples: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(samples.len(), 5);
        let accs: Vec<f64> = samples.iter().map(|s| s["acc"].as_f64().unwrap()).collect();
        let mean = accs.iter().sum::<f64>() / 5.0;
        assert!((r["acc,none"].as_f64().unwrap() - mean).abs() < 1e-12);
        let sd = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((r["acc_stderr,none"].as_f64().unwrap() - sd / 5f64.sqrt()).abs() < 1e-12);
        for s in &samples {
            let n = s["doc"]["choices"].as_array().unwrap().len();
            assert_eq!(s["filtered_resps"].as_array().unwrap().len(), n);
            let lp: f64 = s["filtered_resps"][0][0].as_str().unwrap().parse().unwrap();
            assert!(lp.is_finite() && lp < 0.0);
        }
    }
    assert_eq!(v["config"]["limit"], 0.005);
    assert_eq!(v["config"]["method"], "base");
    // the last stdout line is the same object
    let stdout = String::from_utf8_lossy(&o.stdout);
    let printed: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(printed["results"], v["results"]);
}

#[test]
fn one_task_alias_and_bad_input_are_one_clear_line() {
    let o = eval(&["--tasks", "truthfulqa_mc1", "--limit", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let tasks: Vec<&String> = v["results"].as_object().unwrap().keys().collect();
    assert_eq!(tasks, ["truthfulqa_mc1"]);
    for (args, want) in [
        (vec!["--tasks", "hellaswag"], "unknown task \"hellaswag\""),
        (vec!["--limit", "0"], "selects no questions"),
        (
            vec!["--limit", "1.5"],
            "neither a whole count nor a fraction below 1",
        ),
        (vec!["--log-samples"], "--out"),
    ] {
        let o = eval(&args);
        assert!(!o.status.success(), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}
