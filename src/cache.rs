//! The cache directory: stage3 roots, builder roots, blobs, binary packages, distfiles, logs.
//!
//! Every entry is made beside its final place (`<kind>/.tmp-*`) and renamed into place when
//! complete, so an interrupted build never leaves a half-written entry that a later build
//! would use. Entries that two gib processes may make at once are guarded by a lock file
//! per entry (`locks/<kind>-<key>.lock`, flock), released when the process dies.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// An exclusive lock on one cache entry, held until dropped (or the process dies).
#[derive(Debug)]
pub struct EntryLock {
    _file: File,
}

impl Cache {
    /// Open (and create) the cache: `explicit`, else `$XDG_CACHE_HOME/gib`, else `~/.cache/gib`.
    pub fn open(explicit: Option<&Path>) -> Result<Cache> {
        let root = match explicit {
            Some(dir) => dir.to_path_buf(),
            None => default_cache_dir()?,
        };
        fs::create_dir_all(&root)
            .with_context(|| format!("cannot create the cache directory {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("cannot resolve the cache directory {}", root.display()))?;
        Ok(Cache { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one kind of entry (`stage3`, `blobs`, `binpkgs`, …), created on demand.
    pub fn dir(&self, kind: &str) -> Result<PathBuf> {
        let dir = self.root.join(kind);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir)
    }

    /// A fresh, empty path beside the entries of `kind`, on the same filesystem, for an entry
    /// under construction. Publish it with [`Cache::publish`]; a leftover is never read.
    pub fn scratch_path(&self, kind: &str) -> Result<PathBuf> {
        let dir = self.dir(kind)?;
        let scratch = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&dir)
            .with_context(|| format!("cannot create a scratch directory in {}", dir.display()))?;
        Ok(scratch.keep())
    }

    /// Move a finished scratch path to its final place. If another process published the
    /// same entry first, keep theirs and drop ours.
    pub fn publish(&self, scratch: &Path, entry: &Path) -> Result<()> {
        match fs::rename(scratch, entry) {
            Ok(()) => Ok(()),
            Err(_) if entry.exists() => {
                remove_any(scratch).ok();
                Ok(())
            }
            Err(err) => Err(err).with_context(|| {
                format!("cannot move {} to {}", scratch.display(), entry.display())
            }),
        }
    }

    /// Take the lock of entry `key` of `kind`, waiting for another gib that holds it.
    pub fn lock(&self, kind: &str, key: &str) -> Result<EntryLock> {
        let (path, file) = self.lock_file(kind, key)?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(EntryLock { _file: file })
    }

    /// The lock of entry `key` of `kind`, or `None` while another gib holds it.
    pub fn try_lock(&self, kind: &str, key: &str) -> Result<Option<EntryLock>> {
        let (path, file) = self.lock_file(kind, key)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(EntryLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(err)) => {
                Err(err).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    fn lock_file(&self, kind: &str, key: &str) -> Result<(PathBuf, File)> {
        let dir = self.dir("locks")?;
        let path = dir.join(format!("{kind}-{key}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        Ok((path, file))
    }
}

/// Remove a file or a whole directory tree.
pub fn remove_any(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

fn default_cache_dir() -> Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("gib"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither $XDG_CACHE_HOME nor $HOME is set; pass --cache-dir")?;
    Ok(PathBuf::from(home).join(".cache").join("gib"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_renames_scratch_into_place() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(tmp.path())).unwrap();
        let scratch = cache.scratch_path("stage3").unwrap();
        fs::write(scratch.join("f"), b"x").unwrap();
        let entry = cache.dir("stage3").unwrap().join("abc");
        cache.publish(&scratch, &entry).unwrap();
        assert_eq!(fs::read(entry.join("f")).unwrap(), b"x");
        assert!(!scratch.exists());
    }

    #[test]
    fn publish_keeps_the_first_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(tmp.path())).unwrap();
        let entry = cache.dir("k").unwrap().join("e");
        fs::create_dir(&entry).unwrap();
        fs::write(entry.join("first"), b"1").unwrap();
        let scratch = cache.scratch_path("k").unwrap();
        fs::write(scratch.join("second"), b"2").unwrap();
        cache.publish(&scratch, &entry).unwrap();
        assert!(entry.join("first").exists());
        assert!(!scratch.exists());
    }
}
