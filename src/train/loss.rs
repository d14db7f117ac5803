//! Causal-LM loss over a padded batch, and the models the trainer can train.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::dataset::Batch;
use crate::error::Result;
use crate::memory::GateMode;
use crate::models::qwen3::{Qwen3Engram, Qwen3ForCausalLM};

/// A model whose added parameters the trainer updates.
pub trait TrainableLm: Module + Sized {
    /// Logits `[B, T, vocab]` of a padded host batch, with the Engram gate in `gate` mode
    /// (ignored by models without Engram).
    fn batch_logits(&self, batch: &Batch, gate: GateMode, device: &Device) -> Result<Tensor<3>>;
}

fn int2(data: &[i64], b: usize, t: usize, device: &Device) -> Tensor<2, Int> {
    let v: Vec<i32> = data.iter().map(|&x| x as i32).collect();
    Tensor::from_data(TensorData::new(v, [b, t]), device)
}

impl TrainableLm for Qwen3ForCausalLM {
    fn batch_logits(&self, batch: &Batch, _gate: GateMode, device: &Device) -> Result<Tensor<3>> {
        self.config()
            .check_token_ids(batch.ids.iter().copied(), batch.seq_len)?;
        let ids = int2(&batch.ids, batch.batch, batch.seq_len, device);
        let mask = int2(&batch.attention_mask, batch.batch, batch.seq_len, device);
        self.forward(ids, Some(mask))
    }
}

impl TrainableLm for Qwen3Engram {
    fn batch_logits(&self, batch: &Batch, gate: GateMode, device: &Device) -> Result<Tensor<3>> {
        self.base
            .config()
            .check_token_ids(batch.ids.iter().copied(), batch.seq_len)?;
        let ids = int2(&batch.ids, batch.batch, batch.seq_len, device);
        let mask = int2(&batch.attention_mask, batch.batch, batch.seq_len, device);
        let hashes = self
            .engram
            .prepare(&batch.ids, batch.batch, batch.seq_len, device)?
            .with_gate(gate);
        self.forward(ids, Some(mask), &hashes)
    }
}

/// Sum over the counted labels of `-log p(token t+1 | tokens ..= t)`, shape `[1]`.
pub fn token_loss_sum(logits: Tensor<3>, batch: &Batch) -> Tensor<1> {
    let [b, t, _] = logits.dims();
    let device = logits.device();
    let logp = log_softmax(logits.narrow(1, 0, t - 1), 2);
    let targets: Vec<i32> = (0..b)
        .flat_map(|r| batch.ids[r * t + 1..(r + 1) * t].iter().map(|&x| x as i32))
        .collect();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, t - 1, 1]), &device);
    let mask: Vec<f32> = batch
        .label_mask
        .iter()
        .map(|&m| if m { 1.0 } else { 0.0 })
        .collect();
    let mask = Tensor::<3>::from_data(TensorData::new(mask, [b, t - 1, 1]), &device);
    (logp.gather(2, targets) * mask).sum().neg()
}
