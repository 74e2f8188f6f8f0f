//! The merged view of an image's layer trees (nearest first), as the overlay the container
//! runs on shows it: a nearer layer's entry hides the same path below, whiteouts and opaque
//! directories hide what is under them (the overlay rules are `changes::visible_in_lowers`').
//!
//! Symlinks are followed inside the view only, as the kernel would with the image as `/`:
//! absolute targets start again at the image root, `..` at the root stays there, and a lookup
//! gives up after 40 links. Nothing of the host is ever followed or read.
//!
//! Not for: writing into a tree (`resolve`, `sandbox::safe_fs`).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::rootfs::changes::{is_whiteout, visible_in_lowers};
use crate::rootfs::resolve::{MAX_SYMLINKS, components};

/// One entry the image shows.
#[derive(Debug)]
pub struct Visible {
    /// Relative to the image root (`usr/bin/greet`).
    pub rel: PathBuf,
    /// Where its bytes are: in the nearest layer that has it.
    pub host: PathBuf,
    pub meta: Metadata,
}

impl Visible {
    /// The path inside the image (`/usr/bin/greet`).
    pub fn image_path(&self) -> String {
        image_path(&self.rel)
    }
}

/// What following a path in the view found.
#[derive(Debug)]
pub enum Lookup {
    Found(Box<Visible>),
    /// A component does not exist, or one that must be a directory is not.
    Missing,
    /// More than 40 symlinks on the way.
    TooManyLinks,
}

/// The layer trees of one image, nearest first.
pub struct MergedTree<'a> {
    layers: &'a [PathBuf],
}

impl<'a> MergedTree<'a> {
    pub fn new(layers: &'a [PathBuf]) -> Self {
        MergedTree { layers }
    }

    /// The entry at `rel` (relative, no `..`), no symlink followed on the way.
    pub fn entry(&self, rel: &Path) -> Result<Option<Visible>> {
        if rel.as_os_str().is_empty() {
            return Ok(None);
        }
        let Some(host) = visible_in_lowers(self.layers, rel)? else {
            return Ok(None);
        };
        let meta = std::fs::symlink_metadata(&host)
            .with_context(|| format!("cannot stat {}", host.display()))?;
        Ok(Some(Visible {
            rel: rel.to_path_buf(),
            host,
            meta,
        }))
    }

    /// Follow the image path `path` (absolute, or relative to the root); the last component
    /// is followed when it is a symlink and `follow_last` is set.
    pub fn lookup(&self, path: &Path, follow_last: bool) -> Result<Lookup> {
        let mut resolved: Vec<OsString> = Vec::new();
        let mut pending = components(path);
        let mut links = 0;
        if pending.is_empty() {
            // The root itself: a directory in every image.
            return Ok(match self.layers.first() {
                Some(top) => Lookup::Found(Box::new(Visible {
                    rel: PathBuf::new(),
                    host: top.clone(),
                    meta: std::fs::symlink_metadata(top)
                        .with_context(|| format!("cannot stat {}", top.display()))?,
                })),
                None => Lookup::Missing,
            });
        }
        while let Some(component) = pending.pop_front() {
            if component == ".." {
                // `..` of the root is the root (path_resolution(7)).
                resolved.pop();
                continue;
            }
            resolved.push(component);
            let rel: PathBuf = resolved.iter().collect();
            let Some(entry) = self.entry(&rel)? else {
                return Ok(Lookup::Missing);
            };
            let is_last = pending.is_empty();
            if entry.meta.file_type().is_symlink() && (!is_last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Ok(Lookup::TooManyLinks);
                }
                let target = std::fs::read_link(&entry.host)
                    .with_context(|| format!("cannot read the link {}", entry.host.display()))?;
                resolved.pop();
                if target.is_absolute() {
                    resolved.clear();
                }
                for (i, c) in components(&target).into_iter().enumerate() {
                    pending.insert(i, c);
                }
                if pending.is_empty() {
                    // A link to `/` (or to `.` at the root): the root directory.
                    return self.lookup(&resolved.iter().collect::<PathBuf>(), false);
                }
                continue;
            }
            if is_last {
                return Ok(Lookup::Found(Box::new(entry)));
            }
            if !entry.meta.is_dir() {
                return Ok(Lookup::Missing);
            }
        }
        Ok(Lookup::Missing)
    }

    /// Whether `path` leads (through symlinks) to a regular file of the image.
    pub fn is_file(&self, path: &Path) -> Result<bool> {
        Ok(matches!(self.lookup(path, true)?, Lookup::Found(v) if v.meta.is_file()))
    }

    /// The entries the image shows directly in the directory `rel` (relative), by path.
    pub fn walk_dir(&self, rel: &Path) -> Result<Vec<PathBuf>> {
        let mut names = BTreeSet::new();
        for layer in self.layers {
            let dir = layer.join(rel);
            if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            let listing = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot read {}", dir.display()))?;
            for item in listing {
                let item = item.with_context(|| format!("cannot read {}", dir.display()))?;
                names.insert(rel.join(item.file_name()));
            }
        }
        let mut visible = Vec::new();
        for child in names {
            if self.entry(&child)?.is_some() {
                visible.push(child);
            }
        }
        Ok(visible)
    }

    /// Every entry the image shows (the root aside), each once, sorted by path.
    pub fn walk(&self) -> Result<Vec<Visible>> {
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        for (depth, layer) in self.layers.iter().enumerate() {
            let mut entries = walkdir::WalkDir::new(layer)
                .follow_links(false)
                .min_depth(1)
                .into_iter();
            while let Some(entry) = entries.next() {
                let entry =
                    entry.with_context(|| format!("cannot read the tree {}", layer.display()))?;
                let rel = entry
                    .path()
                    .strip_prefix(layer)
                    .context("walkdir left its root")?
                    .to_path_buf();
                if depth == 0 {
                    // Nothing is above the nearest layer: all of it shows but its whiteouts.
                    let meta = entry
                        .metadata()
                        .with_context(|| format!("cannot stat {}", entry.path().display()))?;
                    if !is_whiteout(&meta) {
                        seen.insert(rel.clone());
                        found.push(Visible {
                            rel,
                            host: entry.into_path(),
                            meta,
                        });
                    }
                    continue;
                }
                let Some(visible) = self.entry(&rel)? else {
                    // Hidden by a nearer layer: so is everything under it.
                    if entry.file_type().is_dir() {
                        entries.skip_current_dir();
                    }
                    continue;
                };
                if visible.host == entry.path() && seen.insert(rel) {
                    found.push(visible);
                } else if entry.file_type().is_dir() && !visible.meta.is_dir() {
                    entries.skip_current_dir();
                }
            }
        }
        found.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(found)
    }
}

/// The first `limit` bytes of the regular file at `host` (a path the view's lookup found, its
/// directories checked to be none of the tree's symlinks), never through a symlink, and
/// without blocking on a fifo planted where a file was.
pub fn read_prefix(host: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(host)
        .with_context(|| format!("cannot open {}", host.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot stat {}", host.display()))?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", host.display());
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", host.display()))?;
    Ok(bytes)
}

/// `/` and the relative path's components.
pub fn image_path(rel: &Path) -> String {
    format!("/{}", rel.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn found(tree: &MergedTree<'_>, path: &str) -> Option<String> {
        match tree.lookup(Path::new(path), true).unwrap() {
            Lookup::Found(v) => Some(v.image_path()),
            Lookup::Missing => None,
            Lookup::TooManyLinks => Some("loop".into()),
        }
    }

    #[test]
    fn follows_links_inside_the_image_only() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib64")).unwrap();
        std::fs::write(r.join("usr/lib64/libc.so.6"), "").unwrap();
        symlink("usr/lib64", r.join("lib64")).unwrap();
        symlink("/../../lib64/libc.so.6", r.join("up")).unwrap();
        symlink(outside.path().join("secret"), r.join("host")).unwrap();
        symlink("a", r.join("b")).unwrap();
        symlink("b", r.join("a")).unwrap();
        symlink("/", r.join("root")).unwrap();
        let layers = [r.to_path_buf()];
        let tree = MergedTree::new(&layers);
        assert_eq!(
            found(&tree, "/lib64/libc.so.6").as_deref(),
            Some("/usr/lib64/libc.so.6")
        );
        // `..` stops at the image root, as it would in the container.
        assert_eq!(found(&tree, "/up").as_deref(), Some("/usr/lib64/libc.so.6"));
        // An absolute target names the image's path, never the host's file.
        assert_eq!(found(&tree, "/host"), None);
        assert_eq!(found(&tree, "/a").as_deref(), Some("loop"));
        assert_eq!(
            found(&tree, "/root/lib64/libc.so.6").as_deref(),
            Some("/usr/lib64/libc.so.6")
        );
        assert_eq!(found(&tree, "/usr/lib64/libc.so.6/x"), None);
    }

    #[test]
    fn nearer_layers_hide_and_whiteouts_delete() {
        let (child, parent) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (c, p) = (child.path(), parent.path());
        std::fs::create_dir_all(p.join("usr/lib")).unwrap();
        std::fs::write(p.join("usr/lib/gone.so"), "").unwrap();
        std::fs::write(p.join("usr/lib/kept.so"), "parent").unwrap();
        std::fs::create_dir_all(p.join("opt/sub")).unwrap();
        std::fs::write(p.join("opt/sub/old"), "").unwrap();
        std::fs::create_dir_all(c.join("usr/lib")).unwrap();
        std::fs::write(c.join("usr/lib/kept.so"), "child").unwrap();
        // A file where the parent had a directory hides the whole directory.
        std::fs::write(c.join("opt"), "").unwrap();
        let whiteout = nix::sys::stat::mknod(
            &c.join("usr/lib/gone.so"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            0,
        );
        let layers = [c.to_path_buf(), p.to_path_buf()];
        let tree = MergedTree::new(&layers);
        let paths: Vec<String> = tree
            .walk()
            .unwrap()
            .iter()
            .map(Visible::image_path)
            .collect();
        assert!(!paths.contains(&"/opt/sub/old".to_string()), "{paths:?}");
        assert!(paths.contains(&"/opt".to_string()), "{paths:?}");
        assert_eq!(
            paths.iter().filter(|p| *p == "/usr/lib/kept.so").count(),
            1,
            "{paths:?}"
        );
        let Lookup::Found(kept) = tree.lookup(Path::new("/usr/lib/kept.so"), true).unwrap() else {
            panic!("kept.so is not found");
        };
        assert_eq!(kept.host, c.join("usr/lib/kept.so"));
        // Only root may make a whiteout device; unprivileged runs check the rest.
        if whiteout.is_ok() {
            assert!(
                !paths.contains(&"/usr/lib/gone.so".to_string()),
                "{paths:?}"
            );
            assert!(found(&tree, "/usr/lib/gone.so").is_none());
        }
    }
}
