//! Bad input gets a typed error that names what is wrong, never a panic.

mod common;

use std::sync::Arc;

use burn::tensor::{Device, Tensor};
use burn_engram::{
    CompressedVocab, EngramConfig, EngramError, EngramLayers, InitOptions, NgramHasher,
};
use common::fixture;

fn small_cfg() -> EngramConfig {
    EngramConfig {
        engram_vocab_size: vec![31, 17],
        n_embed_per_ngram: 8,
        n_head_per_ngram: 2,
        layer_ids: vec![1],
        pad_id: 0,
        ..EngramConfig::default()
    }
}

fn vocab() -> Arc<CompressedVocab> {
    Arc::new(CompressedVocab::from_lookup((0..40).collect()).unwrap())
}

fn layers(device: &Device) -> EngramLayers {
    EngramLayers::new(&small_cfg(), vocab(), 16, InitOptions::default(), device).unwrap()
}

#[test]
fn token_id_beyond_the_vocabulary() {
    let device = Device::default();
    let err = layers(&device)
        .prepare(&[1, 2, 40, 3], 2, 2, &device)
        .unwrap_err();
    match err {
        EngramError::TokenOutOfRange {
            id,
            row,
            pos,
            vocab_size,
        } => {
            assert_eq!((id, row, pos, vocab_size), (40, 1, 0, 40));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn empty_and_ragged_batches() {
    let device = Device::default();
    let l = layers(&device);
    assert!(matches!(
        l.prepare(&[], 0, 5, &device),
        Err(EngramError::BadBatch(_))
    ));
    assert!(matches!(
        l.prepare(&[1, 2, 3], 2, 2, &device),
        Err(EngramError::BadBatch(_))
    ));
    let err = l.hasher().hash_rows(&[vec![1, 2], vec![3]]).unwrap_err();
    assert!(err.to_string().contains("row 1 has 1 tokens"), "{err}");
    assert!(matches!(
        l.hasher().hash_rows(&[]),
        Err(EngramError::BadBatch(_))
    ));
}

#[test]
fn hidden_size_that_does_not_match() {
    let device = Device::default();
    let l = layers(&device);
    let batch = l.prepare(&[1, 2, 3, 4], 2, 2, &device).unwrap();
    let err = l
        .inject(1, Tensor::zeros([2, 2, 12], &device), &batch)
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngramError::ShapeMismatch {
                what: "Engram hidden states",
                ..
            }
        ),
        "{err}"
    );
    let err = l
        .inject(1, Tensor::zeros([1, 2, 16], &device), &batch)
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngramError::ShapeMismatch {
                what: "Engram hash rows",
                ..
            }
        ),
        "{err}"
    );
    let err = l
        .memory(0, Tensor::zeros([2, 2, 1, 16], &device), &batch)
        .unwrap_err();
    assert!(
        matches!(err, EngramError::UnknownLayer { layer: 0, .. }),
        "{err}"
    );
}

#[test]
fn invalid_config_is_refused_when_building() {
    let device = Device::default();
    let mut cfg = small_cfg();
    cfg.pad_id = 99;
    let err = EngramLayers::new(&cfg, vocab(), 16, InitOptions::default(), &device).unwrap_err();
    assert!(
        matches!(
            err,
            EngramError::InvalidConfig {
                field: "pad_id",
                ..
            }
        ),
        "{err}"
    );
    let err =
        EngramLayers::new(&small_cfg(), vocab(), 0, InitOptions::default(), &device).unwrap_err();
    assert!(
        matches!(
            err,
            EngramError::InvalidConfig {
                field: "hidden_size",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn table_sizes_beyond_i32_hash_ids_are_refused() {
    // above i32::MAX: refused by validation
    let mut cfg = small_cfg();
    cfg.engram_vocab_size = vec![1 << 31, 17];
    let err = NgramHasher::new(&cfg, vocab()).unwrap_err();
    assert!(
        matches!(
            err,
            EngramError::InvalidConfig {
                field: "engram_vocab_size",
                ..
            }
        ),
        "{err}"
    );
    // a valid size whose heads' primes (the next ones above it) pass 2^31 - 1
    cfg.engram_vocab_size = vec![i32::MAX as u64 - 1, 17];
    let err = NgramHasher::new(&cfg, vocab()).unwrap_err();
    assert!(
        matches!(
            err,
            EngramError::InvalidConfig {
                field: "engram_vocab_size",
                ..
            }
        ) && err.to_string().contains("exceeds 2147483647"),
        "{err}"
    );
}

fn load_err(cfg: &EngramConfig, path: &std::path::Path) -> String {
    let vocab = Arc::new(CompressedVocab::from_lookup((0..50).collect()).unwrap());
    EngramLayers::load_weights(path, cfg, vocab, &Device::default())
        .unwrap_err()
        .to_string()
}

fn fixture_cfg() -> EngramConfig {
    EngramConfig {
        engram_vocab_size: vec![37, 29],
        n_embed_per_ngram: 16,
        n_head_per_ngram: 2,
        layer_ids: vec![2],
        pad_id: 0,
        ..EngramConfig::default()
    }
}

/// Rewrites the g1 fixture with one tensor changed by `edit` (None drops it).
fn edited_fixture(
    dir: &std::path::Path,
    target: &str,
    edit: impl Fn(&[usize], &[u8]) -> Option<(Vec<usize>, Vec<u8>)>,
) -> std::path::PathBuf {
    use safetensors::SafeTensors;
    use safetensors::tensor::TensorView;
    let bytes = std::fs::read(fixture("engram/engram_forward_g1.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned = Vec::new();
    for (name, view) in st.tensors() {
        if name == target {
            if let Some((shape, data)) = edit(view.shape(), view.data()) {
                owned.push((name, view.dtype(), shape, data));
            }
        } else {
            owned.push((
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            ));
        }
    }
    let views: Vec<_> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let path = dir.join("edited.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    path
}

#[test]
fn mismatched_checkpoint_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture_cfg();
    let name = "model.engram_layers.2.value_proj.weight";

    let p = edited_fixture(dir.path(), name, |_, _| None);
    let e = load_err(&cfg, &p);
    assert!(e.contains(name) && e.contains("missing"), "{e}");

    let p = edited_fixture(dir.path(), name, |s, b| {
        Some((vec![s[0], s[1] / 2], b[..b.len() / 2].to_vec()))
    });
    let e = load_err(&cfg, &p);
    assert!(e.contains(name) && e.contains("shape"), "{e}");

    let p = edited_fixture(dir.path(), name, |s, b| {
        let mut b = b.to_vec();
        b[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
        Some((s.to_vec(), b))
    });
    let e = load_err(&cfg, &p);
    assert!(e.contains(name) && e.contains("not finite"), "{e}");

    let offsets = "model.engram_layers.2.multi_head_embedding.offsets";
    let p = edited_fixture(dir.path(), offsets, |s, b| {
        let mut b = b.to_vec();
        b[8] ^= 1;
        Some((s.to_vec(), b))
    });
    let e = load_err(&cfg, &p);
    assert!(e.contains(offsets) && e.contains("disagree"), "{e}");

    let mut other = cfg.clone();
    other.layer_ids = vec![3];
    let e = load_err(&other, &fixture("engram/engram_forward_g1.safetensors"));
    assert!(e.contains("layer 2 is not in the config"), "{e}");

    let mut wider = cfg.clone();
    wider.n_embed_per_ngram = 32;
    let e = load_err(&wider, &fixture("engram/engram_forward_g1.safetensors"));
    assert!(e.contains("shape"), "{e}");
}

#[test]
fn unreadable_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture_cfg();
    let e = load_err(&cfg, &dir.path().join("nope.safetensors"));
    assert!(e.contains("nope.safetensors"), "{e}");
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file at all").unwrap();
    let e = load_err(&cfg, &junk);
    assert!(e.contains("not a safetensors file"), "{e}");
    let err = CompressedVocab::load(&junk).unwrap_err();
    assert!(err.to_string().contains("junk.safetensors"));
    let err = CompressedVocab::from_tokenizer_file(dir.path().join("missing.json")).unwrap_err();
    assert!(err.to_string().contains("missing.json"), "{err}");
    let bad = dir.path().join("cfg.json");
    std::fs::write(&bad, r#"{"max_ngram_size": -3}"#).unwrap();
    let err = EngramConfig::from_json_file(&bad).unwrap_err();
    assert!(
        matches!(err, EngramError::Json { .. }) && err.to_string().contains("cfg.json"),
        "{err}"
    );
}

#[test]
fn hand_made_hash_ids_are_checked_before_upload() {
    let device = Device::default();
    let l = layers(&device);
    let mut ids = l.hash(&[1, 2, 3, 4], 2, 2).unwrap();
    ids.layers[0].1.pop();
    assert!(matches!(
        l.upload(&ids, &device),
        Err(EngramError::BadBatch(_))
    ));
    let mut ids = l.hash(&[1, 2, 3, 4], 2, 2).unwrap();
    ids.layers[0].1[3] = 10_000;
    let err = l.upload(&ids, &device).unwrap_err();
    assert!(
        err.to_string().contains("outside its head's table"),
        "{err}"
    );
}
