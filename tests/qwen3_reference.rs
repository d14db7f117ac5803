//! Qwen3 against transformers: tiny random models saved by transformers 4.57.3 (tied,
//! untied, bf16, sharded), with Engram (TinyEngram layout) and with a PEFT LoRA adapter.
//! Fixtures from scripts/fixtures/gen_qwen3_fixtures.py.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use burn_engram::host::lora::{count_lora_params, load_adapter, save_adapter};
use burn_engram::host::qwen3::{
    Qwen3Engram, Qwen3ForCausalLM, Qwen3Tokenizer, generate_greedy, load_qwen3, score_continuations,
};
use common::{f32_tensor, fixture, i64_tensor, max_abs_diff, read_json};
use safetensors::SafeTensors;

struct Expected {
    ids: Tensor<2, Int>,
    raw_ids: Vec<i64>,
    mask: Tensor<2, Int>,
    logits: Vec<f32>,
    shape: Vec<usize>,
}

fn expected(dir: &str, device: &Device) -> Expected {
    let bytes = std::fs::read(fixture(&format!("qwen3/{dir}/expected.safetensors"))).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (s, ids) = i64_tensor(&st, "input_ids");
    let (_, mask) = i64_tensor(&st, "attention_mask");
    let (shape, logits) = f32_tensor(&st, "logits");
    let to_int = |v: &[i64]| {
        Tensor::<2, Int>::from_data(
            TensorData::new(
                v.iter().map(|x| *x as i32).collect::<Vec<_>>(),
                [s[0], s[1]],
            ),
            device,
        )
    };
    Expected {
        ids: to_int(&ids),
        mask: to_int(&mask),
        raw_ids: ids,
        logits,
        shape,
    }
}

fn host(t: Tensor<3>) -> (Vec<usize>, Vec<f32>) {
    (
        t.dims().to_vec(),
        t.into_data().try_to_vec::<f32>().unwrap(),
    )
}

fn check_logits(name: &str, model: &Qwen3ForCausalLM, device: &Device) {
    let e = expected(name, device);
    let (shape, got) = host(model.forward(e.ids, Some(e.mask)).unwrap());
    assert_eq!(shape, e.shape, "{name}");
    let d = max_abs_diff(&got, &e.logits);
    eprintln!("{name}: max abs logit diff vs transformers = {d:e}");
    assert!(d < 1e-4, "{name}: logits differ from transformers by {d}");
}

fn check_greedy_and_score(name: &str, model: &Qwen3ForCausalLM) {
    let meta = read_json(&format!("qwen3/{name}/expected.json"));
    let prompt: Vec<u32> = serde_json::from_value(meta["greedy"]["prompt_ids"].clone()).unwrap();
    let want: Vec<u32> = serde_json::from_value(meta["greedy"]["generated_ids"].clone()).unwrap();
    assert_eq!(
        generate_greedy(model, &prompt, 16).unwrap(),
        want,
        "{name}: greedy tokens"
    );

    let tok = Qwen3Tokenizer::from_dir(fixture(&format!("qwen3/{name}"))).unwrap();
    let s = &meta["score"];
    let scores = score_continuations(
        model,
        &tok,
        s["context"].as_str().unwrap(),
        &[s["continuation"].as_str().unwrap()],
    )
    .unwrap();
    assert_eq!(
        scores[0].n_tokens as u64,
        s["n_tokens"].as_u64().unwrap(),
        "{name}"
    );
    let d = (scores[0].logprob - s["logprob"].as_f64().unwrap()).abs();
    eprintln!("{name}: score logprob diff = {d:e}");
    assert!(d < 1e-4, "{name}: logprob differs by {d}");
}

#[test]
fn tied_model_matches_transformers() {
    let device = Device::default();
    let model = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    assert!(model.lm_head.is_none());
    check_logits("tied", &model, &device);
    check_greedy_and_score("tied", &model);
}

#[test]
fn untied_model_matches_transformers() {
    let device = Device::default();
    let model = load_qwen3(fixture("qwen3/untied"), &device, DType::F32).unwrap();
    assert!(model.lm_head.is_some());
    check_logits("untied", &model, &device);
    check_greedy_and_score("untied", &model);
}

#[test]
fn bf16_checkpoint_loads_as_f32() {
    let device = Device::default();
    let model = load_qwen3(fixture("qwen3/bf16"), &device, DType::F32).unwrap();
    check_logits("bf16", &model, &device);
    check_greedy_and_score("bf16", &model);
}

#[test]
fn sharded_checkpoint_matches_transformers() {
    let device = Device::default();
    let model = load_qwen3(fixture("qwen3/sharded"), &device, DType::F32).unwrap();
    check_logits("sharded", &model, &device);
    check_greedy_and_score("sharded", &model);
}

#[test]
fn engram_wrapped_model_matches_the_torch_reference() {
    let device = Device::default();
    let model = Qwen3Engram::load_tinyengram(fixture("qwen3/engram"), &device, DType::F32).unwrap();
    let e = expected("engram", &device);
    let [b, t] = e.ids.dims();
    let batch = model.engram.prepare(&e.raw_ids, b, t, &device).unwrap();
    let (shape, got) = host(model.forward(e.ids, Some(e.mask), &batch).unwrap());
    assert_eq!(shape, e.shape);
    let d = max_abs_diff(&got, &e.logits);
    eprintln!("engram: max abs logit diff = {d:e}");
    assert!(d < 1e-4, "engram logits differ by {d}");
}

#[test]
fn peft_lora_adapter_matches_and_round_trips() {
    let device = Device::default();
    let base = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap();
    let (model, cfg) = load_adapter(base, fixture("qwen3/lora")).unwrap();
    assert_eq!(cfg.r, 4);
    let layers = model.config().num_hidden_layers;
    assert_eq!(
        count_lora_params(&model),
        cfg.trainable_params(model.config())
    );
    assert_eq!(
        cfg.trainable_params(model.config()),
        4 * layers * (64 + 96 + 2 * (64 + 48) + 96 + 64 + 3 * (64 + 96))
    );
    let e = expected("lora", &device);
    let (_, got) = host(model.forward(e.ids, Some(e.mask)).unwrap());
    let d = max_abs_diff(&got, &e.logits);
    eprintln!("lora: max abs logit diff vs PEFT = {d:e}");
    assert!(d < 1e-4, "LoRA logits differ from PEFT by {d}");

    let dir = tempfile::tempdir().unwrap();
    save_adapter(&model, &cfg, dir.path()).unwrap();
    let a = std::fs::read(fixture("qwen3/lora/adapter_model.safetensors")).unwrap();
    let b = std::fs::read(dir.path().join("adapter_model.safetensors")).unwrap();
    let (a, b) = (
        SafeTensors::deserialize(&a).unwrap(),
        SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names_a: Vec<&str> = a.names();
    let mut names_b: Vec<&str> = b.names();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b, "PEFT tensor names");
    for n in names_a {
        let (ta, tb) = (a.tensor(n).unwrap(), b.tensor(n).unwrap());
        assert_eq!(ta.shape(), tb.shape(), "{n}");
        assert_eq!(ta.data(), tb.data(), "{n}: values differ");
    }
}
