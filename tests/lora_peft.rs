//! LoRA as PEFT builds it: `A` from `kaiming_uniform_(a=sqrt(5))` (U(-1/sqrt(in),
//! 1/sqrt(in))), `B` zero, and `lora_dropout` on the adapter's input in training only, with
//! PEFT's scaling of the kept inputs by 1 / (1 - p). The equal-output check against PEFT with
//! dropout off is `peft_lora_adapter_matches_and_round_trips` in qwen3_reference.rs.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use burn::module::Module;
use burn::tensor::{DType, Device, Tensor, TensorData, module};
use burn_engram::host::lora::{LoraConfig, apply_lora, load_adapter, lora_factors};
use burn_engram::host::qwen3::forward_linear;
use burn_engram::host::qwen3::{Qwen3ForCausalLM, load_qwen3};
use burn_engram::study::base_config;
use common::fixture;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn fresh_adapters_start_as_peft_does() {
    let device = Device::default();
    device.seed(3);
    let model = Qwen3ForCausalLM::new(&base_config(300), &device);
    let model = apply_lora(model, &LoraConfig::default()).unwrap();
    let factors = lora_factors(&model);
    assert_eq!(factors.len(), 4 * 7, "seven projections in four layers");
    for (name, (a, b)) in factors {
        let [d_in, r] = a.dims();
        assert_eq!(r, 16);
        let a = host(a);
        let bound = 1.0 / (d_in as f32).sqrt();
        assert!(
            a.iter().all(|x| x.abs() <= bound),
            "{name}: A leaves U(-{bound}, {bound})"
        );
        // U(-c, c) has mean 0 and variance c^2 / 3; with >= 2048 draws the sample moments
        // sit well inside these bounds (N(0, 1/r), Burn's own start, has variance 1/256).
        let n = a.len() as f32;
        let mean = a.iter().sum::<f32>() / n;
        let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n;
        let expected = bound * bound / 3.0;
        assert!(mean.abs() < 0.1 * bound, "{name}: mean {mean}");
        assert!(
            (var / expected - 1.0).abs() < 0.12,
            "{name}: variance {var}, U(-1/sqrt(in), 1/sqrt(in)) has {expected}"
        );
        assert!(host(b).iter().all(|&x| x == 0.0), "{name}: B starts at 0");
    }
}

#[test]
fn lora_dropout_acts_in_training_only_and_scales_as_peft() {
    // A PEFT adapter (nonzero B) on the tiny fixture model, dropout 0.5 on the adapter input.
    let p = 0.5;
    let train_dev = Device::default().autodiff();
    let base = load_qwen3(fixture("qwen3/tied"), &train_dev, DType::F32).unwrap();
    let (model, _) = load_adapter(base, fixture("qwen3/lora")).unwrap();
    let q = &model.model.layers[0].self_attn.q_proj;
    let [d_in, d_out] = q.weight.base().dims();

    // One-hot rows: dropout keeps or drops each row's single input, so each output row is the
    // base output plus either nothing or the adapter's full delta scaled by 1 / (1 - p).
    let n = 400;
    let mut one_hot = vec![0.0f32; n * d_in];
    for r in 0..n {
        one_hot[r * d_in + r % d_in] = 1.5;
    }
    let x = Tensor::<2>::from_data(TensorData::new(one_hot.clone(), [n, d_in]), &train_dev);
    let full = host(forward_linear(q, x.clone(), 0.0));
    let bias = q.bias.as_ref().map(|b| b.val());
    let base_out = host(module::linear(x.clone(), q.weight.base(), bias));
    train_dev.seed(11);
    let dropped = host(forward_linear(q, x.clone(), p));
    let (mut kept, mut zeroed) = (0, 0);
    for r in 0..n {
        let row = |v: &[f32]| v[r * d_out..(r + 1) * d_out].to_vec();
        let (f, b, d) = (row(&full), row(&base_out), row(&dropped));
        let is_base = d.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5);
        let is_scaled = d
            .iter()
            .zip(f.iter().zip(&b))
            .all(|(x, (f, b))| (x - (b + (f - b) / (1.0 - p as f32))).abs() < 1e-4);
        assert!(
            is_base || is_scaled,
            "row {r}: neither dropped nor scaled by 1/(1-p)"
        );
        let delta_is_zero = f.iter().zip(&b).all(|(f, b)| (f - b).abs() < 1e-6);
        if !delta_is_zero {
            if is_scaled {
                kept += 1;
            } else {
                zeroed += 1;
            }
        }
    }
    assert!(kept + zeroed > n / 2, "the adapter changes most rows");
    let share = kept as f64 / (kept + zeroed) as f64;
    assert!((share - (1.0 - p)).abs() < 0.1, "kept share {share}");

    // Outside training (no autodiff: `model.valid()`, as every evaluation runs) no dropout.
    let valid = model.valid();
    let q = &valid.model.layers[0].self_attn.q_proj;
    let x = Tensor::<2>::from_data(TensorData::new(one_hot, [n, d_in]), &Device::default());
    let a = host(forward_linear(q, x.clone(), p));
    let b = host(forward_linear(q, x, 0.0));
    assert_eq!(a, b, "dropout is off at evaluation");
}

#[test]
fn apply_lora_sets_the_dropout_and_validates_it() {
    let device = Device::default();
    let model = Qwen3ForCausalLM::new(&base_config(300), &device);
    let cfg = LoraConfig {
        lora_dropout: 0.1,
        ..LoraConfig::default()
    };
    let model = apply_lora(model, &cfg).unwrap();
    for layer in &model.model.layers {
        assert_eq!(layer.self_attn.lora_dropout, 0.1);
        assert_eq!(layer.mlp.lora_dropout, 0.1);
    }
    let bad = LoraConfig {
        lora_dropout: 1.0,
        ..LoraConfig::default()
    };
    let model = Qwen3ForCausalLM::new(&base_config(300), &device);
    let err = apply_lora(model, &bad).unwrap_err().to_string();
    assert!(err.contains("lora_dropout"), "{err}");
}

/// A fresh adapter from `apply_lora` on the training device is trained with dropout.
#[test]
fn fresh_adapters_train_with_dropout() {
    let device = Device::default().autodiff();
    device.seed(2);
    let model = Qwen3ForCausalLM::new(&base_config(300), &device);
    let model = apply_lora(model, &LoraConfig::default()).unwrap();
    let q = &model.model.layers[0].self_attn.q_proj;
    let a = q.weight.adapter().unwrap().a.val();
    assert!(a.is_require_grad(), "fresh factors are trainable");
    let x = Tensor::<2>::ones([64, 128], &device);
    let delta = |p: f64| host(forward_linear(q, x.clone(), p));
    // B starts at 0, so the output shows no mask; the generator does: training with dropout
    // draws one mask per call.
    device.seed(9);
    let _ = delta(0.05);
    let after_dropout = Tensor::<1>::random([4], burn::tensor::Distribution::Default, &device);
    device.seed(9);
    let plain = Tensor::<1>::random([4], burn::tensor::Distribution::Default, &device);
    assert_ne!(
        host(after_dropout),
        host(plain),
        "the dropout mask was drawn"
    );
}
