//! Unpacking a tarball (.tar, .tar.gz, .tar.xz, .tar.zst, .tar.bz2) into a directory, keeping
//! modes, mtimes, xattrs and (as root) owners, so it can be read back as a layer tree.
//!
//! Run as root here. Non-root runs will do this inside gib's user namespace (where the
//! unpacking process is root of the namespace and owners map back to the image's ids).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The compression of a tarball, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TarballKind {
    Plain,
    Gzip,
    Xz,
    Zstd,
    Bzip2,
}

impl TarballKind {
    /// `None` when the name does not look like a tarball.
    pub fn from_path(path: &Path) -> Option<TarballKind> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let kinds = [
            (".tar", TarballKind::Plain),
            (".tar.gz", TarballKind::Gzip),
            (".tgz", TarballKind::Gzip),
            (".tar.xz", TarballKind::Xz),
            (".txz", TarballKind::Xz),
            (".tar.zst", TarballKind::Zstd),
            (".tzst", TarballKind::Zstd),
            (".tar.bz2", TarballKind::Bzip2),
            (".tbz2", TarballKind::Bzip2),
        ];
        kinds
            .into_iter()
            .find(|(ext, _)| name.ends_with(ext))
            .map(|(_, kind)| kind)
    }
}

/// A device node or fifo, made after the regular entries (tar-rs would make a plain file).
struct SpecialNode {
    path: PathBuf,
    kind: char,
    mode: u32,
    major: u32,
    minor: u32,
    owner: (u32, u32),
    mtime: u64,
}

/// Unpack `tarball` into the (empty, existing) directory `dest`.
pub fn unpack_tarball(tarball: &Path, kind: TarballKind, dest: &Path) -> Result<()> {
    let file = File::open(tarball).with_context(|| format!("cannot read {}", tarball.display()))?;
    let file = BufReader::with_capacity(1 << 20, file);
    let reader: Box<dyn Read> = match kind {
        TarballKind::Plain => Box::new(file),
        TarballKind::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(file)),
        TarballKind::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(file)),
        TarballKind::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(file)
                .with_context(|| format!("cannot read {}", tarball.display()))?,
        ),
        TarballKind::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(file)),
    };
    let as_root = nix::unistd::geteuid().is_root();
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_preserve_ownerships(as_root);
    archive.set_overwrite(true);
    let context = || format!("cannot unpack {}", tarball.display());

    // Directories last, deepest first (as tar-rs's own `unpack`), so a read-only directory
    // does not block its children.
    let mut directories = Vec::new();
    let mut specials = Vec::new();
    for entry in archive.entries().with_context(context)? {
        let mut entry = entry.with_context(context)?;
        let header = entry.header();
        let special = match header.entry_type() {
            tar::EntryType::Char => Some('c'),
            tar::EntryType::Block => Some('b'),
            tar::EntryType::Fifo => Some('p'),
            _ => None,
        };
        if let Some(kind) = special {
            let path = entry.path().with_context(context)?;
            let path = safe_join(dest, &path)?;
            specials.push(SpecialNode {
                path,
                kind,
                mode: header.mode().with_context(context)? & 0o7777,
                major: header.device_major().ok().flatten().unwrap_or(0),
                minor: header.device_minor().ok().flatten().unwrap_or(0),
                owner: (
                    header.uid().with_context(context)? as u32,
                    header.gid().with_context(context)? as u32,
                ),
                mtime: header.mtime().with_context(context)?,
            });
        } else if header.entry_type() == tar::EntryType::Directory {
            directories.push(entry);
        } else {
            entry.unpack_in(dest).with_context(context)?;
        }
    }
    for node in specials {
        make_special(&node, as_root)?;
    }
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut dir in directories {
        dir.unpack_in(dest).with_context(context)?;
    }
    Ok(())
}

/// `dest/path`, refusing absolute paths and `..` (a hostile tarball must stay inside `dest`).
fn safe_join(dest: &Path, path: &Path) -> Result<PathBuf> {
    let mut out = dest.to_path_buf();
    for component in path.components() {
        match component {
            std::path::Component::Normal(part) => out.push(part),
            std::path::Component::CurDir | std::path::Component::RootDir => {}
            _ => bail!("refusing a tar entry outside the tree: {}", path.display()),
        }
    }
    Ok(out)
}

/// Make a device node or fifo with coreutils `mknod` (keeping raw syscalls out of this
/// module), then give it its owner, mode and mtime.
fn make_special(node: &SpecialNode, as_root: bool) -> Result<()> {
    if let Some(parent) = node.path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut cmd = Command::new("mknod");
    cmd.arg("-m")
        .arg(format!("{:o}", node.mode))
        .arg(&node.path)
        .arg(node.kind.to_string());
    if node.kind != 'p' {
        cmd.arg(node.major.to_string()).arg(node.minor.to_string());
    }
    run(&mut cmd)?;
    if as_root {
        std::os::unix::fs::lchown(&node.path, Some(node.owner.0), Some(node.owner.1))
            .with_context(|| format!("cannot change the owner of {}", node.path.display()))?;
        // chown clears setuid/setgid bits, so the mode is set (again) after it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&node.path, std::fs::Permissions::from_mode(node.mode))
            .with_context(|| format!("cannot set the mode of {}", node.path.display()))?;
    }
    // The tarball's mtime, not the unpack time, so the layer does not depend on when it ran.
    run(Command::new("touch")
        .arg("-h")
        .arg("-d")
        .arg(format!("@{}", node.mtime))
        .arg(&node.path))
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(
            TarballKind::from_path(Path::new("a/root.tar.zst")),
            Some(TarballKind::Zstd)
        );
        assert_eq!(
            TarballKind::from_path(Path::new("x.TAR.GZ")),
            Some(TarballKind::Gzip)
        );
        assert_eq!(TarballKind::from_path(Path::new("dir")), None);
    }

    #[test]
    fn refuses_escaping_paths() {
        assert!(safe_join(Path::new("/d"), Path::new("../etc")).is_err());
        assert_eq!(
            safe_join(Path::new("/d"), Path::new("/a/b")).unwrap(),
            Path::new("/d/a/b")
        );
    }
}
