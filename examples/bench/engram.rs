//! The Engram module forward and forward + backward at the headline shape, and hashing
//! ahead on a worker thread (`HashPrefetcher`) against hashing inline.

use std::hint::black_box;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Tensor;
use burn_engram::hashing::HashPrefetcher;
use burn_engram::{EngramLayers, InitOptions};
use serde_json::{Value, json};

use crate::{Ctx, Workloads, best, sync, time, tokens};

pub fn run(ctx: &Ctx, w: &mut Workloads) -> burn_engram::Result<()> {
    let (b, t, xb, head) = (ctx.args.batch, ctx.args.seq, &ctx.xb, &ctx.head);
    // --- the Engram module, forward and forward + backward, headline shape -----------------
    if ctx.want("engram") {
        let hidden = 1024;
        let layers = EngramLayers::new(
            head,
            ctx.vocab.clone(),
            hidden,
            InitOptions::default(),
            &ctx.ad,
        )?;
        let batch = layers.prepare(xb, b, t, &ctx.ad)?;
        let normal = burn::tensor::Distribution::Normal(0.0, 1.0);
        let hs = Tensor::<4>::random([b, t, 1, hidden], normal, &ctx.ad);
        let gout = Tensor::<4>::random([b, t, 1, hidden], normal, &ctx.ad);
        let mut r = time(ctx.engram_reps, || {
            let out = layers.memory(1, hs.clone(), &batch).expect("forward");
            let grads = (out * gout.clone()).sum().backward();
            black_box(grads);
            sync(&ctx.ad);
        });
        r.insert("tokens_per_s".into(), json!((b * t) as f64 / best(&r)));
        w.insert("engram_fwd_bwd".into(), Value::Object(r));

        let valid = layers.valid();
        let batch = valid.prepare(xb, b, t, &ctx.device)?;
        let hs = hs.inner();
        let mut r = time(ctx.engram_reps, || {
            black_box(valid.memory(1, hs.clone(), &batch).expect("forward"));
            sync(&ctx.device);
        });
        r.insert("tokens_per_s".into(), json!((b * t) as f64 / best(&r)));
        w.insert("engram_fwd".into(), Value::Object(r));

        // the floor the layer's matmuls set: each projection (G keys and the value, E ->
        // hidden) is one matmul forward and two backward (input and weight gradients); the
        // three shapes timed here at the backend's own matmul speed, the same run
        let (m, e) = (b * t, head.engram_hidden_size());
        let projections = engram_projections(head);
        // the best time of each `[rows, inner, cols]` matmul, summed
        let matmuls = |shapes: &[[usize; 3]]| -> f64 {
            shapes
                .iter()
                .map(|&[rows, inner, cols]| {
                    let lhs = Tensor::<2>::random([rows, inner], normal, &ctx.device);
                    let rhs = Tensor::<2>::random([inner, cols], normal, &ctx.device);
                    best(&time(ctx.engram_reps, || {
                        black_box(lhs.clone().matmul(rhs.clone()));
                        sync(&ctx.device);
                    }))
                })
                .sum()
        };
        let separate = [[m, e, hidden], [m, hidden, e], [e, m, hidden]];
        let gemm_s = matmuls(&separate);
        let shapes: Vec<Value> = separate.iter().map(|s| json!(s)).collect();
        let flops = projections as f64 * 3.0 * 2.0 * (m * e * hidden) as f64;
        // the same projections as one matmul (weights side by side: E -> P * hidden): the
        // same FLOPs in three larger matmuls, plus putting the weights side by side; against
        // the separate ones plus the P - 1 additions of their input gradients (splitting the
        // fused output is not timed: free as a view, dearer under autodiff, so fused_s is a
        // lower bound on fusing's cost)
        let p = projections;
        let mut fused_s = matmuls(&[[m, e, p * hidden], [m, p * hidden, e], [e, m, p * hidden]]);
        let weights: Vec<Tensor<2>> = (0..p)
            .map(|_| Tensor::random([e, hidden], normal, &ctx.device))
            .collect();
        let r = time(ctx.engram_reps, || {
            black_box(Tensor::cat(weights.clone(), 1));
            sync(&ctx.device);
        });
        fused_s += best(&r);
        let (ga, gb) = (
            Tensor::<2>::random([m, e], normal, &ctx.device),
            Tensor::<2>::random([m, e], normal, &ctx.device),
        );
        let r = time(ctx.engram_reps, || {
            black_box(ga.clone() + gb.clone());
            sync(&ctx.device);
        });
        let separate_s = p as f64 * gemm_s + (p - 1) as f64 * best(&r);
        w.insert(
            "engram_gemm_floor".into(),
            json!({
                "shapes": shapes,
                "projections": projections,
                "matmul_s": gemm_s,
                "floor_s": projections as f64 * gemm_s,
                "flops": flops,
                "flops_per_s": flops / (projections as f64 * gemm_s),
                "separate_with_adds_s": separate_s,
                "fused_s": fused_s,
            }),
        );

        // hashing ahead: n steps of (hash, upload, memory read), hashed inline vs by a
        // HashPrefetcher on its own thread
        let steps = if ctx.args.quick { 4 } else { 10 };
        let hasher = valid.hasher().clone();
        let engram = valid.layer(1).expect("layer 1");
        let step_ids: Vec<Vec<i64>> = (0..steps).map(|s| tokens(b * t, 10 + s as u64)).collect();
        let run_step = |h: &burn_engram::HashIds| -> Result<(), burn_engram::EngramError> {
            let batch = valid.upload(h, &ctx.device)?;
            black_box(engram.read_memory(batch.rows(1).expect("rows").clone()));
            sync(&ctx.device);
            Ok(())
        };
        // three interleaved rounds (hash alone, inline, prefetched), the best of each: the
        // first round also pays the warm-up, which would otherwise count against one side
        let (mut hash_s, mut inline_s, mut prefetch_s) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..3 {
            let t0 = Instant::now();
            for ids in &step_ids {
                black_box(hasher.hash(ids, b, t)?);
            }
            hash_s = hash_s.min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            for ids in &step_ids {
                run_step(&hasher.hash(ids, b, t)?)?;
            }
            inline_s = inline_s.min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            let prefetch = HashPrefetcher::spawn(
                hasher.clone(),
                step_ids.clone().into_iter().map(move |ids| (ids, b, t)),
                2,
            );
            for h in prefetch {
                run_step(&h?)?;
            }
            prefetch_s = prefetch_s.min(t0.elapsed().as_secs_f64());
        }
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

    Ok(())
}

/// Matmuls of one layer's projections: one key projection per hyper-connection group and
/// the value projection.
fn engram_projections(config: &burn_engram::EngramConfig) -> usize {
    config.hc_mult + 1
}
