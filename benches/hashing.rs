//! Host-side hashing throughput (tokens/s) and the hash + gather forward on the default device.
//!
//! `cargo bench --bench hashing`

use std::hint::black_box;
use std::sync::Arc;

use burn::tensor::Device;
use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, InitOptions, NgramHasher};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A Qwen-sized identity-like compression (151669 raw ids -> 107457 compressed).
fn qwen_sized_vocab() -> Arc<CompressedVocab> {
    let lookup = (0..151_669i64)
        .map(|i| if i < 107_457 { i } else { i % 107_457 })
        .collect();
    Arc::new(CompressedVocab::from_lookup(lookup).unwrap())
}

fn tokens(n: usize) -> Vec<i64> {
    let mut x = 0x9E37_79B9u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 151_669) as i64
        })
        .collect()
}

fn bench_hashing(c: &mut Criterion) {
    let vocab = qwen_sized_vocab();
    let (b, t) = (8, 512);
    let ids = tokens(b * t);
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Elements((b * t) as u64));
    for (name, cfg) in [
        ("tinyengram_headline", EngramConfig::tinyengram_headline()),
        ("deepseek_demo", EngramConfig::default()),
    ] {
        let hasher = NgramHasher::new(&cfg, vocab.clone()).unwrap();
        group.bench_function(name, |bench| {
            bench.iter(|| black_box(hasher.hash(black_box(&ids), b, t).unwrap()))
        });
    }
    group.finish();
}

fn bench_hash_gather(c: &mut Criterion) {
    let device = Device::default();
    let vocab = qwen_sized_vocab();
    let cfg = EngramConfig {
        layer_ids: vec![1],
        ..EngramConfig::tinyengram_headline()
    };
    let layers = EngramLayers::new(&cfg, vocab, 1024, InitOptions::default(), &device).unwrap();
    let (b, t) = (8, 512);
    let ids = tokens(b * t);
    let engram = layers.layer(1).unwrap();
    let mut group = c.benchmark_group("hash_gather");
    group.throughput(Throughput::Elements((b * t) as u64));
    group.sample_size(10);
    group.bench_function("headline_layer_forward_read", |bench| {
        bench.iter(|| {
            let batch = layers.prepare(&ids, b, t, &device).unwrap();
            let e = engram.read_memory(batch.rows(1).unwrap().clone());
            device.sync().unwrap();
            black_box(e)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_hashing, bench_hash_gather);
criterion_main!(benches);
