//! A table-only training step: the dense `[rows, dim]` table gradient + Burn's AdamW against the sparse
//! step the trainer takes (the library's `touched_leaf` + `apply_lazy_adam`).

use burn::module::Param;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::Tensor;
use burn_engram::memory::{LazyAdamW, MultiHeadEmbedding, TouchedRows};
use serde_json::{Value, json};

use crate::{Ctx, Workloads, rows_tensor, sync, time};

pub fn run(ctx: &Ctx, w: &mut Workloads) -> burn_engram::Result<()> {
    let (b, t) = (ctx.args.batch, ctx.args.seq);
    // --- table-only training step: dense AdamW vs sparse lazy AdamW ------------------------
    let k = 48;
    let dim = ctx.args.step_dim;
    for &rows_n in ctx.args.step_rows.iter().filter(|_| ctx.want("step")) {
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
        let gout = Tensor::<3>::random([b, t, k * dim], normal, &ctx.ad);
        let step_reps = if ctx.args.quick { 2 } else { 3 };

        // dense: the table read's backward (a dense [rows, dim] gradient) + Burn's AdamW
        {
            let mut table = MultiHeadEmbedding {
                weight: Param::from_tensor(Tensor::<2>::random([rows_n, dim], normal, &ctx.ad)),
            };
            let mut optim = AdamWConfig::new()
                .with_beta_2(0.95)
                .with_epsilon(1e-8)
                .with_weight_decay(0.0)
                .init();
            let rows = rows_tensor(idx.clone(), [b, t, k], &ctx.ad);
            let mut r = time(step_reps, || {
                let out = table.forward(rows.clone());
                let grads = (out * gout.clone()).sum().backward();
                let grads = GradientsParams::from_grads(grads, &table);
                let t2 = std::mem::replace(
                    &mut table,
                    MultiHeadEmbedding {
                        weight: Param::from_tensor(Tensor::empty([0, dim], &ctx.ad)),
                    },
                );
                table = optim.step(1e-3, t2, grads);
                sync(&ctx.ad);
            });
            r.insert("table_rows".into(), json!(rows_n));
            r.insert("dim".into(), json!(dim));
            r.insert("lookups".into(), json!(idx.len()));
            w.insert(format!("step_dense_{rows_n}"), Value::Object(r));
        }

        // sparse: the rows the step reads as a leaf, backward on the leaf, lazy AdamW
        {
            let weight = Tensor::<2>::random([rows_n, dim], normal, &ctx.ad);
            let mut table = MultiHeadEmbedding {
                weight: Param::from_tensor(weight).set_require_grad(false),
            };
            let optim = LazyAdamW::default();
            let mut state = None;
            let mut touched_n = 0;
            let mut r = time(step_reps, || {
                let touched = TouchedRows::new(&idx);
                touched_n = touched.unique().len();
                let (rows, leaf) = table.touched_leaf(&touched, &ctx.ad);
                let local = rows_tensor(touched.local().to_vec(), [b, t, k], &ctx.ad);
                let sub = MultiHeadEmbedding {
                    weight: Param::from_tensor(leaf.clone()),
                };
                let grads = (sub.forward(local) * gout.clone()).sum().backward();
                let g = leaf.grad(&grads).expect("leaf grad");
                state = Some(table.apply_lazy_adam(&optim, 1e-3, rows, leaf, g, state.take()));
                sync(&ctx.ad);
            });
            r.insert("table_rows".into(), json!(rows_n));
            r.insert("dim".into(), json!(dim));
            r.insert("lookups".into(), json!(idx.len()));
            r.insert("touched_rows".into(), json!(touched_n));
            w.insert(format!("step_sparse_{rows_n}"), Value::Object(r));
        }
    }

    Ok(())
}
