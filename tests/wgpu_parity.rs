//! The same Engram forward on wgpu (lavapipe in CI) matches flex within 1e-4.
//! Runs with `cargo test --features wgpu --test wgpu_parity`.
#![cfg(all(feature = "wgpu", feature = "flex"))]

mod common;

use std::sync::Arc;

use burn::tensor::{Device, DeviceKind, Tensor, TensorData};
use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, HashIds};
use common::{f32_tensor, fixture, i64_tensor, max_abs_diff, read_json};
use safetensors::SafeTensors;

fn forward(name: &str, device: &Device) -> Vec<f32> {
    let meta = read_json(&format!("engram/{name}.json"));
    let mut cfg: EngramConfig = serde_json::from_value(meta["config"].clone()).unwrap();
    cfg.hc_mult = meta["hc_mult"].as_u64().unwrap() as usize;
    let vocab = Arc::new(CompressedVocab::from_lookup((0..50).collect()).unwrap());
    let path = fixture(&format!("engram/{name}.safetensors"));
    let layers = EngramLayers::load_weights(&path, &cfg, vocab, device).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (hshape, hidden) = f32_tensor(&st, "inputs.hidden");
    let (s, hash) = i64_tensor(&st, "inputs.hash_ids");
    let layer = meta["layer_id"].as_u64().unwrap() as usize;
    let ids = HashIds {
        batch: s[0],
        seq_len: s[1],
        heads: s[2],
        layers: vec![(layer, hash.into_iter().map(|h| h as i32).collect())],
    };
    let batch = layers.upload(&ids, device).unwrap();
    let hidden = Tensor::<4>::from_data(TensorData::new(hidden, hshape), device);
    layers
        .memory(layer, hidden, &batch)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn wgpu_forward_matches_flex() {
    let wgpu = Device::wgpu(DeviceKind::DefaultDevice);
    let flex = Device::flex();
    for name in ["engram_forward_g1", "engram_forward_g2"] {
        let a = forward(name, &flex);
        let b = forward(name, &wgpu);
        let d = max_abs_diff(&a, &b);
        assert!(d < 1e-4, "{name}: wgpu differs from flex by {d}");
    }
}
