//! The `generate` example and library generation: greedy tokens equal transformers' on the
//! tiny fixture, Engram generation (incremental) equals full recompute, eos stops, the JSON
//! line for scripts, and bad settings.
#![cfg(feature = "study")] // runs the example binaries (study feature)

mod common;

use std::process::Command;

use burn::tensor::{DType, Device};
use burn_engram::host::qwen3::{
    GenerationConfig, Qwen3Engram, Qwen3Tokenizer, Sampler, generate, generate_greedy,
};
use common::{example, fixture, read_json};

fn run_generate(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(example("generate"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn last_json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().expect("a line")).expect("a JSON line last")
}

/// The `tied` fixture's greedy prompt as text that `name`'s tokenizer encodes back to the
/// same ids, and transformers' greedy tokens of the `tied` model.
fn greedy_prompt(name: &str) -> (String, Vec<u32>, Vec<u32>) {
    let meta = read_json("qwen3/tied/expected.json");
    let ids: Vec<u32> = serde_json::from_value(meta["greedy"]["prompt_ids"].clone()).unwrap();
    let want: Vec<u32> = serde_json::from_value(meta["greedy"]["generated_ids"].clone()).unwrap();
    let tok = Qwen3Tokenizer::from_dir(fixture(&format!("qwen3/{name}"))).unwrap();
    let text = tok.decode(&ids).unwrap();
    assert_eq!(tok.encode(&text).unwrap(), ids, "{text:?} round-trips");
    (text, ids, want)
}

#[test]
fn greedy_json_line_equals_transformers_tokens() {
    let (prompt, _, want) = greedy_prompt("tied");
    let dir = fixture("qwen3/tied");
    let (ok, stdout, stderr) = run_generate(&[
        "--model-dir",
        dir.to_str().unwrap(),
        "--prompt",
        &prompt,
        "--max-new-tokens",
        "16",
        "--greedy",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v = last_json(&stdout);
    let got: Vec<u32> = serde_json::from_value(v["token_ids"].clone()).unwrap();
    assert_eq!(got, want);
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["stopped_at_eos"], false);
    let tok = Qwen3Tokenizer::from_dir(&dir).unwrap();
    assert_eq!(v["text"], tok.decode(&want).unwrap());
}

#[test]
fn engram_generation_is_incremental_and_stops_at_eos() {
    let device = Device::default();
    let dir = fixture("qwen3/engram");
    let model = Qwen3Engram::load_tinyengram(&dir, &device, DType::F32).unwrap();
    let (prompt, ids, _) = greedy_prompt("engram");
    let want = generate_greedy(&model, &ids, 12).unwrap();
    let (ok, stdout, stderr) = run_generate(&[
        "--model-dir",
        dir.to_str().unwrap(),
        "--engram",
        dir.to_str().unwrap(),
        "--prompt",
        &prompt,
        "--max-new-tokens",
        "12",
        "--greedy",
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v = last_json(&stdout);
    assert_eq!(v["method"], "engram");
    let got: Vec<u32> = serde_json::from_value(v["token_ids"].clone()).unwrap();
    assert_eq!(got, want);

    // with the fourth greedy token as eos, generation stops right after it
    let eos = want[3];
    let first = want.iter().position(|&t| t == eos).unwrap();
    let out = generate(&model, &ids, 12, &mut Sampler::greedy(), &[eos], |_| Ok(())).unwrap();
    assert!(out.stopped_at_eos);
    assert_eq!(out.token_ids, want[..=first]);
    // sampling is seeded: the same seed, the same tokens
    let cfg = GenerationConfig {
        do_sample: true,
        temperature: 0.8,
        ..GenerationConfig::default()
    };
    let draw = |seed| {
        let mut s = Sampler::new(cfg.clone(), seed).unwrap();
        generate(&model, &ids, 8, &mut s, &[], |_| Ok(()))
            .unwrap()
            .token_ids
    };
    assert_eq!(draw(3), draw(3));
}

#[test]
fn bad_settings_are_one_clear_line() {
    let dir = fixture("qwen3/tied");
    let d = dir.to_str().unwrap();
    let (ok, _, stderr) = run_generate(&["--model-dir", d, "--prompt", "x", "--top-p", "0"]);
    assert!(!ok);
    assert!(stderr.contains("top_p 0 must be in (0, 1]"), "{stderr}");
    let (ok, _, stderr) = run_generate(&[
        "--model-dir",
        d,
        "--prompt",
        "x",
        "--greedy",
        "--temperature",
        "0.5",
    ]);
    assert!(!ok);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let (ok, _, stderr) = run_generate(&["--model-dir", "/nonexistent", "--prompt", "x"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent"), "{stderr}");
    // a generation_config.json that cannot be used names the file
    let tmp = std::env::temp_dir().join(format!("gen-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
    }
    std::fs::write(
        tmp.join("generation_config.json"),
        r#"{"do_sample": true, "top_p": 1.5}"#,
    )
    .unwrap();
    let (ok, _, stderr) = run_generate(&["--model-dir", tmp.to_str().unwrap(), "--prompt", "x"]);
    assert!(!ok);
    assert!(
        stderr.contains("generation_config.json") && stderr.contains("top_p 1.5"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn generation_defaults_come_from_the_folder() {
    let dir = fixture("qwen3/tied");
    let cfg = GenerationConfig::from_dir(&dir).unwrap();
    assert_eq!(cfg.eos_token_id, vec![399]);
    assert!(!cfg.do_sample);
    let empty = std::env::temp_dir();
    assert_eq!(
        GenerationConfig::from_dir(empty.join("no-such-model")).unwrap(),
        GenerationConfig::default()
    );
}

#[test]
fn chat_prompts_render_with_the_folders_template() {
    // transformers' apply_chat_template text for the tied folder's template (fixture)
    let cases = read_json("interop/chat_templates.json");
    let text_of = |conv: &str| -> (serde_json::Value, String) {
        let c = cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["template"] == "fixture_chatml" && c["conversation"] == conv)
            .unwrap();
        (
            c["messages"].clone(),
            c["text"].as_str().unwrap().to_string(),
        )
    };
    let dir = fixture("qwen3/tied");
    let d = dir.to_str().unwrap();
    let tokens = |extra: &[&str]| {
        let mut args = vec![
            "--model-dir",
            d,
            "--max-new-tokens",
            "6",
            "--greedy",
            "--json",
        ];
        args.extend_from_slice(extra);
        let (ok, stdout, stderr) = run_generate(&args);
        assert!(ok, "{stderr}");
        last_json(&stdout)["token_ids"].clone()
    };
    let (_, one_turn) = text_of("one_user_turn");
    let chat = tokens(&["--chat", "--prompt", "What is a fox?"]);
    assert_eq!(chat, tokens(&["--prompt", &one_turn]));
    assert_ne!(
        chat,
        tokens(&["--prompt", "What is a fox?"]),
        "the template changed the prompt"
    );
    let (messages, multi) = text_of("multi_turn");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("chat.json");
    std::fs::write(&file, messages.to_string()).unwrap();
    assert_eq!(
        tokens(&["--messages", file.to_str().unwrap()]),
        tokens(&["--prompt", &multi])
    );
    let (ok, _, stderr) = run_generate(&[
        "--model-dir",
        d,
        "--chat",
        "--prompt",
        "x",
        "--chat-kwargs",
        "[1]",
    ]);
    assert!(!ok && stderr.contains("kwargs"), "{stderr}");
    std::fs::write(&file, "[{").unwrap();
    let (ok, _, stderr) = run_generate(&["--model-dir", d, "--messages", file.to_str().unwrap()]);
    assert!(!ok && stderr.contains("chat.json"), "{stderr}");
}

#[test]
fn the_text_streamer_hands_out_whole_characters() {
    let tok = Qwen3Tokenizer::from_dir(fixture("qwen3/tied")).unwrap();
    let text = "café 中文 naïve";
    let ids = tok.encode(text).unwrap();
    assert!(ids.len() > text.chars().count() / 2);
    let mut stream = burn_engram::host::qwen3::TextStreamer::new(&tok);
    let mut shown = String::new();
    let mut held = 0;
    for id in ids {
        match stream.push(id).unwrap() {
            Some(t) => {
                assert!(!t.contains('\u{fffd}'), "{t:?}");
                shown.push_str(&t);
            }
            None => held += 1,
        }
    }
    shown.push_str(&stream.finish().unwrap());
    assert_eq!(shown, text);
    assert!(
        held > 0,
        "a multi-byte character spans tokens in the byte-level tokenizer"
    );
}
