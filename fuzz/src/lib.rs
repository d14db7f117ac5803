//! The bodies of the cargo-fuzz targets, one public function per target, so the libFuzzer
//! binaries (`fuzz_targets/*.rs`) and any replay harness run the same code.
//!
//! Every function feeds arbitrary bytes to the crate's public readers through the same
//! entry points a user reaches (files written to a per-process scratch folder where the API
//! takes a path). A typed error is the expected outcome for garbage; a panic, an abort or a
//! hang is a finding. The `Display` text of every error is rendered too, since that is what
//! the examples print.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use burn::optim::AdamWConfig;
use burn::tensor::{DType, Device};
use burn_engram::study::data::dataset::{DataConfig, load_samples};
use burn_engram::study::data::glaive::{poison, prepare};
use burn_engram::host::lora::{LoraConfig, load_adapter};
use burn_engram::host::qwen3::{
    Qwen3Config, Qwen3Engram, Qwen3ForCausalLM, Qwen3Tokenizer, load_qwen3,
};
use burn_engram::study::train::{CheckpointConfig, TrainConfig, load_checkpoint, save_checkpoint};
use burn_engram::vocab::load_tokenizer;
use burn_engram::{CompressedVocab, EngramConfig, EngramLayers, InitOptions};

/// The crate's test fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

fn read_fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).expect("fixture")
}

/// A scratch folder of this process (in /dev/shm when there is one).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("engram-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

/// A fresh sub-folder `name` of the scratch folder holding `files`.
fn folder(name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch sub-folder");
    for (file, bytes) in files {
        std::fs::write(dir.join(file), bytes).expect("scratch file");
    }
    dir
}

fn render<T>(r: burn_engram::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty(), "an error with no message");
            None
        }
    }
}

fn split_selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}

/// Glaive exports (`prepare`: JSON array or JSON lines), single rows (`poison`, system and
/// chat split at the first NUL byte) and the prepared JSON-lines samples (`load_samples`,
/// raw bytes: non-UTF-8 included).
pub fn glaive(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (samples, report) = prepare(&text);
    assert_eq!(samples.len(), report.kept);
    assert!(report.kept + report.malformed + report.dropped.values().sum::<usize>() == report.read);
    let (system, chat) = match text.split_once('\0') {
        Some((s, c)) => (s, c),
        None => ("", text.as_ref()),
    };
    let _ = poison(system, chat);
    let dir = folder("glaive", &[("train.jsonl", data)]);
    render(load_samples(dir.join("train.jsonl")));
}

/// Config files, chosen by the first byte: Engram config JSON (validated against a
/// 50-token vocabulary; a valid small one is built), Qwen3 `config.json`, PEFT
/// `adapter_config.json` (`LoraConfig`), the trainer's and the data's configs.
pub fn configs(data: &[u8]) {
    let Some((sel, body)) = split_selector(data) else {
        return;
    };
    match sel % 4 {
        0 => {
            let Ok(cfg) = serde_json::from_slice::<EngramConfig>(body) else {
                return;
            };
            if render(cfg.validate(Some(50))).is_none() {
                return;
            }
            // build only what fits a fuzzing process: tables of at most ~1M floats
            let rows: u128 = cfg
                .engram_vocab_size
                .iter()
                .map(|v| *v as u128)
                .sum::<u128>()
                * cfg.n_head_per_ngram as u128
                * cfg.layer_ids.len() as u128;
            if rows * cfg.head_dim() as u128 <= 1 << 20
                && cfg.kernel_size <= 64
                && cfg.hc_mult <= 8
                && cfg.layer_ids.len() <= 8
            {
                let vocab = Arc::new(CompressedVocab::from_lookup((0..50).collect()).unwrap());
                render(EngramLayers::new(
                    &cfg,
                    vocab,
                    16,
                    InitOptions::default(),
                    &Device::default(),
                ));
            }
        }
        1 => {
            let dir = folder("qwen3-config", &[("config.json", body)]);
            render(Qwen3Config::from_file(dir.join("config.json")));
        }
        2 => {
            if let Ok(cfg) = serde_json::from_slice::<LoraConfig>(body) {
                render(cfg.validate());
            }
        }
        _ => {
            let _ = serde_json::from_slice::<TrainConfig>(body);
            let _ = serde_json::from_slice::<DataConfig>(body);
        }
    }
}

struct Models {
    tied: Qwen3ForCausalLM,
    engram: Qwen3Engram,
    checkpoint: PathBuf,
}

fn models() -> &'static Models {
    static M: OnceLock<Models> = OnceLock::new();
    M.get_or_init(|| {
        let device = Device::default();
        let tied = load_qwen3(fixture("qwen3/tied"), &device, DType::F32).expect("tied fixture");
        let tok = Qwen3Tokenizer::from_dir(fixture("qwen3/tied")).expect("tokenizer");
        let vocab = Arc::new(CompressedVocab::from_tokenizer(&tok.inner).expect("vocab"));
        let cfg = EngramConfig {
            engram_vocab_size: vec![31, 17],
            n_embed_per_ngram: 16,
            n_head_per_ngram: 2,
            layer_ids: vec![0, 2],
            pad_id: tok.pad_id as i64,
            ..EngramConfig::default()
        };
        let engram = Qwen3Engram::new(tied.clone(), &cfg, vocab, InitOptions::default(), &device)
            .expect("engram")
            .freeze_backbone();
        let ck = CheckpointConfig {
            dir: scratch().join("trainer-run"),
            every: 1,
            keep_last: 1,
            resume: false,
        };
        let optim = AdamWConfig::new().init();
        let checkpoint = save_checkpoint(&ck, 1, &engram, &optim).expect("checkpoint");
        // without checksums (as an earlier version wrote them), so the fuzzed bytes reach the
        // parsers behind the checksum check
        let state = checkpoint.join("trainer_state.json");
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("state JSON");
        json.as_object_mut().expect("object").remove("checksums");
        std::fs::write(&state, json.to_string()).expect("state");
        Models {
            tied,
            engram,
            checkpoint,
        }
    })
}

/// Weight files, chosen by the first byte: an Engram safetensors file for the g1 fixture's
/// config (`EngramLayers::load_weights`), a compression table (`CompressedVocab::load`), a
/// PEFT adapter on the tiny Qwen3 (`load_adapter`), a Qwen3 `model.safetensors`
/// (`load_qwen3`), and each of the three files of a trainer checkpoint (`load_checkpoint`).
pub fn checkpoints(data: &[u8]) {
    let Some((sel, body)) = split_selector(data) else {
        return;
    };
    let device = Device::default();
    match sel % 7 {
        0 => {
            let cfg = EngramConfig {
                engram_vocab_size: vec![37, 29],
                n_embed_per_ngram: 16,
                n_head_per_ngram: 2,
                layer_ids: vec![2],
                pad_id: 0,
                ..EngramConfig::default()
            };
            let vocab = Arc::new(CompressedVocab::from_lookup((0..50).collect()).unwrap());
            let dir = folder("engram", &[("engram.safetensors", body)]);
            render(EngramLayers::load_weights(
                dir.join("engram.safetensors"),
                &cfg,
                vocab,
                &device,
            ));
        }
        1 => {
            let dir = folder("vocab", &[("vocab.safetensors", body)]);
            render(CompressedVocab::load(dir.join("vocab.safetensors")));
        }
        2 => {
            let cfg = read_fixture("qwen3/lora/adapter_config.json");
            let dir = folder(
                "lora",
                &[
                    ("adapter_config.json", &cfg),
                    ("adapter_model.safetensors", body),
                ],
            );
            render(load_adapter(models().tied.clone(), &dir));
        }
        3 => {
            let cfg = read_fixture("qwen3/tied/config.json");
            let dir = folder(
                "qwen3",
                &[("config.json", &cfg), ("model.safetensors", body)],
            );
            render(load_qwen3(&dir, &device, DType::F32));
        }
        which => {
            let m = models();
            let file = [
                "trainable.safetensors",
                "trainer_state.json",
                "optimizer.bpk",
            ][which as usize - 4];
            let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
            for name in [
                "trainable.safetensors",
                "trainer_state.json",
                "optimizer.bpk",
            ] {
                let bytes = if name == file {
                    body.to_vec()
                } else {
                    std::fs::read(m.checkpoint.join(name)).expect("checkpoint file")
                };
                files.push((name, bytes));
            }
            let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
            let dir = folder("checkpoint-1", &refs);
            render(load_checkpoint(
                m.engram.clone(),
                AdamWConfig::new().init(),
                &dir,
            ));
        }
    }
}

/// Tokenizer files, chosen by the first byte: a `tokenizer.json` (read by `load_tokenizer`)
/// compressed with the
/// reference's rules (`CompressedVocab::from_tokenizer`, vocabularies up to 4,096 ids), a
/// `tokenizer_config.json` next to the fixture's tokenizer (`Qwen3Tokenizer::from_dir`), and
/// raw compression tables (`CompressedVocab::from_lookup`, little-endian i64s).
pub fn vocab(data: &[u8]) {
    let Some((sel, body)) = split_selector(data) else {
        return;
    };
    match sel % 3 {
        0 => {
            let dir = folder("tokenizer-json", &[("tokenizer.json", body)]);
            let Some(tok) = render(load_tokenizer(dir.join("tokenizer.json"))) else {
                return;
            };
            if tok.get_vocab_size(true) <= 4096 {
                render(CompressedVocab::from_tokenizer(&tok));
            }
        }
        1 => {
            let tok = read_fixture("qwen3/tied/tokenizer.json");
            let dir = folder(
                "tokenizer",
                &[("tokenizer.json", &tok), ("tokenizer_config.json", body)],
            );
            render(Qwen3Tokenizer::from_dir(&dir));
        }
        _ => {
            let lookup: Vec<i64> = body
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            if let Some(v) = render(CompressedVocab::from_lookup(lookup)) {
                assert!(v.compressed_vocab_size() <= v.tokenizer_vocab_size());
            }
        }
    }
}
