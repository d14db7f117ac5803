//! Causal-LM loss over a padded batch, and the models the trainer can train.

use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::error::Result;
use crate::hashing::HashIds;
use crate::host::qwen3::{Qwen3Engram, Qwen3ForCausalLM};
use crate::memory::{EngramBatch, EngramLayers, GateMode};
use crate::study::data::dataset::Batch;

/// A model whose added parameters the trainer updates.
pub trait TrainableLm: Module + Sized {
    /// Logits `[B, T, vocab]` of a padded host batch, with the Engram gate in `gate` mode
    /// (ignored by models without Engram).
    fn batch_logits(&self, batch: &Batch, gate: GateMode, device: &Device) -> Result<Tensor<3>>;

    /// The model's Engram layers, for sparse table updates
    /// ([`TableUpdate::Sparse`](super::TableUpdate)); `None` (the default) for models without.
    fn engram_layers(&self) -> Option<&EngramLayers> {
        None
    }

    /// The model with its Engram layers replaced by `f(layers)`; models without Engram
    /// return themselves (the default).
    fn map_engram_layers(self, f: impl FnOnce(EngramLayers) -> EngramLayers) -> Self {
        let _ = f;
        self
    }

    /// [`batch_logits`](Self::batch_logits) with the batch's hash ids computed ahead (by the
    /// data loader); models without Engram ignore them (the default).
    fn batch_logits_hashed(
        &self,
        batch: &Batch,
        hashes: &HashIds,
        gate: GateMode,
        device: &Device,
    ) -> Result<Tensor<3>> {
        let _ = hashes;
        self.batch_logits(batch, gate, device)
    }

    /// [`batch_logits`](Self::batch_logits) reading Engram memory from a prepared batch (the
    /// sparse path's sub-tables); models without Engram ignore it (the default).
    fn batch_logits_with(
        &self,
        batch: &Batch,
        engram: &EngramBatch,
        device: &Device,
    ) -> Result<Tensor<3>> {
        self.batch_logits(batch, engram.gate(), device)
    }
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

    fn batch_logits_hashed(
        &self,
        batch: &Batch,
        hashes: &HashIds,
        gate: GateMode,
        device: &Device,
    ) -> Result<Tensor<3>> {
        self.base
            .config()
            .check_token_ids(batch.ids.iter().copied(), batch.seq_len)?;
        let engram = self.engram.upload(hashes, device)?.with_gate(gate);
        self.batch_logits_with(batch, &engram, device)
    }

    fn engram_layers(&self) -> Option<&EngramLayers> {
        Some(&self.engram)
    }

    fn map_engram_layers(mut self, f: impl FnOnce(EngramLayers) -> EngramLayers) -> Self {
        self.engram = f(self.engram);
        self
    }

    fn batch_logits_with(
        &self,
        batch: &Batch,
        engram: &EngramBatch,
        device: &Device,
    ) -> Result<Tensor<3>> {
        let ids = int2(&batch.ids, batch.batch, batch.seq_len, device);
        let mask = int2(&batch.attention_mask, batch.batch, batch.seq_len, device);
        self.forward(ids, Some(mask), engram)
    }
}

/// Sum over the counted labels of `-log p(token t+1 | tokens ..= t)`, shape `[1]`, in f32
/// whatever the logits' dtype (bf16 logits are cast before the `log_softmax`, as
/// transformers' loss upcasts them).
pub fn token_loss_sum(logits: Tensor<3>, batch: &Batch) -> Tensor<1> {
    let [b, t, _] = logits.dims();
    let device = logits.device();
    let logp = log_softmax(logits.narrow(1, 0, t - 1).cast(DType::F32), 2);
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
