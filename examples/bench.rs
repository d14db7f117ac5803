//! Machine-readable benchmarks: the workloads of `scripts/bench/reference_bench.py`, on this
//! crate, written as one JSON object (stdout and `--out`). `scripts/bench-compare.sh` runs
//! both and writes docs/BENCHMARKS.md.
//!
//! `cargo run --release --example bench -- --out ours.json [--quick] [--device cpu|wgpu|cuda]`

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::module::embedding;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn_engram::hashing::HashPrefetcher;
use burn_engram::memory::LazyAdamW;
use burn_engram::memory::{MultiHeadEmbedding, TouchedRows};
use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, InitOptions, NgramHasher};
use clap::Parser;
use rayon::prelude::*;
use serde_json::{Value, json};

// Burn's CPU backend allocates a fresh buffer for every op's output; mimalloc keeps freed
// memory for reuse instead of handing it back to the OS, saving the page faults of each new
// buffer (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Where to write the JSON.
    #[arg(long)]
    out: PathBuf,
    /// Fewer repetitions.
    #[arg(long)]
    quick: bool,
    /// cpu (flex), wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// B of the gather / Engram / step workloads.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// T of every workload.
    #[arg(long, default_value_t = 1024)]
    seq: usize,
    /// B of the hashing workload.
    #[arg(long, default_value_t = 16)]
    hash_batch: usize,
    /// Table rows per hash head of the large-table gather (48 heads).
    #[arg(long, default_value_t = 83_000)]
    big_rows_per_head: u64,
    /// Row width of the table-only training step.
    #[arg(long, default_value_t = 16)]
    step_dim: usize,
    /// Table sizes of the table-only training step.
    #[arg(long, default_value = "10000,1000000,10000000", value_delimiter = ',')]
    step_rows: Vec<usize>,
    /// Repetitions (best is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Repetitions of the Engram module workloads.
    #[arg(long, default_value_t = 3)]
    engram_reps: usize,
    /// Bytes of each buffer of the copy-bandwidth probe.
    #[arg(long, default_value_t = 256 << 20)]
    copy_bytes: usize,
    /// Run only these workload groups (copy, hash, gather, engram, step); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

const TOKENIZER_VOCAB: i64 = 151_669;
const COMPRESSED_VOCAB: i64 = 107_457;

/// Qwen-sized compression (151669 raw ids -> 107457), the same table as the Python side.
fn vocab() -> Arc<CompressedVocab> {
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

fn tokens(n: usize, seed: u64) -> Vec<i64> {
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
fn time(reps: usize, mut f: impl FnMut()) -> serde_json::Map<String, Value> {
    f();
    let (mut best, mut total) = (f64::INFINITY, 0.0);
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        f();
        let dt = t0.elapsed().as_secs_f64();
        best = best.min(dt);
        total += dt;
    }
    let mut m = serde_json::Map::new();
    m.insert("best_s".into(), json!(best));
    m.insert("mean_s".into(), json!(total / reps.max(1) as f64));
    m.insert("reps".into(), json!(reps.max(1)));
    m
}

fn best(m: &serde_json::Map<String, Value>) -> f64 {
    m["best_s"].as_f64().unwrap_or(f64::NAN)
}

fn rows_tensor(data: Vec<i32>, shape: [usize; 3], device: &Device) -> Tensor<3, Int> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn sync(device: &Device) {
    device.sync().expect("device sync");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let reps = if args.quick { 2 } else { args.reps };
    let engram_reps = if args.quick { 1 } else { args.engram_reps };
    let device = burn_engram::device::select_device(&args.device)?;
    let vocab = vocab();
    let (b, t) = (args.batch, args.seq);
    let mut w = serde_json::Map::new();
    let want = |group: &str| args.only.is_empty() || args.only.iter().any(|g| g == group);

    // --- copy bandwidth (STREAM-like copy, all threads) ------------------------------------
    if want("copy") {
        let n = args.copy_bytes / 4;
        let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut dst = vec![0f32; n];
        let chunk = (n / rayon::current_num_threads().max(1) / 8).max(1 << 16);
        let mut r = time(reps.max(3), || {
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
            black_box(&dst);
        });
        let copy_bw = 2.0 * args.copy_bytes as f64 / best(&r);
        r.insert("bytes_moved".into(), json!(2 * args.copy_bytes));
        r.insert("bytes_per_s".into(), json!(copy_bw));
        w.insert("copy".into(), Value::Object(r));
        drop((src, dst));
    }

    // --- hashing --------------------------------------------------------------------------
    let hb = args.hash_batch;
    let ids = tokens(hb * t, 1);
    let hash_configs = [
        ("hash_headline", EngramConfig::tinyengram_headline()),
        ("hash_demo", EngramConfig::default()),
    ];
    for (name, cfg) in hash_configs.into_iter().filter(|_| want("hash")) {
        let hasher = NgramHasher::new(&cfg, vocab.clone())?;
        let mut r = time(reps.max(5), || {
            black_box(hasher.hash(&ids, hb, t).expect("hash"));
        });
        r.insert("tokens".into(), json!(hb * t));
        r.insert("tokens_per_s".into(), json!((hb * t) as f64 / best(&r)));
        w.insert(format!("{name}_alloc"), Value::Object(r));
        // a data loader hashing batch after batch into the same buffers
        let mut out = hasher.hash(&ids, hb, t)?;
        let mut r = time(reps.max(5), || {
            hasher.hash_into(&ids, hb, t, &mut out).expect("hash");
            black_box(&out);
        });
        r.insert("tokens".into(), json!(hb * t));
        r.insert("tokens_per_s".into(), json!((hb * t) as f64 / best(&r)));
        w.insert(name.into(), Value::Object(r));
    }

    // --- gather forward, hash + gather forward, gather forward + backward ------------------
    let head = EngramConfig {
        layer_ids: vec![1],
        ..EngramConfig::tinyengram_headline()
    };
    let big = EngramConfig {
        engram_vocab_size: vec![args.big_rows_per_head; 3],
        ..head.clone()
    };
    let xb = tokens(b * t, 2);
    let ad = device.clone().autodiff();
    let gather_configs = [("headline", &head), ("big", &big)];
    for (name, cfg) in gather_configs.into_iter().filter(|_| want("gather")) {
        let layers = EngramLayers::new(cfg, vocab.clone(), 1024, InitOptions::default(), &device)?;
        let engram = layers.layer(1).expect("layer 1");
        let mhe = &engram.multi_head_embedding;
        let (rows_n, dim) = (mhe.rows(), mhe.head_dim());
        let batch = layers.prepare(&xb, b, t, &device)?;
        let rows = batch.rows(1).expect("rows").clone();
        let k = rows.dims()[2];
        let lookups = b * t * k;
        let moved = lookups * (2 * dim * 4 + 4); // row read + output write + i32 id read
        let mut r = time(reps, || {
            black_box(engram.read_memory(rows.clone()));
            sync(&device);
        });
        r.insert("table_rows".into(), json!(rows_n));
        r.insert("dim".into(), json!(dim));
        r.insert("lookups".into(), json!(lookups));
        r.insert("bytes_moved".into(), json!(moved));
        r.insert("bytes_per_s".into(), json!(moved as f64 / best(&r)));
        w.insert(format!("gather_fwd_{name}"), Value::Object(r));

        let mut r = time(reps, || {
            let batch = layers.prepare(&xb, b, t, &device).expect("prepare");
            black_box(engram.read_memory(batch.rows(1).expect("rows").clone()));
            sync(&device);
        });
        r.insert("table_rows".into(), json!(rows_n));
        r.insert("bytes_moved".into(), json!(moved));
        r.insert("bytes_per_s".into(), json!(moved as f64 / best(&r)));
        r.insert("tokens_per_s".into(), json!((b * t) as f64 / best(&r)));
        w.insert(format!("hash_gather_fwd_{name}"), Value::Object(r));

        // forward + backward of the table alone (dense table gradient, as nn.Embedding)
        let table = MultiHeadEmbedding {
            weight: Param::from_tensor(mhe.weight.val().inner().autodiff().require_grad()),
        };
        drop(layers);
        let rows_ad = rows.clone().autodiff();
        let gout = Tensor::<3>::random(
            [b, t, k * dim],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &ad,
        );
        let mut r = time(reps, || {
            let out = table.forward(rows_ad.clone());
            let grads = (out * gout.clone()).sum().backward();
            black_box(table.weight.grad(&grads));
            sync(&ad);
        });
        r.insert("table_rows".into(), json!(rows_n));
        r.insert("tokens_per_s".into(), json!((b * t) as f64 / best(&r)));
        w.insert(format!("gather_fwd_bwd_{name}"), Value::Object(r));
    }

    // --- the Engram module, forward and forward + backward, headline shape -----------------
    if want("engram") {
        let hidden = 1024;
        let layers = EngramLayers::new(&head, vocab.clone(), hidden, InitOptions::default(), &ad)?;
        let batch = layers.prepare(&xb, b, t, &ad)?;
        let normal = burn::tensor::Distribution::Normal(0.0, 1.0);
        let hs = Tensor::<4>::random([b, t, 1, hidden], normal, &ad);
        let gout = Tensor::<4>::random([b, t, 1, hidden], normal, &ad);
        let mut r = time(engram_reps, || {
            let out = layers.memory(1, hs.clone(), &batch).expect("forward");
            let grads = (out * gout.clone()).sum().backward();
            black_box(grads);
            sync(&ad);
        });
        r.insert("tokens_per_s".into(), json!((b * t) as f64 / best(&r)));
        w.insert("engram_fwd_bwd".into(), Value::Object(r));

        let valid = layers.valid();
        let batch = valid.prepare(&xb, b, t, &device)?;
        let hs = hs.inner();
        let mut r = time(engram_reps, || {
            black_box(valid.memory(1, hs.clone(), &batch).expect("forward"));
            sync(&device);
        });
        r.insert("tokens_per_s".into(), json!((b * t) as f64 / best(&r)));
        w.insert("engram_fwd".into(), Value::Object(r));

        // hashing ahead: n steps of (hash, upload, memory read), hashed inline vs by a
        // HashPrefetcher on its own thread
        let steps = if args.quick { 4 } else { 10 };
        let hasher = valid.hasher().clone();
        let engram = valid.layer(1).expect("layer 1");
        let step_ids: Vec<Vec<i64>> = (0..steps).map(|s| tokens(b * t, 10 + s as u64)).collect();
        let run_step = |h: &burn_engram::HashIds| -> Result<(), burn_engram::EngramError> {
            let batch = valid.upload(h, &device)?;
            black_box(engram.read_memory(batch.rows(1).expect("rows").clone()));
            sync(&device);
            Ok(())
        };
        let t0 = Instant::now();
        for ids in &step_ids {
            black_box(hasher.hash(ids, b, t)?);
        }
        let hash_s = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        for ids in &step_ids {
            run_step(&hasher.hash(ids, b, t)?)?;
        }
        let inline_s = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let prefetch = HashPrefetcher::spawn(
            hasher.clone(),
            step_ids.clone().into_iter().map(move |ids| (ids, b, t)),
            2,
        );
        for h in prefetch {
            run_step(&h?)?;
        }
        let prefetch_s = t0.elapsed().as_secs_f64();
        w.insert(
            "prefetch_overlap".into(),
            json!({
                "steps": steps,
                "inline_s": inline_s,
                "prefetch_s": prefetch_s,
                "hash_s": hash_s,
                "hidden_fraction": (inline_s - prefetch_s) / hash_s,
            }),
        );
    }

    // --- table-only training step: dense AdamW vs sparse lazy AdamW ------------------------
    let k = 48;
    let dim = args.step_dim;
    for &rows_n in args.step_rows.iter().filter(|_| want("step")) {
        let mut x = 0x2545_F491_4F6C_DD1Du64 ^ rows_n as u64;
        let idx: Vec<i32> = (0..b * t * k)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % rows_n as u64) as i32
            })
            .collect();
        let normal = burn::tensor::Distribution::Normal(0.0, 0.02);
        let gout = Tensor::<3>::random([b, t, k * dim], normal, &ad);
        let step_reps = if args.quick { 2 } else { 3 };

        // dense: Burn's embedding backward (dense [rows, dim] gradient) + Burn's AdamW
        {
            let mut table = MultiHeadEmbedding {
                weight: Param::from_tensor(Tensor::<2>::random([rows_n, dim], normal, &ad)),
            };
            let mut optim = AdamWConfig::new()
                .with_beta_2(0.95)
                .with_epsilon(1e-8)
                .with_weight_decay(0.0)
                .init();
            let rows = rows_tensor(idx.clone(), [b, t, k], &ad);
            let mut r = time(step_reps, || {
                let out = table.forward(rows.clone());
                let grads = (out * gout.clone()).sum().backward();
                let grads = GradientsParams::from_grads(grads, &table);
                let t2 = std::mem::replace(
                    &mut table,
                    MultiHeadEmbedding {
                        weight: Param::from_tensor(Tensor::empty([0, dim], &ad)),
                    },
                );
                table = optim.step(1e-3, t2, grads);
                sync(&ad);
            });
            r.insert("table_rows".into(), json!(rows_n));
            r.insert("dim".into(), json!(dim));
            r.insert("lookups".into(), json!(idx.len()));
            w.insert(format!("step_dense_{rows_n}"), Value::Object(r));
        }

        // sparse: dedupe the rows, gather them into a leaf, backward on the leaf, lazy AdamW
        {
            let mut weight = Param::from_tensor(Tensor::<2>::random([rows_n, dim], normal, &ad))
                .set_require_grad(false);
            let optim = LazyAdamW::default();
            let mut state = None;
            let mut touched_n = 0;
            let mut r = time(step_reps, || {
                let touched = TouchedRows::new(&idx);
                touched_n = touched.unique().len();
                let uniq = Tensor::<1, Int>::from_data(
                    TensorData::new(touched.unique().to_vec(), [touched_n]),
                    &ad,
                );
                let local = rows_tensor(touched.local().to_vec(), [b, t * k, 1], &ad);
                let leaf = weight
                    .val()
                    .inner()
                    .select(0, uniq.clone().inner())
                    .autodiff()
                    .require_grad();
                let out = embedding(leaf.clone(), local.reshape([b, t * k]));
                let grads = (out.reshape([b, t, k * dim]) * gout.clone())
                    .sum()
                    .backward();
                let g = leaf.grad(&grads).expect("leaf grad");
                let values = leaf.inner();
                let w0 = std::mem::replace(
                    &mut weight,
                    Param::from_tensor(Tensor::empty([0, dim], &ad)),
                );
                weight = w0.map(|tab| {
                    let (tab, s) = optim.step_with_values(1e-3, tab, uniq, values, g, state.take());
                    state = Some(s);
                    tab
                });
                sync(&ad);
            });
            r.insert("table_rows".into(), json!(rows_n));
            r.insert("dim".into(), json!(dim));
            r.insert("lookups".into(), json!(idx.len()));
            r.insert("touched_rows".into(), json!(touched_n));
            w.insert(format!("step_sparse_{rows_n}"), Value::Object(r));
        }
    }

    let res = json!({
        "device": args.device,
        "threads": rayon::current_num_threads(),
        "workloads": Value::Object(w),
    });
    let tmp = args.out.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&res)?)?;
    std::fs::rename(&tmp, &args.out)?;
    println!("{res}");
    Ok(())
}
