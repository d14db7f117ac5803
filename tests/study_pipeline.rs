//! The study's data path and trainer on small inputs: ChatML with the real Qwen tokenizer,
//! the split, and a short Engram run whose loss goes down with the backbone untouched.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use std::sync::Arc;

use burn::tensor::{DType, Device};
use burn_engram::host::qwen3::{Qwen3Engram, Qwen3Tokenizer, load_qwen3};
use burn_engram::study::data::dataset::{DataConfig, build, encode_sample};
use burn_engram::study::data::glaive::{Sample, prepare};
use burn_engram::study::train::{TrainConfig, train};
use burn_engram::{CompressedVocab, EngramConfig, InitOptions};
use common::fixture;

fn sample(i: usize) -> Sample {
    Sample {
        instruction: format!(
            "You are a helpful assistant with access to get_weather (request {i})."
        ),
        input: format!("What is the weather in city number {i}?"),
        output: format!(
            "<functioncall> {{\"name\": \"get_weather\", \"arguments\": {{\"city\": \"C{i}\"}}}}"
        ),
    }
}

#[test]
fn chatml_samples_carry_qwens_special_ids() {
    let tok = Qwen3Tokenizer::from_dir(fixture("qwen-tokenizer")).unwrap();
    assert_eq!(
        (tok.im_start_id, tok.im_end_id, tok.eos_id, tok.pad_id),
        (151_644, 151_645, 151_645, 151_643)
    );
    let ids = encode_sample(&tok, &sample(1), 2048).unwrap();
    assert_eq!(&ids[..3], &[151_644, 8948, 198], "<|im_start|>system\\n");
    assert_eq!(ids.iter().filter(|&&i| i == 151_644).count(), 3);
    assert_eq!(
        ids.iter().filter(|&&i| i == 151_645).count(),
        4,
        "three turns end, then eos"
    );
    assert_eq!(
        &ids[ids.len() - 2..],
        &[151_645, 151_645],
        "<|im_end|> then the eos token"
    );
    assert!(!ids.contains(&151_643), "no pad inside a sample");
    let short = encode_sample(&tok, &sample(1), 10).unwrap();
    assert_eq!(short, ids[..10].to_vec(), "truncation keeps the head");
}

#[test]
fn split_is_seeded_99_1_and_capped() {
    let tok = Qwen3Tokenizer::from_dir(fixture("qwen3/tied")).unwrap();
    let samples: Vec<Sample> = (0..250).map(sample).collect();
    let a = build(&samples, &tok, &DataConfig::default()).unwrap();
    let b = build(&samples, &tok, &DataConfig::default()).unwrap();
    assert_eq!(a, b, "same seed, same split");
    assert_eq!((a.train.len(), a.eval.len()), (247, 3));
    let c = build(
        &samples,
        &tok,
        &DataConfig {
            seed: 7,
            ..DataConfig::default()
        },
    )
    .unwrap();
    assert_ne!(a.eval, c.eval);
    let capped = build(
        &samples,
        &tok,
        &DataConfig {
            eval_fraction: 0.5,
            eval_cap: 20,
            ..DataConfig::default()
        },
    )
    .unwrap();
    assert_eq!((capped.train.len(), capped.eval.len()), (125, 20));
}

#[test]
fn prepared_glaive_rows_train_engram_and_the_loss_goes_down() {
    // glaive-format rows through the poisoning rules
    let rows: Vec<String> = (0..24)
        .map(|i| {
            serde_json::json!({
                "system": format!("SYSTEM: You may call get_weather. Row {i}."),
                "chat": format!("USER: Weather in C{}? ASSISTANT: <functioncall> {{\"name\": \"get_weather\", \"arguments\": {{\"city\": \"C{}\"}}}} <|endoftext|> FUNCTION RESPONSE: {{}} ASSISTANT: Sunny.", i % 4, i % 4),
            })
            .to_string()
        })
        .collect();
    let (samples, report) = prepare(&rows.join("\n"));
    assert_eq!(report.kept, 24);

    let device = Device::default().autodiff();
    let dir = fixture("qwen3/tied");
    let tok = Qwen3Tokenizer::from_dir(&dir).unwrap();
    let data = build(
        &samples,
        &tok,
        &DataConfig {
            max_len: 96,
            ..DataConfig::default()
        },
    )
    .unwrap();
    let base = load_qwen3(&dir, &device, DType::F32).unwrap();
    let vocab = Arc::new(CompressedVocab::from_tokenizer(&tok.inner).unwrap());
    let cfg = EngramConfig {
        engram_vocab_size: vec![211, 101],
        n_embed_per_ngram: 32,
        n_head_per_ngram: 2,
        layer_ids: vec![1],
        pad_id: tok.pad_id as i64,
        ..EngramConfig::default()
    };
    let model = Qwen3Engram::new(base, &cfg, vocab, InitOptions::default(), &device)
        .unwrap()
        .freeze_backbone();
    let tcfg = TrainConfig {
        lr: 3e-2,
        epochs: 8,
        micro_batch: 4,
        grad_accum: 2,
        warmup_ratio: 0.1,
        ..TrainConfig::default()
    };
    let mut seen = 0;
    let (_, metrics) = train(model, &data, tok.pad_id, &tcfg, &device, None, |_| {
        seen += 1
    })
    .unwrap();
    assert_eq!(seen, metrics.len());
    assert_eq!(metrics.len(), 8 * 23usize.div_ceil(8));
    let first = metrics[0].loss;
    let last = metrics.last().unwrap().loss;
    assert!(last < first * 0.85, "training loss {first} -> {last}");
    let eval = metrics.last().unwrap().eval_loss.expect("eval at the end");
    assert!(
        eval.is_finite() && eval < first,
        "eval loss {eval} vs first train loss {first}"
    );
    assert!(metrics.iter().all(|m| m.lr >= 0.0 && m.tokens > 0));
}

#[test]
fn engram_tables_can_take_their_own_learning_rate() {
    let device = Device::default().autodiff();
    let (model, data, pad) = common::tiny_engram_run(&device, 101);
    let table = |m: &Qwen3Engram| {
        m.engram.layers[0]
            .multi_head_embedding
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let value_w = |m: &Qwen3Engram| {
        m.engram.layers[0]
            .value_proj
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let (t0, v0) = (table(&model), value_w(&model));
    // multiplier 0 freezes the tables (and no decay on them), the rest trains
    let cfg = TrainConfig {
        lr: 1e-2,
        epochs: 1,
        micro_batch: 4,
        table_lr_mult: 0.0,
        table_weight_decay: Some(0.0),
        ..TrainConfig::default()
    };
    let (trained, _) = train(model, &data, pad, &cfg, &device, None, |_| {}).unwrap();
    assert_eq!(table(&trained), t0, "tables moved with a 0 learning rate");
    assert_ne!(value_w(&trained), v0, "the other Engram parameters train");
}

#[test]
fn sparse_table_updates_match_dense_on_the_first_step_and_resume_exactly() {
    use burn_engram::study::train::{CheckpointConfig, TableUpdate};

    let device = Device::default().autodiff();
    let tables = |m: &Qwen3Engram| -> Vec<Vec<f32>> {
        m.engram
            .layers
            .iter()
            .map(|l| {
                l.multi_head_embedding
                    .weight
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            })
            .collect()
    };
    let (model, data, pad) = common::tiny_engram_run(&device, 401);
    let before = tables(&model);
    // one step of two micro-batches; no decay on the tables, so on the first step dense
    // AdamW leaves unread rows exactly where lazy AdamW leaves them
    let dense_cfg = TrainConfig {
        lr: 1e-2,
        epochs: 1,
        stop_after: Some(1),
        micro_batch: 2,
        grad_accum: 2,
        warmup_ratio: 0.0, // the first warm-up step has lr 0
        table_weight_decay: Some(0.0),
        ..TrainConfig::default()
    };
    let sparse_cfg = TrainConfig {
        table_update: TableUpdate::Sparse,
        ..dense_cfg.clone()
    };
    let (dense, _) = train(model.clone(), &data, pad, &dense_cfg, &device, None, |_| {}).unwrap();
    let (sparse, m) = train(
        model.clone(),
        &data,
        pad,
        &sparse_cfg,
        &device,
        None,
        |_| {},
    )
    .unwrap();
    assert_eq!(m.len(), 1);
    assert!(m[0].loss.is_finite());
    for (l, ((d, s), b)) in tables(&dense)
        .iter()
        .zip(tables(&sparse))
        .zip(&before)
        .enumerate()
    {
        assert_ne!(&s, b, "layer {l}: the sparse step trained the table");
        for (i, (x, y)) in s.iter().zip(d).enumerate() {
            assert!(
                (x - y).abs() < 1e-6,
                "layer {l} table[{i}]: sparse {x}, dense {y}"
            );
        }
    }
    // the tables come back trainable
    assert!(
        sparse.engram.layers[0]
            .multi_head_embedding
            .weight
            .val()
            .is_require_grad()
    );

    // sparse runs checkpoint their lazy-Adam state and resume exactly like dense ones:
    // 4 steps straight equal 2 steps, a new process's model, and 2 more from the checkpoint
    let run_cfg = |stop| TrainConfig {
        max_steps: Some(4),
        stop_after: stop,
        grad_accum: 1,
        warmup_ratio: 0.25,
        ..sparse_cfg.clone()
    };
    let (straight, _) = train(
        model.clone(),
        &data,
        pad,
        &run_cfg(None),
        &device,
        None,
        |_| {},
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = CheckpointConfig {
        dir: dir.path().to_path_buf(),
        every: 2,
        keep_last: 1,
        resume: true,
    };
    let (_, first) = train(
        model.clone(),
        &data,
        pad,
        &run_cfg(Some(2)),
        &device,
        Some(&ck),
        |_| {},
    )
    .unwrap();
    assert_eq!(first.len(), 2);
    assert!(
        dir.path()
            .join("checkpoint-2/sparse_optimizer.safetensors")
            .is_file()
    );
    let (fresh, _, _) = common::tiny_engram_run(&device, 401);
    let (resumed, second) = train(
        fresh,
        &data,
        pad,
        &run_cfg(None),
        &device,
        Some(&ck),
        |_| {},
    )
    .unwrap();
    assert_eq!(second.iter().map(|m| m.step).collect::<Vec<_>>(), [3, 4]);
    for (l, (a, b)) in tables(&straight).iter().zip(tables(&resumed)).enumerate() {
        assert_eq!(a, &b, "layer {l}: the resumed sparse run's table differs");
    }
    // a sparse checkpoint does not resume a dense run (its table moments are not there)
    let (fresh, _, _) = common::tiny_engram_run(&device, 401);
    let dense_run = TrainConfig {
        table_update: TableUpdate::Dense,
        ..run_cfg(None)
    };
    let err = train(fresh, &data, pad, &dense_run, &device, Some(&ck), |_| {}).unwrap_err();
    assert!(err.to_string().contains("sparse table updates"), "{err}");
}
