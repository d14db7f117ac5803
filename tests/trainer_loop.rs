//! The trainer's loop pieces ([`Trainer`], [`StepLoader`]): hashing ahead on the loader's
//! thread changes no number, dense or sparse, and a loader out of step with its trainer is
//! refused.
#![cfg(feature = "study")] // uses the host models or the study harness

mod common;

use burn::tensor::Device;
use burn_engram::study::train::{
    LoaderPlan, StepLoader, TableUpdate, TrainConfig, TrainableLm, Trainer,
};

/// Four steps of the tiny Engram run by hand: the losses and layer 0's table after them.
fn run(hash_ahead: bool, table_update: TableUpdate) -> (Vec<u64>, Vec<u32>) {
    let device = Device::default().autodiff();
    let (model, data, pad) = common::tiny_engram_run(&device, 101);
    let cfg = TrainConfig {
        lr: 1e-2,
        max_steps: Some(4),
        micro_batch: 4,
        grad_accum: 2,
        table_update,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, &cfg, data.train.len(), &device, None).unwrap();
    let plan = trainer.plan();
    let hasher = hash_ahead.then(|| trainer.model().engram_layers().unwrap().hasher().clone());
    let mut losses = Vec::new();
    std::thread::scope(|s| {
        for prepared in StepLoader::spawn(s, &data, pad, &cfg, hasher, plan) {
            let prepared = prepared.unwrap();
            assert_eq!(prepared.hashes.is_some(), hash_ahead);
            let outcome = trainer
                .step(prepared)
                .unwrap()
                .expect("every step has labels");
            losses.push(outcome.loss.to_bits());
        }
    });
    let model = trainer.finish().unwrap();
    let table = model
        .engram
        .layer(0)
        .unwrap()
        .multi_head_embedding
        .weight
        .val();
    let table = table.into_data().try_to_vec::<f32>().unwrap();
    (losses, table.iter().map(|v| v.to_bits()).collect())
}

#[test]
fn hashing_ahead_changes_no_number_dense_or_sparse() {
    for update in [TableUpdate::Dense, TableUpdate::Sparse] {
        let ahead = run(true, update);
        let inline = run(false, update);
        assert_eq!(ahead.0.len(), 4, "{update:?}");
        assert_eq!(ahead, inline, "{update:?}: losses or table differ");
        // the run did train: the losses move
        assert_ne!(ahead.0[0], ahead.0[3], "{update:?}");
    }
}

#[test]
fn a_loader_out_of_step_with_its_trainer_is_refused() {
    let device = Device::default().autodiff();
    let (model, data, pad) = common::tiny_engram_run(&device, 101);
    let cfg = TrainConfig {
        max_steps: Some(3),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, &cfg, data.train.len(), &device, None).unwrap();
    let plan = LoaderPlan {
        start_step: 1, // the trainer starts at 0
        ..trainer.plan()
    };
    std::thread::scope(|s| {
        let mut loader = StepLoader::spawn(s, &data, pad, &cfg, None, plan);
        let err = trainer.step(loader.next().unwrap().unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("prepared step 2 while the trainer's next step is 1"),
            "{msg}"
        );
    });
}
