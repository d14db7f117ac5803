//! Small file helpers: atomic writes of files and of whole folders, checksums.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{EngramError, Result};

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically: a uniquely named temporary file in the same folder,
/// flushed and synced, then renamed over the target. A crash leaves either the old file or the
/// new one; on an error the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().into_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(dir)
        .map_err(|e| EngramError::io(dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| EngramError::io(tmp.path(), e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| EngramError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| EngramError::io(path, e.error))?;
    Ok(())
}

/// Syncs a folder's entries to disk (after files were renamed into it).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| EngramError::io(dir, e))
}

/// Writes a whole folder at `dest` atomically: `fill` writes it into a uniquely named hidden
/// sibling (`.NAME.tmp-XXXXXX`), which is synced and then takes `dest`'s place. On Linux an
/// existing `dest` is exchanged with the new folder in one `renameat2(RENAME_EXCHANGE)` and
/// then removed, so at every instant `dest` is either the old folder or the new one, whole;
/// elsewhere the old folder is renamed aside first (a crash in between leaves no `dest`,
/// never a mixed one). On an error (of `fill` or of the rename) the temporary folder is
/// removed and `dest` is untouched.
pub fn write_dir_atomic(dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = parent_of(dest);
    std::fs::create_dir_all(parent).map_err(|e| EngramError::io(parent, e))?;
    let name = dest
        .file_name()
        .map_or("folder".into(), |n| n.to_string_lossy().into_owned());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(parent)
        .map_err(|e| EngramError::io(parent, e))?;
    fill(tmp.path())?;
    for entry in std::fs::read_dir(tmp.path()).map_err(|e| EngramError::io(tmp.path(), e))? {
        let path = entry.map_err(|e| EngramError::io(tmp.path(), e))?.path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| EngramError::io(&path, e))?;
        }
    }
    sync_dir(tmp.path())?;
    if dest.exists() {
        replace_dir(tmp.path(), dest, parent, &name)?;
    } else {
        std::fs::rename(tmp.path(), dest).map_err(|e| EngramError::io(dest, e))?;
    }
    // the folder now lives at `dest` (or the old one in its place, removed below)
    let leftover = tmp.keep();
    if leftover.exists() {
        std::fs::remove_dir_all(&leftover).map_err(|e| EngramError::io(&leftover, e))?;
    }
    sync_dir(parent)
}

/// Puts the folder `new` at `dest` (which exists); afterwards `new`'s path holds the old
/// folder or nothing.
#[cfg(target_os = "linux")]
fn replace_dir(new: &Path, dest: &Path, parent: &Path, name: &str) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| EngramError::io(p, std::io::Error::other(e)))
    };
    let (a, b) = (c(new)?, c(dest)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like rename(2).
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // file systems without RENAME_EXCHANGE, or `dest` is not a folder
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTDIR) => {
            replace_by_renames(new, dest, parent, name)
        }
        _ => Err(EngramError::io(dest, err)),
    }
}

#[cfg(not(target_os = "linux"))]
fn replace_dir(new: &Path, dest: &Path, parent: &Path, name: &str) -> Result<()> {
    replace_by_renames(new, dest, parent, name)
}

fn replace_by_renames(new: &Path, dest: &Path, parent: &Path, name: &str) -> Result<()> {
    let old: PathBuf = parent.join(format!(".{name}.old-{}", std::process::id()));
    std::fs::rename(dest, &old).map_err(|e| EngramError::io(dest, e))?;
    std::fs::rename(new, dest).map_err(|e| EngramError::io(dest, e))?;
    if dest.is_dir() {
        std::fs::remove_dir_all(&old).map_err(|e| EngramError::io(&old, e))?;
    } else {
        std::fs::remove_file(&old).map_err(|e| EngramError::io(&old, e))?;
    }
    Ok(())
}

/// SHA-256 of a file's bytes, as 64 lowercase hex digits (what `sha256sum` prints and the
/// Hugging Face Hub records for LFS files).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| EngramError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| EngramError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of bytes in memory, as 64 lowercase hex digits.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    sha256_chunks([bytes])
}

/// SHA-256 of the concatenation of `chunks`, fed one by one (data too large to gather into
/// one buffer first), as 64 lowercase hex digits.
pub fn sha256_chunks<B: AsRef<[u8]>>(chunks: impl IntoIterator<Item = B>) -> String {
    let mut hasher = Sha256::new();
    for c in chunks {
        hasher.update(c.as_ref());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_vector() {
        // FIPS 180-2 example "abc"
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_bytes(b"abc"));
    }

    #[test]
    fn folders_are_replaced_whole_and_failures_leave_them_alone() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model");
        write_dir_atomic(&dest, |d| {
            std::fs::write(d.join("a"), b"1").map_err(|e| EngramError::io(d, e))
        })
        .unwrap();
        assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"1");
        // replacing: the old file set goes, the new one comes
        write_dir_atomic(&dest, |d| {
            std::fs::write(d.join("b"), b"2").map_err(|e| EngramError::io(d, e))
        })
        .unwrap();
        assert!(!dest.join("a").exists());
        assert_eq!(std::fs::read(dest.join("b")).unwrap(), b"2");
        // a failing writer: dest untouched, no temporary left
        let err = write_dir_atomic(&dest, |d| {
            std::fs::write(d.join("c"), b"3").unwrap();
            Err(EngramError::bad_file(d, "stopped"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(dest.join("b")).unwrap(), b"2");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["model"], "no temporary folder is left behind");
    }

    #[test]
    fn failed_file_writes_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // the target is a folder: the rename fails after the temporary was written
        let target = dir.path().join("x");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"").unwrap();
        assert!(write_atomic(&target, b"data").is_err());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["x"]);
    }
}
