//! Bad Qwen3 folders give typed errors naming the file, field or tensors.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use std::path::Path;

use burn::tensor::{DType, Device};
use burn_engram::EngramError;
use burn_engram::host::qwen3::load_qwen3;
use common::fixture;

fn copy_folder(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn edit_config(dir: &Path, key: &str, value: serde_json::Value) {
    let p = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    cfg[key] = value;
    std::fs::write(&p, cfg.to_string()).unwrap();
}

fn load_err(dir: &Path) -> String {
    load_qwen3(dir, &Device::default(), DType::F32)
        .unwrap_err()
        .to_string()
}

#[test]
fn inconsistent_configs_name_the_field() {
    for (key, value, needle) in [
        ("model_type", serde_json::json!("llama"), "model_type"),
        (
            "num_key_value_heads",
            serde_json::json!(3),
            "num_key_value_heads",
        ),
        ("hidden_act", serde_json::json!("gelu"), "hidden_act"),
        ("head_dim", serde_json::json!(0), "head_dim"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        copy_folder(&fixture("qwen3/tied"), dir.path());
        edit_config(dir.path(), key, value);
        let e = load_err(dir.path());
        assert!(
            e.contains(needle) && e.contains("config.json"),
            "{key}: {e}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&fixture("qwen3/tied"), dir.path());
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "qwen3"}"#).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("config.json") && e.contains("missing field"),
        "{e}"
    );
}

#[test]
fn weights_that_do_not_fit_are_listed_by_name() {
    // a tied config over untied weights: lm_head.weight is unexpected
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&fixture("qwen3/untied"), dir.path());
    edit_config(dir.path(), "tie_word_embeddings", serde_json::json!(true));
    // (a tied model may carry a redundant lm_head: that alone is accepted)
    load_qwen3(dir.path(), &Device::default(), DType::F32).unwrap();

    // more layers than the file holds: layer 3 is missing
    edit_config(dir.path(), "num_hidden_layers", serde_json::json!(4));
    let err = load_qwen3(dir.path(), &Device::default(), DType::F32).unwrap_err();
    match &err {
        EngramError::WeightsMismatch { missing, .. } => {
            assert!(
                missing.iter().any(|m| m.starts_with("model.layers.3.")),
                "{err}"
            );
        }
        other => panic!("{other}"),
    }

    // a wider MLP than the file: mis-shaped tensors are named
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&fixture("qwen3/tied"), dir.path());
    edit_config(dir.path(), "intermediate_size", serde_json::json!(128));
    let e = load_err(dir.path());
    assert!(e.contains("mlp.gate_proj"), "{e}");

    // fewer layers than the file: the extra layer's tensors are unexpected
    let dir = tempfile::tempdir().unwrap();
    copy_folder(&fixture("qwen3/tied"), dir.path());
    edit_config(dir.path(), "num_hidden_layers", serde_json::json!(2));
    let e = load_err(dir.path());
    assert!(
        e.contains("unexpected") && e.contains("model.layers.2."),
        "{e}"
    );

    // no weights at all
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("qwen3/tied/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("neither model.safetensors"), "{e}");
}
