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
    if ctx.want("copy") {
        let n = ctx.args.copy_bytes / 4;
        let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut dst = vec![0f32; n];
        let chunk = (n / rayon::current_num_threads().max(1) / 8).max(1 << 16);
        let mut r = time(ctx.reps.max(3), || {
            dst.par_chunks_mut(chunk)
                .zip(src.par_chunks(chunk))
                .for_each(|(d, s)| d.copy_from_slice(s));
            black_box(&dst);
        });
        let copy_bw = 2.0 * ctx.args.copy_bytes as f64 / best(&r);
        r.insert("bytes_moved".into(), json!(2 * ctx.args.copy_bytes));
        r.insert("bytes_per_s".into(), json!(copy_bw));
        w.insert("copy".into(), Value::Object(r));
        drop((src, dst));
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
