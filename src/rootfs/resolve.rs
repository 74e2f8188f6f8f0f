//! Resolving a path of the image to a path on the host, the way the kernel would inside the
//! image: symlinks with absolute targets start again at the image root, and nothing may lead
//! out of it.
//!
//! For code that writes into a staging root from the host (accounts, `paths:`) and for
//! matching package file lists against a root whose `/lib` may be a symlink. Not a sandbox:
//! it checks paths at one moment; gib owns the root while it runs.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Linux gives up after 40 symlinks in one lookup (path_resolution(7)).
pub(crate) const MAX_SYMLINKS: usize = 40;

/// The host path under `root` that the image path `path` names. Symlinks in the parent
/// components are followed inside the root; the last component is followed only when
/// `follow_last` is set. Components that do not exist yet are taken as they are.
///
/// Fails when `..` or a symlink target would climb above the root.
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> Result<PathBuf> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = components(Path::new(path));
    let mut symlinks = 0;
    while let Some(component) = pending.pop_front() {
        if component == ".." {
            if resolved.pop().is_none() {
                bail!("`{path}` leads out of the image root");
            }
            continue;
        }
        let candidate = host_path(root, &resolved).join(&component);
        let is_last = pending.is_empty();
        let is_symlink = std::fs::symlink_metadata(&candidate)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if is_symlink && (!is_last || follow_last) {
            symlinks += 1;
            if symlinks > MAX_SYMLINKS {
                bail!("`{path}` has too many levels of symbolic links");
            }
            let target = std::fs::read_link(&candidate)
                .with_context(|| format!("cannot read the link {}", candidate.display()))?;
            if target.is_absolute() {
                resolved.clear();
            }
            for (i, c) in components(&target).into_iter().enumerate() {
                pending.insert(i, c);
            }
            continue;
        }
        resolved.push(component);
    }
    Ok(host_path(root, &resolved))
}

fn host_path(root: &Path, components: &[OsString]) -> PathBuf {
    let mut path = root.to_path_buf();
    path.extend(components);
    path
}

/// The named components of a path, with `..` kept and `/` and `.` dropped.
pub(crate) fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn follows_symlinks_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib64")).unwrap();
        symlink("usr/lib64", r.join("lib64")).unwrap();
        symlink("/usr/lib64", r.join("abs")).unwrap();
        symlink("../lib64/libc.so", r.join("usr/lib64/link")).unwrap();
        assert_eq!(
            resolve_in_root(r, "/lib64/libc.so", false).unwrap(),
            r.join("usr/lib64/libc.so")
        );
        assert_eq!(
            resolve_in_root(r, "/abs/new/file", false).unwrap(),
            r.join("usr/lib64/new/file")
        );
        assert_eq!(
            resolve_in_root(r, "/usr/lib64/link", false).unwrap(),
            r.join("usr/lib64/link")
        );
        assert_eq!(
            resolve_in_root(r, "/usr/lib64/link", true).unwrap(),
            r.join("usr/lib64/libc.so")
        );
    }

    #[test]
    fn refuses_to_leave_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        symlink("../../../..", r.join("etc/up")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        for path in ["/../etc/passwd", "/etc/up/etc/passwd", "/loop/x"] {
            assert!(resolve_in_root(r, path, false).is_err(), "{path}");
        }
    }
}
