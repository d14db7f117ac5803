//! Helpers shared by the integration tests: fixture paths and safetensors reading.
#![allow(dead_code)]

use std::path::PathBuf;

use safetensors::SafeTensors;
use safetensors::tensor::Dtype;

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
