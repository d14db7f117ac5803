//! [`JsonLines`]: a run folder's append-only logs (`metrics.jsonl`, `scores.jsonl`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{EngramError, Result};

/// A JSON-lines file opened for appending: one record per line, errors naming the file. A
/// line cut short by a kill is skipped when the log is read back.
#[derive(Debug)]
pub struct JsonLines {
    file: File,
    path: PathBuf,
    kept: Option<EngramError>,
}

impl JsonLines {
    /// Opens `path` for appending (created if missing).
    pub fn append_to(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| EngramError::io(&path, e))?;
        Ok(Self {
            file,
            path,
            kept: None,
        })
    }

    /// Appends `record` as one line.
    pub fn write(&mut self, record: &impl Serialize) -> Result<()> {
        let line = serde_json::to_string(record).unwrap_or_default();
        writeln!(self.file, "{line}").map_err(|e| EngramError::io(&self.path, e))
    }

    /// [`write`](Self::write), keeping the first error for [`finish`](Self::finish) instead
    /// of returning it (for callbacks that cannot fail, such as a trainer's step hook).
    pub fn record(&mut self, record: &impl Serialize) {
        if let Err(e) = self.write(record) {
            self.kept.get_or_insert(e);
        }
    }

    /// The first error [`record`](Self::record) kept, if any.
    pub fn finish(self) -> Result<()> {
        self.kept.map_or(Ok(()), Err)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
