//! Host-side hashing throughput (tokens/s), the workload of `scripts/bench-compare.sh`'s
//! `hash_*` rows: 16 x 1024 tokens, Qwen-sized compression, every layer of the config, once
//! with a fresh output each call (as `EngramLayers::hash` / `NgramHasher::hash` are called)
//! and once into reused buffers (`hash_into`, a data loader's loop).
//!
//! `cargo bench --bench hashing`

use std::hint::black_box;
use std::sync::Arc;

use burn_engram::{CompressedVocab, EngramConfig, NgramHasher};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

// The allocator the bench example and the tools use (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let (b, t) = (16, 1024);
    let ids = tokens(b * t);
    let mut group = c.benchmark_group("hash");
    group.throughput(Throughput::Elements((b * t) as u64));
    for (name, cfg) in [
        ("headline", EngramConfig::tinyengram_headline()),
        ("demo", EngramConfig::default()),
    ] {
        let hasher = NgramHasher::new(&cfg, vocab.clone()).unwrap();
        group.bench_function(format!("{name}/fresh_output"), |bench| {
            bench.iter(|| black_box(hasher.hash(black_box(&ids), b, t).unwrap()))
        });
        let mut out = hasher.hash(&ids, b, t).unwrap();
        group.bench_function(format!("{name}/reused_buffers"), |bench| {
            bench.iter(|| {
                hasher.hash_into(black_box(&ids), b, t, &mut out).unwrap();
                black_box(&out);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_hashing);
criterion_main!(benches);
