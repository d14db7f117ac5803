//! safetensors files: header-only name listing, writing (atomically) and reading float
//! tensors as f32 whatever their stored dtype, and the torch layout helpers.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{EngramError, Result};

/// The tensor names of a safetensors file, read from its header only (cheap for large files).
pub fn tensor_names(path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| EngramError::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| EngramError::io(path, e))?;
    let len = u64::from_le_bytes(len);
    let size = f.metadata().map_err(|e| EngramError::io(path, e))?.len();
    if len > size.saturating_sub(8) || len > 100_000_000 {
        return Err(EngramError::bad_file(
            path,
            format!("header length {len} does not fit the file ({size} bytes)"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header)
        .map_err(|e| EngramError::io(path, e))?;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| EngramError::bad_file(path, format!("safetensors header is not JSON: {e}")))?;
    Ok(map
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k != "__metadata__")
        .collect())
}

/// Transposes a row-major `[rows, cols]` matrix (torch `[out, in]` <-> burn `[in, out]`).
pub(crate) fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Little-endian bytes of f32 values, as safetensors stores them.
pub(crate) fn f32_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A tensor to write: name, dtype, shape, little-endian bytes.
pub(crate) type OwnedTensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// The metadata torch's safetensors writer puts in (`{"format": "pt"}`), which
/// transformers and PEFT expect.
pub(crate) fn pt_metadata() -> Option<HashMap<String, String>> {
    Some(HashMap::from([("format".to_string(), "pt".to_string())]))
}

/// Serializes `tensors` as a safetensors file at `path`, atomically; errors name the tensor
/// or the file.
pub(crate) fn write_safetensors(
    path: &Path,
    tensors: &[OwnedTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| EngramError::tensor(path, name.clone(), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut bytes = safetensors::serialize(views, metadata)
        .map_err(|e| EngramError::bad_file(path, e.to_string()))?;
    sort_metadata(&mut bytes);
    super::fs::write_atomic(path, &bytes)
}

/// Rewrites the header's `__metadata__` object with its keys sorted. safetensors takes the
/// metadata as a `HashMap`, whose order changes from map to map, so the same tensors would
/// otherwise give different bytes from save to save. The sorted object has the same keys
/// and values, hence the same length: nothing else in the file moves.
fn sort_metadata(bytes: &mut [u8]) {
    let Some(len) = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
    else {
        return;
    };
    let Some(header) = bytes.get(8..8 + len as usize) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(header) else {
        return;
    };
    let key = "\"__metadata__\":";
    let Some(start) = text.find(key).map(|i| i + key.len()) else {
        return;
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    // serde_json's map is ordered by key; the metadata is a flat string map
    let Some(meta) = value.get("__metadata__").filter(|m| m.is_object()) else {
        return;
    };
    let sorted = meta.to_string();
    let end = start + sorted.len();
    if text.get(start..end).is_some_and(|old| {
        old.starts_with('{')
            && old.ends_with('}')
            && serde_json::from_str::<serde_json::Value>(old).ok().as_ref() == Some(meta)
    }) {
        bytes[8 + start..8 + end].copy_from_slice(sorted.as_bytes());
    }
}

/// A float tensor of a safetensors file as f32 (F32, F64, F16 or BF16; non-finite values are
/// an error naming the tensor).
pub(crate) fn view_to_f32(path: &Path, name: &str, view: &TensorView<'_>) -> Result<Vec<f32>> {
    let bytes = view.data();
    let out: Vec<f32> = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(EngramError::tensor(
                path,
                name,
                format!("dtype {other:?} is not a float type (expected F32, F16, BF16 or F64)"),
            ));
        }
    };
    if let Some(i) = out.iter().position(|v| !v.is_finite()) {
        return Err(EngramError::tensor(
            path,
            name,
            format!("element {i} is {} (not finite)", out[i]),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_tensors_and_metadata_give_the_same_bytes_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let tensor: OwnedTensor = ("t".into(), Dtype::F32, vec![2], f32_bytes(&[1.0, 2.0]));
        let meta = || {
            let pairs = (0..6).map(|i| (format!("key{i}"), format!("value {i}")));
            Some(pairs.collect::<HashMap<_, _>>())
        };
        let path = dir.path().join("a.safetensors");
        write_safetensors(&path, std::slice::from_ref(&tensor), meta()).unwrap();
        let first = std::fs::read(&path).unwrap();
        for _ in 0..20 {
            write_safetensors(&path, std::slice::from_ref(&tensor), meta()).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), first);
        }
        let text = String::from_utf8_lossy(&first);
        assert!(
            text.contains(r#"{"key0":"value 0","key1":"value 1","key2""#),
            "{text}"
        );
        // still a valid file with the same content
        let st = safetensors::SafeTensors::deserialize(&first).unwrap();
        assert_eq!(
            st.tensor("t").unwrap().data(),
            f32_bytes(&[1.0, 2.0]).as_slice()
        );
        let (_, m) = safetensors::SafeTensors::read_metadata(&first).unwrap();
        assert_eq!(m.metadata().clone(), meta());
    }
}
