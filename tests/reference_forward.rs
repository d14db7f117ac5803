//! The Engram module forward against the torch reference, loaded through the checkpoint
//! reader from a file with TinyEngram's state-dict names, and saved back bit-identically.

mod common;

use std::sync::Arc;

use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, GateMode, HashIds};
use common::{f32_tensor, fixture, i64_tensor, max_abs_diff, read_json};
use safetensors::SafeTensors;

struct Case {
    layers: EngramLayers,
    layer: usize,
    hidden: Tensor<4>,
    ids: HashIds,
    bytes: Vec<u8>,
}

fn load_case(name: &str, device: &Device) -> Case {
    let meta = read_json(&format!("engram/{name}.json"));
    let mut cfg: EngramConfig = serde_json::from_value(meta["config"].clone()).unwrap();
    cfg.hc_mult = meta["hc_mult"].as_u64().unwrap() as usize;
    // The fixture hashed compressed ids in 0..50 directly: an identity compression of 50 ids.
    let vocab = Arc::new(CompressedVocab::from_lookup((0..50).collect()).unwrap());
    let path = fixture(&format!("engram/{name}.safetensors"));
    let layers = EngramLayers::load_weights(&path, &cfg, vocab, device).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (hshape, hidden) = f32_tensor(&st, "inputs.hidden");
    let (ishape, hash) = i64_tensor(&st, "inputs.hash_ids");
    let hidden = Tensor::<4>::from_data(TensorData::new(hidden, hshape.clone()), device);
    let layer = meta["layer_id"].as_u64().unwrap() as usize;
    let ids = HashIds {
        batch: ishape[0],
        seq_len: ishape[1],
        heads: ishape[2],
        layers: vec![(layer, hash.into_iter().map(|h| h as i32).collect())],
    };
    Case {
        layers,
        layer,
        hidden,
        ids,
        bytes,
    }
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn check_forward(name: &str) {
    let device = Device::default();
    let case = load_case(name, &device);
    let st = SafeTensors::deserialize(&case.bytes).unwrap();
    let batch = case.layers.upload(&case.ids, &device).unwrap();

    let engram = case.layers.layer(case.layer).unwrap();
    let rows: Tensor<3, Int> = batch.rows(case.layer).unwrap().clone();
    let memory = engram.read_memory(rows.clone());
    let (_, want_e) = f32_tensor(&st, "outputs.embeddings");
    assert_eq!(
        max_abs_diff(&to_vec(memory.clone()), &want_e),
        0.0,
        "{name}: memory read is a gather"
    );

    let gate = engram
        .gate
        .forward(memory, case.hidden.clone(), GateMode::Learned);
    let (_, want_gate) = f32_tensor(&st, "outputs.gate");
    let d = max_abs_diff(&to_vec(gate), &want_gate);
    assert!(d < 1e-5, "{name}: gate differs by {d}");

    let out = case
        .layers
        .memory(case.layer, case.hidden.clone(), &batch)
        .unwrap();
    let (shape, want) = f32_tensor(&st, "outputs.engram");
    assert_eq!(out.dims().to_vec(), shape);
    let got = to_vec(out);
    let d = max_abs_diff(&got, &want);
    eprintln!("{name}: max abs diff vs torch f32 = {d:e}");
    assert!(d < 1e-5, "{name}: forward differs from torch f32 by {d}");
    let (_, want64) = f32_tensor(&st, "outputs.engram_f64");
    let d64 = max_abs_diff(&got, &want64);
    assert!(
        d64 < 1e-5,
        "{name}: forward differs from torch f64 by {d64}"
    );
}

#[test]
fn forward_matches_torch_g1() {
    check_forward("engram_forward_g1");
}

#[test]
fn forward_matches_torch_g2_hyper_connections() {
    check_forward("engram_forward_g2");
}

#[test]
fn inject_adds_the_memory_to_the_residual() {
    let device = Device::default();
    let case = load_case("engram_forward_g1", &device);
    let batch = case.layers.upload(&case.ids, &device).unwrap();
    let [b, t, _, d] = case.hidden.dims();
    let h3: Tensor<3> = case.hidden.clone().reshape([b, t, d]);
    let injected = case.layers.inject(case.layer, h3.clone(), &batch).unwrap();
    let update = case
        .layers
        .memory(case.layer, case.hidden.clone(), &batch)
        .unwrap();
    let want = to_vec(h3.clone() + update.reshape([b, t, d]));
    assert_eq!(to_vec(injected), want);
    let untouched = case
        .layers
        .inject(case.layer + 1, h3.clone(), &batch)
        .unwrap();
    assert_eq!(to_vec(untouched), to_vec(h3));
}

#[test]
fn saved_files_carry_the_reference_tensors_bit_for_bit() {
    let device = Device::default();
    for name in ["engram_forward_g1", "engram_forward_g2"] {
        let case = load_case(name, &device);
        let dir = tempfile::tempdir().unwrap();
        case.layers.save_pretrained(dir.path()).unwrap();
        let saved = std::fs::read(dir.path().join("engram.safetensors")).unwrap();
        let saved = SafeTensors::deserialize(&saved).unwrap();
        let original = SafeTensors::deserialize(&case.bytes).unwrap();
        let engram_names: Vec<String> = original
            .names()
            .into_iter()
            .filter(|n| n.contains("engram_layers"))
            .map(str::to_string)
            .collect();
        let mut saved_names: Vec<String> = saved.names().into_iter().map(str::to_string).collect();
        saved_names.sort();
        let mut want_names = engram_names.clone();
        want_names.sort();
        assert_eq!(
            saved_names, want_names,
            "{name}: same tensor names as the torch state dict"
        );
        for n in &engram_names {
            let (a, b) = (original.tensor(n).unwrap(), saved.tensor(n).unwrap());
            assert_eq!(a.shape(), b.shape(), "{n}");
            assert_eq!(a.dtype(), b.dtype(), "{n}");
            assert_eq!(a.data(), b.data(), "{n}: bytes differ");
        }
        // and the folder loads back to the same forward
        let back = EngramLayers::load_pretrained(dir.path(), &device).unwrap();
        let batch = back.upload(&case.ids, &device).unwrap();
        let a = to_vec(
            back.memory(case.layer, case.hidden.clone(), &batch)
                .unwrap(),
        );
        let batch = case.layers.upload(&case.ids, &device).unwrap();
        let b = to_vec(
            case.layers
                .memory(case.layer, case.hidden.clone(), &batch)
                .unwrap(),
        );
        assert_eq!(a, b);
    }
}
