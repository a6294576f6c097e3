//! One running server per data directory.
//!
//! Two servers on one directory would each keep their own in-memory pubsub state and
//! sessions over the same SQLite file: every write of one invisible to the other's
//! caches, and both answering for the same accounts. So `serve` takes an exclusive OS
//! file lock (`flock`-style, std's `File::try_lock`) on `hydrant.lock` in the directory
//! for as long as it runs; the kernel releases it when the process exits, however it
//! exits, so a crash leaves no stale lock behind. The admin CLI (`hydrant user ...`)
//! does not take it: it is meant to work while the server runs (SQLite serialises the
//! writes).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "hydrant.lock";

/// Held while the server runs; dropping it releases the directory.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Locks `dir` (which must exist) for this process, or says who holds it.
pub fn lock(dir: &Path) -> Result<DataDirLock, String> {
    try_lock(dir)?.map_err(|holder| {
        format!(
            "data directory {} is in use by another hydrant server{holder}: \
             {} is locked; stop that server or configure another data_dir",
            dir.display(),
            dir.join(LOCK_FILE).display()
        )
    })
}

/// Whether a server runs on `dir`: `Ok(Ok(lock))` if not (and now this process holds
/// it), `Ok(Err(holder))` if one does (`holder`: " (process N)" when known).
pub fn try_lock(dir: &Path) -> Result<Result<DataDirLock, String>, String> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Ok(Err(if holder.is_empty() {
                String::new()
            } else {
                format!(" (process {holder})")
            }));
        }
        Err(TryLockError::Error(e)) => {
            return Err(format!("locking {}: {e}", path.display()));
        }
    }
    // Who holds it, for the message above and for operators; informative only (the
    // lock, not the content, is what excludes).
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(Ok(DataDirLock { _file: file, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        assert_eq!(first.path(), dir.path().join(LOCK_FILE));
        let err = lock(dir.path()).unwrap_err();
        assert!(err.contains("in use by another hydrant server"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        lock(dir.path()).unwrap();
    }
}
