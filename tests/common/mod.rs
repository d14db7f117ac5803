//! Helpers shared by the integration tests: fixture paths and safetensors reading.
#![allow(dead_code)]

use std::path::PathBuf;

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

/// `tests/fixtures/<path>` of this checkout, or of `$BURN_ENGRAM_ROOT` when set (a test binary
/// carried to another machine, as scripts/gpu-check.sh does).
pub fn fixture(path: &str) -> PathBuf {
    std::env::var_os("BURN_ENGRAM_ROOT")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/fixtures")
        .join(path)
}

pub fn qwen_tokenizer() -> PathBuf {
    fixture("qwen-tokenizer/tokenizer.json")
}

pub fn read_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(path)).unwrap()).unwrap()
}

/// (shape, f32 data) of a tensor in a safetensors file.
pub fn f32_tensor(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let v = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture has no {name}"));
    assert_eq!(v.dtype(), Dtype::F32, "{name}");
    let data = v
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v.shape().to_vec(), data)
}

/// (shape, i64 data) of a tensor in a safetensors file.
pub fn i64_tensor(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<i64>) {
    let v = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture has no {name}"));
    assert_eq!(v.dtype(), Dtype::I64, "{name}");
    let data = v
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (v.shape().to_vec(), data)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(feature = "study")]
/// A tiny Qwen3 (the `tied` fixture) with fresh Engram layers at 0 and 2 (tables of about
/// `table` rows), its backbone frozen, and 20 function-call samples split for training.
pub fn tiny_engram_run(
    device: &burn::tensor::Device,
    table: u64,
) -> (
    burn_engram::host::qwen3::Qwen3Engram,
    burn_engram::study::data::dataset::StudyData,
    u32,
) {
    use burn_engram::host::qwen3::{Qwen3Engram, Qwen3Tokenizer, load_qwen3};
    use burn_engram::study::data::dataset::{DataConfig, build};
    use burn_engram::{CompressedVocab, EngramConfig, InitOptions};
    let dir = fixture("qwen3/tied");
    let tok = Qwen3Tokenizer::from_dir(&dir).unwrap();
    let samples = weather_samples();
    let data = build(
        &samples,
        &tok,
        &DataConfig {
            max_len: 64,
            ..DataConfig::default()
        },
    )
    .unwrap();
    let base = load_qwen3(&dir, device, burn::tensor::DType::F32).unwrap();
    let vocab = std::sync::Arc::new(CompressedVocab::from_tokenizer(&tok.inner).unwrap());
    let cfg = EngramConfig {
        engram_vocab_size: vec![table, table / 2],
        n_embed_per_ngram: 32,
        n_head_per_ngram: 2,
        layer_ids: vec![0, 2],
        pad_id: tok.pad_id as i64,
        ..EngramConfig::default()
    };
    let model = Qwen3Engram::new(
        base,
        &cfg,
        vocab,
        InitOptions {
            seed: 5,
            ..Default::default()
        },
        device,
    )
    .unwrap()
    .freeze_backbone();
    (model, data, tok.pad_id)
}

#[cfg(feature = "study")]
/// 20 small function-call samples (5 cities) for the tiny fixture models.
pub fn weather_samples() -> Vec<burn_engram::study::data::glaive::Sample> {
    (0..20)
        .map(|i| burn_engram::study::data::glaive::Sample {
            instruction: format!("Tools: get_weather. Row {i}."),
            input: format!("Weather in C{}?", i % 5),
            output: format!(
                "<functioncall> {{\"name\": \"get_weather\", \"city\": \"C{}\"}}",
                i % 5
            ),
        })
        .collect()
}

#[cfg(feature = "study")]
/// An example binary of this build. `cargo test --all-targets` (scripts/test.sh) builds the
/// examples with the tests; a narrower run must build them first (`cargo build --examples`),
/// and a binary older than the crate's sources is refused rather than run stale. (Building it
/// from here would wait on the cargo lock that the running `cargo test` holds.)
pub fn example(name: &str) -> PathBuf {
    fn newest(dir: &std::path::Path) -> Option<std::time::SystemTime> {
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let p = e.path();
                if p.is_dir() {
                    newest(&p)
                } else if p.extension().is_some_and(|x| x == "rs") {
                    p.metadata().and_then(|m| m.modified()).ok()
                } else {
                    None // data files (e.g. a freshly pretrained base model) do not make it stale
                }
            })
            .max()
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf(); // target/<profile>
    let bin = profile_dir.join("examples").join(name);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let main = root.join(format!("examples/{name}.rs"));
    // examples/common/ counts only for the examples that include it
    let uses_common = std::fs::read_to_string(&main).is_ok_and(|t| t.contains("mod common;"));
    let sources = newest(&root.join("src"))
        .max(
            uses_common
                .then(|| newest(&root.join("examples/common")))
                .flatten(),
        )
        .max(
            root.join(format!("examples/{name}.rs"))
                .metadata()
                .and_then(|m| m.modified())
                .ok(),
        );
    let built = bin.metadata().and_then(|m| m.modified()).ok();
    assert!(
        built.is_some() && built >= sources,
        "example `{name}` is missing or older than the sources: run `cargo build --examples` \
         (or `cargo test --all-targets`, as scripts/test.sh does) before this test"
    );
    bin
}

/// Rewrites the tensors of safetensors `bytes` through `edit` (name, dtype, shape, data ->
/// replacement or None to drop).
pub fn edit_tensors(
    bytes: &[u8],
    edit: impl Fn(&str, Dtype, &[usize], &[u8]) -> Option<(Dtype, Vec<usize>, Vec<u8>)>,
) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, v)| {
            edit(&name, v.dtype(), v.shape(), v.data()).map(|(d, s, b)| (name, d, s, b))
        })
        .collect();
    let views: Vec<_> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}
