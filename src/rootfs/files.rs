//! An image's `accounts:` and `paths:` written into its layer dir, over its parent's layer dirs.
//!
//! Where: in gib's user namespace (the `apply_files` job of `crate::jobs`), on the layer dir (the
//! upper dir of the staging overlay) with the parent's layer dirs as read-only lowers. The Rust
//! writers of `accounts` then serve root and rootless runs alike, and ownership is what the
//! image will have (uid 1000 is 1000 in the namespace, a subordinate id outside). Because a
//! child's `/etc/passwd` lives in its parent's layer, every path about to be edited is first
//! copied up from the nearest lower dir that has it, with its owner, mode and mtime, as
//! overlayfs would: the edit then lands in this image's layer and the parent's stays as it
//! is. (Doing this in the builder sandbox instead would have meant a second, shell,
//! implementation of the passwd/group writers.)
//!
//! Not handled: an opaque directory of the upper dir hides its lowers' children, but copy-up
//! does not read opaque markers; finish-root.sh creates none.

use std::os::unix::fs::{MetadataExt, PermissionsExt, lchown, symlink};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::accounts::{Accounts, PathEntry, PathKind, apply_accounts, apply_paths};

/// The account files `apply_accounts` edits.
const ACCOUNT_FILES: [&str; 4] = ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"];
/// Symlinks followed while copying up one path, as the kernel's limit (path_resolution(7)).
const MAX_SYMLINKS: u32 = 40;

/// What the `apply_files` job does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FilesJob {
    /// The image's own layer dir.
    pub upper: PathBuf,
    /// The parent's layer dirs, nearest first.
    pub lowers: Vec<PathBuf>,
    pub accounts: Option<Accounts>,
    /// With every `source` already copied into the input dir.
    pub paths: Vec<PathEntry>,
}

/// Apply a [`FilesJob`] (inside the user namespace, see `crate::jobs`).
pub fn apply_files(job: FilesJob) -> Result<()> {
    if let Some(accounts) = &job.accounts {
        for file in ACCOUNT_FILES {
            copy_up(&job.upper, &job.lowers, Path::new(file), true)?;
        }
        for user in &accounts.users {
            if let Some(home) = &user.home {
                copy_up(&job.upper, &job.lowers, Path::new(home), false)?;
            }
        }
        apply_accounts(&job.upper, accounts)?;
    }
    for entry in &job.paths {
        // A directory already in a lower layer gets its new owner and mode on a copy.
        let with_self = matches!(entry.kind, PathKind::Directory);
        copy_up(&job.upper, &job.lowers, Path::new(&entry.path), with_self)
            .with_context(|| format!("paths: `{}`", entry.path))?;
    }
    apply_paths(&job.upper, &job.paths)
}

/// Make `path` (inside the image) editable in `upper`: its parent directories, and the path
/// itself when `with_self`, are copied from the nearest lower that has them unless `upper`
/// has them already. Symlinks on the way are copied and followed, inside the image.
pub fn copy_up(upper: &Path, lowers: &[PathBuf], path: &Path, with_self: bool) -> Result<()> {
    let mut pending: Vec<PathBuf> = relative_parts(path);
    let mut done = PathBuf::new();
    let mut symlinks = 0;
    while !pending.is_empty() {
        let part = pending.remove(0);
        if part == Path::new("..") {
            done.pop();
            continue;
        }
        done.push(&part);
        let last = pending.is_empty();
        let in_upper = upper.join(&done);
        let meta = match std::fs::symlink_metadata(&in_upper) {
            Ok(meta) => meta,
            Err(_) => {
                let Some(lower) = lowers
                    .iter()
                    .map(|l| l.join(&done))
                    .find(|p| std::fs::symlink_metadata(p).is_ok())
                else {
                    // Nowhere below: the writers create it.
                    return Ok(());
                };
                let lower_meta = std::fs::symlink_metadata(&lower)
                    .with_context(|| format!("cannot read {}", lower.display()))?;
                if lower_meta.is_file() && !(last && with_self) {
                    return Ok(());
                }
                copy_entry(&lower, &in_upper, &lower_meta)?;
                lower_meta
            }
        };
        if meta.file_type().is_symlink() {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                bail!("too many symlinks resolving {}", path.display());
            }
            if last && !with_self {
                return Ok(());
            }
            let target = std::fs::read_link(&in_upper)
                .with_context(|| format!("cannot read the link {}", in_upper.display()))?;
            done.pop();
            if target.is_absolute() {
                done = PathBuf::new();
            }
            let mut resolved = relative_parts(&target);
            resolved.append(&mut pending);
            pending = resolved;
        }
    }
    Ok(())
}

/// The normal parts of `path` (and `..`), without the root.
fn relative_parts(path: &Path) -> Vec<PathBuf> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(PathBuf::from(part)),
            Component::ParentDir => Some(PathBuf::from("..")),
            _ => None,
        })
        .collect()
}

/// Copy one directory (without its children), symlink or regular file, keeping owner, mode
/// and mtime (a symlink's mtime is left: the layer writer clamps it).
fn copy_entry(from: &Path, to: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let kind = meta.file_type();
    if kind.is_dir() {
        std::fs::create_dir(to).with_context(|| format!("cannot create {}", to.display()))?;
    } else if kind.is_symlink() {
        let target =
            std::fs::read_link(from).with_context(|| format!("cannot read {}", from.display()))?;
        symlink(&target, to).with_context(|| format!("cannot create {}", to.display()))?;
    } else if kind.is_file() {
        std::fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    } else {
        bail!(
            "{} is neither a file, a directory nor a symlink",
            from.display()
        );
    }
    lchown(to, Some(meta.uid()), Some(meta.gid()))
        .with_context(|| format!("cannot give {} its owner", to.display()))?;
    if !kind.is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("cannot set the mode of {}", to.display()))?;
        let times = std::fs::FileTimes::new().set_modified(
            meta.modified()
                .with_context(|| format!("cannot read the mtime of {}", from.display()))?,
        );
        std::fs::File::open(to)
            .and_then(|f| f.set_times(times))
            .with_context(|| format!("cannot set the mtime of {}", to.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_up_takes_parents_and_the_file_from_the_nearest_lower() {
        let dir = tempfile::tempdir().unwrap();
        let (upper, near, far) = (
            dir.path().join("upper"),
            dir.path().join("near"),
            dir.path().join("far"),
        );
        for d in [&upper, &near, &far] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::create_dir_all(far.join("usr/etc")).unwrap();
        std::fs::set_permissions(far.join("usr/etc"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        std::fs::write(far.join("usr/etc/passwd"), "far\n").unwrap();
        std::fs::create_dir_all(near.join("usr/etc")).unwrap();
        std::fs::write(near.join("usr/etc/passwd"), "near\n").unwrap();
        symlink("usr/etc", far.join("etc")).unwrap();
        let lowers = vec![near.clone(), far.clone()];

        copy_up(&upper, &lowers, Path::new("/etc/passwd"), true).unwrap();
        assert_eq!(
            std::fs::read_link(upper.join("etc")).unwrap(),
            Path::new("usr/etc")
        );
        assert_eq!(
            std::fs::read_to_string(upper.join("usr/etc/passwd")).unwrap(),
            "near\n"
        );
        // Without the path itself: parents only, and nothing that no lower has.
        copy_up(&upper, &lowers, Path::new("/usr/share/x"), false).unwrap();
        assert!(!upper.join("usr/share").exists());
    }
}
