//! The loader on a model with Qwen3-0.6B's exact shapes (random bf16 weights written on the
//! fly, no download): load, one forward on CPU, and the trainable-parameter counts of both
//! methods against their closed forms.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use burn_engram::host::lora::LoraConfig;
use burn_engram::host::qwen3::{Qwen3Config, load_qwen3};
use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, InitOptions};
use common::fixture;
use safetensors::tensor::{Dtype, TensorView};

fn shapes(cfg: &Qwen3Config) -> Vec<(String, Vec<usize>)> {
    let (h, q, kv, i, d) = (
        cfg.hidden_size,
        cfg.q_dim(),
        cfg.kv_dim(),
        cfg.intermediate_size,
        cfg.head_dim(),
    );
    let mut v = vec![
        (
            "model.embed_tokens.weight".to_string(),
            vec![cfg.vocab_size, h],
        ),
        ("model.norm.weight".into(), vec![h]),
    ];
    for l in 0..cfg.num_hidden_layers {
        let p = |n: &str| format!("model.layers.{l}.{n}");
        v.extend([
            (p("self_attn.q_proj.weight"), vec![q, h]),
            (p("self_attn.k_proj.weight"), vec![kv, h]),
            (p("self_attn.v_proj.weight"), vec![kv, h]),
            (p("self_attn.o_proj.weight"), vec![h, q]),
            (p("self_attn.q_norm.weight"), vec![d]),
            (p("self_attn.k_norm.weight"), vec![d]),
            (p("mlp.gate_proj.weight"), vec![i, h]),
            (p("mlp.up_proj.weight"), vec![i, h]),
            (p("mlp.down_proj.weight"), vec![h, i]),
            (p("input_layernorm.weight"), vec![h]),
            (p("post_attention_layernorm.weight"), vec![h]),
        ]);
    }
    v
}

/// Small pseudo-random bf16 values (xorshift), norms at 1.
fn random_bf16(n: usize, seed: u64, norm: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let v = if norm {
            1.0f32
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04
        };
        out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes());
    }
    out
}

#[test]
fn qwen3_0_6b_shapes_load_and_run_on_cpu() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("qwen3/qwen3_0_6b_config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let cfg = Qwen3Config::from_file(dir.path().join("config.json")).unwrap();
    assert_eq!(
        (
            cfg.hidden_size,
            cfg.num_hidden_layers,
            cfg.q_dim(),
            cfg.vocab_size
        ),
        (1024, 28, 2048, 151_936)
    );

    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = shapes(&cfg)
        .into_iter()
        .enumerate()
        .map(|(i, (n, s))| {
            let data = random_bf16(s.iter().product(), i as u64 + 1, n.ends_with("norm.weight"));
            (n, s, data)
        })
        .collect();
    let params: usize = tensors
        .iter()
        .map(|(_, s, _)| s.iter().product::<usize>())
        .sum();
    assert_eq!(params, 596_049_920, "Qwen3-0.6B has 596M parameters (tied)");
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(Dtype::BF16, s.clone(), d).unwrap(),
            )
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(meta), &dir.path().join("model.safetensors"))
        .unwrap();
    drop(tensors);

    let device = Device::default();
    let model = load_qwen3(dir.path(), &device, DType::F32).unwrap();
    assert_eq!(model.num_params(), params);
    let ids =
        Tensor::<2, Int>::from_data(TensorData::new(vec![9707i32, 11, 1879, 0], [1, 4]), &device);
    let logits = model.forward(ids, None).unwrap();
    assert_eq!(logits.dims(), [1, 4, 151_936]);
    let values = logits.into_data().try_to_vec::<f32>().unwrap();
    assert!(values.iter().all(|v| v.is_finite()));
    assert!(values.iter().any(|v| *v != 0.0));

    // trainable parameters of the study's two methods on this model
    assert_eq!(LoraConfig::default().trainable_params(&cfg), 10_092_544);
    let vocab = Arc::new(
        CompressedVocab::from_tokenizer_file(fixture("qwen-tokenizer/tokenizer.json")).unwrap(),
    );
    let engram = EngramLayers::new(
        &EngramConfig::tinyengram_headline(),
        vocab,
        cfg.hidden_size,
        InitOptions::default(),
        &device,
    )
    .unwrap();
    // 4 layers x (value + key projections, 3 norms, conv) + 132,326 table rows x 64
    assert_eq!(engram.num_params(), 33_671_552);
}
