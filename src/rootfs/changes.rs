//! What an image really changes over its parent: the upper dir of the staging overlay minus
//! the copy-ups that changed nothing.
//!
//! Portage rewrites files on every merge whether or not their contents change (profile.env,
//! csh.env, ld.so.cache), and finish-root.sh touches the accounts files and chmods /tmp;
//! each write copies the parent's file up into the child's upper dir. [`prune_unchanged`]
//! removes every entry of the upper dir that the parent's layers show identically (type,
//! mode, owner, extended attributes, contents or link target; mtimes are ignored), so the
//! child's layer holds only what it adds or changes, and the whiteouts of what it removes
//! (a whiteout of a path no parent layer has hides nothing and goes too).
//!
//! Not for: writing the layer (`oci::layer`), which reads the pruned tree. Runs inside the
//! user namespace, where the upper dir's owners are the ids the build gave them.

use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What pruning removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneSummary {
    /// Files and symlinks identical to the parent's.
    pub files: u64,
    /// Directories left empty and identical to the parent's.
    pub dirs: u64,
    /// Whiteouts of paths the parent's layers do not have (the build removed something that
    /// only its builder showed at /staging, such as a package database kept aside).
    #[serde(default)]
    pub whiteouts: u64,
}

/// Remove from `upper` what `lowers` (the parent's layer trees, nearest first) already show
/// the same way. `upper` itself is kept.
pub fn prune_unchanged(upper: &Path, lowers: &[PathBuf]) -> Result<PruneSummary> {
    let mut summary = PruneSummary::default();
    if lowers.is_empty() {
        return Ok(summary);
    }
    prune_dir(upper, Path::new(""), lowers, &mut summary)?;
    Ok(summary)
}

/// Prune the children of `upper/rel`; returns whether the directory is empty afterwards.
fn prune_dir(
    upper: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    summary: &mut PruneSummary,
) -> Result<bool> {
    let dir = upper.join(rel);
    let entries = fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut empty = true;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let child_rel = rel.join(entry.file_name());
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)
            .with_context(|| format!("cannot stat {}", path.display()))?;
        let below = visible_in_lowers(lowers, &child_rel)?;
        let remove = if meta.is_dir() {
            let now_empty = prune_dir(upper, &child_rel, lowers, summary)?;
            let same = now_empty
                && !is_opaque(&path)
                && match &below {
                    Some(lower) => same_metadata(&path, &meta, lower)?,
                    None => false,
                };
            if same {
                fs::remove_dir(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                summary.dirs += 1;
            }
            same
        } else if is_whiteout(&meta) {
            // A whiteout hides something in the layers below, or nothing worth a tar entry.
            let idle = below.is_none();
            if idle {
                fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                summary.whiteouts += 1;
            }
            idle
        } else {
            let same = match &below {
                Some(lower) => same_entry(&path, &meta, lower)?,
                None => false,
            };
            if same {
                fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                summary.files += 1;
            }
            same
        };
        empty &= remove;
    }
    Ok(empty)
}

/// The lower entry an overlay of `lowers` shows at `rel`, if any: the nearest lower that has
/// it, unless a whiteout, a non-directory or an opaque directory above hides the rest.
pub(crate) fn visible_in_lowers(lowers: &[PathBuf], rel: &Path) -> Result<Option<PathBuf>> {
    let components: Vec<_> = rel.components().collect();
    for lower in lowers {
        let mut opaque_above = false;
        let mut missing = false;
        let mut at = lower.clone();
        for (i, component) in components.iter().enumerate() {
            at.push(component);
            let meta = match fs::symlink_metadata(&at) {
                Ok(meta) => meta,
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    missing = true;
                    break;
                }
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot stat {}", at.display()));
                }
            };
            let last = i + 1 == components.len();
            if is_whiteout(&meta) {
                // Deleted here: hidden in this lower and every one below.
                return Ok(None);
            }
            if last {
                return Ok(Some(at));
            }
            if !meta.is_dir() {
                // A file where a directory would be: nothing below shows through.
                return Ok(None);
            }
            opaque_above |= is_opaque(&at);
        }
        if missing && opaque_above {
            return Ok(None);
        }
    }
    Ok(None)
}

/// An overlayfs whiteout: a character device 0/0.
pub(crate) fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| matches!(xattr::get(path, name), Ok(Some(v)) if v == b"y"))
}

/// Same type, mode, owner and extended attributes (overlayfs bookkeeping aside).
fn same_metadata(path: &Path, meta: &Metadata, lower: &Path) -> Result<bool> {
    let lower_meta =
        fs::symlink_metadata(lower).with_context(|| format!("cannot stat {}", lower.display()))?;
    if meta.file_type() != lower_meta.file_type()
        || meta.mode() != lower_meta.mode()
        || meta.uid() != lower_meta.uid()
        || meta.gid() != lower_meta.gid()
    {
        return Ok(false);
    }
    if meta.file_type().is_symlink() {
        // Symlinks carry no extended attributes worth comparing (and cannot in a user xattr).
        return Ok(true);
    }
    Ok(xattrs(path)? == xattrs(lower)?)
}

/// Same metadata and the same contents (regular files), target (symlinks) or device.
fn same_entry(path: &Path, meta: &Metadata, lower: &Path) -> Result<bool> {
    if !same_metadata(path, meta, lower)? {
        return Ok(false);
    }
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        let read =
            |p: &Path| fs::read_link(p).with_context(|| format!("cannot read {}", p.display()));
        return Ok(read(path)? == read(lower)?);
    }
    if file_type.is_file() {
        return same_contents(path, lower);
    }
    let lower_meta =
        fs::symlink_metadata(lower).with_context(|| format!("cannot stat {}", lower.display()))?;
    Ok(meta.rdev() == lower_meta.rdev())
}

fn same_contents(a: &Path, b: &Path) -> Result<bool> {
    let open = |p: &Path| File::open(p).with_context(|| format!("cannot open {}", p.display()));
    let (mut fa, mut fb) = (open(a)?, open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na =
            read_full(&mut fa, &mut ba).with_context(|| format!("cannot read {}", a.display()))?;
        let nb =
            read_full(&mut fb, &mut bb).with_context(|| format!("cannot read {}", b.display()))?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Extended attributes and values, without overlayfs's own (origin, impure, opaque…).
fn xattrs(path: &Path) -> Result<Vec<(std::ffi::OsString, Vec<u8>)>> {
    let names =
        xattr::list(path).with_context(|| format!("cannot list xattrs of {}", path.display()))?;
    let mut attrs = Vec::new();
    for name in names {
        let text = name.to_string_lossy();
        if text.starts_with("trusted.overlay.") || text.starts_with("user.overlay.") {
            continue;
        }
        let value = xattr::get(path, &name)
            .with_context(|| format!("cannot read xattr {text} of {}", path.display()))?
            .unwrap_or_default();
        attrs.push((name, value));
    }
    attrs.sort();
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn copy_ups_that_changed_nothing_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, base, lib) = (
            tmp.path().join("u"),
            tmp.path().join("b"),
            tmp.path().join("l"),
        );
        write(&base.join("etc/passwd"), "root\n");
        write(&base.join("etc/profile.env"), "A=1\n");
        write(&lib.join("etc/profile.env"), "A=2\n");
        write(&base.join("usr/lib/x"), "x");
        symlink("usr/lib", base.join("lib")).unwrap();
        // The child rewrote passwd and profile.env the same, changed x, added y, kept lib.
        write(&upper.join("etc/passwd"), "root\n");
        write(&upper.join("etc/profile.env"), "A=2\n");
        write(&upper.join("usr/lib/x"), "changed");
        write(&upper.join("usr/bin/y"), "new");
        symlink("usr/lib", upper.join("lib")).unwrap();

        let summary = prune_unchanged(&upper, &[lib.clone(), base.clone()]).unwrap();
        assert_eq!(
            summary,
            PruneSummary {
                files: 3,
                dirs: 1,
                whiteouts: 0
            }
        );
        assert!(!upper.join("etc").exists());
        assert!(!upper.join("lib").exists());
        assert_eq!(
            fs::read_to_string(upper.join("usr/lib/x")).unwrap(),
            "changed"
        );
        assert!(upper.join("usr/bin/y").exists());
    }

    #[test]
    fn a_changed_mode_or_a_file_hidden_below_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, base, lib) = (
            tmp.path().join("u"),
            tmp.path().join("b"),
            tmp.path().join("l"),
        );
        write(&base.join("tmp/keep"), "k");
        write(&upper.join("tmp/keep"), "k");
        fs::set_permissions(upper.join("tmp/keep"), fs::Permissions::from_mode(0o600)).unwrap();
        // lib replaced base's directory d with a file: base's d/f is not what the image shows.
        write(&base.join("d/f"), "f");
        write(&lib.join("d"), "file");
        write(&upper.join("d2/f"), "f");
        write(&base.join("d2/f"), "f");
        fs::create_dir_all(lib.join("d2")).unwrap();
        xattr::set(lib.join("d2"), "user.overlay.opaque", b"y").ok();
        let opaque = is_opaque(&lib.join("d2"));

        prune_unchanged(&upper, &[lib, base]).unwrap();
        assert!(upper.join("tmp/keep").exists());
        // Under an opaque lower directory, base's d2/f is hidden: the upper's copy stays.
        assert_eq!(upper.join("d2/f").exists(), opaque);
    }

    /// Whiteouts (0/0 character devices, as overlayfs makes them; mknod needs root, which
    /// the test suite has) stay where they hide a parent's file and go where they hide none.
    #[test]
    fn whiteouts_that_hide_nothing_below_are_removed() {
        use nix::sys::stat::{Mode, SFlag, mknod};
        let tmp = tempfile::tempdir().unwrap();
        let (upper, base) = (tmp.path().join("u"), tmp.path().join("b"));
        write(&base.join("etc/gone"), "g");
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::create_dir_all(upper.join("var")).unwrap();
        fs::create_dir_all(base.join("var")).unwrap();
        for path in [upper.join("etc/gone"), upper.join("var/db")] {
            mknod(&path, SFlag::S_IFCHR, Mode::from_bits_truncate(0o000), 0)
                .expect("mknod of a whiteout (the unit tests run as root)");
        }
        let summary = prune_unchanged(&upper, &[base]).unwrap();
        assert_eq!(summary.whiteouts, 1);
        assert!(upper.join("etc/gone").symlink_metadata().is_ok());
        assert!(
            !upper.join("var").exists(),
            "var/db hid nothing; var is base's again"
        );
    }
}
