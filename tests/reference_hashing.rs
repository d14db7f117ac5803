//! Hashing against the Python reference: numpy's RNG, the multipliers, the primes, the
//! tokenizer compression and end-to-end hash ids (fixtures from scripts/fixtures/).

mod common;

use std::sync::{Arc, OnceLock};

use burn_engram::hashing::{NumpyGenerator, layer_head_sizes, layer_multipliers};
use burn_engram::{CompressedVocab, EngramConfig, NgramHasher};
use common::{qwen_tokenizer, read_json};
use sha2::{Digest, Sha256};

fn qwen_vocab() -> Arc<CompressedVocab> {
    static VOCAB: OnceLock<Arc<CompressedVocab>> = OnceLock::new();
    VOCAB
        .get_or_init(|| Arc::new(CompressedVocab::from_tokenizer_file(qwen_tokenizer()).unwrap()))
        .clone()
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn numpy_integers_match_bit_for_bit() {
    let f = read_json("engram/numpy_rng.json");
    let cases = f["integers"].as_array().unwrap();
    assert!(cases.len() >= 60);
    for c in cases {
        let seed = c["seed"].as_u64().unwrap() as u128;
        let high = c["high"].as_i64().unwrap();
        let n = c["size"].as_u64().unwrap() as usize;
        let got = NumpyGenerator::default_rng(seed).integers_i64(high, n);
        assert_eq!(got, ints(&c["values"]), "seed {seed} high {high}");
    }
}

#[test]
fn multipliers_match_numpy() {
    let f = read_json("engram/numpy_rng.json");
    let cases = f["multipliers"].as_array().unwrap();
    assert!(cases.len() >= 90);
    for c in cases {
        let got = layer_multipliers(
            c["seed"].as_u64().unwrap(),
            c["layer_id"].as_u64().unwrap() as usize,
            c["vocab_size"].as_u64().unwrap() as usize,
            c["max_ngram_size"].as_u64().unwrap() as usize,
        );
        assert_eq!(got, ints(&c["multipliers"]), "{c}");
    }
}

#[test]
fn primes_match_the_reference_search() {
    for c in read_json("engram/primes.json").as_array().unwrap() {
        let sizes: Vec<u64> = c["engram_vocab_size"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let layers: Vec<u64> = c["layer_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let got = layer_head_sizes(
            &sizes,
            c["n_head_per_ngram"].as_u64().unwrap() as usize,
            layers.len(),
        );
        for (i, l) in layers.iter().enumerate() {
            let want: Vec<Vec<u64>> =
                serde_json::from_value(c["head_sizes"][l.to_string()].clone()).unwrap();
            assert_eq!(got[i], want, "layer {l} of {c}");
        }
    }
}

#[test]
fn qwen_compression_is_bit_identical() {
    let f = read_json("engram/qwen_compression.json");
    let vocab = qwen_vocab();
    assert_eq!(vocab.tokenizer_vocab_size(), 151_669);
    assert_eq!(vocab.compressed_vocab_size(), 107_457);
    assert_eq!(f["compressed_vocab_size"], 107_457);
    assert_eq!(
        vocab.compress_id(9707),
        vocab.compress_id(21927),
        "Hello / ' Hello'"
    );
    let bytes: Vec<u8> = vocab
        .lookup()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sample = f["sample"].as_object().unwrap();
    for (raw, want) in sample {
        let raw: i64 = raw.parse().unwrap();
        assert_eq!(vocab.compress_id(raw), want.as_i64(), "raw id {raw}");
    }
    assert_eq!(digest, f["lookup_sha256"].as_str().unwrap());
}

#[test]
fn compression_table_round_trips_through_a_file() {
    let vocab = qwen_vocab();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.safetensors");
    vocab.save(&path).unwrap();
    let back = CompressedVocab::load(&path).unwrap();
    assert_eq!(&back, vocab.as_ref());
}

#[test]
fn hash_ids_match_the_reference() {
    let vocab = qwen_vocab();
    let cases = read_json("engram/hash_cases.json");
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let cfg: EngramConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let rows: Vec<Vec<i64>> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        let compressed: Vec<Vec<i64>> =
            serde_json::from_value(case["compressed_ids"].clone()).unwrap();
        for (r, c) in rows.iter().zip(&compressed) {
            assert_eq!(&vocab.compress(r, r.len()).unwrap(), c, "{name}");
        }
        let hasher = NgramHasher::new(&cfg, vocab.clone()).unwrap();
        let ids = hasher.hash_rows(&rows).unwrap();
        for lh in hasher.layers() {
            let want = &case["layers"][lh.layer_id.to_string()];
            assert_eq!(
                lh.multipliers,
                ints(&want["multipliers"]),
                "{name} layer {}",
                lh.layer_id
            );
            let sizes: Vec<Vec<u64>> = serde_json::from_value(want["head_sizes"].clone()).unwrap();
            assert_eq!(
                lh.head_sizes,
                sizes.concat(),
                "{name} layer {}",
                lh.layer_id
            );
            let hashed: Vec<Vec<Vec<i64>>> =
                serde_json::from_value(want["hash_ids"].clone()).unwrap();
            let flat: Vec<i64> = hashed.into_iter().flatten().flatten().collect();
            let ours: Vec<i64> = ids
                .layer(lh.layer_id)
                .unwrap()
                .iter()
                .map(|&h| h as i64)
                .collect();
            assert_eq!(ours, flat, "{name} layer {}", lh.layer_id);
        }
    }
}

#[test]
fn inspect_reports_what_the_reference_computes() {
    let vocab = qwen_vocab();
    for case in read_json("engram/hash_cases.json").as_array().unwrap() {
        let cfg: EngramConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let rows: Vec<Vec<i64>> = serde_json::from_value(case["input_ids"].clone()).unwrap();
        let hasher = NgramHasher::new(&cfg, vocab.clone()).unwrap();
        let v = burn_engram::inspect::inspect(&hasher, &rows, &[9707, 21927]).unwrap();
        assert_eq!(v["compressed_vocab_size"], 107_457);
        assert_eq!(v["lookup_sample"]["9707"], v["lookup_sample"]["21927"]);
        for (layer, want) in case["layers"].as_object().unwrap() {
            for key in ["multipliers", "head_sizes", "hash_ids"] {
                assert_eq!(
                    v["layers"][layer][key], want[key],
                    "{} layer {layer} {key}",
                    case["name"]
                );
            }
        }
    }
}
