//! Copy bandwidth (the yardstick of the gathers) and hashing, allocating and into reused
//! buffers.

use std::hint::black_box;

use burn_engram::{EngramConfig, NgramHasher};
use rayon::prelude::*;
use serde_json::{Value, json};

use crate::{Ctx, Workloads, best, time, tokens};

pub fn run(ctx: &Ctx, w: &mut Workloads) -> burn_engram::Result<()> {
    let t = ctx.args.seq;
    // --- copy bandwidth (STREAM-like copy, all threads) ------------------------------------
    // Twice: with ordinary stores (a write first reads the line: read-for-ownership, as the
    // gather's output writes do) and with non-temporal stores (no RFO; what STREAM reports).
    if ctx.want("copy") {
        let n = ctx.args.copy_bytes / 4;
        let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut dst = vec![0f32; n];
        let chunk = (n / rayon::current_num_threads().max(1) / 8).max(1 << 16);
        for (name, nt) in [("copy", false), ("copy_nt", true)] {
            if nt && !cfg!(target_arch = "x86_64") {
                continue;
            }
            let mut r = time(ctx.reps.max(3), || {
                dst.par_chunks_mut(chunk)
                    .zip(src.par_chunks(chunk))
                    .for_each(|(d, s)| {
                        if nt {
                            copy_nt(d, s)
                        } else {
                            d.copy_from_slice(s)
                        }
                    });
                black_box(&dst);
            });
            let bw = 2.0 * ctx.args.copy_bytes as f64 / best(&r);
            r.insert("bytes_moved".into(), json!(2 * ctx.args.copy_bytes));
            r.insert("bytes_per_s".into(), json!(bw));
            r.insert(
                "stores".into(),
                json!(if nt { "non-temporal" } else { "ordinary" }),
            );
            w.insert(name.into(), Value::Object(r));
        }
        assert_eq!(dst[n - 1], src[n - 1], "the copy copied");
        drop((src, dst));
        // --- the same copy on the device (wgpu / cuda): `x + 0` reads and writes every element
        if ctx.args.device != "cpu" {
            let x = burn::tensor::Tensor::<1>::zeros([n], &ctx.device);
            let mut r = time(ctx.reps.max(3), || {
                black_box(x.clone().add_scalar(0.0));
                crate::sync(&ctx.device);
            });
            let bw = 2.0 * ctx.args.copy_bytes as f64 / best(&r);
            r.insert("bytes_moved".into(), json!(2 * ctx.args.copy_bytes));
            r.insert("bytes_per_s".into(), json!(bw));
            w.insert("copy_device".into(), Value::Object(r));
        }
        // --- random access latency: a dependent pointer chase through a table far larger
        // than the caches (one thread), the bound a row-at-a-time update cannot beat
        let lines = ctx.args.copy_bytes / 64;
        let next = chase_cycle(lines);
        let hops = if ctx.args.quick { 1 << 20 } else { 1 << 22 };
        let mut at = 0usize;
        let mut r = time(3, || {
            for _ in 0..hops {
                at = next[at * 16] as usize;
            }
            black_box(at);
        });
        r.insert("hops".into(), json!(hops));
        r.insert("table_bytes".into(), json!(lines * 64));
        r.insert("ns_per_access".into(), json!(best(&r) * 1e9 / hops as f64));
        w.insert("latency".into(), Value::Object(r));
        // --- random-access throughput: every thread loads random lines of the same table,
        // each address independent of the last (a xorshift picks it), so the core overlaps
        // the misses: the floor of any update that touches lines at random
        let threads = rayon::current_num_threads().max(1);
        let per_thread = hops / threads;
        let mut r = time(3, || {
            let sum: u64 = (0..threads)
                .into_par_iter()
                .map(|t| {
                    let (mut x, mut acc) = (0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1), 0u64);
                    for _ in 0..per_thread {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        acc = acc.wrapping_add(next[(x % lines as u64) as usize * 16] as u64);
                    }
                    acc
                })
                .sum();
            black_box(sum);
        });
        let loads = per_thread * threads;
        r.insert("loads".into(), json!(loads));
        r.insert("ns_per_line".into(), json!(best(&r) * 1e9 / loads as f64));
        w.insert("random_lines".into(), Value::Object(r));
    }

    // --- hashing --------------------------------------------------------------------------
    let hb = ctx.args.hash_batch;
    let ids = tokens(hb * t, 1);
    let hash_configs = [
        ("hash_headline", EngramConfig::tinyengram_headline()),
        ("hash_demo", EngramConfig::default()),
    ];
    for (name, cfg) in hash_configs.into_iter().filter(|_| ctx.want("hash")) {
        let hasher = NgramHasher::new(&cfg, ctx.vocab.clone())?;
        let mut r = time(ctx.reps.max(5), || {
            black_box(hasher.hash(&ids, hb, t).expect("hash"));
        });
        r.insert("tokens".into(), json!(hb * t));
        r.insert("tokens_per_s".into(), json!((hb * t) as f64 / best(&r)));
        w.insert(format!("{name}_alloc"), Value::Object(r));
        // a data loader hashing batch after batch into the same buffers
        let mut out = hasher.hash(&ids, hb, t)?;
        let mut r = time(ctx.reps.max(5), || {
            hasher.hash_into(&ids, hb, t, &mut out).expect("hash");
            black_box(&out);
        });
        r.insert("tokens".into(), json!(hb * t));
        r.insert("tokens_per_s".into(), json!((hb * t) as f64 / best(&r)));
        w.insert(name.into(), Value::Object(r));
    }

    Ok(())
}

/// `d = s` with non-temporal stores (SSE2 `movntps`, part of x86_64's baseline, so no
/// run-time detection); the unaligned head and tail are copied normally.
#[cfg(target_arch = "x86_64")]
fn copy_nt(d: &mut [f32], s: &[f32]) {
    use std::arch::x86_64::{_mm_loadu_ps, _mm_sfence, _mm_stream_ps};
    let head = d.as_ptr().align_offset(16).min(d.len());
    d[..head].copy_from_slice(&s[..head]);
    let body = (d.len() - head) / 4 * 4;
    // SAFETY: `head..head + body` is in bounds of both slices, `d[head..]` is 16-byte aligned
    // (align_offset) and stream/loadu take exactly 4 f32s at each step.
    unsafe {
        let (dp, sp) = (d.as_mut_ptr().add(head), s.as_ptr().add(head));
        for i in (0..body).step_by(4) {
            _mm_stream_ps(dp.add(i), _mm_loadu_ps(sp.add(i)));
        }
        _mm_sfence();
    }
    d[head + body..].copy_from_slice(&s[head + body..]);
}

#[cfg(not(target_arch = "x86_64"))]
fn copy_nt(d: &mut [f32], s: &[f32]) {
    d.copy_from_slice(s);
}

/// One random cycle through `lines` cache lines (Sattolo's shuffle), stored as the next
/// line's index in the first u32 of each 64-byte line.
fn chase_cycle(lines: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % i as u64) as usize);
    }
    let mut next = vec![0u32; lines * 16];
    for k in 0..lines {
        next[order[k] as usize * 16] = order[(k + 1) % lines];
    }
    next
}
