//! Files other tools read and write: PEFT adapters in the shapes found in the wild (regex and
//! "all-linear" targets, layers_to_transform, exclude_modules, rank/alpha patterns, rsLoRA),
//! PEFT's merge written as a Hugging Face folder, chat templates as transformers renders them,
//! and the TinyEngram full-model export. Fixtures: scripts/fixtures/gen_interop_fixtures.py
//! (and gen_qwen3_fixtures.py for qwen3/).
#![cfg(feature = "study")] // uses the host models

mod common;

use std::collections::BTreeMap;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use burn_engram::host::lora::{
    TargetModules, count_lora_params, load_adapter, lora_factors, merge_lora, save_adapter,
    save_merged,
};
use burn_engram::host::qwen3::{
    ChatRequest, ChatTemplate, Qwen3Engram, Qwen3ForCausalLM, Qwen3Tokenizer, load_qwen3,
    parse_chat_json,
};
use common::{f32_tensor, fixture, i64_tensor, max_abs_diff};
use safetensors::SafeTensors;

struct Batch {
    raw: Vec<i64>,
    ids: Tensor<2, Int>,
    mask: Tensor<2, Int>,
    dims: [usize; 2],
}

fn batch(st: &SafeTensors<'_>, device: &Device) -> Batch {
    let (s, raw) = i64_tensor(st, "input_ids");
    let (_, mask) = i64_tensor(st, "attention_mask");
    let int = |v: &[i64]| {
        let v: Vec<i32> = v.iter().map(|x| *x as i32).collect();
        Tensor::<2, Int>::from_data(TensorData::new(v, [s[0], s[1]]), device)
    };
    Batch {
        ids: int(&raw),
        mask: int(&mask),
        raw,
        dims: [s[0], s[1]],
    }
}

fn logits(model: &Qwen3ForCausalLM, b: &Batch) -> Vec<f32> {
    model
        .forward(b.ids.clone(), Some(b.mask.clone()))
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn tied(device: &Device) -> Qwen3ForCausalLM {
    load_qwen3(fixture("qwen3/tied"), device, DType::F32).unwrap()
}

#[test]
fn peft_adapters_of_every_supported_shape_match_peft_and_merge_as_it_does() {
    let device = Device::default();
    for variant in ["regex_rslora", "layers_to_transform", "all_linear"] {
        let dir = fixture(&format!("interop/peft/{variant}"));
        let bytes = std::fs::read(dir.join("expected.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let b = batch(&st, &device);
        let (_, want) = f32_tensor(&st, "logits");
        let (_, want_merged) = f32_tensor(&st, "merged_logits");

        let (model, cfg) = load_adapter(tied(&device), &dir).unwrap();
        assert_eq!(
            count_lora_params(&model),
            cfg.trainable_params(model.config()),
            "{variant}"
        );
        let d = max_abs_diff(&logits(&model, &b), &want);
        eprintln!("{variant}: adapted logits vs PEFT {d:e}");
        assert!(
            d < 1e-4,
            "{variant}: adapted logits differ from PEFT by {d}"
        );

        // the adapter written back loads again to the same model
        let again = tempfile::tempdir().unwrap();
        save_adapter(&model, &cfg, again.path()).unwrap();
        let (reloaded, _) = load_adapter(tied(&device), again.path()).unwrap();
        assert_eq!(logits(&reloaded, &b), logits(&model, &b), "{variant}");

        let merged = merge_lora(model);
        assert!(lora_factors(&merged).is_empty());
        let d = max_abs_diff(&logits(&merged, &b), &want_merged);
        eprintln!("{variant}: merged logits vs PEFT merge_and_unload {d:e}");
        assert!(d < 1e-4, "{variant}: merged logits differ by {d}");

        // the merged folder: a plain Qwen3 folder, tokenizer files beside it
        let out = tempfile::tempdir().unwrap();
        let out = out.path().join("merged");
        save_merged(&merged, fixture("qwen3/tied"), &out).unwrap();
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "generation_config.json",
        ] {
            assert!(out.join(f).is_file(), "{variant}: merged folder lacks {f}");
        }
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["architectures"][0], "Qwen3ForCausalLM");
        assert_eq!(config["dtype"], "float32");
        let loaded = load_qwen3(&out, &device, DType::F32).unwrap();
        assert_eq!(logits(&loaded, &b), logits(&merged, &b), "{variant}");
    }
}

/// A copy of the adapter folder `dir` with one field of its config set to `value`.
fn adapter_with(dir: &std::path::Path, field: &str, value: serde_json::Value) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["adapter_model.safetensors", "adapter_config.json"] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    let path = tmp.path().join("adapter_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cfg[field] = value;
    std::fs::write(&path, cfg.to_string()).unwrap();
    tmp
}

#[test]
fn all_linear_adapts_what_its_expansion_names() {
    // PEFT writes "all-linear" out as the projections' names; a hand-written config keeps it.
    let device = Device::default();
    let dir = fixture("interop/peft/all_linear");
    let tmp = adapter_with(&dir, "target_modules", "all-linear".into());
    let (a, ca) = load_adapter(tied(&device), tmp.path()).unwrap();
    assert_eq!(
        ca.target_modules,
        TargetModules::Pattern("all-linear".into())
    );
    let (b, _) = load_adapter(tied(&device), &dir).unwrap();
    let names = |m: &Qwen3ForCausalLM| lora_factors(m).into_keys().collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    assert_eq!(
        names(&a).len(),
        2 * 7,
        "decoder layers 0 and 2, seven projections"
    );
}

#[test]
fn unsupported_peft_fields_are_refused_by_name() {
    let device = Device::default();
    let dir = fixture("interop/peft/layers_to_transform");
    for (field, value) in [
        ("use_dora", serde_json::json!(true)),
        ("target_modules", serde_json::json!("lm_head")),
        ("target_modules", serde_json::json!("(?=q)q_proj")),
        ("layers_to_transform", serde_json::json!([7])),
        ("modules_to_save", serde_json::json!(["lm_head"])),
        ("rank_pattern", serde_json::json!({"q_proj": 0})),
    ] {
        let tmp = adapter_with(&dir, field, value);
        let err = load_adapter(tied(&device), tmp.path())
            .unwrap_err()
            .to_string();
        // layers 7 does not exist: nothing is adapted, which names target_modules
        let named = if field == "layers_to_transform" {
            "target_modules"
        } else {
            field
        };
        assert!(
            err.contains(named) && err.contains("adapter_config.json"),
            "{field}: {err}"
        );
    }
}

#[test]
fn merging_the_study_adapter_gives_the_adapted_logits() {
    let device = Device::default();
    let bytes = std::fs::read(fixture("qwen3/lora/expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let b = batch(&st, &device);
    let (_, want) = f32_tensor(&st, "logits");
    let (model, _) = load_adapter(tied(&device), fixture("qwen3/lora")).unwrap();
    let merged = merge_lora(model);
    let d = max_abs_diff(&logits(&merged, &b), &want);
    assert!(
        d < 1e-4,
        "merged logits differ from PEFT's adapted ones by {d}"
    );
    let out = tempfile::tempdir().unwrap();
    assert!(
        save_merged(&merged, fixture("qwen3/tied"), fixture("qwen3/tied"))
            .unwrap_err()
            .to_string()
            .contains("base model's folder")
    );
    let (adapted, _) = load_adapter(tied(&device), fixture("qwen3/lora")).unwrap();
    assert!(
        save_merged(&adapted, fixture("qwen3/tied"), out.path().join("m"))
            .unwrap_err()
            .to_string()
            .contains("merge it first")
    );
    let bf16 = load_qwen3(fixture("qwen3/tied"), &device, DType::BF16).unwrap();
    let (bf16, _) = load_adapter(bf16, fixture("qwen3/lora")).unwrap();
    let err = save_merged(
        &merge_lora(bf16),
        fixture("qwen3/tied"),
        out.path().join("m"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("load the base in f32"), "{err}");
    assert!(!out.path().join("m").exists(), "nothing written on refusal");
}

#[test]
fn chat_templates_render_as_transformers_apply_chat_template() {
    let text = std::fs::read_to_string(fixture("interop/chat_templates.json")).unwrap();
    // ordered maps: `tojson` prints keys in the order of the file, as Python does
    let all = parse_chat_json(&text).unwrap();
    let special: BTreeMap<String, String> = ["bos_token", "eos_token", "pad_token", "unk_token"]
        .into_iter()
        .filter_map(|k| {
            let v = all.get_attr("special_tokens").unwrap().get_attr(k).unwrap();
            v.as_str().map(|s| (k.to_string(), s.to_string()))
        })
        .collect();
    let tok = Qwen3Tokenizer::from_dir(fixture("qwen3/tied")).unwrap();
    let templates = all.get_attr("templates").unwrap();
    let mut n = 0;
    for case in all.get_attr("cases").unwrap().try_iter().unwrap() {
        let name = format!(
            "{} / {}",
            case.get_attr("template").unwrap(),
            case.get_attr("conversation").unwrap()
        );
        let source = templates
            .get_item(&case.get_attr("template").unwrap())
            .unwrap();
        let tpl = ChatTemplate::new(source.as_str().unwrap(), special.clone()).unwrap();
        let tools = case.get_attr("tools").unwrap();
        let kwargs = case.get_attr("kwargs").unwrap();
        let request = ChatRequest {
            messages: case.get_attr("messages").unwrap(),
            tools: (!tools.is_none()).then_some(tools),
            add_generation_prompt: case.get_attr("add_generation_prompt").unwrap().is_true(),
            kwargs: kwargs
                .try_iter()
                .unwrap()
                .map(|k| (k.to_string(), kwargs.get_item(&k).unwrap()))
                .collect(),
        };
        let got = tpl.render(&request).unwrap();
        let want = case.get_attr("text").unwrap();
        assert_eq!(got, want.as_str().unwrap(), "{name}");
        let ids: Vec<u32> = case
            .get_attr("ids")
            .unwrap()
            .try_iter()
            .unwrap()
            .map(|v| u32::try_from(v).unwrap())
            .collect();
        assert_eq!(tok.encode(&got).unwrap(), ids, "{name}: ids");
        n += 1;
    }
    assert_eq!(n, 15, "every fixture case ran");
}

#[test]
fn a_folder_chat_template_is_read_from_tokenizer_config() {
    let tpl = ChatTemplate::from_dir(fixture("qwen3/tied")).unwrap();
    let msgs = parse_chat_json(r#"[{"role": "user", "content": "Hi"}]"#).unwrap();
    assert_eq!(
        tpl.render(&ChatRequest::new(msgs).with_generation_prompt())
            .unwrap(),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let vl = ChatTemplate::from_dir(fixture("qwen-tokenizer")).unwrap();
    assert!(vl.source().contains("vision_start"));
    let err = ChatTemplate::from_dir(fixture("engram"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer_config.json") || err.contains("chat_template"),
        "{err}"
    );
}

#[test]
fn tinyengram_export_is_the_reference_layout_and_loads_back() {
    let device = Device::default();
    let src = fixture("qwen3/engram");
    let model = Qwen3Engram::load_tinyengram(&src, &device, DType::F32).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    model.save_tinyengram(&src, &out).unwrap();

    // the same tensors, names, dtypes and values as the folder the Python reference wrote
    let a = std::fs::read(src.join("model.safetensors")).unwrap();
    let b = std::fs::read(out.join("model.safetensors")).unwrap();
    let (a, b) = (
        SafeTensors::deserialize(&a).unwrap(),
        SafeTensors::deserialize(&b).unwrap(),
    );
    let mut names: Vec<&str> = a.names();
    names.sort();
    let mut names_b: Vec<&str> = b.names();
    names_b.sort();
    assert_eq!(names, names_b);
    for n in names {
        let (x, y) = (a.tensor(n).unwrap(), b.tensor(n).unwrap());
        assert_eq!((x.dtype(), x.shape()), (y.dtype(), y.shape()), "{n}");
        assert!(x.data() == y.data(), "{n}: values differ");
    }
    let cfg = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join("engram_config.json")).unwrap()).unwrap()
    };
    for key in [
        "engram_vocab_size",
        "max_ngram_size",
        "layer_ids",
        "pad_id",
        "seed",
    ] {
        assert_eq!(cfg(&out)[key], cfg(&src)[key], "{key}");
    }

    let err = model.save_tinyengram(&src, &src).unwrap_err().to_string();
    assert!(err.contains("base model's folder"), "{err}");

    // and it loads back to the same outputs
    let back = Qwen3Engram::load_tinyengram(&out, &device, DType::F32).unwrap();
    let bytes = std::fs::read(src.join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let b = batch(&st, &device);
    let [rows, t] = b.dims;
    let run = |m: &Qwen3Engram| {
        let batch = m.engram.prepare(&b.raw, rows, t, &device).unwrap();
        m.forward(b.ids.clone(), Some(b.mask.clone()), &batch)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(run(&back), run(&model));
    let (_, want) = f32_tensor(&st, "logits");
    assert!(max_abs_diff(&run(&back), &want) < 1e-4);
}
