//! Training only what was added: after a few optimizer steps the Qwen3 backbone is
//! bit-identical and the added parameters (Engram or LoRA) changed.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use std::sync::Arc;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use burn_engram::host::lora::{LoraConfig, apply_lora, lora_factors};
use burn_engram::host::qwen3::{Qwen3Engram, Qwen3ForCausalLM, load_qwen3};
use burn_engram::{CompressedVocab, EngramConfig, InitOptions};
use common::fixture;

/// Every float parameter's values (LoRA factors excluded: they are not backbone).
#[derive(Default)]
struct Snapshot {
    path: Vec<String>,
    values: Vec<(String, Vec<f32>)>,
}

impl ModuleVisitor for Snapshot {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.into());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.path.iter().any(|p| p == "lora") {
            return;
        }
        let v = param.val().into_data().try_to_vec::<f32>().unwrap();
        self.values.push((self.path.join("."), v));
    }
}

fn snapshot(m: &Qwen3ForCausalLM) -> Vec<(String, Vec<f32>)> {
    let mut s = Snapshot::default();
    m.visit(&mut s);
    s.values
}

fn batch(device: &Device) -> (Vec<i64>, Tensor<2, Int>, Tensor<1, Int>) {
    let ids: Vec<i64> = (0..2 * 10).map(|i| (i * 37 % 390) as i64).collect();
    let inputs: Vec<i64> = (0..2)
        .flat_map(|r| ids[r * 10..r * 10 + 9].to_vec())
        .collect();
    let targets: Vec<i32> = (0..2)
        .flat_map(|r| {
            ids[r * 10 + 1..r * 10 + 10]
                .iter()
                .map(|x| *x as i32)
                .collect::<Vec<_>>()
        })
        .collect();
    let x = Tensor::from_data(
        TensorData::new(inputs.iter().map(|x| *x as i32).collect::<Vec<_>>(), [2, 9]),
        device,
    );
    let y = Tensor::from_data(TensorData::new(targets, [18]), device);
    (inputs, x, y)
}

fn loss(logits: Tensor<3>, y: &Tensor<1, Int>) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    cross_entropy_with_logits(
        logits.reshape([b * t, v]),
        y.clone().one_hot::<2>(v).float(),
    )
}

#[test]
fn engram_training_leaves_the_backbone_bit_identical() {
    let device = Device::default().autodiff();
    let base = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    let before = snapshot(&base);
    let vocab = Arc::new(
        CompressedVocab::from_tokenizer_file(fixture("qwen3/tied/tokenizer.json")).unwrap(),
    );
    let cfg = EngramConfig {
        engram_vocab_size: vec![101, 53],
        n_embed_per_ngram: 16,
        n_head_per_ngram: 2,
        layer_ids: vec![1],
        pad_id: 397,
        ..EngramConfig::default()
    };
    let mut model = Qwen3Engram::new(base, &cfg, vocab, InitOptions::default(), &device)
        .unwrap()
        .freeze_backbone();
    let table_before = model.engram.layers[0]
        .multi_head_embedding
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let (raw, x, y) = batch(&device);
    let eb = model.engram.prepare(&raw, 2, 9, &device).unwrap();
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.005)
        .init();
    for _ in 0..3 {
        let l = loss(model.forward(x.clone(), None, &eb).unwrap(), &y);
        let grads = GradientsParams::from_grads(l.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    assert_eq!(snapshot(&model.base), before, "backbone changed");
    let table_after = model.engram.layers[0]
        .multi_head_embedding
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_ne!(table_after, table_before, "Engram did not train");
}

#[test]
fn lora_training_leaves_the_backbone_bit_identical() {
    let device = Device::default().autodiff();
    let base = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    let before = snapshot(&base);
    let cfg = LoraConfig {
        r: 2,
        lora_alpha: 4.0,
        ..LoraConfig::default()
    };
    let mut model = apply_lora(base, &cfg).unwrap();
    let b_before: Vec<Vec<f32>> = lora_factors(&model)
        .values()
        .map(|(_, b)| b.clone().into_data().try_to_vec::<f32>().unwrap())
        .collect();
    assert!(
        b_before.iter().flatten().all(|v| *v == 0.0),
        "B starts at zero"
    );
    let (_, x, y) = batch(&device);
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.005)
        .init();
    for _ in 0..3 {
        let l = loss(model.forward(x.clone(), None).unwrap(), &y);
        let grads = GradientsParams::from_grads(l.backward(), &model);
        assert_eq!(
            grads.len(),
            2 * 7 * model.config().num_hidden_layers,
            "only LoRA factors get gradients"
        );
        model = optim.step(1e-2, model, grads);
    }
    assert_eq!(snapshot(&model), before, "backbone changed");
    let b_after: Vec<Vec<f32>> = lora_factors(&model)
        .values()
        .map(|(_, b)| b.clone().into_data().try_to_vec::<f32>().unwrap())
        .collect();
    assert_ne!(b_after, b_before, "LoRA did not train");
}
