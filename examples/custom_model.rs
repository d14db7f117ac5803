//! A toy transformer the user wrote, gaining Engram memory in a few lines, trained for a few
//! steps on CPU with the backbone frozen: `cargo run --release --example custom_model`.

use std::sync::Arc;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::loss::cross_entropy_with_logits;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use burn_engram::{
    CompressedVocab, EngramConfig, EngramLayers, GateSchedule, InitOptions, ResidualInjector,
};

const VOCAB: usize = 128;
const D_MODEL: usize = 64;
const BLOCKS: usize = 4;
const BATCH: usize = 8;
const SEQ: usize = 32;

/// The user's own block: causal single-head attention and an MLP, each a residual branch.
#[derive(Module, Debug)]
struct Block {
    qkv: Linear,
    out: Linear,
    up: Linear,
    down: Linear,
}

impl Block {
    fn new(device: &Device) -> Self {
        Self {
            qkv: LinearConfig::new(D_MODEL, 3 * D_MODEL).init(device),
            out: LinearConfig::new(D_MODEL, D_MODEL).init(device),
            up: LinearConfig::new(D_MODEL, 4 * D_MODEL).init(device),
            down: LinearConfig::new(4 * D_MODEL, D_MODEL).init(device),
        }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = x.dims();
        let qkv = self.qkv.forward(x.clone());
        let [q, k, v]: [Tensor<3>; 3] = qkv.chunk(3, 2).try_into().expect("three chunks");
        let scores = q.matmul(k.swap_dims(1, 2)).div_scalar((d as f64).sqrt());
        let mask = Tensor::<2, Bool>::tril_mask([t, t], 0, &x.device()).unsqueeze::<3>();
        let scores = scores.mask_fill(mask.expand([b, t, t]), -1e9);
        let x = x + self.out.forward(softmax(scores, 2).matmul(v));
        let hidden = gelu(self.up.forward(x.clone()));
        x + self.down.forward(hidden)
    }
}

/// The user's model, generic over how memory enters its residual stream.
#[derive(Module, Debug)]
struct TinyLm<M: Module> {
    embed: Embedding,
    blocks: Vec<Block>,
    head: Linear,
    memory: M,
}

impl<M: Module + ResidualInjector> TinyLm<M> {
    fn forward(&self, ids: Tensor<2, Int>, batch: &M::Batch) -> burn_engram::Result<Tensor<3>> {
        let mut x = self.embed.forward(ids);
        for (i, block) in self.blocks.iter().enumerate() {
            x = self.memory.inject(i, x, batch)?; // <- the one line Engram needs
            x = block.forward(x);
        }
        Ok(self.head.forward(x))
    }
}

/// Sequences with recurring n-gram "facts": each row is a walk through a fixed table of
/// trigram continuations, which n-gram memory can store.
fn make_batch(step: usize) -> (Vec<i64>, Vec<i64>) {
    let next = |a: i64, b: i64| (a * 31 + b * 17 + 7) % VOCAB as i64;
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for r in 0..BATCH {
        let mut a = ((step * BATCH + r) % VOCAB) as i64;
        let mut b = ((step * 7 + r * 3) % VOCAB) as i64;
        for _ in 0..SEQ {
            let c = next(a, b);
            inputs.push(b);
            targets.push(c);
            (a, b) = (b, c);
        }
    }
    (inputs, targets)
}

fn main() -> std::process::ExitCode {
    let Err(e) = run() else {
        return std::process::ExitCode::SUCCESS;
    };
    eprintln!("error: {e}"); // one line, as every tool here ends
    std::process::ExitCode::FAILURE
}

fn run() -> burn_engram::Result<()> {
    let device = Device::default().autodiff();
    // 1. The user's model as it was (weights would normally come from pretraining).
    let embed = EmbeddingConfig::new(VOCAB, D_MODEL).init(&device);
    let blocks: Vec<Block> = (0..BLOCKS).map(|_| Block::new(&device)).collect();
    let head = LinearConfig::new(D_MODEL, VOCAB).init(&device);
    // 2. Engram at blocks 1 and 2. Without a real tokenizer, compression is the identity;
    //    with one: CompressedVocab::from_tokenizer_file("tokenizer.json")?.
    let vocab = Arc::new(CompressedVocab::from_lookup((0..VOCAB as i64).collect())?);
    let cfg = EngramConfig {
        engram_vocab_size: vec![2003, 1009],
        n_embed_per_ngram: 64,
        n_head_per_ngram: 4,
        layer_ids: vec![1, 2],
        pad_id: 0,
        ..EngramConfig::default()
    };
    let memory = EngramLayers::new(&cfg, vocab, D_MODEL, InitOptions::default(), &device)?;
    // 3. Freeze the backbone; only Engram trains.
    let mut model = TinyLm {
        embed: embed.no_grad(),
        blocks: blocks.no_grad(),
        head: head.no_grad(),
        memory,
    };
    let frozen = model.embed.num_params() + model.blocks.num_params() + model.head.num_params();
    let trainable = model.memory.num_params();
    println!("backbone params: {frozen} (frozen), Engram: {trainable} (trainable)");
    // 4. Train: hash on the host, inject in the forward, step the optimizer.
    let schedule = GateSchedule::default(); // the gate's warm-up, driven by the step
    let adamw = AdamWConfig::new().with_beta_2(0.95).with_epsilon(1e-8);
    let mut optim = adamw.with_weight_decay(0.0).init();
    for step in 0..40 {
        let (inputs, targets) = make_batch(step % 4);
        // hashing happens on the host; a data loader would do it ahead of the step
        let batch = model.memory.prepare(&inputs, BATCH, SEQ, &device)?;
        let batch = batch.with_gate(schedule.at(step));
        let ints = |v: &[i64]| TensorData::new(v.iter().map(|&x| x as i32).collect(), [v.len()]);
        let ids = Tensor::<1, Int>::from_data(ints(&inputs), &device).reshape([BATCH, SEQ]);
        let y = Tensor::<1, Int>::from_data(ints(&targets), &device);
        let logits = model.forward(ids, &batch)?.reshape([BATCH * SEQ, VOCAB]);
        let loss = cross_entropy_with_logits(logits, y.one_hot::<2>(VOCAB).float());
        let value = loss.clone().into_scalar::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(3e-3, model, grads);
        if step % 5 == 0 || step == 39 {
            println!("step {step:>2}  loss {value:.4}");
        }
    }
    Ok(())
}
