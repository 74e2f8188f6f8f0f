//! Throwaway overlay directories (an upper and a work dir) for one sandbox run, and their
//! removal. Files in them get the sandbox's ids (subordinate ids on the host, which the user
//! cannot delete), so they are removed from inside a user namespace.
//!
//! Each scratch dir holds a `lock` file, flock'ed while its gib runs: a scratch dir whose lock
//! can be taken belongs to a gib that died, and [`remove_stale`] removes it.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};

use super::{SandboxSpec, SandboxStdio};

/// An upper and a work dir under `<dir>/.tmp-*`, removed by [`OverlayScratch::remove`].
#[derive(Debug)]
pub struct OverlayScratch {
    path: PathBuf,
    _lock: File,
}

impl OverlayScratch {
    /// A fresh scratch dir in `dir` (created), after removing the stale ones there.
    pub fn create(dir: &Path) -> Result<OverlayScratch> {
        // A scratch dir is made for a sandbox: say first when none can be made.
        super::idmap::check_userns_enabled()?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        remove_stale(dir)?;
        let path = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(dir)
            .with_context(|| format!("cannot create a scratch directory in {}", dir.display()))?
            .keep();
        // Locked before it has its name: a scratch dir without a lock file is being made, and
        // another gib's remove_stale never finds this one's lock free in between.
        let making = path.join("lock.new");
        let lock = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&making)
            .with_context(|| format!("cannot create {}", making.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", making.display()))?;
        std::fs::rename(&making, path.join("lock"))
            .with_context(|| format!("cannot rename {}", making.display()))?;
        super::hand_over(&path)?;
        for sub in ["upper", "work"] {
            let sub = path.join(sub);
            std::fs::create_dir(&sub)
                .with_context(|| format!("cannot create {}", sub.display()))?;
        }
        Ok(OverlayScratch { path, _lock: lock })
    }

    /// The scratch directory itself (holds `upper`, `work` and whatever the caller adds).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn upper(&self) -> PathBuf {
        self.path.join("upper")
    }

    pub fn work(&self) -> PathBuf {
        self.path.join("work")
    }

    /// Remove the scratch dir with everything the sandbox wrote into it.
    pub fn remove(self) -> Result<()> {
        remove_tree(&self.path)
    }
}

fn lock_file(scratch: &Path) -> Result<File> {
    let path = scratch.join("lock");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// Remove the scratch dirs in `dir` whose gib is gone (their lock is free).
pub fn remove_stale(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let named_scratch = entry.file_name().to_string_lossy().starts_with(".tmp-");
        if !named_scratch || !path.join("lock").exists() {
            continue;
        }
        let Ok(lock) = lock_file(&path) else { continue };
        if lock.try_lock().is_ok() {
            remove_tree(&path)?;
        }
    }
    Ok(())
}

/// Remove a cache entry with [`remove_tree`], renamed out of sight first (`.old-<name>` beside
/// it), so a removal cut short leaves nothing that looks like a whole entry; `gib clean`
/// removes what is left.
pub fn retire_tree(path: &Path) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let gone = path.with_file_name(format!(".old-{name}"));
    std::fs::rename(path, &gone)
        .with_context(|| format!("cannot move {} aside", path.display()))?;
    remove_tree(&gone)
}

/// Remove a tree that may hold files with the sandbox's ids, from inside a user namespace
/// (no root, no mounts) where those ids are ours. As root, on the host: a root gib's trees
/// also hold files of the host's root (a `rootfs:` tarball unpacked with its owners), which
/// the sandbox's range cannot remove.
pub fn remove_tree(path: &Path) -> Result<()> {
    let rm: Vec<std::ffi::OsString> = vec![
        "rm".into(),
        "-rf".into(),
        "--one-file-system".into(),
        "--".into(),
        path.into(),
    ];
    if super::id_mode()?.host_root().is_some() {
        let status = std::process::Command::new(&rm[0])
            .args(&rm[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("cannot run rm to remove {}", path.display()))?;
        if !status.success() {
            anyhow::bail!("cannot remove {} (rm: {status})", path.display());
        }
        return Ok(());
    }
    let spec = SandboxSpec::in_namespace("gib-cleanup", rm);
    let stdio = SandboxStdio {
        stdin: Stdio::null(),
        stdout: Stdio::null(),
        stderr: Stdio::inherit(),
    };
    let exit =
        super::run(&spec, stdio).with_context(|| format!("cannot remove {}", path.display()))?;
    if !exit.success() {
        anyhow::bail!("cannot remove {} (rm: {exit})", path.display());
    }
    Ok(())
}
