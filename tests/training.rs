//! Training through the injection trait: with the backbone frozen only Engram parameters get
//! gradients and change, and the loss goes down.
#![cfg(feature = "study")] // uses the host models or the study harness

use std::sync::Arc;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_engram::{
    CompressedVocab, EngramBatch, EngramConfig, EngramLayers, InitOptions, ResidualInjector,
};

const VOCAB: usize = 64;
const D: usize = 32;

#[derive(Module, Debug)]
struct Toy {
    embed: Embedding,
    blocks: Vec<Linear>,
    head: Linear,
    memory: EngramLayers,
}

impl Toy {
    fn new(device: &Device) -> Self {
        let vocab = Arc::new(CompressedVocab::from_lookup((0..VOCAB as i64).collect()).unwrap());
        let cfg = EngramConfig {
            engram_vocab_size: vec![97, 53],
            n_embed_per_ngram: 16,
            n_head_per_ngram: 2,
            layer_ids: vec![1],
            pad_id: 0,
            ..EngramConfig::default()
        };
        Self {
            embed: EmbeddingConfig::new(VOCAB, D).init(device),
            blocks: (0..2)
                .map(|_| LinearConfig::new(D, D).init(device))
                .collect(),
            head: LinearConfig::new(D, VOCAB).init(device),
            memory: EngramLayers::new(
                &cfg,
                vocab,
                D,
                InitOptions {
                    std: 0.1,
                    ..Default::default()
                },
                device,
            )
            .unwrap(),
        }
    }

    fn forward(&self, ids: Tensor<2, Int>, batch: &EngramBatch) -> Tensor<3> {
        let mut x = self.embed.forward(ids);
        for (i, block) in self.blocks.iter().enumerate() {
            x = self.memory.inject(i, x, batch).unwrap();
            x = x.clone() + relu(block.forward(x));
        }
        self.head.forward(x)
    }
}

fn data(device: &Device) -> (Vec<i64>, Tensor<2, Int>, Tensor<1, Int>) {
    // a deterministic sequence whose next token depends on the last two
    let (b, t) = (4, 12);
    let mut ids = vec![0i64; b * (t + 1)];
    for r in 0..b {
        ids[r * (t + 1)] = r as i64 + 1;
        ids[r * (t + 1) + 1] = 2 * r as i64 + 3;
        for i in 2..=t {
            let (p, q) = (ids[r * (t + 1) + i - 1], ids[r * (t + 1) + i - 2]);
            ids[r * (t + 1) + i] = (p * 7 + q * 3 + 1) % VOCAB as i64;
        }
    }
    let inputs: Vec<i64> = (0..b)
        .flat_map(|r| ids[r * (t + 1)..r * (t + 1) + t].to_vec())
        .collect();
    let targets: Vec<i64> = (0..b)
        .flat_map(|r| ids[r * (t + 1) + 1..(r + 1) * (t + 1)].to_vec())
        .collect();
    let x = Tensor::<2, Int>::from_data(
        TensorData::new(inputs.iter().map(|v| *v as i32).collect::<Vec<_>>(), [b, t]),
        device,
    );
    let y = Tensor::<1, Int>::from_data(
        TensorData::new(
            targets.iter().map(|v| *v as i32).collect::<Vec<_>>(),
            [b * t],
        ),
        device,
    );
    (inputs, x, y)
}

fn snapshot<const N: usize>(t: Tensor<N>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn frozen_backbone_gets_no_gradient_and_engram_learns() {
    let device = Device::default().autodiff();
    let mut model = Toy::new(&device);
    model.embed = model.embed.no_grad();
    model.blocks = model.blocks.no_grad();
    model.head = model.head.no_grad();
    assert!(model.memory.injects_at(1) && !model.memory.injects_at(0));

    let (raw, x, y) = data(&device);
    let batch = model.memory.prepare(&raw, 4, 12, &device).unwrap();
    let backbone_before = (
        snapshot(model.blocks[0].weight.val()),
        snapshot(model.head.weight.val()),
    );
    let table_before = snapshot(model.memory.layers[0].multi_head_embedding.weight.val());

    let loss_of = |m: &Toy| {
        let logits = m.forward(x.clone(), &batch).reshape([48, VOCAB]);
        cross_entropy_with_logits(logits, y.clone().one_hot::<2>(VOCAB).float())
    };

    // gradients: none for the frozen backbone, some for every Engram part
    let loss = loss_of(&model);
    let grads = loss.backward();
    assert!(model.blocks[0].weight.val().grad(&grads).is_none());
    assert!(model.head.weight.val().grad(&grads).is_none());
    assert!(model.embed.weight.val().grad(&grads).is_none());
    let e = &model.memory.layers[0];
    assert!(e.multi_head_embedding.weight.val().grad(&grads).is_some());
    assert!(e.value_proj.weight.val().grad(&grads).is_some());
    assert!(e.gate.key_projs[0].weight.val().grad(&grads).is_some());
    assert!(e.short_conv.weight.val().grad(&grads).is_some());
    let gp = GradientsParams::from_grads(grads, &model);
    assert_eq!(gp.len(), model.memory.num_params_tensors());

    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.0)
        .init();
    let first = snapshot(loss_of(&model))[0];
    for _ in 0..30 {
        let loss = loss_of(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let last = snapshot(loss_of(&model))[0];
    assert!(last < first * 0.9, "loss {first} -> {last}");
    assert_eq!(
        snapshot(model.blocks[0].weight.val()),
        backbone_before.0,
        "backbone changed"
    );
    assert_eq!(
        snapshot(model.head.weight.val()),
        backbone_before.1,
        "backbone changed"
    );
    assert_ne!(
        snapshot(model.memory.layers[0].multi_head_embedding.weight.val()),
        table_before
    );
}

trait CountTensors {
    fn num_params_tensors(&self) -> usize;
}

impl CountTensors for EngramLayers {
    /// table, 2 linears x (w, b), 2 norms, conv norm, conv weight per layer (G = 1)
    fn num_params_tensors(&self) -> usize {
        self.layers.len() * 9
    }
}

#[test]
fn global_norm_clipping_scales_all_gradients_together() {
    use burn_engram::study::train::{clip_global_norm, global_grad_norm};
    let device = Device::default().autodiff();
    let model = Toy::new(&device);
    let (raw, x, y) = data(&device);
    let batch = model.memory.prepare(&raw, 4, 12, &device).unwrap();
    let logits = model.forward(x, &batch).reshape([48, VOCAB]);
    let loss = cross_entropy_with_logits(logits, y.one_hot::<2>(VOCAB).float());
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let norm = global_grad_norm(&model, &grads).unwrap();
    assert!(norm > 0.0);
    let id = model.head.weight.id;
    let before = grads
        .get::<2>(id)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();

    let (clipped, reported) = clip_global_norm(&model, grads, norm / 2.0).unwrap();
    assert_eq!(reported, norm);
    let after = global_grad_norm(&model, &clipped).unwrap();
    assert!(
        (after - norm / 2.0).abs() < 1e-3 * norm,
        "{after} vs {}",
        norm / 2.0
    );
    let scaled = clipped
        .get::<2>(id)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    for (b, s) in before.iter().zip(&scaled) {
        assert!(
            (b * 0.5 - s).abs() <= 1e-5 * b.abs().max(1e-3),
            "every tensor scales by the same factor"
        );
    }
    let (untouched, _) = clip_global_norm(&model, clipped, 10.0 * norm).unwrap();
    assert!((global_grad_norm(&model, &untouched).unwrap() - after).abs() < 1e-9);
}

#[test]
fn sparse_table_step_touches_only_the_rows_read_and_equals_dense_adamw_there() {
    use burn_engram::memory::LazyAdamW;
    use burn_engram::memory::{GateMode, SparseTableStates};

    let device = Device::default().autodiff();
    let dense = Toy::new(&device);
    let (raw, x, y) = data(&device);
    let loss_of = |m: &Toy, batch: &EngramBatch| {
        let logits = m.forward(x.clone(), batch).reshape([48, VOCAB]);
        cross_entropy_with_logits(logits, y.clone().one_hot::<2>(VOCAB).float())
    };
    let table = |m: &Toy| snapshot(m.memory.layers[0].multi_head_embedding.weight.val());
    let before = table(&dense);
    let dim = dense.memory.layers[0].multi_head_embedding.head_dim();
    let lr = 1e-2;

    // dense: Burn's AdamW on the whole model (no weight decay: untouched rows stay put)
    let mut sparse = dense.clone();
    let batch = dense.memory.prepare(&raw, 4, 12, &device).unwrap();
    let grads = GradientsParams::from_grads(loss_of(&dense, &batch).backward(), &dense);
    let mut optim = AdamWConfig::new()
        .with_beta_2(0.95)
        .with_epsilon(1e-8)
        .with_weight_decay(0.0)
        .init();
    let dense = optim.step(lr, dense, grads);

    // sparse: sub-table of the rows read, lazy AdamW on those rows only
    sparse.memory = sparse.memory.with_tables_trainable(false);
    let lazy = LazyAdamW::default();
    let mut states = SparseTableStates::default();
    let step = |m: Toy, raw: &[i64], states: &mut SparseTableStates| {
        let (mut tables, batches) = m
            .memory
            .prepare_sparse(&[(raw, 4, 12)], GateMode::Learned, &device)
            .unwrap();
        let grads = loss_of(&m, &batches[0]).backward();
        assert!(
            m.memory.layers[0]
                .multi_head_embedding
                .weight
                .val()
                .grad(&grads)
                .is_none(),
            "no dense table gradient on the sparse path"
        );
        tables.accumulate(&grads);
        let touched = tables.touched()[0].1;
        drop(batches);
        let mut m = m;
        m.memory = m.memory.apply_sparse(tables, &lazy, states, lr);
        (m, touched)
    };
    let (sparse, touched) = step(sparse, &raw, &mut states);

    let (d, s) = (table(&dense), table(&sparse));
    let rows = before.len() / dim;
    let changed = (0..rows)
        .filter(|r| (0..dim).any(|j| s[r * dim + j] != before[r * dim + j]))
        .count();
    assert!(
        touched > 0 && touched < rows,
        "{touched} of {rows} rows read"
    );
    assert_eq!(changed, touched, "exactly the rows read move");
    for (i, (a, b)) in s.iter().zip(&d).enumerate() {
        assert!((a - b).abs() < 1e-6, "table[{i}]: sparse {a}, dense {b}");
    }

    // a second step reading other rows moves exactly those rows: rows read only in step 1
    // keep their value (dense AdamW would keep moving them with their momentum)
    let other: Vec<i64> = raw.iter().map(|v| (v * 5 + 11) % VOCAB as i64).collect();
    let (sparse, touched2) = step(sparse, &other, &mut states);
    let after = table(&sparse);
    let moved2: Vec<bool> = (0..rows)
        .map(|r| (0..dim).any(|j| after[r * dim + j].to_bits() != s[r * dim + j].to_bits()))
        .collect();
    assert_eq!(moved2.iter().filter(|m| **m).count(), touched2);
    let read_first = |r: usize| (0..dim).any(|j| s[r * dim + j] != before[r * dim + j]);
    assert!(
        (0..rows).any(|r| read_first(r) && !moved2[r]),
        "some row read only in step 1 should keep its value"
    );
    // the restored tables train densely again
    let memory = sparse.memory.with_tables_trainable(true);
    assert!(
        memory.layers[0]
            .multi_head_embedding
            .weight
            .val()
            .is_require_grad()
    );
}
