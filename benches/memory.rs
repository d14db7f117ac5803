//! The memory path on every enabled device (flex always; wgpu / cuda with their features), the
//! workloads of `scripts/bench-compare.sh`: gather forward and hash + upload + gather forward
//! (bytes/s: row reads, output writes, id reads) on the headline layer's table and on the
//! ~1 GB one (83,000 rows per head x 48 heads x 64 f32), gather forward + backward (dense table
//! gradient), and one Engram layer forward + backward at the headline shape (hidden 1024,
//! B * T = 4096). Devices are synchronized inside the timed region.
//!
//! `cargo bench --bench memory [--features wgpu]`

use std::hint::black_box;
use std::sync::Arc;

use burn::module::Param;
use burn::tensor::{Device, Distribution, Tensor};
use burn_engram::memory::MultiHeadEmbedding;
use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, InitOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

// The allocator the bench example and the tools use (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const B: usize = 4;
const T: usize = 1024;

fn vocab() -> Arc<CompressedVocab> {
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

fn devices() -> Vec<(&'static str, Device)> {
    burn_engram::device::available_devices()
        .into_iter()
        .filter_map(|name| {
            burn_engram::device::select_device(name)
                .ok()
                .map(|d| (name, d))
        })
        .collect()
}

fn headline_layer() -> EngramConfig {
    EngramConfig {
        layer_ids: vec![1],
        ..EngramConfig::tinyengram_headline()
    }
}

fn bench_gather(c: &mut Criterion) {
    let ids = tokens(B * T);
    let big = EngramConfig {
        engram_vocab_size: vec![83_000; 3],
        ..headline_layer()
    };
    let mut group = c.benchmark_group("gather");
    group.sample_size(10);
    for (name, device) in devices() {
        for (table_name, cfg) in [("headline", headline_layer()), ("big", big.clone())] {
            let layers =
                EngramLayers::new(&cfg, vocab(), 1024, InitOptions::default(), &device).unwrap();
            let engram = layers.layer(1).unwrap();
            let batch = layers.prepare(&ids, B, T, &device).unwrap();
            let rows = batch.rows(1).unwrap().clone();
            let [_, _, k] = rows.dims();
            let dim = engram.multi_head_embedding.head_dim();
            // row read + output write + i32 id read, as bench-compare.sh counts them
            let moved = (B * T * k * (2 * dim * 4 + 4)) as u64;
            group.throughput(Throughput::Bytes(moved));
            group.bench_function(format!("forward/{table_name}/{name}"), |bench| {
                bench.iter(|| {
                    let e = engram.read_memory(rows.clone());
                    device.sync().unwrap();
                    black_box(e)
                })
            });
            group.bench_function(format!("hash_forward/{table_name}/{name}"), |bench| {
                bench.iter(|| {
                    let batch = layers.prepare(&ids, B, T, &device).unwrap();
                    let e = engram.read_memory(batch.rows(1).unwrap().clone());
                    device.sync().unwrap();
                    black_box(e)
                })
            });
            let ad = device.clone().autodiff();
            let table = MultiHeadEmbedding {
                weight: Param::from_tensor(
                    engram
                        .multi_head_embedding
                        .weight
                        .val()
                        .inner()
                        .autodiff()
                        .require_grad(),
                ),
            };
            drop(batch);
            let rows = rows.autodiff();
            let normal = Distribution::Normal(0.0, 1.0);
            let gout = Tensor::<3>::random([B, T, k * dim], normal, &ad);
            group.throughput(Throughput::Elements((B * T) as u64));
            group.bench_function(format!("forward_backward/{table_name}/{name}"), |bench| {
                bench.iter(|| {
                    let grads = (table.forward(rows.clone()) * gout.clone())
                        .sum()
                        .backward();
                    let g = table.weight.grad(&grads);
                    ad.sync().unwrap();
                    black_box(g)
                })
            });
        }
    }
    group.finish();
}

fn bench_engram(c: &mut Criterion) {
    let ids = tokens(B * T);
    let mut group = c.benchmark_group("engram_layer");
    group.throughput(Throughput::Elements((B * T) as u64));
    group.sample_size(10);
    for (name, device) in devices() {
        let ad = device.autodiff();
        let layers = EngramLayers::new(
            &headline_layer(),
            vocab(),
            1024,
            InitOptions::default(),
            &ad,
        )
        .unwrap();
        let batch = layers.prepare(&ids, B, T, &ad).unwrap();
        let normal = Distribution::Normal(0.0, 1.0);
        let hidden = Tensor::<4>::random([B, T, 1, 1024], normal, &ad);
        let gout = Tensor::<4>::random([B, T, 1, 1024], normal, &ad);
        group.bench_function(format!("forward_backward/{name}"), |bench| {
            bench.iter(|| {
                let out = layers.memory(1, hidden.clone(), &batch).unwrap();
                let grads = (out * gout.clone()).sum().backward();
                ad.sync().unwrap();
                black_box(grads)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gather, bench_engram);
criterion_main!(benches);
