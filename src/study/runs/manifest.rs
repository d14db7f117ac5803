//! The manifest of a run folder: what made the run (tool, method, the inputs' checksums, the
//! resolved settings), so a later process can tell whether the folder holds *this* run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{EngramError, Result};
use crate::io::{sha256_bytes, sha256_file};

/// The manifest's file name inside a run folder.
pub const MANIFEST_FILE: &str = "run_manifest.json";
const FORMAT: u32 = 1;

/// One input of a run: where it was read from and the SHA-256 of each of its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRecord {
    /// Where it was read from (informative: a moved folder with the same files still matches).
    pub path: String,
    /// File name (or part name) -> SHA-256 (hex).
    pub sha256: BTreeMap<String, String>,
}

impl InputRecord {
    /// One file.
    pub fn file(path: &Path) -> Result<Self> {
        let name = path
            .file_name()
            .map_or("file".into(), |n| n.to_string_lossy().into_owned());
        Ok(Self {
            path: path.display().to_string(),
            sha256: BTreeMap::from([(name, sha256_file(path)?)]),
        })
    }

    /// The files of a model folder that decide what it computes: `config.json`, the
    /// tokenizer files, `*.safetensors` and a shard index (other files, a README say, are
    /// left out).
    pub fn model_folder(dir: &Path) -> Result<Self> {
        let mut sha256 = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| EngramError::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| EngramError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let decides = name == "config.json"
                || name == "tokenizer.json"
                || name == "tokenizer_config.json"
                || name.ends_with(".safetensors")
                || name.ends_with(".safetensors.index.json");
            if decides && entry.path().is_file() {
                sha256.insert(name, sha256_file(&entry.path())?);
            }
        }
        Ok(Self {
            path: dir.display().to_string(),
            sha256,
        })
    }

    /// Data that lives in memory (generated or tokenized): one checksum per named part.
    pub fn in_memory(what: &str, parts: &[(&str, &[u8])]) -> Self {
        Self {
            path: what.to_string(),
            sha256: parts
                .iter()
                .map(|(n, b)| (n.to_string(), sha256_bytes(b)))
                .collect(),
        }
    }
}

/// What made a run: written into the run folder when the run starts, compared when it is
/// resumed or reused.
///
/// Compared: `tool`, `method`, every input's checksums (not its path) and every field of
/// `config`. Not compared: `crate_version` (a fixed crate may resume a run) and `path`s.
///
/// ```
/// use burn_engram::study::runs::{InputRecord, RunManifest};
/// let a = RunManifest::new("train", "engram", serde_json::json!({"train": {"lr": 1e-4}}))
///     .with_input("data", InputRecord::in_memory("rows", &[("train", b"abc")]));
/// let mut b = a.clone();
/// b.config["train"]["lr"] = serde_json::json!(2e-4);
/// assert_eq!(a.differences(&b), vec!["config.train.lr: 0.0001 -> 0.0002".to_string()]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunManifest {
    /// The manifest format (1).
    pub format: u32,
    /// The burn-engram version that wrote it.
    pub crate_version: String,
    /// The tool that made the run (`train`, `study`).
    pub tool: String,
    /// `engram`, `lora` or `base`.
    pub method: String,
    /// Named inputs (`model`, `data`, ...).
    pub inputs: BTreeMap<String, InputRecord>,
    /// Every setting that decides the run's outcome, resolved (defaults filled in).
    pub config: Value,
}

impl RunManifest {
    /// A manifest with no inputs yet.
    pub fn new(tool: &str, method: &str, config: Value) -> Self {
        Self {
            format: FORMAT,
            crate_version: env!("CARGO_PKG_VERSION").into(),
            tool: tool.into(),
            method: method.into(),
            inputs: BTreeMap::new(),
            config,
        }
    }

    /// Adds an input.
    pub fn with_input(mut self, name: &str, input: InputRecord) -> Self {
        self.inputs.insert(name.into(), input);
        self
    }

    /// The manifest of the folder `dir`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(MANIFEST_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let m: Self = crate::io::read_json(&path)?;
        if m.format != FORMAT {
            return Err(EngramError::bad_file(
                &path,
                format!(
                    "manifest format {} is not {FORMAT} (written by another version)",
                    m.format
                ),
            ));
        }
        Ok(Some(m))
    }

    /// Writes `dir/run_manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(MANIFEST_FILE);
        crate::io::write_json(&path, self)?;
        Ok(path)
    }

    /// Every difference between `self` (recorded) and `now`, as `field: recorded -> now`
    /// (empty: the same run).
    pub fn differences(&self, now: &Self) -> Vec<String> {
        let mut out = Vec::new();
        for (field, a, b) in [
            ("tool", &self.tool, &now.tool),
            ("method", &self.method, &now.method),
        ] {
            if a != b {
                out.push(format!("{field}: {a} -> {b}"));
            }
        }
        let names: std::collections::BTreeSet<&String> =
            self.inputs.keys().chain(now.inputs.keys()).collect();
        for name in names {
            match (self.inputs.get(name), now.inputs.get(name)) {
                (Some(a), Some(b)) => {
                    let files: std::collections::BTreeSet<&String> =
                        a.sha256.keys().chain(b.sha256.keys()).collect();
                    for f in files {
                        let (x, y) = (a.sha256.get(f), b.sha256.get(f));
                        if x != y {
                            let show = |v: Option<&String>| {
                                v.map_or("absent".to_string(), |s| {
                                    format!("sha256 {}", &s[..12.min(s.len())])
                                })
                            };
                            out.push(format!(
                                "{name} {f} ({} -> {}): {} -> {}",
                                a.path,
                                b.path,
                                show(x),
                                show(y)
                            ));
                        }
                    }
                }
                (a, b) => out.push(format!(
                    "{name}: {} -> {}",
                    a.map_or("absent", |_| "present"),
                    b.map_or("absent", |_| "present")
                )),
            }
        }
        let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
        flatten("config", &self.config, &mut a);
        flatten("config", &now.config, &mut b);
        let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for k in keys {
            let (x, y) = (a.get(k), b.get(k));
            if x != y {
                let show = |v: Option<&Value>| v.map_or("absent".to_string(), |v| v.to_string());
                out.push(format!("{k}: {} -> {}", show(x), show(y)));
            }
        }
        out
    }
}

/// Leaves of a JSON value by dotted path (array items by index).
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                flatten(&format!("{prefix}.{k}"), x, out);
            }
        }
        Value::Array(a) if !a.is_empty() && a.iter().any(|x| x.is_object()) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}.{i}"), x, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_difference_is_named() {
        let a = RunManifest::new(
            "train",
            "lora",
            serde_json::json!({"lora": {"r": 16, "target_modules": ["q_proj"]}, "max_len": 64}),
        )
        .with_input("model", InputRecord::in_memory("m", &[("w", b"1")]));
        assert!(a.differences(&a.clone()).is_empty());
        let mut b = a.clone();
        b.method = "engram".into();
        b.config["lora"]["r"] = serde_json::json!(8);
        b.config["lora"]["target_modules"] = serde_json::json!(["q_proj", "v_proj"]);
        b.config.as_object_mut().unwrap().remove("max_len");
        b.inputs
            .insert("model".into(), InputRecord::in_memory("m2", &[("w", b"2")]));
        b.crate_version = "9.9.9".into();
        let d = a.differences(&b);
        assert_eq!(d.len(), 5, "{d:?}");
        assert!(d[0].starts_with("method: lora -> engram"));
        assert!(d[1].starts_with("model w (m -> m2): sha256 "));
        assert!(d.iter().any(|x| x == "config.lora.r: 16 -> 8"));
        assert!(d.iter().any(|x| x == "config.max_len: 64 -> absent"));
        assert!(
            d.iter()
                .any(|x| x.starts_with("config.lora.target_modules: [\"q_proj\"] -> "))
        );
    }

    #[test]
    fn manifests_round_trip_and_refuse_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunManifest::new("study", "base", serde_json::json!({}));
        a.write(dir.path()).unwrap();
        assert_eq!(RunManifest::read(dir.path()).unwrap(), Some(a));
        let p = dir.path().join(MANIFEST_FILE);
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["methd"] = serde_json::json!("x");
        std::fs::write(&p, v.to_string()).unwrap();
        let e = RunManifest::read(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("run_manifest.json") && e.contains("methd"),
            "{e}"
        );
    }
}
