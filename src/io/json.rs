//! JSON files: reading with errors that name the file (and line), atomic pretty writes, and
//! the unknown-field checks for formats that are not this crate's own.

use std::path::Path;

use serde::Serialize;

use crate::error::{EngramError, Result};

/// The top-level JSON field names of a config type, read off a value of it as serialized:
/// derived from the type, so that no hand-kept list can drift from its fields.
pub(crate) fn field_names<T: Serialize>(value: &T) -> Vec<String> {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default()
}

/// The top-level fields of `value` (an object) neither in `known` nor in `tolerated` (fields
/// a format's own tools write that this crate does not use).
pub(crate) fn unknown_fields(
    value: &serde_json::Value,
    known: &[String],
    tolerated: &[&str],
) -> Vec<String> {
    value
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| !known.contains(k) && !tolerated.contains(&k.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Logs a warning (`log` crate) per unknown field of a file whose format is not ours
/// (Hugging Face, PEFT, TinyEngram: they add fields from version to version).
pub(crate) fn warn_unknown(path: &Path, fields: &[String]) {
    for f in fields {
        log::warn!(
            "{}: unknown field `{f}` ignored (not one this crate reads; a misspelling?)",
            path.display()
        );
    }
}

/// [`read_json`], also giving the file as a JSON value (to find its unknown fields); a
/// type error keeps its line and column.
#[cfg(feature = "host")]
pub(crate) fn read_json_and_value<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<(T, serde_json::Value)> {
    let text = std::fs::read_to_string(path).map_err(|e| EngramError::io(path, e))?;
    let json = |source| EngramError::Json {
        path: path.to_path_buf(),
        source,
    };
    let value = serde_json::from_str(&text).map_err(json)?;
    Ok((serde_json::from_str(&text).map_err(json)?, value))
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| EngramError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| EngramError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| EngramError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    super::fs::write_atomic(path, text.as_bytes())
}
