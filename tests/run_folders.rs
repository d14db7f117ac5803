//! Runs users can trust, shown through the example binaries as users run them: run folders
//! that record what made them, refuse to mix runs, lock out a second process, start-up
//! checks, range-checked flags, logs off a terminal, non-finite scores refused, the glaive
//! preparation's edge cases, and folders written whole under SIGKILL.
//!
//! The binaries come from `cargo test --all-targets` (scripts/test.sh); see
//! `common::example`.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use burn_engram::io::write_dir_atomic;
use burn_engram::study::train::{CheckpointConfig, TrainConfig, checkpoints, train};
use burn_engram::{EngramError, Result};

fn model_dir() -> PathBuf {
    common::fixture("qwen3/untied")
}

/// `n` prepared samples (the weather calls of the other tests) as JSON lines.
fn write_data(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("data.jsonl");
    let text: String = common::weather_samples()
        .iter()
        .cycle()
        .take(n)
        .map(|s| serde_json::to_string(s).unwrap() + "\n")
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn write_engram_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("engram.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"engram_vocab_size": [211, 97], "n_embed_per_ngram": 32, "n_head_per_ngram": 2,
                "layer_ids": [0, 2], "pad_id": 0{extra}}}"#
        ),
    )
    .unwrap();
    path
}

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    ecfg: PathBuf,
    out: PathBuf,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    Setup {
        data: write_data(&root, 20),
        ecfg: write_engram_config(&root, ""),
        out: root.join("run"),
        root,
        _tmp: tmp,
    }
}

/// `train` of the small Engram run on these inputs, then `extra`.
fn train_at(model: &Path, data: &Path, out: &Path, ecfg: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(common::example("train"));
    cmd.args(["--method", "engram", "--model-dir"])
        .arg(model)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .arg("--engram-config")
        .arg(ecfg)
        .args(["--lr", "1e-2", "--max-steps", "4", "--save-every", "2"])
        .args([
            "--micro-batch",
            "4",
            "--grad-accum",
            "1",
            "--eval-every",
            "0",
        ])
        .args(extra)
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// `train` of the small Engram run in the setup's folder, then `extra`.
fn train_cmd(s: &Setup, extra: &[&str]) -> Command {
    train_at(&model_dir(), &s.data, &s.out, &s.ecfg, extra)
}

fn run_train(s: &Setup, extra: &[&str]) -> Output {
    train_cmd(s, extra).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    let e = stderr(o);
    assert!(o.status.success(), "{e}");
    e
}

#[track_caller]
fn fails(o: &Output, code: i32, needles: &[&str]) -> String {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(code), "{e}");
    for n in needles {
        assert!(e.contains(n), "`{n}` not in: {e}");
    }
    assert!(!e.contains("panicked"), "{e}");
    e
}

/// Every file under `dir` with its bytes (the lock file's pid aside), for "nothing touched".
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".lock") {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_fresh_run_refuses_a_used_folder_and_overwrite_replaces_it() {
    let s = setup();
    let log = ok(&run_train(&s, &[]));
    // off a terminal (stderr is a pipe here): plain progress lines and a summary
    assert!(log.contains("step 1/4 epoch 0 loss"), "{log}");
    assert!(log.contains("step 4: eval loss"), "{log}");
    assert!(
        log.contains("done: 4 steps") && log.contains("run_manifest.json"),
        "{log}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out.join("run_manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["method"], "engram");
    assert_eq!(manifest["config"]["train"]["lr"], 1e-2);
    assert_eq!(
        manifest["inputs"]["data"]["sha256"]["data.jsonl"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(manifest["inputs"]["model"]["sha256"]["model.safetensors"].is_string());
    let before = snapshot(&s.out);

    // the same command again: refused, nothing touched
    fails(
        &run_train(&s, &[]),
        1,
        &["is not empty", "--overwrite", "--resume"],
    );
    assert_eq!(snapshot(&s.out), before);
    // --overwrite: a new run (another seed), old checkpoints gone
    ok(&run_train(
        &s,
        &["--overwrite", "--seed", "7", "--save-every", "3"],
    ));
    let steps: Vec<usize> = checkpoints(&s.out)
        .unwrap()
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(steps, [3], "the old run's checkpoint-2/-4 are gone");
    let lines = std::fs::read_to_string(s.out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4, "metrics of one run only");
}

#[test]
fn resume_continues_only_the_run_the_manifest_records() {
    let s = setup();
    // nothing to resume: refused (nothing created); --resume-or-start starts
    fails(
        &run_train(&s, &["--resume"]),
        1,
        &["no run to resume", "--resume-or-start"],
    );
    assert!(!s.out.exists());
    ok(&run_train(&s, &["--resume-or-start", "--stop-after", "2"]));
    let before = snapshot(&s.out);
    // other settings or inputs: refused, each difference named, nothing touched
    let e = fails(
        &run_train(
            &s,
            &[
                "--resume",
                "--lr",
                "2e-2",
                "--max-grad-norm",
                "1",
                "--dtype",
                "f32",
            ],
        ),
        1,
        &[
            "config.train.lr: 0.01 -> 0.02",
            "config.train.max_grad_norm: null -> 1.0",
        ],
    );
    assert!(
        !e.contains("dtype"),
        "f32 is what auto resolved to on the CPU: {e}"
    );
    let other = tempfile::tempdir().unwrap();
    let other_data = write_data(other.path(), 21);
    let o = train_at(&model_dir(), &other_data, &s.out, &s.ecfg, &["--resume"])
        .output()
        .unwrap();
    fails(&o, 1, &["data data.jsonl (", "holds a run made with other"]);
    let tied = common::fixture("qwen3/tied");
    let o = train_at(&tied, &s.data, &s.out, &s.ecfg, &["--resume"])
        .output()
        .unwrap();
    fails(
        &o,
        1,
        &["model model.safetensors (", "holds a run made with other"],
    );
    assert_eq!(snapshot(&s.out), before);
    // the same settings: continued from checkpoint-2 to the end
    let log = ok(&run_train(&s, &["--resume"]));
    assert!(
        log.contains("resuming from") && log.contains("checkpoint-2"),
        "{log}"
    );
    let steps: Vec<u64> = std::fs::read_to_string(s.out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [1, 2, 3, 4]);
}

#[test]
fn a_second_process_is_kept_out_of_a_running_folder() {
    let s = setup();
    let mut first = train_cmd(&s, &["--max-steps", "400", "--save-every", "1"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = s.out.join(".lock");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|p| !p.is_empty()) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the first run never locked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = run_train(
        &s,
        &[
            "--resume-or-start",
            "--max-steps",
            "400",
            "--save-every",
            "1",
        ],
    );
    fails(
        &second,
        1,
        &[
            "is in use by another process",
            &format!("pid {}", first.id()),
            ".lock",
        ],
    );
    assert!(first.wait().unwrap().success());
    // the survivor's folder is one run's: every step once, a loadable last checkpoint
    let lines = std::fs::read_to_string(s.out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 400);
    let steps: Vec<usize> = checkpoints(&s.out)
        .unwrap()
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(steps, [399, 400]);
    assert!(s.out.join("engram/engram.safetensors").is_file());
}

#[test]
fn start_up_checks_fail_before_the_first_step_and_touch_nothing() {
    let s = setup();
    let one = write_data(&s.root, 1);
    let mut cmd = Command::new(common::example("train"));
    cmd.args(["--method", "lora", "--model-dir"])
        .arg(model_dir())
        .arg("--data")
        .arg(&one)
        .arg("--out")
        .arg(&s.out);
    fails(
        &cmd.output().unwrap(),
        1,
        &["data.jsonl: 1 sample: too few"],
    );
    assert!(!s.out.exists());
    // a sample longer than the fixture's 512 positions, on line 3
    let mut text = std::fs::read_to_string(write_data(&s.root, 4)).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = serde_json::json!({"instruction": "x", "input": "y", "output": "word ".repeat(800)})
        .to_string();
    text = lines.join("\n") + "\n";
    let long = s.root.join("long.jsonl");
    std::fs::write(&long, text).unwrap();
    let o = train_at(&model_dir(), &long, &s.out, &s.ecfg, &[])
        .output()
        .unwrap();
    fails(
        &o,
        1,
        &[
            "long.jsonl: line 3: ",
            "more than the model's 512 positions",
            "--max-len 512",
        ],
    );
    fails(
        &run_train(&s, &["--max-len", "4096"]),
        1,
        &["`max_len`", "4096 exceeds the model's 512 positions"],
    );
    assert!(!s.out.exists());
    // a typo in an Engram config of ours is named, not a silent default
    let typo_dir = tempfile::tempdir().unwrap();
    let typo = write_engram_config(typo_dir.path(), r#", "n_heads_per_ngram": 4"#);
    let o = train_at(&model_dir(), &s.data, &s.out, &typo, &[])
        .output()
        .unwrap();
    fails(&o, 1, &["engram.json", "unknown field `n_heads_per_ngram`"]);
    assert!(!s.out.exists());
}

#[test]
fn flags_are_range_checked_when_parsed() {
    let s = setup();
    for (flag, value) in [
        ("--lr", "nan"),
        ("--lr", "-1e-3"),
        ("--lr", "inf"),
        ("--micro-batch", "0"),
        ("--grad-accum", "0"),
        ("--epochs", "0"),
        ("--max-steps", "0"),
        ("--max-grad-norm", "-1"),
        ("--weight-decay", "-0.1"),
        ("--table-weight-decay", "nan"),
        ("--warmup-ratio", "1.5"),
        ("--table-lr-mult", "-1"),
        ("--keep-last", "0"),
    ] {
        let o = run_train(&s, &[&format!("{flag}={value}")]);
        let e = fails(&o, 2, &[flag]);
        assert!(e.contains(value), "{flag} {value}: {e}");
    }
    let o = Command::new(common::example("eval"))
        .args(["--model-dir"])
        .arg(model_dir())
        .args(["--limit", "0"])
        .output()
        .unwrap();
    fails(&o, 2, &["--limit", "selects no questions"]);
    assert!(!s.out.exists());
    // --weight-decay exists and is recorded
    ok(&run_train(
        &s,
        &["--weight-decay", "0.1", "--max-steps", "1"],
    ));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.out.join("train_config.json")).unwrap())
            .unwrap();
    assert!((cfg["weight_decay"].as_f64().unwrap() - 0.1).abs() < 1e-6);
}

#[test]
fn sparse_table_updates_run_from_the_cli_and_resume_exactly() {
    let s = setup();
    let sparse = [
        "--table-update",
        "sparse",
        "--max-steps",
        "6",
        "--save-every",
        "3",
    ];
    let mut args = sparse.to_vec();
    args.extend(["--stop-after", "3"]);
    ok(&run_train(&s, &args));
    assert!(
        s.out
            .join("checkpoint-3/sparse_optimizer.safetensors")
            .is_file()
    );
    let mut args = sparse.to_vec();
    args.push("--resume");
    let log = ok(&run_train(&s, &args));
    assert!(log.contains("checkpoint-3"), "{log}");
    let resumed = std::fs::read(s.out.join("engram/engram.safetensors")).unwrap();
    let straight_dir = s.root.join("straight");
    ok(
        &train_at(&model_dir(), &s.data, &straight_dir, &s.ecfg, &sparse)
            .output()
            .unwrap(),
    );
    let straight = std::fs::read(straight_dir.join("engram/engram.safetensors")).unwrap();
    assert!(
        straight == resumed,
        "3 + 3 resumed sparse steps give the bytes of 6 straight ones"
    );
}

/// A non-finite state never becomes a checkpoint: a learning rate that overflows f32 turns
/// the parameters infinite at step 3; the run stops naming them, and with keep_last 1 the
/// good checkpoint of step 2 is still there.
#[test]
fn non_finite_parameters_are_never_checkpointed() {
    let device = Device::default().autodiff();
    let (model, data, pad) = common::tiny_engram_run(&device, 101);
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointConfig {
        dir: dir.path().to_path_buf(),
        every: 1,
        keep_last: 1,
        resume: true,
    };
    let cfg = |lr| TrainConfig {
        lr,
        max_steps: Some(6),
        stop_after: Some(2),
        warmup_ratio: 0.0,
        ..TrainConfig::default()
    };
    train(model, &data, pad, &cfg(1e-2), &device, Some(&ck), |_| {}).unwrap();
    let (model, _, _) = common::tiny_engram_run(&device, 101);
    let wild = TrainConfig {
        stop_after: None,
        ..cfg(1e39) // finite as f64, infinite as the f32 the update is computed in
    };
    let err = train(model, &data, pad, &wild, &device, Some(&ck), |_| {}).unwrap_err();
    match &err {
        EngramError::NonFinite { step, what, detail } => {
            assert_eq!((*step, what.as_str()), (3, "parameter"), "{err}");
            assert!(
                detail.contains("engram.layers") && detail.contains("not written"),
                "{err}"
            );
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    let steps: Vec<usize> = checkpoints(dir.path())
        .unwrap()
        .iter()
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(
        steps,
        [2],
        "the last good checkpoint is kept, none of NaN written"
    );
    // and the library refuses a non-finite learning rate before the first step
    let (model, _, _) = common::tiny_engram_run(&device, 101);
    let e = train(model, &data, pad, &cfg(f64::NAN), &device, None, |_| {}).unwrap_err();
    assert!(
        matches!(e, EngramError::InvalidTraining { field: "lr", .. }),
        "{e}"
    );
}

#[test]
fn max_steps_sets_the_schedule_as_hugging_face_does() {
    let cfg = TrainConfig {
        epochs: 7,
        micro_batch: 4,
        ..TrainConfig::default()
    };
    // 20 sequences, 4 per step: 5 steps an epoch
    assert_eq!(cfg.plan(20), (35, 35, 7));
    let hf = TrainConfig {
        max_steps: Some(12),
        ..cfg.clone()
    };
    assert_eq!(
        hf.plan(20),
        (12, 12, 3),
        "12 steps over 3 passes, the schedule spans 12"
    );
    let cut = TrainConfig {
        stop_after: Some(4),
        ..cfg.clone()
    };
    assert_eq!(
        cut.plan(20),
        (35, 4, 7),
        "stop_after keeps the full run's schedule"
    );
    // a real run with max_steps: the learning rate reaches the end of its cosine
    let device = Device::default().autodiff();
    let (model, data, pad) = common::tiny_engram_run(&device, 101);
    let run = TrainConfig {
        lr: 1e-2,
        max_steps: Some(12),
        warmup_ratio: 0.0,
        ..cfg
    };
    let (_, m) = train(model, &data, pad, &run, &device, None, |_| {}).unwrap();
    assert_eq!(m.len(), 12);
    assert_eq!(m.last().unwrap().total_steps, 12);
    assert!(
        m.last().unwrap().lr < 1e-3 * 1e-2 * 100.0,
        "{}",
        m.last().unwrap().lr
    );
    assert!(
        m.iter().map(|x| x.epoch).max().unwrap() >= 2,
        "the data is gone over again"
    );
}

/// A copy of the untied fixture whose lm_head is 3e38 everywhere: finite weights (the loader
/// accepts them) whose logits overflow to infinity.
fn exploding_model() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(model_dir()).unwrap().flatten() {
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let edited = common::edit_tensors(&bytes, |name, d, shape, data| {
        if name != "lm_head.weight" {
            return Some((d, shape.to_vec(), data.to_vec()));
        }
        assert_eq!(d, safetensors::tensor::Dtype::F32);
        let huge = (0..data.len() / 4)
            .flat_map(|i| (if i % 2 == 0 { 3e38f32 } else { -3e38 }).to_le_bytes())
            .collect();
        Some((d, shape.to_vec(), huge))
    });
    std::fs::write(&path, edited).unwrap();
    dir
}

/// `score` of " is sunny" after "The weather in Paris" under the model in `dir`.
fn score_sunny(dir: &Path) -> Output {
    Command::new(common::example("score"))
        .arg("--model-dir")
        .arg(dir)
        .args(["--context", "The weather in Paris"])
        .args(["--continuation", " is sunny"])
        .output()
        .unwrap()
}

#[test]
fn eval_and_score_refuse_non_finite_logits() {
    let bad = exploding_model();
    let o = score_sunny(bad.path());
    fails(
        &o,
        1,
        &["error: non-finite logits in continuation \" is sunny\""],
    );
    assert!(o.stdout.is_empty(), "no JSON with a null logprob");
    let o = Command::new(common::example("eval"))
        .arg("--model-dir")
        .arg(bad.path())
        .args(["--limit", "2"])
        .output()
        .unwrap();
    fails(&o, 1, &["non-finite logits"]);
    // the untouched model scores
    let o = score_sunny(&model_dir());
    ok(&o);
}

#[test]
fn hugging_face_configs_warn_about_unknown_fields_and_sizes_blame_the_right_field() {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(model_dir()).unwrap().flatten() {
        std::fs::copy(f.path(), dir.path().join(f.file_name())).unwrap();
    }
    let cfg_path = dir.path().join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["hiden_size"] = serde_json::json!(64); // a typo: warned, not fatal
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let o = Command::new(common::example("score"))
        .arg("--model-dir")
        .arg(dir.path())
        .args(["--context", "a", "--continuation", " b"])
        .output()
        .unwrap();
    let e = ok(&o);
    assert!(
        e.contains("warning: ") && e.contains("config.json: unknown field `hiden_size`"),
        "{e}"
    );
    assert!(
        !e.contains("use_cache"),
        "transformers' own fields are not warned about: {e}"
    );
    // a vocabulary of 10^12 is blamed on vocab_size
    cfg["vocab_size"] = serde_json::json!(1_000_000_000_000u64);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let e = burn_engram::host::qwen3::Qwen3Config::from_file(&cfg_path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("field `vocab_size`"), "{e}");
    // a zero-byte weights file is named, not config.json
    cfg["vocab_size"] = serde_json::json!(512);
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("config.json")).unwrap())
            .unwrap();
    std::fs::write(&cfg_path, good.to_string()).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
    let e = burn_engram::host::qwen3::load_qwen3(
        dir.path(),
        &Device::default(),
        burn::tensor::DType::F32,
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(e.contains("model.safetensors: 0 bytes"), "{e}");
    // LoRA mistakes say LoRA
    let e = burn_engram::host::lora::LoraConfig {
        r: 0,
        ..Default::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("invalid LoRA config: `r`"), "{e}");
}

fn prepare(input: &Path, output: &Path) -> Output {
    Command::new(common::example("prepare_glaive"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .output()
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn prepare_glaive_reads_boms_recovers_cut_arrays_and_never_overwrites_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let row = r#"{"system": "s", "chat": "USER: q ASSISTANT: <functioncall> {\"name\": \"w\"}"}"#;
    let bare = r#"{"chat": "USER: q ASSISTANT: <functioncall> {\"name\": \"v\"}"}"#;
    // a BOM and a row without `system`
    let input = d.join("export.json");
    std::fs::write(&input, format!("\u{feff}[{row},\n{bare}]")).unwrap();
    let out = d.join("train.jsonl");
    let o = prepare(&input, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().nth(1).unwrap().contains(r#""instruction":"""#));
    // --output = --input: refused, the export untouched
    let export = std::fs::read(&input).unwrap();
    let same = d.join(".").join("export.json");
    fails(&prepare(&input, &same), 1, &["is the input"]);
    assert_eq!(std::fs::read(&input).unwrap(), export);
    // a cut array: the complete rows written, then an error naming the byte offset
    let whole = format!("[{row}, {row}, {row}]");
    let cut = d.join("cut.json");
    std::fs::write(&cut, &whole[..whole.len() - 15]).unwrap();
    let out2 = d.join("cut.jsonl");
    let at = 1 + row.len() + 2 + row.len();
    fails(
        &prepare(&cut, &out2),
        1,
        &[&format!("cut short at byte {at}"), "2 samples written"],
    );
    assert_eq!(std::fs::read_to_string(&out2).unwrap().lines().count(), 2);
    // nothing kept: an error, no output
    let none = d.join("none.json");
    std::fs::write(
        &none,
        r#"[{"system": "no access to external functions", "chat": "x"}]"#,
    )
    .unwrap();
    let out3 = d.join("none.jsonl");
    fails(&prepare(&none, &out3), 1, &["no sample kept of 1 rows"]);
    assert!(!out3.exists());
    // an output folder that does not exist: an error, no temporary left anywhere
    let before = names(d);
    fails(
        &prepare(&input, &d.join("missing/train.jsonl")),
        1,
        &["missing"],
    );
    assert_eq!(names(d), before);
}

#[test]
fn pretrain_refuses_an_existing_folder_before_it_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("config.json"), "{}").unwrap();
    let t0 = Instant::now();
    let o = Command::new(common::example("pretrain"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    fails(&o, 1, &["exists: pass --overwrite"]);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "refused up front, not after training"
    );
    assert_eq!(names(&out), ["config.json"]);
}

#[test]
fn readme_score_example_passes_a_real_newline() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.contains("--context") && l.contains("France"))
        .unwrap();
    assert!(
        line.contains(r"--context $'Q: What is the capital of France?\nA:'"),
        "{line}"
    );
}

// ------------------------------------------------------------- folders written whole

const WRITER_ENV: &str = "BURN_ENGRAM_DIR_WRITER";

/// The child: rewrites one folder of two files, generation after generation; both files of a
/// generation carry its number (the second one large, so kills land inside writes).
#[test]
fn dir_writer_child() {
    let Ok(dest) = std::env::var(WRITER_ENV) else {
        return; // only as a child of the test below
    };
    let dest = PathBuf::from(dest);
    for generation_no in 0u64.. {
        write_dir_atomic(&dest, |d| -> Result<()> {
            std::fs::write(d.join("tokenizer.json"), generation_no.to_string()).map_err(|e| {
                EngramError::Io {
                    path: d.into(),
                    source: e,
                }
            })?;
            let mut big = generation_no.to_le_bytes().repeat(1 << 17); // 1 MiB
            big.extend_from_slice(b"end");
            std::fs::write(d.join("model.safetensors"), big).map_err(|e| EngramError::Io {
                path: d.into(),
                source: e,
            })
        })
        .unwrap();
    }
}

/// The generation a folder holds, checked whole: both files present and of one generation.
fn generation(dest: &Path) -> Option<u64> {
    if !dest.exists() {
        return None;
    }
    let tok: u64 = std::fs::read_to_string(dest.join("tokenizer.json"))
        .expect("tokenizer.json present")
        .parse()
        .unwrap();
    let big = std::fs::read(dest.join("model.safetensors")).expect("weights present");
    assert_eq!(big.len(), 8 * (1 << 17) + 3, "weights complete");
    assert_eq!(
        u64::from_le_bytes(big[..8].try_into().unwrap()),
        tok,
        "files of one write"
    );
    Some(tok)
}

#[test]
fn folders_killed_while_written_are_old_or_new_never_mixed() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("model");
    let mut last = None;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for round in 0..8 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "dir_writer_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(WRITER_ENV, &dest)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let delay = 200 + state % 600;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let generation_no = generation(&dest);
        assert!(
            last.is_none() || generation_no.is_some(),
            "round {round}: a folder that existed is gone"
        );
        last = generation_no.or(last);
    }
    assert!(last.is_some(), "the writer finished at least one folder");
}
