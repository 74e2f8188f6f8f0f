//! The cache directory: stage3 roots, builder roots, blobs, binary packages, distfiles, logs.
//!
//! Every entry is made beside its final place (`<kind>/.tmp-*`) and renamed into place when
//! complete, so an interrupted build never leaves a half-written entry that a later build
//! would use. Each entry has a lock file (`locks/<kind>-<key>.lock`, flock), released when
//! the process dies: a gib holds it exclusively while it makes or removes the entry, and
//! shared from the moment it uses the entry to the end of its run ([`Cache::use_entry`]),
//! so `gib clean` (which takes it alone, without waiting) never removes a tree a running
//! build stands on, and two gibs never make one entry twice.
//!
//! Every gib also holds `locks/run-gibs.lock` shared while it runs. The temp files of a run
//! that was killed (a blob being written, a stage3 being downloaded, a pulled image being
//! unpacked: [`LEFTOVERS`]) have no lock of their own; a gib that finds that lock free (no
//! other gib runs) knows they are leftovers and sweeps them before it starts ([`Cache::open`]).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};

/// One kind of entry: a top-level directory of the cache.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    pub name: &'static str,
    /// Trees from tarballs and images gib did not make (and builds on them): their setuid
    /// files (setuid root when gib runs as root) must be out of other users' reach, so these
    /// directories are 0700. Not the distfiles and binary packages, which are bound into the
    /// sandbox as they are and given Portage's own modes.
    pub private: bool,
    /// `gib clean --builders` empties it: builder roots, unpacked trees, scratch space, logs.
    pub builder: bool,
    /// The lock kind of its entries (`locks/<lock>-<entry>.lock`), when a running gib holds
    /// one while it uses an entry; `gib clean` takes it before removing the entry.
    pub entry_lock: Option<&'static str>,
}

const fn kind(
    name: &'static str,
    private: bool,
    builder: bool,
    entry_lock: Option<&'static str>,
) -> Kind {
    Kind {
        name,
        private,
        builder,
        entry_lock,
    }
}

/// Every kind of entry the cache holds; `Cache::dir` refuses any other.
pub const KINDS: &[Kind] = &[
    // Unpacked stage3s, by the tarball's digest (`urls/` maps a URL to it).
    kind("stage3", true, true, Some("stage3")),
    // Unpacked `rootfs:` tarballs.
    kind("rootfs", true, true, Some("rootfs")),
    // Images pulled from a registry, unpacked.
    kind("pulled", true, false, Some("pulled")),
    // Image entries: builder uppers, layer trees, records (`build::entry`).
    kind("images", true, true, Some("image")),
    // Overlay scratch of `gib shell` and of `test:` runs.
    kind("shell", true, true, None),
    kind("tests", true, true, None),
    // Scratch of jobs run in the namespace, and build logs.
    kind("tmp", false, true, None),
    kind("logs", false, true, None),
    kind("blobs", false, false, None),
    kind("binpkgs", false, false, None),
    // Binary packages of a platform other than the host's (`binpkgs` holds the host's).
    kind("binpkgs-amd64", false, false, None),
    kind("binpkgs-arm64", false, false, None),
    kind("distfiles", false, false, None),
    // Stage3 tarballs and snapshots being or having been downloaded.
    kind("downloads", false, false, None),
    kind("stage3-tarballs", false, false, None),
    // Ebuild repositories and overlays, synced.
    kind("repos", false, false, None),
    // Signing keys fetched by fingerprint.
    kind("keys", false, false, None),
    // Lock files only (`build`, `run` locks have no directory of their own).
    kind("locks", false, false, None),
];

/// The kind `name` (its first path segment), if the cache has such a kind.
pub fn kind_named(name: &str) -> Option<&'static Kind> {
    let top = name.split('/').next().unwrap_or(name);
    KINDS.iter().find(|k| k.name == top)
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// Shared locks on the entries this process uses, held until it ends.
    held: Arc<Mutex<Vec<File>>>,
    /// Leftover temp directories of killed runs, found when this process started, for the
    /// caller to remove (their files may have the sandbox's ids).
    leftover_dirs: Arc<Vec<PathBuf>>,
}

/// Where killed runs leave temp files, and the prefix of their names: `(dir, prefix)`.
pub const LEFTOVERS: [(&str, &str); 3] = [
    // `BlobWriter`'s `.tmp-*` and the registry pull's `.tmp*`.
    ("blobs/sha256", ".tmp"),
    ("downloads", ".tmp-stage3-"),
    ("pulled", ".tmp-"),
];

/// An exclusive lock on one cache entry, held until dropped (or the process dies).
#[derive(Debug)]
pub struct EntryLock {
    file: File,
}

impl Cache {
    /// Open (and create) the cache: `explicit`, else `$XDG_CACHE_HOME/gib`, else `~/.cache/gib`.
    pub fn open(explicit: Option<&Path>) -> Result<Cache> {
        let root = match explicit {
            Some(dir) => dir.to_path_buf(),
            None => default_cache_dir()?,
        };
        let created = !root.exists();
        fs::create_dir_all(&root)
            .with_context(|| format!("cannot create the cache directory {}", root.display()))?;
        let root = root
            .canonicalize()
            .with_context(|| format!("cannot resolve the cache directory {}", root.display()))?;
        reachable_by_the_sandbox(&root, created)?;
        let mut cache = Cache {
            root,
            held: Arc::default(),
            leftover_dirs: Arc::default(),
        };
        cache.leftover_dirs = Arc::new(cache.join_runs()?);
        Ok(cache)
    }

    /// Hold `locks/run-gibs.lock` shared until this process ends; first, if no other gib holds
    /// it, remove the temp files killed runs left (see [`LEFTOVERS`]) and return their
    /// temp directories. A cache whose lock file cannot be made (read-only) is used as is.
    fn join_runs(&self) -> Result<Vec<PathBuf>> {
        let Ok((path, file)) = self.lock_file("run", "gibs") else {
            return Ok(Vec::new());
        };
        let mut dirs = Vec::new();
        if file.try_lock().is_ok() {
            for leftover in find_leftovers(&self.root) {
                match fs::symlink_metadata(&leftover) {
                    Ok(meta) if meta.is_dir() => {
                        // Often the user's own files: removed here when they are.
                        if fs::remove_dir_all(&leftover).is_err() {
                            dirs.push(leftover);
                        }
                    }
                    Ok(_) => fs::remove_file(&leftover).with_context(|| {
                        format!("cannot remove the leftover {}", leftover.display())
                    })?,
                    Err(_) => {}
                }
            }
        }
        file.lock_shared()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(file);
        Ok(dirs)
    }

    /// Remove the temp directories of killed runs that [`Cache::open`] found but could not
    /// remove by itself: they hold files with the sandbox's ids, which only the user namespace
    /// can remove.
    pub fn remove_leftovers(&self) -> Result<()> {
        self.leftover_dirs
            .iter()
            .try_for_each(|dir| crate::sandbox::remove_tree(dir))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one kind of entry (one of [`KINDS`], or a path under one), created
    /// on demand. Private kinds are kept 0700.
    pub fn dir(&self, kind: &str) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let known = kind_named(kind)
            .with_context(|| format!("gib bug: `{kind}` is no kind of cache entry"))?;
        let dir = self.root.join(kind);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if known.private && kind == known.name {
            let meta =
                fs::metadata(&dir).with_context(|| format!("cannot stat {}", dir.display()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .with_context(|| format!("cannot make {} private", dir.display()))?;
            }
        }
        // gib's helpers unpack and write entries here from inside the sandbox.
        crate::sandbox::hand_over(&dir)?;
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
        crate::sandbox::hand_over(scratch.path())?;
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
        Ok(EntryLock { file })
    }

    /// The lock of entry `key` of `kind`, or `None` while another gib holds it (to make,
    /// remove or use the entry).
    pub fn try_lock(&self, kind: &str, key: &str) -> Result<Option<EntryLock>> {
        let (path, file) = self.lock_file(kind, key)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(EntryLock { file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(err)) => {
                Err(err).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }

    /// Use the entry `key` of `kind` at `path` until this process ends, after making it with
    /// `make` if it is not there. `make` runs under the entry's lock, alone, and must leave
    /// the complete entry at `path` (see [`Cache::publish`]) or fail.
    pub fn use_entry(
        &self,
        kind: &str,
        key: &str,
        path: &Path,
        make: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if self.use_if_present(kind, key, path)? {
            return Ok(());
        }
        let lock = self.lock(kind, key)?;
        if !path.exists() {
            make()?;
        }
        self.keep(lock)
    }

    /// Use the entry `key` of `kind` at `path` until this process ends, if it is there (a
    /// gib that is making or removing it is waited for). Whether it is.
    pub fn use_if_present(&self, kind: &str, key: &str, path: &Path) -> Result<bool> {
        let (lock_path, file) = self.lock_file(kind, key)?;
        file.lock_shared()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        if !path.exists() {
            return Ok(false);
        }
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(file);
        Ok(true)
    }

    /// Turn the exclusive `lock` of an entry this process made into a use of it that lasts
    /// until the process ends.
    pub fn keep(&self, lock: EntryLock) -> Result<()> {
        lock.file
            .lock_shared()
            .context("cannot share a cache entry's lock")?;
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(lock.file);
        Ok(())
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

/// The temp files and directories named in [`LEFTOVERS`] under `root`.
fn find_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for (dir, prefix) in LEFTOVERS {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
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
    // Root's home is private (0700), and gib's sandbox is not root's: root's cache is where
    // system tools keep theirs.
    if nix::unistd::geteuid().is_root() {
        return Ok(PathBuf::from(ROOT_CACHE_DIR));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither $XDG_CACHE_HOME nor $HOME is set; pass --cache-dir")?;
    Ok(PathBuf::from(home).join(".cache").join("gib"))
}

/// The cache of gib run as root, when `XDG_CACHE_HOME` names none.
pub const ROOT_CACHE_DIR: &str = "/var/cache/gib";

/// gib run as root runs its sandbox as a range of host ids that are not root's (see
/// `sandbox::idmap`): they enter the cache through the permissions of others. A cache root
/// gib just made gets their search permission whatever the umask; any directory on the way
/// that still keeps them out (a private home, a cache made under umask 027) is a user error
/// naming it, rather than a "Permission denied" from deep inside the first unpack.
fn reachable_by_the_sandbox(root: &Path, created: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some((uid, _)) = crate::sandbox::id_mode()
        .ok()
        .and_then(|mode| mode.host_root())
    else {
        return Ok(());
    };
    if created {
        let mode = fs::metadata(root)
            .with_context(|| format!("cannot stat {}", root.display()))?
            .permissions()
            .mode();
        fs::set_permissions(root, fs::Permissions::from_mode((mode & 0o7777) | 0o001))
            .with_context(|| format!("cannot set the mode of {}", root.display()))?;
    }
    for dir in root.ancestors() {
        let mode = fs::metadata(dir)
            .with_context(|| format!("cannot stat {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(crate::printer::UserError::with_hint(
                format!(
                    "gib's sandbox cannot reach the cache directory {}: {} (mode {:04o}) \
                     keeps others out, and the sandbox of gib run as root runs as host uid {uid}",
                    root.display(),
                    dir.display(),
                    mode & 0o7777
                ),
                format!(
                    "run `chmod o+x {}`, or pass --cache-dir under a directory others can \
                     enter (root's default is {ROOT_CACHE_DIR})",
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_kinds_are_private_and_shared_mounts_keep_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(tmp.path())).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        fs::create_dir_all(tmp.path().join("pulled")).unwrap();
        fs::set_permissions(tmp.path().join("pulled"), fs::Permissions::from_mode(0o755)).unwrap();
        for kind in KINDS.iter().filter(|k| k.private) {
            assert_eq!(mode(&cache.dir(kind.name).unwrap()), 0o700, "{}", kind.name);
        }
        let distfiles = cache.dir("distfiles").unwrap();
        fs::set_permissions(&distfiles, fs::Permissions::from_mode(0o2775)).unwrap();
        assert_eq!(mode(&cache.dir("distfiles").unwrap()), 0o2775);
    }

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

    /// Temp files of a killed run are swept by the next gib, but not while another gib runs
    /// (they may be its own).
    #[test]
    fn leftovers_are_swept_only_when_no_other_gib_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let leave = |root: &Path| {
            for (dir, name) in [
                ("blobs/sha256", ".tmpAbC123"),
                ("blobs/sha256", ".tmp-xyz"),
                ("downloads", ".tmp-stage3-q1"),
            ] {
                fs::create_dir_all(root.join(dir)).unwrap();
                fs::write(root.join(dir).join(name), b"partial").unwrap();
            }
            fs::create_dir_all(root.join("pulled/.tmp-k/tree/usr")).unwrap();
            fs::write(root.join("downloads/keep.part"), b"resumable").unwrap();
            fs::write(root.join("blobs/sha256/ab"), b"a blob").unwrap();
        };
        leave(tmp.path());
        let running = Cache::open(Some(tmp.path())).unwrap();
        assert!(
            find_leftovers(tmp.path()).is_empty(),
            "the first gib sweeps"
        );
        assert!(running.leftover_dirs.is_empty());
        assert!(tmp.path().join("downloads/keep.part").exists());
        assert!(tmp.path().join("blobs/sha256/ab").exists());

        leave(tmp.path());
        let second = Cache::open(Some(tmp.path())).unwrap();
        assert_eq!(
            find_leftovers(tmp.path()).len(),
            4,
            "another gib runs: nothing is taken from it"
        );
        drop((running, second));
        Cache::open(Some(tmp.path())).unwrap();
        assert!(find_leftovers(tmp.path()).is_empty());
    }

    #[test]
    fn publish_keeps_the_first_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(tmp.path())).unwrap();
        let entry = cache.dir("keys").unwrap().join("e");
        fs::create_dir(&entry).unwrap();
        fs::write(entry.join("first"), b"1").unwrap();
        let scratch = cache.scratch_path("keys").unwrap();
        fs::write(scratch.join("second"), b"2").unwrap();
        cache.publish(&scratch, &entry).unwrap();
        assert!(entry.join("first").exists());
        assert!(!scratch.exists());
    }

    /// An entry in use cannot be taken for removal, by this process or another; one that is
    /// missing is made once, under its lock.
    #[test]
    fn a_used_entry_stays_locked_and_a_missing_one_is_made_once() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(tmp.path())).unwrap();
        let entry = cache.dir("keys").unwrap().join("e");
        assert!(!cache.use_if_present("k", "e", &entry).unwrap());
        assert!(
            cache.try_lock("k", "e").unwrap().is_some(),
            "a miss holds nothing"
        );
        let mut made = 0;
        for _ in 0..2 {
            cache
                .use_entry("k", "e", &entry, || {
                    made += 1;
                    fs::create_dir(&entry)?;
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(made, 1);
        assert!(cache.try_lock("k", "e").unwrap().is_none(), "in use");
        let failing = cache.use_entry("k", "f", &cache.dir("keys").unwrap().join("f"), || {
            anyhow::bail!("broken")
        });
        assert!(failing.is_err());
        assert!(
            cache.try_lock("k", "f").unwrap().is_some(),
            "a failed make holds nothing"
        );
    }
}
