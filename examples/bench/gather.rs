//! Table reads: gather forward, hash + gather forward, gather forward + backward, on the
//! headline table and on a large one.

use std::hint::black_box;

use burn::module::Param;
use burn::tensor::Tensor;
use burn_engram::memory::MultiHeadEmbedding;
use burn_engram::{EngramConfig, EngramLayers, InitOptions};
use serde_json::{Value, json};

use crate::{Ctx, Workloads, best, sync, time};

pub fn run(ctx: &Ctx, w: &mut Workloads) -> burn_engram::Result<()> {
    let (b, t, xb, head) = (ctx.args.batch, ctx.args.seq, &ctx.xb, &ctx.head);
    let big = EngramConfig {
        engram_vocab_size: vec![ctx.args.big_rows_per_head; 3],
        ..head.clone()
    };
    let gather_configs = [("headline", head), ("big", &big)];
    for (name, cfg) in gather_configs.into_iter().filter(|_| ctx.want("gather")) {
        let layers = EngramLayers::new(
            cfg,
            ctx.vocab.clone(),
            1024,
            InitOptions::default(),
            &ctx.device,
        )?;
        let engram = layers.layer(1).expect("layer 1");
        let mhe = &engram.multi_head_embedding;
        let (rows_n, dim) = (mhe.rows(), mhe.head_dim());
        let batch = layers.prepare(xb, b, t, &ctx.device)?;
        let rows = batch.rows(1).expect("rows").clone();
        let k = rows.dims()[2];
        let lookups = b * t * k;
        let moved = lookups * (2 * dim * 4 + 4); // row read + output write + i32 id read
        let mut r = time(ctx.reps, || {
            black_box(engram.read_memory(rows.clone()));
            sync(&ctx.device);
        });
        r.insert("table_rows".into(), json!(rows_n));
        r.insert("dim".into(), json!(dim));
        r.insert("lookups".into(), json!(lookups));
        r.insert("bytes_moved".into(), json!(moved));
        r.insert("bytes_per_s".into(), json!(moved as f64 / best(&r)));
        w.insert(format!("gather_fwd_{name}"), Value::Object(r));

        let mut r = time(ctx.reps, || {
            let batch = layers.prepare(xb, b, t, &ctx.device).expect("prepare");
            black_box(engram.read_memory(batch.rows(1).expect("rows").clone()));
            sync(&ctx.device);
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
            &ctx.ad,
        );
        let mut r = time(ctx.reps, || {
            let out = table.forward(rows_ad.clone());
            let grads = (out * gout.clone()).sum().backward();
            black_box(table.weight.grad(&grads));
            sync(&ctx.ad);
        });
        r.insert("table_rows".into(), json!(rows_n));
        r.insert("tokens_per_s".into(), json!((b * t) as f64 / best(&r)));
        w.insert(format!("gather_fwd_bwd_{name}"), Value::Object(r));
    }

    Ok(())
}
