//! Training checkpoints: the trainable parameters (with their parameter ids), the optimizer
//! state and the step, written atomically into `checkpoint-{step}/`, the last K kept.
//!
//! A checkpoint is first written into a hidden temporary folder, every file synced, then the
//! folder is renamed into place and the parent synced: a crash leaves either the previous
//! checkpoints alone or the new one complete. [`latest_checkpoint`] only considers complete
//! `checkpoint-*` folders.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::tensor::{Tensor, TensorData};
use safetensors::SafeTensors;
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

use crate::error::{EngramError, Result};
use crate::io::read_f32;
use crate::io::safetensors::{OwnedTensor, f32_bytes, write_safetensors};
use crate::io::sync_dir;
use crate::memory::LazyAdamState;
use crate::memory::SparseTableStates;

const PARAMS_FILE: &str = "trainable.safetensors";
const OPTIM_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "trainer_state.json";
/// The lazy-AdamW state of sparse table updates (`TableUpdate::Sparse` runs only).
const SPARSE_FILE: &str = "sparse_optimizer.safetensors";
const PREFIX: &str = "checkpoint-";

/// Where and how often the trainer checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    /// The run folder; checkpoints go to `dir/checkpoint-{step}`.
    pub dir: PathBuf,
    /// Save every this many optimizer steps (0: never).
    pub every: usize,
    /// Keep this many most recent checkpoints (at least 1).
    pub keep_last: usize,
    /// Continue from the latest checkpoint in `dir`, if any.
    pub resume: bool,
}

/// What the trainer needs besides the tensors to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps taken.
    pub step: usize,
    /// Module path -> parameter id of every trainable parameter (the optimizer state is
    /// keyed by these ids).
    pub param_ids: BTreeMap<String, u64>,
    /// File name -> FNV-1a 64 checksum (hex) of `trainable.safetensors` and `optimizer.bpk`,
    /// checked on load so a file damaged after it was written is refused by name (absent in
    /// checkpoints of earlier versions: not checked).
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

/// FNV-1a, 64 bits, as 16 hex digits.
fn fnv1a64(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Refuses `bytes` of `file` when the state records another checksum for it.
fn verify(state: &TrainerState, file: &str, path: &Path, bytes: &[u8]) -> Result<()> {
    match state.checksums.get(file) {
        Some(want) if *want != fnv1a64(bytes) => Err(EngramError::bad_file(
            path,
            format!(
                "checksum {} does not match {want} recorded in {STATE_FILE}: the file was damaged after it was written",
                fnv1a64(bytes)
            ),
        )),
        _ => Ok(()),
    }
}

#[derive(Default)]
struct Trainables {
    path: Vec<String>,
    found: Vec<(String, u64, Vec<usize>, Vec<f32>)>,
    error: Option<EngramError>,
}

impl ModuleVisitor for Trainables {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let shape = value.dims().to_vec();
        let path = self.path.join(".");
        match read_f32(&path, value) {
            Ok(v) => self.found.push((path, param.id.val(), shape, v)),
            Err(e) => self.error = Some(e),
        }
    }
}

struct Restore {
    path: Vec<String>,
    values: HashMap<String, (u64, Vec<usize>, TensorData)>,
    placed: usize,
    /// (path, stored shape, the model's shape) of the first tensor that does not fit.
    misfit: Option<(String, Vec<usize>, Vec<usize>)>,
}

impl ModuleMapper for Restore {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        let Some((id, shape, data)) = self.values.remove(&path) else {
            return param;
        };
        let old = param.val();
        if shape.as_slice() != old.dims().as_slice() {
            self.misfit
                .get_or_insert((path, shape, old.dims().to_vec()));
            return param;
        }
        self.placed += 1;
        let grad = old.is_require_grad();
        let value = Tensor::<D>::from_data(data, &old.device());
        Param::initialized(ParamId::from(id), value).set_require_grad(grad)
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> EngramError + '_ {
    move |e| EngramError::io(path, e)
}

/// Writes `checkpoint-{step}` under `cfg.dir` atomically and prunes old ones.
///
/// Only a good state becomes a checkpoint: if a trainable parameter holds NaN or infinity,
/// nothing is written (the older checkpoints stay, none is pruned) and the error names the
/// step and the parameters ([`EngramError::NonFinite`]).
pub fn save_checkpoint<M: Module>(
    cfg: &CheckpointConfig,
    step: usize,
    model: &M,
    optim: &ModuleOptimizer,
) -> Result<PathBuf> {
    save_checkpoint_with(cfg, step, model, optim, None)
}

/// [`save_checkpoint`], with the lazy-AdamW state of sparse table updates.
pub(crate) fn save_checkpoint_with<M: Module>(
    cfg: &CheckpointConfig,
    step: usize,
    model: &M,
    optim: &ModuleOptimizer,
    sparse: Option<&SparseTableStates>,
) -> Result<PathBuf> {
    let mut v = Trainables::default();
    model.visit(&mut v);
    if let Some(e) = v.error {
        return Err(e);
    }
    // (layer index, shape, moments, step count) of each sparse table state
    let mut sparse_states = Vec::new();
    for (i, st) in sparse.iter().flat_map(|s| s.layers()) {
        let name = format!("layers.{i}.moments");
        let values = read_f32(&name, st.moments.clone())?;
        sparse_states.push((i, st.moments.dims().to_vec(), values, st.time));
    }
    let bad: Vec<(String, usize)> = v
        .found
        .iter()
        .map(|(p, _, _, d)| (p.clone(), d.as_slice()))
        .chain(sparse_states.iter().map(|(i, _, d, _)| {
            (
                format!("<sparse optimizer layers.{i}.moments>"),
                d.as_slice(),
            )
        }))
        .map(|(p, d)| (p, d.iter().filter(|x| !x.is_finite()).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    if !bad.is_empty() {
        return Err(EngramError::NonFinite {
            step,
            what: "parameter".into(),
            detail: format!(
                "{} hold NaN or infinity; not written as a checkpoint (the checkpoints already in {} are kept)",
                crate::io::finite::describe(&bad),
                cfg.dir.display()
            ),
        });
    }
    std::fs::create_dir_all(&cfg.dir).map_err(io(&cfg.dir))?;
    let tmp = tempfile::Builder::new()
        .prefix(".checkpoint-tmp-")
        .tempdir_in(&cfg.dir)
        .map_err(io(&cfg.dir))?;
    let tensors: Vec<OwnedTensor> = v
        .found
        .iter()
        .map(|(p, _, s, d)| (p.clone(), Dtype::F32, s.clone(), f32_bytes(d)))
        .collect();
    let params_path = tmp.path().join(PARAMS_FILE);
    write_safetensors(&params_path, &tensors, None)?;
    let params_sum = fnv1a64(&std::fs::read(&params_path).map_err(io(&params_path))?);
    let optim_path = tmp.path().join(OPTIM_FILE);
    let optim_bytes = optim
        .into_bytes()
        .map_err(|e| EngramError::bad_file(&optim_path, format!("optimizer state: {e:?}")))?;
    crate::io::write_atomic(&optim_path, &optim_bytes)?;
    let mut checksums = BTreeMap::from([
        (PARAMS_FILE.to_string(), params_sum),
        (OPTIM_FILE.to_string(), fnv1a64(&optim_bytes)),
    ]);
    if sparse.is_some() {
        let tensors: Vec<OwnedTensor> = sparse_states
            .iter()
            .map(|(i, dims, d, _)| {
                (
                    format!("layers.{i}.moments"),
                    Dtype::F32,
                    dims.clone(),
                    f32_bytes(d),
                )
            })
            .collect();
        let meta = sparse_states
            .iter()
            .map(|(i, _, _, time)| (format!("layers.{i}.time"), time.to_string()))
            .collect();
        let path = tmp.path().join(SPARSE_FILE);
        write_safetensors(&path, &tensors, Some(meta))?;
        checksums.insert(
            SPARSE_FILE.to_string(),
            fnv1a64(&std::fs::read(&path).map_err(io(&path))?),
        );
    }
    let state = TrainerState {
        step,
        param_ids: v
            .found
            .iter()
            .map(|(p, id, _, _)| (p.clone(), *id))
            .collect(),
        checksums,
    };
    crate::io::write_json(&tmp.path().join(STATE_FILE), &state)?;
    sync_dir(tmp.path())?;
    let dest = cfg.dir.join(format!("{PREFIX}{step}"));
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(io(&dest))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &dest).map_err(io(&dest))?;
    sync_dir(&cfg.dir)?;
    // temporary folders of writes that were killed half-way
    for entry in std::fs::read_dir(&cfg.dir).map_err(io(&cfg.dir))?.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".checkpoint-tmp-")
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    // Pruning renames first: a kill during `remove_dir_all` would otherwise leave a
    // half-deleted `checkpoint-N` that no longer counts as complete and is never pruned.
    // The renamed folder is a temporary one, removed above by the next save if a kill
    // interrupts its removal here.
    let mut all = checkpoints(&cfg.dir)?;
    while all.len() > cfg.keep_last.max(1) {
        let (old_step, old) = all.remove(0);
        let doomed = cfg.dir.join(format!(".checkpoint-tmp-pruned-{old_step}"));
        std::fs::rename(&old, &doomed).map_err(io(&old))?;
        std::fs::remove_dir_all(&doomed).map_err(io(&doomed))?;
    }
    Ok(dest)
}

/// Complete checkpoints under `dir`, oldest first.
pub fn checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        if entry.path().join(STATE_FILE).is_file() {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The most recent complete checkpoint under `dir`.
pub fn latest_checkpoint(dir: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoints(dir)?.pop().map(|(_, p)| p))
}

/// Restores the trainable parameters (values and ids) and the optimizer state from `ckpt`
/// into a freshly built `model` / `optim`. Every saved parameter must find its place.
pub fn load_checkpoint<M: Module>(
    model: M,
    optim: ModuleOptimizer,
    ckpt: &Path,
) -> Result<(M, ModuleOptimizer, TrainerState)> {
    let (m, o, s, _) = load_checkpoint_with(model, optim, ckpt, None)?;
    Ok((m, o, s))
}

/// [`load_checkpoint`]; with `sparse_device`, also the lazy-AdamW state of sparse table
/// updates (its moments placed on that device), which the checkpoint must then hold.
pub(crate) fn load_checkpoint_with<M: Module>(
    model: M,
    optim: ModuleOptimizer,
    ckpt: &Path,
    sparse_device: Option<&burn::tensor::Device>,
) -> Result<(M, ModuleOptimizer, TrainerState, Option<SparseTableStates>)> {
    let sparse = ckpt.join(SPARSE_FILE);
    if sparse_device.is_none() && sparse.exists() {
        return Err(EngramError::bad_file(
            &sparse,
            "the checkpoint was written by a run with sparse table updates (table_update = sparse): resume it with sparse updates",
        ));
    }
    let state: TrainerState = crate::io::read_json(&ckpt.join(STATE_FILE))?;
    let params_path = ckpt.join(PARAMS_FILE);
    let bytes = std::fs::read(&params_path).map_err(io(&params_path))?;
    verify(&state, PARAMS_FILE, &params_path, &bytes)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| EngramError::bad_file(&params_path, format!("not a safetensors file: {e}")))?;
    let mut values = HashMap::new();
    for (name, id) in &state.param_ids {
        let view = st
            .tensor(name)
            .map_err(|_| EngramError::tensor(&params_path, name.clone(), "missing"))?;
        let data = crate::io::safetensors::view_to_f32(&params_path, name, &view)?;
        values.insert(
            name.clone(),
            (
                *id,
                view.shape().to_vec(),
                TensorData::new(data, view.shape().to_vec()),
            ),
        );
    }
    let expected = values.len();
    let mut restore = Restore {
        path: Vec::new(),
        values,
        placed: 0,
        misfit: None,
    };
    let model = model.map(&mut restore);
    if let Some((name, stored, wanted)) = restore.misfit {
        return Err(EngramError::tensor(
            &params_path,
            name,
            format!("shape {stored:?}, but the model's parameter is {wanted:?}"),
        ));
    }
    if restore.placed != expected {
        let missing: Vec<&String> = restore.values.keys().collect();
        return Err(EngramError::bad_file(
            &params_path,
            format!(
                "the model has no parameter at {missing:?}: it is not the model this checkpoint was written for"
            ),
        ));
    }
    let optim_path = ckpt.join(OPTIM_FILE);
    let optim_bytes = std::fs::read(&optim_path).map_err(io(&optim_path))?;
    verify(&state, OPTIM_FILE, &optim_path, &optim_bytes)?;
    let optim = optim
        .from_bytes(burn::tensor::Bytes::from_bytes_vec(optim_bytes))
        .map_err(|e| EngramError::bad_file(&optim_path, format!("optimizer state: {e:?}")))?;
    let sparse = match sparse_device {
        None => None,
        Some(device) => Some(load_sparse(&state, &ckpt.join(SPARSE_FILE), device)?),
    };
    Ok((model, optim, state, sparse))
}

fn load_sparse(
    state: &TrainerState,
    path: &Path,
    device: &burn::tensor::Device,
) -> Result<SparseTableStates> {
    if !path.is_file() {
        return Err(EngramError::bad_file(
            path,
            "missing: the checkpoint was written by a run with dense table updates; resume it with table_update = dense",
        ));
    }
    let bytes = std::fs::read(path).map_err(io(path))?;
    verify(state, SPARSE_FILE, path, &bytes)?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| EngramError::bad_file(path, format!("not a safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| EngramError::bad_file(path, format!("not a safetensors file: {e}")))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let mut layers = Vec::new();
    for (name, view) in st.tensors() {
        let layer: usize = name
            .strip_prefix("layers.")
            .and_then(|r| r.strip_suffix(".moments"))
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| EngramError::tensor(path, name.clone(), "not `layers.{i}.moments`"))?;
        let time: u32 = meta
            .get(&format!("layers.{layer}.time"))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                EngramError::tensor(
                    path,
                    name.clone(),
                    "no step count `layers.{i}.time` in the metadata",
                )
            })?;
        if view.shape().len() != 2 {
            return Err(EngramError::tensor(path, name, "is not 2-D"));
        }
        let data = crate::io::safetensors::view_to_f32(path, &name, &view)?;
        let moments = Tensor::<2>::from_data(TensorData::new(data, view.shape().to_vec()), device);
        layers.push((layer, LazyAdamState { moments, time }));
    }
    Ok(SparseTableStates::from_layers(layers))
}
