//! The study command's library end to end at a tiny size, the embedded base model's probe
//! scores, and the reproducibility of its tokenizer.
#![cfg(feature = "study")] // uses the host models or the study harness

use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{DType, Device};
use burn_engram::CompressedVocab;
use burn_engram::host::qwen3::{CausalLm, Qwen3Tokenizer, load_qwen3, save_qwen3};
use burn_engram::study::data::dataset::{DataConfig, build};
use burn_engram::study::data::glaive::prepare;
use burn_engram::study::data::synth_glaive::generate_jsonl;
use burn_engram::study::eval::answers::score_answers;
use burn_engram::study::eval::truthfulqa::evaluate_with_primer;
use burn_engram::study::train::eval_loss;
use burn_engram::study::{
    Ablation, Method, PROBE_PRIMER, Profile, ResultsFile, RunResult, RunSpec, StudyInputs,
    base_model_dir, corpus_records, heldout_documents, load_ablations, main_runs, probe_questions,
    run_ablation, run_main, train_tokenizer,
};

/// PNG signature, a 13-byte IHDR first with the expected size, IEND last.
fn assert_png(path: &Path, width: u32, height: u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[8..16], b"\0\0\0\x0dIHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, h), (width, height));
    assert_eq!(&bytes[bytes.len() - 8..bytes.len() - 4], b"IEND");
    assert!(bytes.len() > 2000, "a figure, not an empty image");
}

/// Equal runs, bit for bit: floats survive the JSON round trip exactly (serde_json's
/// `float_roundtrip`); equal `seconds` shows a run was read back, not redone.
fn assert_same(a: &[RunResult], b: &[RunResult]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (&x.name, &x.method, x.trainable_params, x.steps),
            (&y.name, &y.method, y.trainable_params, y.steps)
        );
        assert_eq!(
            x.seconds.to_bits(),
            y.seconds.to_bits(),
            "{} was redone",
            x.name
        );
        assert_eq!(x.eval_loss.map(f64::to_bits), y.eval_loss.map(f64::to_bits));
        assert_eq!(
            x.answer_accuracy.map(f64::to_bits),
            y.answer_accuracy.map(f64::to_bits)
        );
        assert_eq!(x.checkpoints, y.checkpoints);
        assert_eq!(
            (x.truthfulqa_mc1.to_bits(), x.truthfulqa_mc2.to_bits()),
            (y.truthfulqa_mc1.to_bits(), y.truthfulqa_mc2.to_bits())
        );
        assert_eq!(x.eval_curve.len(), y.eval_curve.len());
    }
}

fn inputs(device: &Device) -> StudyInputs {
    let dir = base_model_dir();
    let tok = Qwen3Tokenizer::from_dir(&dir).unwrap();
    let (samples, _) = prepare(&generate_jsonl(60, 5));
    let data_cfg = DataConfig {
        max_len: 160,
        eval_fraction: 0.1,
        ..DataConfig::default()
    };
    let data = build(&samples, &tok, &data_cfg).unwrap();
    let mut questions = probe_questions().unwrap();
    questions.truncate(4);
    StudyInputs {
        model_dir: dir,
        vocab: Arc::new(CompressedVocab::from_tokenizer(&tok.inner).unwrap()),
        tok,
        data,
        questions,
        primer: PROBE_PRIMER.into(),
        device: device.clone(),
        dtype: DType::F32,
        save_every: 2,
        probe_every: 2,
        overwrite: false,
    }
}

#[test]
fn study_runs_end_to_end_and_resumes_from_its_results() {
    let device = Device::default().autodiff();
    let mut inputs = inputs(&device);
    let mut defaults = Profile::Miniature.defaults(inputs.tok.pad_id);
    defaults.engram_train.stop_after = Some(3);
    defaults.lora_train.stop_after = Some(3);
    defaults.engram_train.eval_every = 2;
    defaults.lora_train.eval_every = 2;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs/small");

    let mut events = 0usize;
    let results = run_main(&inputs, &defaults, &main_runs(), 1, &out, &mut |_, _| {
        events += 1
    })
    .unwrap();
    assert!(events > 6, "progress is reported");

    let text = std::fs::read_to_string(out.join("results.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let runs = json["runs"].as_array().unwrap();
    let methods: Vec<&str> = runs.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["base", "lora", "engram"]);
    for r in runs {
        for key in [
            "config",
            "trainable_params",
            "eval_loss",
            "answer_loss",
            "answer_accuracy",
            "call_exact_match",
            "truthfulqa_mc1",
            "truthfulqa_mc2",
            "checkpoints",
        ] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        let (mc1, mc2) = (
            r["truthfulqa_mc1"].as_f64().unwrap(),
            r["truthfulqa_mc2"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&mc1) && (0.0..=1.0).contains(&mc2));
        assert!(r["eval_loss"].as_f64().unwrap().is_finite());
        let acc = r["answer_accuracy"].as_f64().unwrap();
        let exact = r["call_exact_match"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&exact));
    }
    // The probe is measured along the way (every 2 steps and at the end: steps 2 and 3), the
    // last checkpoint is the final result.
    for r in &results[1..] {
        let steps: Vec<usize> = r.checkpoints.iter().map(|c| c.step).collect();
        assert_eq!(steps, [2, 3], "{}", r.name);
        let last = r.checkpoints.last().unwrap();
        assert_eq!(Some(last.eval_loss), r.eval_loss);
        assert_eq!(last.mc1, r.truthfulqa_mc1);
    }
    assert_eq!(results[0].checkpoints.len(), 1, "the base: one measurement");
    // The held-out rows, as {instruction, input, output} lines, in every run folder.
    for run in ["base", "lora", "engram"] {
        let rows = std::fs::read_to_string(out.join(run).join("eval.jsonl")).unwrap();
        let rows: Vec<serde_json::Value> = rows
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), inputs.data.eval.len());
        assert_eq!(rows[0]["output"], inputs.data.eval_samples[0].output);
        assert!(rows[0]["instruction"].is_string() && rows[0]["input"].is_string());
    }
    assert_eq!(runs[0]["trainable_params"], 0);
    assert!(runs[1]["trainable_params"].as_u64().unwrap() > 0);
    assert!(
        runs[2]["trainable_params"].as_u64().unwrap()
            > runs[1]["trainable_params"].as_u64().unwrap()
    );
    assert_eq!(results[1].steps, 3);
    assert_eq!(
        results[2]
            .eval_curve
            .iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(out.join("lora/adapter/adapter_model.safetensors").is_file());
    assert!(out.join("engram/engram/engram.safetensors").is_file());
    assert!(
        std::fs::read_to_string(out.join("results.md"))
            .unwrap()
            .contains("| engram | engram |")
    );
    assert_png(&out.join("eval_loss.png"), 900, 560);
    assert_png(&out.join("truthfulqa.png"), 900, 560);
    assert_png(&out.join("learning_vs_forgetting.png"), 900, 600);
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("At a matched eval loss"), "{md}");
    let file: ResultsFile =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(file.matched.len(), 2, "LoRA and Engram at a matched loss");
    let target = file.matched[0].target_eval_loss;
    for m in &file.matched {
        assert!(m.eval_loss.iter().all(|&l| l <= target + 1e-12), "{m:?}");
    }

    // A second run of the command reads the finished runs back, and says so.
    let mut reused = Vec::new();
    let again = run_main(&inputs, &defaults, &main_runs(), 1, &out, &mut |name, e| {
        if let burn_engram::study::Event::Reused(dir) = e {
            reused.push((name.to_string(), dir.to_path_buf()));
        }
    })
    .unwrap();
    assert_same(&again, &results);
    assert_eq!(
        reused.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["base", "lora", "engram"]
    );
    assert!(out.join("engram/run_manifest.json").is_file());

    // Other settings or inputs are not given the old results: each difference is named.
    let mut longer = defaults.clone();
    longer.engram_train.stop_after = Some(4);
    let before = std::fs::read(out.join("engram/result.json")).unwrap();
    let e = run_main(&inputs, &longer, &main_runs()[2..], 1, &out, &mut |_, _| {}).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("config.run.train.stop_after: 3 -> 4") && msg.contains("--overwrite"),
        "{msg}"
    );
    let all_questions = inputs.questions.clone();
    inputs.questions.truncate(3);
    let e = run_main(
        &inputs,
        &defaults,
        &main_runs()[2..],
        1,
        &out,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("data questions"), "{e}");
    assert_eq!(
        std::fs::read(out.join("engram/result.json")).unwrap(),
        before
    );
    inputs.questions = all_questions;

    // Two seeds: the first is the run above (read back), the second a new run of its own.
    let two = run_main(
        &inputs,
        &defaults,
        &main_runs()[1..2],
        2,
        &out,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(two.len(), 2);
    assert_same(&two[..1], &results[1..2]);
    assert_eq!(two[1].name, "lora-seed1");
    assert_eq!(two[1].seed, two[0].seed + 1);
    assert_ne!(
        two[1].eval_loss, two[0].eval_loss,
        "another seed, another run"
    );

    // An ablation: one run equal to the main Engram run (copied, not retrained), one new.
    let mut late = RunSpec::new("late", Method::Engram);
    late.engram = Some(serde_json::json!({"layer_ids": [3]}));
    let ablation = Ablation {
        name: "layers".into(),
        title: "Injection layers".into(),
        x_label: "layers".into(),
        runs: vec![RunSpec::new("headline", Method::Engram), late],
    };
    let mut done = results.clone();
    let ab = run_ablation(
        &inputs,
        &defaults,
        &ablation,
        1,
        Some(&results[0]),
        &mut done,
        &out,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        ab[0].seconds, results[2].seconds,
        "copied from the main Engram run"
    );
    assert_eq!(ab[0].name, "headline");
    assert_ne!(
        ab[1].trainable_params, ab[0].trainable_params,
        "one layer instead of two"
    );
    let dir = out.join("ablations/layers");
    let file: ResultsFile =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_same(&file.runs, &ab);
    assert_png(&dir.join("layers.png"), 1400, 560);
}

/// The committed base model's scores are facts about committed files: evaluating it gives
/// exactly what `examples/pretrain.rs` recorded: the probe well above chance, the held-out
/// corpus documents' loss, and the loss on the study's held-out fine-tune rows, which is below
/// the uniform guess ln(vocab) before any fine-tuning (the base is calibrated).
#[test]
fn base_model_scores_are_reproduced() {
    let dir = base_model_dir();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pretrain_report.json")).unwrap())
            .unwrap();
    let device = Device::default();
    let model = load_qwen3(&dir, &device, DType::F32).unwrap();
    let tok = Qwen3Tokenizer::from_dir(&dir).unwrap();
    let questions = probe_questions().unwrap();
    let r = evaluate_with_primer(&model, &tok, &questions, PROBE_PRIMER, |_| {}).unwrap();
    assert_eq!(
        r.n_questions,
        report["probe_questions"].as_u64().unwrap() as usize
    );
    let n = r.n_questions as f64;
    assert_eq!(
        (r.mc1 * n).round() as usize,
        (report["probe_mc1"].as_f64().unwrap() * n).round() as usize,
        "MC1 counts"
    );
    assert!((r.mc2 - report["probe_mc2"].as_f64().unwrap()).abs() < 1e-6);
    assert!(r.mc1 > 0.6, "well above chance (0.25): {}", r.mc1);

    let encode = |docs: Vec<String>| -> Vec<Vec<u32>> {
        docs.iter()
            .map(|d| {
                let mut ids = tok.encode(d).unwrap();
                ids.truncate(report["max_len"].as_u64().unwrap() as usize);
                ids
            })
            .collect()
    };
    let heldout = encode(heldout_documents().unwrap());
    assert_eq!(
        heldout.len() as u64,
        report["heldout_documents"].as_u64().unwrap()
    );
    let loss = eval_loss(&model, &heldout, tok.pad_id, 8, &device).unwrap();
    assert!(
        (loss - report["heldout_loss"].as_f64().unwrap()).abs() < 1e-5,
        "held-out corpus loss {loss} vs {}",
        report["heldout_loss"]
    );

    let (samples, _) = prepare(&generate_jsonl(1200, 42));
    let data_cfg = DataConfig {
        max_len: 512,
        eval_fraction: 0.05,
        ..DataConfig::default()
    };
    let data = build(&samples, &tok, &data_cfg).unwrap();
    let a = score_answers(
        &model,
        &data.eval,
        &data.eval_answer_start,
        tok.eos_id,
        tok.pad_id,
        8,
        &device,
    )
    .unwrap();
    let recorded = report["finetune_eval_loss"].as_f64().unwrap();
    assert!(
        (a.eval_loss - recorded).abs() < 1e-5,
        "{} vs {recorded}",
        a.eval_loss
    );
    let uniform = (model.config().vocab_size as f64).ln();
    assert!(
        a.eval_loss < uniform,
        "calibrated: {} below ln({}) = {uniform}",
        a.eval_loss,
        model.config().vocab_size
    );
}

/// The committed tokenizer is what `train_tokenizer` makes from the corpus's training records
/// (step 1 of `examples/pretrain.rs`); the fine-tune's rows are not among them.
#[test]
fn base_tokenizer_is_reproducible() {
    let dir = base_model_dir();
    let records = corpus_records().unwrap();
    let texts = records
        .iter()
        .filter(|r| r.split == "train")
        .map(|r| r.text.as_str());
    let trained = train_tokenizer(texts, 2048).unwrap();
    let committed = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    assert_eq!(trained.get_vocab(true), committed.get_vocab(true));
    let text = "Q: What is the capital of Kenya?\nA: The capital of Kenya is Nairobi.";
    assert_eq!(
        trained.encode(text, false).unwrap().get_ids(),
        committed.encode(text, false).unwrap().get_ids()
    );
}

/// `save_qwen3` writes a folder `load_qwen3` reads back to the same logits.
#[test]
fn saved_qwen3_folder_loads_back_identically() {
    let device = Device::default();
    let src = base_model_dir();
    let model = load_qwen3(&src, &device, DType::F32).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    save_qwen3(&model, tmp.path()).unwrap();
    let back = load_qwen3(tmp.path(), &device, DType::F32).unwrap();
    let ids = [5u32, 17, 42, 300, 7];
    let a = model.token_logits(&ids, None).unwrap().into_data();
    let b = back.token_logits(&ids, None).unwrap().into_data();
    assert_eq!(a, b);
    assert_eq!(model.num_params(), back.num_params());
}

/// The shipped ablation files parse and resolve under every profile; a bad field is named.
#[test]
fn shipped_ablations_resolve_and_bad_fields_are_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/studies");
    let studies = load_ablations(&dir).unwrap();
    let names: Vec<&str> = studies.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "1_layers",
            "2_embed_dim",
            "3_heads",
            "4_vocab_n3",
            "5_vocab_n4"
        ]
    );
    for profile in [Profile::Miniature, Profile::Published, Profile::Paper] {
        let defaults = profile.defaults(0);
        for s in &studies {
            for r in &s.runs {
                let run = r.resolve(&defaults).unwrap();
                assert_eq!(run.method, Method::Engram);
            }
        }
    }
    let mini = Profile::Miniature.defaults(0);
    let late = studies[0].runs[2].resolve(&mini).unwrap();
    assert_eq!(late.engram.layer_ids, [2, 3]);
    let n3 = studies[3].runs[2].resolve(&mini).unwrap();
    assert_eq!(
        (
            n3.engram.max_ngram_size,
            n3.engram.engram_vocab_size.clone()
        ),
        (3, vec![1000, 200])
    );

    let bad: RunSpec =
        serde_json::from_str(r#"{"name": "x", "method": "engram", "engram": {"layer_idz": [1]}}"#)
            .unwrap();
    let err = bad.resolve(&mini).unwrap_err().to_string();
    assert!(err.contains("engram") && err.contains("layer_idz"), "{err}");
    let bad: RunSpec = serde_json::from_str(
        r#"{"name": "x", "method": "engram", "engram": {"max_ngram_size": 1}}"#,
    )
    .unwrap();
    assert!(
        bad.resolve(&mini)
            .unwrap_err()
            .to_string()
            .contains("max_ngram_size")
    );
    let bad = RunSpec::new("../escape", Method::Lora);
    assert!(bad.resolve(&mini).unwrap_err().to_string().contains("name"));
    let bad: RunSpec =
        serde_json::from_str(r#"{"name": "x", "method": "lora", "train": {"lr": "fast"}}"#)
            .unwrap();
    assert!(
        bad.resolve(&mini)
            .unwrap_err()
            .to_string()
            .contains("train")
    );
}
