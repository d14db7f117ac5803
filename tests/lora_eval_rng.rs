//! Evaluating a LoRA model draws nothing from the device's random generator (its own test
//! binary: the generator is global to the process, and other tests would draw from it in
//! parallel). The study measures its runs between training steps; if that consumed random
//! numbers, a seeded run's dropout masks would depend on how often it is measured.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use burn::module::Module;
use burn::tensor::{DType, Device, Tensor};
use burn_engram::host::lora::load_adapter;
use burn_engram::host::qwen3::load_qwen3;
use common::fixture;

#[test]
fn evaluating_a_lora_model_draws_no_random_numbers() {
    use burn::tensor::Distribution;
    use burn_engram::host::qwen3::score_continuations;
    let device = Device::default().autodiff();
    let base = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    let (model, _) = load_adapter(base, fixture("qwen3/lora")).unwrap();
    let mut model = model;
    for layer in &mut model.model.layers {
        layer.self_attn.lora_dropout = 0.05;
        layer.mlp.lora_dropout = 0.05;
    }
    let tok = burn_engram::host::qwen3::Qwen3Tokenizer::from_dir(fixture("qwen3/tied")).unwrap();
    let draw = || {
        Tensor::<1>::random([8], Distribution::Default, &device)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    device.seed(5);
    let plain = draw();
    let ids = vec![vec![5u32, 6, 7, 8], vec![9, 10, 11]];
    device.seed(5);
    let valid = model.valid();
    assert_eq!(draw(), plain, "valid() consumed random numbers");
    device.seed(5);
    score_continuations(&valid, &tok, "hello", &[" world", " there"]).unwrap();
    assert_eq!(draw(), plain, "scoring consumed random numbers");
    device.seed(5);
    burn_engram::study::eval::answers::score_answers(&model, &ids, &[2, 1], 8, 0, 2, &device)
        .unwrap();
    assert_eq!(draw(), plain, "score_answers consumed random numbers");
    device.seed(5);
    burn_engram::study::train::eval_loss(&model, &ids, 0, 2, &device).unwrap();
    assert_eq!(draw(), plain, "eval_loss consumed random numbers");
}
