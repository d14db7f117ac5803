//! Run folders users can trust: each records what made it ([`RunManifest`]), one process at
//! a time holds it ([`RunLock`]), and opening one says exactly how the folder will be used
//! ([`OpenMode`]): a fresh run never mixes with an old one, a resumed run is the same run.
//!
//! ```
//! # fn main() -> burn_engram::Result<()> {
//! use burn_engram::study::runs::{OpenMode, Opened, RunFolder, RunManifest};
//! let tmp = tempfile::tempdir().unwrap();
//! let dir = tmp.path().join("run");
//! let manifest = RunManifest::new("train", "engram", serde_json::json!({"lr": 1e-4}));
//! let nothing_yet = |_: &std::path::Path| Ok(false);
//! let run = RunFolder::open(&dir, OpenMode::Fresh, &manifest, &nothing_yet)?;
//! assert_eq!(run.opened(), Opened::Fresh);
//! drop(run);
//! // the same folder, fresh again: refused, it holds a run
//! assert!(RunFolder::open(&dir, OpenMode::Fresh, &manifest, &nothing_yet).is_err());
//! // resumed with another learning rate: refused, naming the field
//! let other = RunManifest::new("train", "engram", serde_json::json!({"lr": 2e-4}));
//! let e = RunFolder::open(&dir, OpenMode::ResumeOrStart, &other, &nothing_yet).unwrap_err();
//! assert!(e.to_string().contains("config.lr: 0.0001 -> 0.0002"));
//! # Ok(()) }
//! ```

mod lock;
mod log;
mod manifest;

use std::path::{Path, PathBuf};

pub use lock::{LOCK_FILE, RunLock};
pub use log::JsonLines;
pub use manifest::{InputRecord, MANIFEST_FILE, RunManifest};

use crate::error::{EngramError, Result};

/// How a run wants its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// A new run: the folder must be absent or empty (`train`'s default).
    Fresh,
    /// A new run replacing whatever the folder holds (`--overwrite`).
    Overwrite,
    /// Continue the run the folder holds: its manifest must match, and there must be
    /// something to continue (`--resume`).
    Resume,
    /// Continue the run the folder holds if it matches and has progress, start it otherwise
    /// (`--resume-or-start`; the study's default). A folder holding another run is refused.
    ResumeOrStart,
}

/// What [`RunFolder::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new run in an empty (or emptied) folder; the manifest was written.
    Fresh,
    /// The folder holds this run (its manifest matches) with progress to continue from.
    Continued,
}

/// A run folder, locked for this process while the value lives.
#[derive(Debug)]
pub struct RunFolder {
    dir: PathBuf,
    opened: Opened,
    _lock: RunLock,
}

impl RunFolder {
    /// Opens `dir` (created if absent) for the run `manifest` describes. `has_progress` says
    /// whether a folder holds something to continue from (a checkpoint, a finished result).
    ///
    /// Call it after every input was read and validated: with [`OpenMode::Overwrite`], or
    /// when a matching folder has no progress, the folder is emptied here.
    pub fn open(
        dir: &Path,
        mode: OpenMode,
        manifest: &RunManifest,
        has_progress: &dyn Fn(&Path) -> Result<bool>,
    ) -> Result<Self> {
        let existed = dir.exists();
        if existed && !dir.is_dir() {
            return Err(EngramError::run_folder(
                dir,
                "is a file, not a folder: choose another output folder",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| EngramError::io(dir, e))?;
        let lock_existed = dir.join(LOCK_FILE).exists();
        let lock = RunLock::acquire(dir)?;
        let refuse = |reason: String| {
            if !lock_existed {
                let _ = std::fs::remove_file(dir.join(LOCK_FILE));
            }
            if !existed {
                let _ = std::fs::remove_dir(dir);
            }
            Err(EngramError::run_folder(dir, reason))
        };
        let entries = entries(dir)?;
        let recorded = RunManifest::read(dir)?;
        let opened = match mode {
            OpenMode::Fresh if !entries.is_empty() => {
                let what = match &recorded {
                    Some(m) => format!("a {} run made by `{}`", m.method, m.tool),
                    None => format!("{} entries ({})", entries.len(), list(&entries)),
                };
                drop(lock);
                return refuse(format!(
                    "is not empty: it holds {what}; pass --overwrite to replace it, --resume to continue it, or choose another folder"
                ));
            }
            OpenMode::Fresh => Opened::Fresh,
            OpenMode::Overwrite => {
                clear(dir)?;
                Opened::Fresh
            }
            OpenMode::Resume | OpenMode::ResumeOrStart => match recorded {
                Some(m) => {
                    let diff = m.differences(manifest);
                    if !diff.is_empty() {
                        return Err(EngramError::ManifestMismatch {
                            path: dir.join(MANIFEST_FILE),
                            fields: diff,
                        });
                    }
                    if has_progress(dir)? {
                        Opened::Continued
                    } else if mode == OpenMode::Resume {
                        return Err(EngramError::run_folder(
                            dir,
                            "holds this run but nothing to resume from (no checkpoint yet): pass --resume-or-start to start it",
                        ));
                    } else {
                        clear(dir)?; // the logs of an attempt that left no checkpoint
                        Opened::Fresh
                    }
                }
                None if !entries.is_empty() => {
                    drop(lock);
                    return refuse(format!(
                        "holds {} entries ({}) but no {MANIFEST_FILE}: it was not made by this version's tools, so it cannot be checked to be this run; pass --overwrite to replace it",
                        entries.len(),
                        list(&entries)
                    ));
                }
                None if mode == OpenMode::Resume => {
                    drop(lock);
                    return refuse(
                        "holds no run to resume: pass --resume-or-start to start one here"
                            .to_string(),
                    );
                }
                None => Opened::Fresh,
            },
        };
        if opened == Opened::Fresh {
            manifest.write(dir)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            opened,
            _lock: lock,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the run starts fresh or continues.
    pub fn opened(&self) -> Opened {
        self.opened
    }
}

/// The folder's entries other than the lock file, by name.
fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| EngramError::io(dir, e))? {
        let name = e
            .map_err(|e| EngramError::io(dir, e))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name != LOCK_FILE {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn list(names: &[String]) -> String {
    let mut s = names.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 4 {
        s += ", ...";
    }
    s
}

/// Removes every entry of `dir` but the lock file.
fn clear(dir: &Path) -> Result<()> {
    for name in entries(dir)? {
        let p = dir.join(name);
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| EngramError::io(&p, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(lr: f64) -> RunManifest {
        RunManifest::new("train", "lora", serde_json::json!({"lr": lr}))
    }

    #[test]
    fn each_mode_does_what_it_says() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        let no = |_: &Path| Ok(false);
        let yes = |_: &Path| Ok(true);
        // Resume of nothing: refused, nothing created
        let e = RunFolder::open(&dir, OpenMode::Resume, &m(1.0), &no).unwrap_err();
        assert!(e.to_string().contains("no run to resume"), "{e}");
        assert!(!dir.exists());
        // ResumeOrStart of nothing: a fresh run
        let f = RunFolder::open(&dir, OpenMode::ResumeOrStart, &m(1.0), &no).unwrap();
        assert_eq!(f.opened(), Opened::Fresh);
        drop(f);
        std::fs::write(dir.join("metrics.jsonl"), "old\n").unwrap();
        // Resume without progress: refused; ResumeOrStart: starts over, old logs gone
        let e = RunFolder::open(&dir, OpenMode::Resume, &m(1.0), &no).unwrap_err();
        assert!(e.to_string().contains("nothing to resume"), "{e}");
        assert!(
            dir.join("metrics.jsonl").exists(),
            "a refusal touches nothing"
        );
        let f = RunFolder::open(&dir, OpenMode::ResumeOrStart, &m(1.0), &no).unwrap();
        assert_eq!(f.opened(), Opened::Fresh);
        assert!(!dir.join("metrics.jsonl").exists());
        drop(f);
        // with progress: continued
        let f = RunFolder::open(&dir, OpenMode::Resume, &m(1.0), &yes).unwrap();
        assert_eq!(f.opened(), Opened::Continued);
        // locked while held
        let e = RunFolder::open(&dir, OpenMode::Resume, &m(1.0), &yes).unwrap_err();
        assert!(e.to_string().contains("in use by another process"), "{e}");
        drop(f);
        // another run's settings: refused naming the field, in both resume modes
        for mode in [OpenMode::Resume, OpenMode::ResumeOrStart] {
            let e = RunFolder::open(&dir, mode, &m(2.0), &yes).unwrap_err();
            assert!(
                matches!(&e, EngramError::ManifestMismatch { fields, .. } if fields == &["config.lr: 1.0 -> 2.0"]),
                "{e}"
            );
        }
        // Overwrite: emptied and re-recorded
        std::fs::write(dir.join("x"), "").unwrap();
        let f = RunFolder::open(&dir, OpenMode::Overwrite, &m(2.0), &no).unwrap();
        assert_eq!(f.opened(), Opened::Fresh);
        assert!(!dir.join("x").exists());
        assert_eq!(RunManifest::read(&dir).unwrap().unwrap(), m(2.0));
    }

    #[test]
    fn folders_without_a_manifest_are_not_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let no = |_: &Path| Ok(false);
        for mode in [OpenMode::Fresh, OpenMode::Resume, OpenMode::ResumeOrStart] {
            let e = RunFolder::open(&dir, mode, &m(1.0), &no).unwrap_err();
            assert!(e.to_string().contains("notes.txt"), "{e}");
        }
        let names = entries(&dir).unwrap();
        assert_eq!(names, ["notes.txt"]);
        assert!(
            !dir.join(LOCK_FILE).exists(),
            "no lock file left in a refused folder"
        );
    }
}
