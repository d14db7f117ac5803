//! Small file helpers: atomic writes.

use std::io::Write;
use std::path::Path;

use crate::error::{EngramError, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed and
/// synced, then renamed over the target. A crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| EngramError::io(dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| EngramError::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| EngramError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| EngramError::io(path, e.error))?;
    Ok(())
}
