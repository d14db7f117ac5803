//! `apply_lora_seeded` against a seeded flex device. A test binary of its own: the flex
//! backend's generator is one global, and tests running beside this one in the same process
//! would draw from it between the seed and the adapter.
#![cfg(feature = "study")] // uses the host models

mod common;

use burn::tensor::{DType, Device, Tensor};
use burn_engram::host::lora::{LoraConfig, apply_lora, apply_lora_seeded, lora_factors};
use burn_engram::host::qwen3::{Qwen3ForCausalLM, load_qwen3};
use common::fixture;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// `apply_lora_seeded` draws on the host what a flex device seeded with the same seed draws
/// in `apply_lora` on a loaded model, bit for bit (ranks per module included); another seed
/// draws other factors.
#[test]
fn seeded_adapters_equal_a_seeded_flex_device() {
    let device = Device::flex();
    let mut cfg = LoraConfig::default();
    cfg.rank_pattern.insert("down_proj".into(), 4);
    let bits = |m: &Qwen3ForCausalLM| {
        lora_factors(m)
            .into_iter()
            .map(|(n, (a, b))| {
                let r = a.dims()[1];
                let v = |t: Tensor<2>| host(t).iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (n, r, v(a), v(b))
            })
            .collect::<Vec<_>>()
    };
    let bases: Vec<_> = (0..3)
        .map(|_| load_qwen3(fixture("qwen3/tied"), &device, DType::F32).unwrap())
        .collect();
    let [a, b, c] = <[_; 3]>::try_from(bases).unwrap();
    device.seed(11);
    let on_device = bits(&apply_lora(a, &cfg).unwrap());
    let on_host = bits(&apply_lora_seeded(b, &cfg, 11).unwrap());
    assert_eq!(
        on_device.len(),
        3 * 7,
        "seven projections in the fixture's three layers"
    );
    let ranks: Vec<usize> = on_device.iter().map(|(_, r, _, _)| *r).collect();
    assert!(ranks.contains(&4) && ranks.contains(&16), "ranks {ranks:?}");
    assert_eq!(on_host, on_device);
    let other = bits(&apply_lora_seeded(c, &cfg, 12).unwrap());
    assert_ne!(other, on_device);
}
