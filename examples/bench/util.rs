//! What the workload groups share: the Qwen-sized vocabulary, token streams, timing.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_engram::CompressedVocab;
use serde_json::{Map, Value, json};

const TOKENIZER_VOCAB: i64 = 151_669;
const COMPRESSED_VOCAB: i64 = 107_457;

/// Qwen-sized compression (151669 raw ids -> 107457), the same table as the Python side.
pub fn vocab() -> Arc<CompressedVocab> {
    let lookup = (0..TOKENIZER_VOCAB)
        .map(|i| {
            if i < COMPRESSED_VOCAB {
                i
            } else {
                i % COMPRESSED_VOCAB
            }
        })
        .collect();
    Arc::new(CompressedVocab::from_lookup(lookup).expect("lookup"))
}

pub fn tokens(n: usize, seed: u64) -> Vec<i64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % TOKENIZER_VOCAB as u64) as i64
        })
        .collect()
}

/// Best and mean seconds of `reps` runs after one warm-up.
pub fn time(reps: usize, mut f: impl FnMut()) -> Map<String, Value> {
    f();
    let (mut best, mut total) = (f64::INFINITY, 0.0);
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        f();
        let dt = t0.elapsed().as_secs_f64();
        best = best.min(dt);
        total += dt;
    }
    let mut m = Map::new();
    m.insert("best_s".into(), json!(best));
    m.insert("mean_s".into(), json!(total / reps.max(1) as f64));
    m.insert("reps".into(), json!(reps.max(1)));
    m
}

pub fn best(m: &Map<String, Value>) -> f64 {
    m["best_s"].as_f64().unwrap_or(f64::NAN)
}

pub fn rows_tensor(data: Vec<i32>, shape: [usize; 3], device: &Device) -> Tensor<3, Int> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

pub fn sync(device: &Device) {
    device.sync().expect("device sync");
}
