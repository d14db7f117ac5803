//! Hostile inputs and crash safety: every reader of the crate against empty, truncated,
//! wrongly typed, mis-shaped, non-finite, oversized, non-UTF-8 and missing files; non-finite
//! training (stop or skip); unwritable output folders; the examples' one-line failures.
//! docs/RELIABILITY.md maps each test here (and in tests/errors.rs, tests/qwen3_errors.rs,
//! tests/checkpoints.rs, src/study/data/glaive.rs) to the input it covers.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::optim::AdamWConfig;
use burn::tensor::{DType, Device, Tensor, TensorData};
use burn_engram::host::lora::load_adapter;
use burn_engram::host::qwen3::{Qwen3Tokenizer, load_qwen3};
use burn_engram::memory::GateMode;
use burn_engram::study::data::dataset::{Batch, StudyData, load_samples};
use burn_engram::study::eval::truthfulqa::load_questions;
use burn_engram::study::train::{
    CheckpointConfig, OnNonFinite, TrainConfig, TrainableLm, latest_checkpoint, load_checkpoint,
    save_checkpoint, train,
};
use burn_engram::{CompressedVocab, EngramConfig, EngramError, EngramLayers, InitOptions};
use common::fixture;
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

// ---------------------------------------------------------------- helpers

/// The kinds of damage every file reader is put through.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Empty,
    Truncated,
    NonUtf8,
    Garbage,
}

const DAMAGES: [Damage; 4] = [
    Damage::Empty,
    Damage::Truncated,
    Damage::NonUtf8,
    Damage::Garbage,
];

fn damaged(original: &[u8], d: Damage) -> Vec<u8> {
    match d {
        Damage::Empty => Vec::new(),
        Damage::Truncated => original[..original.len() / 2].to_vec(),
        Damage::NonUtf8 => {
            let mut b = original.to_vec();
            b.splice(0..0, [0xff, 0xfe, 0x80]);
            b
        }
        Damage::Garbage => b"\x00\x01 this is not the file you are looking for".to_vec(),
    }
}

fn copy_folder(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let e = entry.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn tied_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&fixture("qwen3/tied"), dir.path());
    dir
}

/// The error of `r` as the examples print it, checked to name `needle`.
#[track_caller]
fn err_naming<T>(r: burn_engram::Result<T>, needle: &str) -> EngramError {
    match r {
        Ok(_) => panic!("expected an error naming {needle:?}, got Ok"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(needle), "{needle:?} not in: {msg}");
            assert!(!msg.contains('\n'), "not one line: {msg}");
            e
        }
    }
}

fn keep(_: &str, d: Dtype, s: &[usize], b: &[u8]) -> Option<(Dtype, Vec<usize>, Vec<u8>)> {
    Some((d, s.to_vec(), b.to_vec()))
}

fn nan_first(d: Dtype, s: &[usize], b: &[u8]) -> Option<(Dtype, Vec<usize>, Vec<u8>)> {
    let mut b = b.to_vec();
    match d {
        Dtype::F32 => b[..4].copy_from_slice(&f32::NAN.to_le_bytes()),
        Dtype::BF16 => b[..2].copy_from_slice(&half::bf16::NAN.to_le_bytes()),
        other => panic!("{other:?}"),
    }
    Some((d, s.to_vec(), b))
}

/// A safetensors header that claims a 2^40-byte header.
fn huge_header() -> Vec<u8> {
    let mut b = (1u64 << 40).to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    b
}

fn g1_cfg() -> EngramConfig {
    EngramConfig {
        engram_vocab_size: vec![37, 29],
        n_embed_per_ngram: 16,
        n_head_per_ngram: 2,
        layer_ids: vec![2],
        pad_id: 0,
        ..EngramConfig::default()
    }
}

fn vocab50() -> Arc<CompressedVocab> {
    Arc::new(CompressedVocab::from_lookup((0..50).collect()).unwrap())
}

// ---------------------------------------------------------------- Engram configs

#[test]
fn engram_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture("qwen3/engram/engram_config.json")).unwrap();
    let p = dir.path().join("engram_config.json");
    for d in DAMAGES {
        std::fs::write(&p, damaged(&good, d)).unwrap();
        let e = err_naming(EngramConfig::from_json_file(&p), "engram_config.json");
        assert!(
            matches!(e, EngramError::Json { .. } | EngramError::Io { .. }),
            "{d:?}: {e}"
        );
    }
    // wrong types
    for bad in [
        r#"{"max_ngram_size": "3"}"#,
        r#"{"engram_vocab_size": 97}"#,
        r#"{"layer_ids": [1.5]}"#,
        r#"{"pad_id": null}"#,
        r#"{"engram_vocab_size": [1e400, 3]}"#,
    ] {
        std::fs::write(&p, bad).unwrap();
        err_naming(EngramConfig::from_json_file(&p), "engram_config.json");
    }
    // huge and impossible dimensions parse but are refused by name
    for (json, field) in [
        (
            r#"{"engram_vocab_size": [5000000000, 7]}"#,
            "engram_vocab_size",
        ),
        (r#"{"max_ngram_size": 0}"#, "max_ngram_size"),
        (r#"{"n_head_per_ngram": 0}"#, "n_head_per_ngram"),
        (r#"{"layer_ids": []}"#, "layer_ids"),
        (r#"{"pad_id": 4000000000}"#, "pad_id"),
    ] {
        std::fs::write(&p, json).unwrap();
        let cfg = EngramConfig::from_json_file(&p).unwrap();
        let e = err_naming(cfg.validate(Some(1000)), field);
        assert!(matches!(e, EngramError::InvalidConfig { .. }), "{e}");
    }
    err_naming(
        EngramConfig::from_json_file(dir.path().join("missing.json")),
        "missing.json",
    );
}

// ---------------------------------------------------------------- Hugging Face folders

#[test]
fn qwen3_config_json_damage() {
    let good = std::fs::read(fixture("qwen3/tied/config.json")).unwrap();
    for d in DAMAGES {
        let dir = tied_copy();
        std::fs::write(dir.path().join("config.json"), damaged(&good, d)).unwrap();
        err_naming(
            load_qwen3(dir.path(), &Device::default(), DType::F32),
            "config.json",
        );
    }
    let dir = tied_copy();
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    err_naming(
        load_qwen3(dir.path(), &Device::default(), DType::F32),
        "config.json",
    );
}

#[test]
fn qwen3_huge_dimensions_are_refused_before_allocating() {
    for (key, value, needle) in [
        ("vocab_size", 1u64 << 40, "field `vocab_size`"),
        ("hidden_size", 1 << 36, "hidden_size"),
        ("intermediate_size", 1 << 30, "does not match the weights"),
        ("num_hidden_layers", 100_000, "does not match the weights"),
        (
            "max_position_embeddings",
            1 << 40,
            "max_position_embeddings",
        ),
        (
            "num_attention_heads",
            1 << 62,
            "field `num_attention_heads`",
        ),
    ] {
        let dir = tied_copy();
        let p = dir.path().join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        cfg[key] = serde_json::json!(value);
        if key == "num_attention_heads" {
            cfg["num_key_value_heads"] = serde_json::json!(value);
        }
        std::fs::write(&p, cfg.to_string()).unwrap();
        let e = err_naming(
            load_qwen3(dir.path(), &Device::default(), DType::F32),
            needle,
        );
        assert!(e.to_string().contains("config.json"), "{key}: {e}");
    }
}

#[test]
fn qwen3_weight_file_damage() {
    let good = std::fs::read(fixture("qwen3/tied/model.safetensors")).unwrap();
    for d in DAMAGES {
        let dir = tied_copy();
        std::fs::write(dir.path().join("model.safetensors"), damaged(&good, d)).unwrap();
        err_naming(
            load_qwen3(dir.path(), &Device::default(), DType::F32),
            "model.safetensors",
        );
    }
    let dir = tied_copy();
    std::fs::write(dir.path().join("model.safetensors"), huge_header()).unwrap();
    err_naming(
        load_qwen3(dir.path(), &Device::default(), DType::F32),
        "model.safetensors",
    );

    // NaN in one weight: named, never a model that silently computes NaN
    let name = "model.layers.1.mlp.down_proj.weight";
    let dir = tied_copy();
    let nan = common::edit_tensors(&good, |n, d, s, b| {
        if n == name {
            nan_first(d, s, b)
        } else {
            keep(n, d, s, b)
        }
    });
    std::fs::write(dir.path().join("model.safetensors"), nan).unwrap();
    let e = err_naming(
        load_qwen3(dir.path(), &Device::default(), DType::F32),
        "NaN or infinite",
    );
    assert!(e.to_string().contains("layers.1.mlp.down_proj"), "{e}");

    // integer dtype where a float tensor belongs
    let dir = tied_copy();
    let ints = common::edit_tensors(&good, |n, d, s, b| {
        if n == "model.norm.weight" {
            let k = s.iter().product::<usize>();
            Some((Dtype::I64, s.to_vec(), vec![0u8; k * 8]))
        } else {
            keep(n, d, s, b)
        }
    });
    std::fs::write(dir.path().join("model.safetensors"), ints).unwrap();
    let r = load_qwen3(dir.path(), &Device::default(), DType::F32);
    assert!(r.is_err(), "an I64 norm weight was accepted");

    // a sharded folder whose index is damaged or names a missing shard
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&fixture("qwen3/sharded"), dir.path());
    let index = dir.path().join("model.safetensors.index.json");
    let good_index = std::fs::read(&index).unwrap();
    std::fs::write(&index, damaged(&good_index, Damage::Truncated)).unwrap();
    err_naming(
        load_qwen3(dir.path(), &Device::default(), DType::F32),
        "model.safetensors.index.json",
    );
    std::fs::write(&index, &good_index).unwrap();
    std::fs::remove_file(dir.path().join("model-00003-of-00004.safetensors")).unwrap();
    err_naming(
        load_qwen3(dir.path(), &Device::default(), DType::F32),
        "model-00003-of-00004.safetensors",
    );
}

#[test]
fn tokenizer_file_damage() {
    let good = std::fs::read(fixture("qwen3/tied/tokenizer.json")).unwrap();
    for d in DAMAGES {
        let dir = tied_copy();
        std::fs::write(dir.path().join("tokenizer.json"), damaged(&good, d)).unwrap();
        err_naming(Qwen3Tokenizer::from_dir(dir.path()), "tokenizer.json");
        err_naming(
            CompressedVocab::from_tokenizer_file(dir.path().join("tokenizer.json")),
            "tokenizer.json",
        );
    }
    let good_cfg = std::fs::read(fixture("qwen3/tied/tokenizer_config.json")).unwrap();
    for d in DAMAGES {
        let dir = tied_copy();
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            damaged(&good_cfg, d),
        )
        .unwrap();
        err_naming(
            Qwen3Tokenizer::from_dir(dir.path()),
            "tokenizer_config.json",
        );
    }
    let dir = tied_copy();
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    err_naming(Qwen3Tokenizer::from_dir(dir.path()), "tokenizer.json");
}

// ---------------------------------------------------------------- Engram weights and folders

#[test]
fn engram_weight_file_damage() {
    let good = std::fs::read(fixture("engram/engram_forward_g1.safetensors")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("engram.safetensors");
    let load = |p: &Path| EngramLayers::load_weights(p, &g1_cfg(), vocab50(), &Device::default());
    for d in DAMAGES {
        std::fs::write(&p, damaged(&good, d)).unwrap();
        err_naming(load(&p), "engram.safetensors");
    }
    std::fs::write(&p, huge_header()).unwrap();
    err_naming(load(&p), "not a safetensors file");

    // integer dtype for a float tensor, float dtype for the offsets
    let name = "model.engram_layers.2.value_proj.weight";
    std::fs::write(
        &p,
        common::edit_tensors(&good, |n, d, s, b| {
            if n == name {
                Some((Dtype::I32, s.to_vec(), b.to_vec()))
            } else {
                keep(n, d, s, b)
            }
        }),
    )
    .unwrap();
    let e = err_naming(load(&p), name);
    assert!(e.to_string().contains("not a float type"), "{e}");
    let offsets = "model.engram_layers.2.multi_head_embedding.offsets";
    std::fs::write(
        &p,
        common::edit_tensors(&good, |n, d, s, b| {
            if n == offsets {
                Some((Dtype::F64, s.to_vec(), b.to_vec()))
            } else {
                keep(n, d, s, b)
            }
        }),
    )
    .unwrap();
    err_naming(load(&p), offsets);
    // infinity (NaN is in tests/errors.rs)
    std::fs::write(
        &p,
        common::edit_tensors(&good, |n, d, s, b| {
            let mut b = b.to_vec();
            if n == name {
                b[4..8].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
            }
            Some((d, s.to_vec(), b))
        }),
    )
    .unwrap();
    let e = err_naming(load(&p), name);
    assert!(e.to_string().contains("not finite"), "{e}");
}

#[test]
fn compressed_vocab_file_damage() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("vocab.safetensors");
    CompressedVocab::from_lookup(vec![0, 1, 0, 2])
        .unwrap()
        .save(&p)
        .unwrap();
    let good = std::fs::read(&p).unwrap();
    for d in DAMAGES {
        std::fs::write(&p, damaged(&good, d)).unwrap();
        err_naming(CompressedVocab::load(&p), "vocab.safetensors");
    }
    let tensor = |dtype: Dtype, shape: Vec<usize>, data: Vec<u8>| {
        let v = TensorView::new(dtype, shape, &data).unwrap();
        safetensors::serialize([("lookup".to_string(), v)], None).unwrap()
    };
    let i64s = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (bytes, needle) in [
        (tensor(Dtype::F32, vec![2], vec![0; 8]), "1-D I64"),
        (tensor(Dtype::I64, vec![1, 2], i64s(&[0, 1])), "1-D I64"),
        (tensor(Dtype::I64, vec![2], i64s(&[0, 5])), "entry 1 is 5"),
        (tensor(Dtype::I64, vec![2], i64s(&[-1, 0])), "entry 0 is -1"),
        (tensor(Dtype::I64, vec![0], vec![]), "empty"),
    ] {
        std::fs::write(&p, bytes).unwrap();
        let e = err_naming(CompressedVocab::load(&p), needle);
        assert!(e.to_string().contains("lookup"), "{e}");
    }
}

fn small_layers(device: &Device) -> EngramLayers {
    EngramLayers::new(&g1_cfg(), vocab50(), 32, InitOptions::default(), device).unwrap()
}

#[test]
fn engram_folder_damage() {
    let device = Device::default();
    let dir = tempfile::tempdir().unwrap();
    small_layers(&device).save_pretrained(dir.path()).unwrap();
    EngramLayers::load_pretrained(dir.path(), &device).unwrap();
    for file in [
        "engram_config.json",
        "engram.safetensors",
        "compressed_vocab.safetensors",
    ] {
        let p = dir.path().join(file);
        let good = std::fs::read(&p).unwrap();
        for d in DAMAGES {
            std::fs::write(&p, damaged(&good, d)).unwrap();
            err_naming(EngramLayers::load_pretrained(dir.path(), &device), file);
        }
        std::fs::remove_file(&p).unwrap();
        err_naming(EngramLayers::load_pretrained(dir.path(), &device), file);
        std::fs::write(&p, good).unwrap();
    }
    // a config whose hidden size disagrees with the weights
    let cfg_path = dir.path().join("engram_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["hidden_size"] = serde_json::json!(64);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    err_naming(
        EngramLayers::load_pretrained(dir.path(), &device),
        "hidden_size 64",
    );
}

// ---------------------------------------------------------------- LoRA adapters

#[test]
fn lora_adapter_damage() {
    let device = Device::default();
    let base = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    let copy = || {
        let dir = tempfile::tempdir().unwrap();
        copy_folder(&fixture("qwen3/lora"), dir.path());
        dir
    };
    let good_cfg = std::fs::read(fixture("qwen3/lora/adapter_config.json")).unwrap();
    let good_w = std::fs::read(fixture("qwen3/lora/adapter_model.safetensors")).unwrap();
    for d in DAMAGES {
        let dir = copy();
        std::fs::write(
            dir.path().join("adapter_config.json"),
            damaged(&good_cfg, d),
        )
        .unwrap();
        err_naming(
            load_adapter(base.clone(), dir.path()),
            "adapter_config.json",
        );
        let dir = copy();
        std::fs::write(
            dir.path().join("adapter_model.safetensors"),
            damaged(&good_w, d),
        )
        .unwrap();
        err_naming(
            load_adapter(base.clone(), dir.path()),
            "adapter_model.safetensors",
        );
    }
    for (key, value) in [
        ("r", serde_json::json!(0)),
        ("lora_alpha", serde_json::json!(-1.0)),
        ("target_modules", serde_json::json!(["lm_head"])),
        ("use_dora", serde_json::json!(true)),
        ("r", serde_json::json!("sixteen")),
    ] {
        let dir = copy();
        let mut cfg: serde_json::Value = serde_json::from_slice(&good_cfg).unwrap();
        cfg[key] = value;
        std::fs::write(dir.path().join("adapter_config.json"), cfg.to_string()).unwrap();
        err_naming(load_adapter(base.clone(), dir.path()), key);
    }
    let st = SafeTensors::deserialize(&good_w).unwrap();
    let victim = st.names().into_iter().min().unwrap().to_string();
    for (what, edit) in [
        ("NaN", 0),
        ("shape", 1),
        ("missing", 2),
        ("unexpected", 3),
        ("dtype", 4),
    ] {
        let dir = copy();
        let bytes = common::edit_tensors(&good_w, |n, d, s, b| match (n == victim, edit) {
            (true, 0) => nan_first(d, s, b),
            (true, 1) => Some((d, vec![s[1], s[0]], b.to_vec())).filter(|_| s[0] != s[1]),
            (true, 2) => None,
            (true, 4) => Some((Dtype::I32, s.to_vec(), b.to_vec())),
            _ => keep(n, d, s, b),
        });
        let bytes = if edit == 3 {
            let st = SafeTensors::deserialize(&bytes).unwrap();
            let mut v: Vec<(String, TensorView)> = st.tensors();
            v.push((
                "base_model.model.extra.lora_A.weight".into(),
                TensorView::new(Dtype::F32, vec![1], &[0u8; 4]).unwrap(),
            ));
            safetensors::serialize(v, None).unwrap()
        } else {
            bytes
        };
        std::fs::write(dir.path().join("adapter_model.safetensors"), bytes).unwrap();
        let e = err_naming(load_adapter(base.clone(), dir.path()), "adapter_model");
        let msg = e.to_string();
        assert!(
            msg.contains(&victim) || msg.contains("extra"),
            "{what}: {msg}"
        );
    }
}

// ---------------------------------------------------------------- trainer checkpoints

#[test]
fn trainer_checkpoint_damage() {
    let device = Device::default().autodiff();
    let (model, _, _) = common::tiny_engram_run(&device, 101);
    let run = tempfile::tempdir().unwrap();
    let ck = CheckpointConfig {
        dir: run.path().to_path_buf(),
        every: 1,
        keep_last: 1,
        resume: false,
    };
    let saved = save_checkpoint(&ck, 1, &model, &AdamWConfig::new().init()).unwrap();
    let fresh = || common::tiny_engram_run(&device, 101).0;
    let load = |dir: &Path| load_checkpoint(fresh(), AdamWConfig::new().init(), dir);
    load(&saved).unwrap();
    for file in [
        "trainable.safetensors",
        "trainer_state.json",
        "optimizer.bpk",
    ] {
        let p = saved.join(file);
        let good = std::fs::read(&p).unwrap();
        for d in DAMAGES {
            std::fs::write(&p, damaged(&good, d)).unwrap();
            err_naming(load(&saved), file);
        }
        std::fs::remove_file(&p).unwrap();
        err_naming(load(&saved), file);
        std::fs::write(&p, good).unwrap();
    }
    let p = saved.join("trainable.safetensors");
    let good = std::fs::read(&p).unwrap();
    let state_path = saved.join("trainer_state.json");
    let good_state = std::fs::read(&state_path).unwrap();
    let mut legacy: serde_json::Value = serde_json::from_slice(&good_state).unwrap();
    assert!(legacy["checksums"]["optimizer.bpk"].is_string(), "{legacy}");
    legacy.as_object_mut().unwrap().remove("checksums");
    let victim = "engram.layers.0.value_proj.weight";
    for (edit, needle) in [(0, "not finite"), (1, "but the model's parameter is")] {
        std::fs::write(
            &p,
            common::edit_tensors(&good, |n, d, s, b| match (n == victim, edit) {
                (true, 0) => nan_first(d, s, b),
                (true, _) => Some((d, vec![1, s.iter().product()], b.to_vec())),
                _ => keep(n, d, s, b),
            }),
        )
        .unwrap();
        // the checksum in trainer_state.json refuses any change
        err_naming(load(&saved), "damaged after it was written");
        // without one (a checkpoint of an earlier version), the tensor checks name it
        std::fs::write(&state_path, legacy.to_string()).unwrap();
        let e = err_naming(load(&saved), needle);
        assert!(e.to_string().contains(victim), "{e}");
        std::fs::write(&state_path, &good_state).unwrap();
    }
    std::fs::write(&p, &good).unwrap();
    // a checkpoint of another model: its parameters find no place
    let (other, _, _) = common::tiny_engram_run(&device, 101);
    let other = other.base; // the backbone alone: no Engram paths
    err_naming(
        load_checkpoint(other, AdamWConfig::new().init(), &saved),
        "not the model this checkpoint was written for",
    );
}

// ---------------------------------------------------------------- datasets

#[test]
fn glaive_exports_and_prepared_samples() {
    use burn_engram::study::data::glaive::prepare;
    // prepare never fails: damage is counted, row by row
    // a cut-short array keeps its complete rows (none here) and says where they end
    let (samples, report) = prepare("[{\"system\": \"s\", \"chat\"");
    assert!(samples.is_empty());
    assert_eq!((report.read, report.truncated_at), (0, Some(1)));
    for (raw, read, malformed) in [
        ("", 0, 0),
        ("{\"system\": \"s\"}\n\u{FFFD}\u{FFFD}\n", 2, 2),
        ("[1, \"x\", null, {\"system\": [], \"chat\": {}}]", 4, 4),
    ] {
        let (samples, report) = prepare(raw);
        assert!(samples.is_empty());
        assert_eq!((report.read, report.malformed), (read, malformed), "{raw}");
        assert!(report.malformed_examples.len() <= 10);
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train.jsonl");
    let good = b"{\"instruction\": \"i\", \"input\": \"u\", \"output\": \"o\"}\n";
    for (bytes, needle) in [
        (b"\xff\xfe{}".to_vec(), "train.jsonl"),
        (b"{\"instruction\": \"i\", \"inp".to_vec(), "line 1"),
        (
            [
                good.as_slice(),
                b"{\"instruction\": 3, \"input\": \"u\", \"output\": \"o\"}",
            ]
            .concat(),
            "line 2",
        ),
        ([good.as_slice(), b"[]\n"].concat(), "line 2"),
    ] {
        std::fs::write(&p, bytes).unwrap();
        err_naming(load_samples(&p), needle);
    }
    err_naming(load_samples(dir.path().join("nope.jsonl")), "nope.jsonl");
    std::fs::write(&p, b"\n\n").unwrap();
    assert!(load_samples(&p).unwrap().is_empty());
    // an empty training set is refused by the trainer, not a panic
    let device = Device::default().autodiff();
    let (model, _, pad) = common::tiny_engram_run(&device, 101);
    let empty = StudyData::default();
    err_naming(
        train(
            model,
            &empty,
            pad,
            &TrainConfig::default(),
            &device,
            None,
            |_| {},
        ),
        "no training sequences",
    );
}

#[test]
fn truthfulqa_file_damage() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tqa.jsonl");
    let good = r#"{"question": "Q?", "mc1_targets": {"choices": ["a", "b"], "labels": [1, 0]}, "mc2_targets": {"choices": ["a", "b"], "labels": [1, 0]}}"#;
    std::fs::write(&p, good).unwrap();
    load_questions(&p).unwrap();
    for (text, needle) in [
        ("".to_string(), "holds no questions"),
        (good[..good.len() / 2].to_string(), "line 1"),
        (good.replace("[1, 0]}, \"mc2", "[1]}, \"mc2"), "mc1_targets"),
        (good.replace("[1, 0]}}", "[1, 2]}}"), "mc2_targets"),
        (good.replace("[1, 0]}, \"mc2", "[0, 1]}, \"mc2"), "mc1"),
        (good.replace("\"Q?\"", "7"), "line 1"),
    ] {
        std::fs::write(&p, &text).unwrap();
        err_naming(load_questions(&p), needle);
    }
    std::fs::write(&p, b"\xff\xfe\n").unwrap();
    err_naming(load_questions(&p), "tqa.jsonl");
    err_naming(load_questions(dir.path().join("none.jsonl")), "none.jsonl");
}

#[test]
fn token_ids_beyond_the_model_vocabulary() {
    let device = Device::default();
    let model = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    let vocab = model.config().vocab_size;
    let batch = burn_engram::study::data::dataset::make_batch(&[&[1, vocab as u32, 2]], 0).unwrap();
    let e = err_naming(
        model.batch_logits(&batch, GateMode::Learned, &device),
        "position 1 is outside the model's vocabulary",
    );
    assert!(matches!(e, EngramError::BadBatch(_)), "{e}");
    let e = err_naming(
        burn_engram::host::qwen3::CausalLm::token_logits(&model, &[3, vocab as u32 + 7], None),
        "outside the model's vocabulary",
    );
    assert!(
        e.to_string().contains(&format!("token id {}", vocab + 7)),
        "{e}"
    );
}

// ---------------------------------------------------------------- outputs that cannot be written

/// A folder where nothing can be written: read-only, or (as root, who ignores permission
/// bits) a path under a regular file.
fn unwritable(base: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let ro = base.join("read-only");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let file = base.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let mut out = vec![file.join("out")];
    if std::fs::write(ro.join("probe"), b"x").is_err() {
        out.push(ro.join("out")); // effective only when not root
    }
    out
}

#[test]
fn unwritable_output_folders_are_named() {
    let device = Device::default().autodiff();
    let base = tempfile::tempdir().unwrap();
    let (model, data, pad) = common::tiny_engram_run(&device, 101);
    for out in unwritable(base.path()) {
        let shown = out.parent().unwrap().display().to_string();
        err_naming(model.engram.save_pretrained(&out), &shown);
        err_naming(g1_cfg().to_json_file(out.join("c.json")), &shown);
        err_naming(
            CompressedVocab::from_lookup(vec![0])
                .unwrap()
                .save(out.join("v.safetensors")),
            &shown,
        );
        let ck = CheckpointConfig {
            dir: out.clone(),
            every: 1,
            keep_last: 1,
            resume: true,
        };
        let cfg = TrainConfig {
            stop_after: Some(1),
            ..TrainConfig::default()
        };
        err_naming(
            train(model.clone(), &data, pad, &cfg, &device, Some(&ck), |_| {}),
            &shown,
        );
    }
}

// ---------------------------------------------------------------- non-finite training

thread_local! {
    static CALLS: Cell<usize> = const { Cell::new(0) };
    static POISON: Cell<Option<(usize, Poison)>> = const { Cell::new(None) };
}

#[derive(Debug, Clone, Copy)]
enum Poison {
    /// Finite loss, NaN gradient (`sqrt(0 * w)`: value 0, derivative 0 * inf).
    Gradient,
    /// NaN loss.
    Loss,
}

/// The smallest trainable model: logits are one learned vector `w` at every position.
#[derive(Module, Debug)]
struct Probe {
    w: Param<Tensor<1>>,
}

const V: usize = 8;

impl Probe {
    fn new(device: &Device, first: f32) -> Self {
        let mut init = vec![0.5f32; V];
        init[0] = first;
        Probe {
            w: Param::from_tensor(Tensor::from_data(TensorData::new(init, [V]), device)),
        }
    }
    fn values(&self) -> Vec<f32> {
        self.w.val().into_data().try_to_vec::<f32>().unwrap()
    }
}

impl TrainableLm for Probe {
    fn batch_logits(
        &self,
        batch: &Batch,
        _: GateMode,
        _: &Device,
    ) -> burn_engram::Result<Tensor<3>> {
        let call = CALLS.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        let mut w = self.w.val();
        match POISON.with(Cell::get) {
            Some((at, Poison::Gradient)) if at == call => w = w.clone() + (w * 0.0).sqrt(),
            Some((at, Poison::Loss)) if at == call => w = w.add_scalar(f64::NAN),
            _ => {}
        }
        Ok(w.reshape([1, 1, V]).expand([batch.batch, batch.seq_len, V]))
    }
}

fn probe_data() -> StudyData {
    StudyData {
        train: (0..8).map(|i| vec![1, 2 + i % 5, 3, 4]).collect(),
        eval: vec![vec![1, 2, 3]],
        ..StudyData::default()
    }
}

fn probe_cfg(steps: usize, on: OnNonFinite) -> TrainConfig {
    TrainConfig {
        lr: 0.05,
        epochs: 1,
        stop_after: Some(steps),
        micro_batch: 1,
        grad_accum: 1,
        warmup_ratio: 0.0,
        on_non_finite: on,
        ..TrainConfig::default()
    }
}

/// Trains a fresh probe for `steps` with `poison`; checkpoints every step into `dir`.
fn probe_run(
    steps: usize,
    on: OnNonFinite,
    poison: Option<(usize, Poison)>,
    dir: &Path,
    first: f32,
) -> burn_engram::Result<(Probe, Vec<burn_engram::study::train::StepMetrics>)> {
    let device = Device::default().autodiff();
    CALLS.with(|c| c.set(0));
    POISON.with(|p| p.set(poison));
    let ck = CheckpointConfig {
        dir: dir.to_path_buf(),
        every: 1,
        keep_last: 10,
        resume: false,
    };
    let r = train(
        Probe::new(&device, first),
        &probe_data(),
        0,
        &probe_cfg(steps, on),
        &device,
        Some(&ck),
        |_| {},
    );
    POISON.with(|p| p.set(None));
    r
}

#[test]
fn non_finite_gradient_stops_naming_step_and_parameter_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let e = probe_run(
        5,
        OnNonFinite::Stop,
        Some((3, Poison::Gradient)),
        dir.path(),
        0.5,
    )
    .map(|_| ())
    .unwrap_err();
    let msg = e.to_string();
    match &e {
        EngramError::NonFinite { step, what, detail } => {
            assert_eq!((*step, what.as_str()), (3, "gradient"), "{msg}");
            assert!(detail.contains("`w`"), "{msg}");
            assert!(detail.contains("checkpoint-2"), "{msg}");
        }
        other => panic!("{other}"),
    }
    let latest = latest_checkpoint(dir.path()).unwrap().unwrap();
    assert!(latest.ends_with("checkpoint-2"), "{}", latest.display());
    let device = Device::default().autodiff();
    let (restored, _, state) =
        load_checkpoint(Probe::new(&device, 0.5), AdamWConfig::new().init(), &latest).unwrap();
    assert_eq!(state.step, 2);
    assert!(restored.values().iter().all(|v| v.is_finite()));
}

#[test]
fn skip_step_skips_only_the_bad_update() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // steps 1-2 clean, step 3 poisoned and skipped: equal to a clean 2-step run
    let (two, _) = probe_run(2, OnNonFinite::Stop, None, a.path(), 0.5).unwrap();
    let (three, metrics) = probe_run(
        3,
        OnNonFinite::SkipStep,
        Some((3, Poison::Gradient)),
        b.path(),
        0.5,
    )
    .unwrap();
    assert_eq!(two.values(), three.values(), "the skipped step changed w");
    assert_eq!(metrics.len(), 3);
    assert!(metrics[..2].iter().all(|m| m.skipped.is_none()));
    let why = metrics[2].skipped.as_deref().unwrap();
    assert!(why.contains("gradient") && why.contains("`w`"), "{why}");
    // training goes on after a skipped step, and checkpoints continue
    let c = tempfile::tempdir().unwrap();
    let (model, metrics) = probe_run(
        5,
        OnNonFinite::SkipStep,
        Some((2, Poison::Loss)),
        c.path(),
        0.5,
    )
    .unwrap();
    assert_eq!(metrics.len(), 5);
    let skipped: Vec<usize> = metrics
        .iter()
        .filter(|m| m.skipped.is_some())
        .map(|m| m.step)
        .collect();
    assert_eq!(skipped, vec![2]);
    assert!(metrics[1].skipped.as_deref().unwrap().contains("loss"));
    assert!(model.values().iter().all(|v| v.is_finite()));
    assert!(
        latest_checkpoint(c.path())
            .unwrap()
            .unwrap()
            .ends_with("checkpoint-5")
    );
    // a skipped step's metrics serialize (the NaN loss as null)
    let line = serde_json::to_string(&metrics[1]).unwrap();
    assert!(line.contains("\"skipped\""), "{line}");
}

#[test]
fn non_finite_loss_stops_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let e = probe_run(
        4,
        OnNonFinite::Stop,
        Some((2, Poison::Loss)),
        dir.path(),
        0.5,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(
        matches!(&e, EngramError::NonFinite { step: 2, what, .. } if what == "training loss"),
        "{e}"
    );
    assert!(e.to_string().contains("every parameter is finite"), "{e}");
    assert!(e.to_string().contains("checkpoint-1"), "{e}");
}

#[test]
fn a_nan_parameter_is_named_and_stops_even_when_skipping() {
    for on in [OnNonFinite::Stop, OnNonFinite::SkipStep] {
        let dir = tempfile::tempdir().unwrap();
        let e = probe_run(3, on, None, dir.path(), f32::NAN)
            .map(|_| ())
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, EngramError::NonFinite { step: 1, .. }),
            "{on:?}: {msg}"
        );
        assert!(msg.contains("`w` (1 element)"), "{msg}");
        assert!(msg.contains("no checkpoint was written"), "{msg}");
    }
}

#[test]
fn on_non_finite_reads_from_json() {
    let cfg: TrainConfig = serde_json::from_str(r#"{"on_non_finite": "skip_step"}"#).unwrap();
    assert_eq!(cfg.on_non_finite, OnNonFinite::SkipStep);
    assert_eq!(TrainConfig::default().on_non_finite, OnNonFinite::Stop);
    assert!(serde_json::from_str::<TrainConfig>(r#"{"on_non_finite": "ignore"}"#).is_err());
}

// ---------------------------------------------------------------- CLI flags and examples

/// Runs an example that must fail; returns its stderr, checked to be one `error:` line.
#[track_caller]
fn fails_with_one_line(name: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(common::example(name))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{name} {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("error: "),
        "{name} {args:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
    stderr
}

#[test]
fn examples_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let out = dir.path().join("out.jsonl");
    let e = fails_with_one_line(
        "prepare_glaive",
        &[
            "--input",
            missing.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert!(e.contains("missing.json"), "{e}");
    let binary = dir.path().join("binary.json");
    std::fs::write(&binary, b"\xff\xfe\x00garbage").unwrap();
    let e = fails_with_one_line(
        "prepare_glaive",
        &[
            "--input",
            binary.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
    );
    assert!(e.contains("binary.json"), "{e}");

    let tok = dir.path().join("tokenizer.json");
    std::fs::write(&tok, b"{\"truncated\": ").unwrap();
    let e = fails_with_one_line(
        "inspect",
        &[
            "--tokenizer",
            tok.to_str().unwrap(),
            "--config",
            fixture("qwen3/engram/engram_config.json").to_str().unwrap(),
            "--text",
            "hi",
        ],
    );
    assert!(e.contains("tokenizer.json"), "{e}");

    let tied = fixture("qwen3/tied");
    let e = fails_with_one_line(
        "score",
        &[
            "--model-dir",
            tied.to_str().unwrap(),
            "--context",
            "a",
            "--continuation",
            "b",
            "--device",
            "tpu",
        ],
    );
    assert!(e.contains("device `tpu`"), "{e}");
}

// ---------------------------------------------------------------- fuzzing finds, kept

/// `fuzz/` target `vocab`, crash-7f6d2538: a misspelt literal inside the `decoder` object of a
/// tokenizer.json made `tokenizers` 0.22.2 panic (`expect("Helper")` in its deserializer).
#[test]
fn fuzz_regression_malformed_decoder_section() {
    let good = std::fs::read_to_string(fixture("qwen3/tied/tokenizer.json")).unwrap();
    let at = good.find("\"decoder\"").unwrap();
    let f = at + good[at..].find("false").unwrap();
    let bad = format!("{}falsg{}", &good[..f], &good[f + 5..]);
    let dir = tied_copy();
    std::fs::write(dir.path().join("tokenizer.json"), bad).unwrap();
    let p = dir.path().join("tokenizer.json");
    err_naming(
        burn_engram::vocab::load_tokenizer(&p),
        "malformed tokenizer",
    );
    err_naming(CompressedVocab::from_tokenizer_file(&p), "tokenizer.json");
    err_naming(Qwen3Tokenizer::from_dir(dir.path()), "tokenizer.json");
    let e = fails_with_one_line(
        "inspect",
        &[
            "--tokenizer",
            p.to_str().unwrap(),
            "--config",
            fixture("qwen3/engram/engram_config.json").to_str().unwrap(),
            "--text",
            "hi",
        ],
    );
    assert!(e.contains("malformed tokenizer"), "{e}");
}
