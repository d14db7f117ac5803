//! A lock file that keeps a second process out of a run folder.
//!
//! `DIR/.lock` is locked with the operating system's advisory file lock (`flock` on Unix,
//! `LockFileEx` on Windows, through `std::fs::File::try_lock`): the lock lives as long as
//! the process holds the file open and the operating system drops it when the process
//! ends, however it ends, so a killed run never leaves a stale lock behind. The file holds
//! the owner's process id, for the message a second process gets.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{EngramError, Result};

/// The lock file's name inside a run folder.
pub const LOCK_FILE: &str = ".lock";

/// Holds a run folder's lock until dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Locks `dir` (which must exist), or fails naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| EngramError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                let who = if owner.is_empty() {
                    "another process".to_string()
                } else {
                    format!("another process (pid {owner})")
                };
                return Err(EngramError::run_folder(
                    dir,
                    format!(
                        "is in use by {who}, which holds {}: wait for it to finish, or choose another folder",
                        path.display()
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(EngramError::io(&path, e)),
        }
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.flush())
            .map_err(|e| EngramError::io(&path, e))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        // a second open file description conflicts even within one process
        let e = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("in use by another process")
                && e.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }
}
