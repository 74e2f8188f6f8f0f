//! Reading and writing inside a tree gib did not make (a stage3, a rootfs tarball's target, a
//! pulled image's layers, a built image's package database) through directory file
//! descriptors, so a symlink planted in the tree never leads gib out of it.
//!
//! Writes walk from the tree's root one component at a time with `O_NOFOLLOW` (a symlink or
//! a file where a directory is expected is an error naming it, never followed), then create,
//! remove or change only the last name relative to the resolved directory (`mkdirat`,
//! `unlinkat`, `mknodat`, `fchownat`, ... as umoci's securejoin and containerd's applier do).
//! Reads that must follow the tree's own symlinks (Gentoo's `etc/os-release`) use
//! `openat2(RESOLVE_IN_ROOT)`, where the kernel keeps every lookup inside the root. Files are
//! opened `O_NONBLOCK` and must be regular, so a fifo or device planted in a tree cannot stall
//! or feed a read.
//!
//! The calls are `nix`'s safe wrappers; they live here because raw syscalls live in `sandbox/`.
//! Not for: trees gib made itself and paths on the host (plain `std::fs`).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmodat, fstat, fstatat, makedev, mkdirat,
    mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchownat, linkat, symlinkat, unlinkat};

/// What a name in a tree is, read without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
    Symlink,
    /// A device node, fifo or socket.
    Other,
}

/// A device node or fifo to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Fifo,
}

/// One directory inside a tree, held open (`O_PATH`): every operation names an entry of it.
/// `path` is the host path, only for messages.
#[derive(Debug)]
pub struct TreeDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// The components of a path inside a tree: `.` and a leading `/` dropped, `..` refused.
pub fn tree_components(path: &Path) -> Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                bail!("`{}` climbs out of the tree (`..`)", path.display())
            }
        }
    }
    Ok(out)
}

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl TreeDir {
    /// The root of a tree at `path` (a path gib chose, so followed as given).
    pub fn open_root(path: &Path) -> Result<TreeDir> {
        let fd = openat(
            nix::fcntl::AT_FDCWD,
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(TreeDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The host path of this directory (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory `rel` below this one, never through a symlink. Missing directories are
    /// made (mode 0755) when `create` is set, else the answer is `None`.
    pub fn dir(&self, rel: &Path, create: bool) -> Result<Option<TreeDir>> {
        let mut current: Option<TreeDir> = None;
        for name in tree_components(rel)? {
            let parent = current.as_ref().unwrap_or(self);
            let next = match parent.child_dir(name)? {
                Some(dir) => dir,
                None if create => {
                    match mkdirat(&parent.fd, name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("cannot create {}", parent.path.join(name).display())
                            });
                        }
                    }
                    parent
                        .child_dir(name)?
                        .with_context(|| format!("{} vanished", parent.path.join(name).display()))?
                }
                None => return Ok(None),
            };
            current = Some(next);
        }
        match current {
            Some(dir) => Ok(Some(dir)),
            None => Ok(Some(self.reopen()?)),
        }
    }

    fn reopen(&self) -> Result<TreeDir> {
        Ok(TreeDir {
            fd: self
                .fd
                .try_clone()
                .with_context(|| format!("cannot open {}", self.path.display()))?,
            path: self.path.clone(),
        })
    }

    /// The directory `name` of this one; `None` when missing; an error when it is a symlink
    /// or no directory.
    fn child_dir(&self, name: &OsStr) -> Result<Option<TreeDir>> {
        let path = self.path.join(name);
        match openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(TreeDir { fd, path })),
            Err(Errno::ENOENT) => Ok(None),
            Err(Errno::ELOOP | Errno::ENOTDIR) => match self.kind(name)? {
                Some(NodeKind::Symlink) => {
                    bail!("{} is a symbolic link (not followed)", path.display())
                }
                _ => bail!("{} is not a directory", path.display()),
            },
            Err(e) => Err(e).with_context(|| format!("cannot open {}", path.display())),
        }
    }

    /// What `name` is, without following it; `None` when it does not exist.
    pub fn kind(&self, name: &OsStr) -> Result<Option<NodeKind>> {
        match fstatat(&self.fd, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(
                match SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT {
                    SFlag::S_IFDIR => NodeKind::Dir,
                    SFlag::S_IFREG => NodeKind::File,
                    SFlag::S_IFLNK => NodeKind::Symlink,
                    _ => NodeKind::Other,
                },
            )),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => {
                Err(e).with_context(|| format!("cannot stat {}", self.path.join(name).display()))
            }
        }
    }

    /// The names in this directory (no `.` and `..`), sorted.
    pub fn names(&self) -> Result<Vec<OsString>> {
        let fd = openat(
            &self.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot read {}", self.path.display()))?;
        let mut dir = nix::dir::Dir::from_fd(fd)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry.with_context(|| format!("cannot read {}", self.path.display()))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push(name.to_os_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Remove `name` (a directory with everything in it), never following a symlink; `false`
    /// when it did not exist.
    pub fn remove(&self, name: &OsStr) -> Result<bool> {
        let path = self.path.join(name);
        let context = || format!("cannot remove {}", path.display());
        match self.kind(name)? {
            None => Ok(false),
            Some(NodeKind::Dir) => {
                let dir = self.child_dir(name)?.with_context(context)?;
                for child in dir.names()? {
                    dir.remove(&child)?;
                }
                unlinkat(&self.fd, name, UnlinkatFlags::RemoveDir).with_context(context)?;
                Ok(true)
            }
            Some(_) => {
                unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir).with_context(context)?;
                Ok(true)
            }
        }
    }

    /// Make the directory `name` (mode 0700 until its real mode is set).
    pub fn mkdir(&self, name: &OsStr) -> Result<()> {
        mkdirat(&self.fd, name, Mode::from_bits_truncate(0o700))
            .with_context(|| format!("cannot create {}", self.path.join(name).display()))
    }

    /// Create the regular file `name` (which must not exist), open for writing.
    pub fn create_file(&self, name: &OsStr) -> Result<File> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .with_context(|| format!("cannot create {}", self.path.join(name).display()))?;
        Ok(File::from(fd))
    }

    /// Open the directory `name` for reading (to set its extended attributes).
    pub fn open_dir_file(&self, name: &OsStr) -> Result<File> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open {}", self.path.join(name).display()))?;
        Ok(File::from(fd))
    }

    pub fn symlink(&self, target: &Path, name: &OsStr) -> Result<()> {
        symlinkat(target, &self.fd, name)
            .with_context(|| format!("cannot create the link {}", self.path.join(name).display()))
    }

    /// Hardlink `name` to `source_name` of `source` (a symlink source is linked itself).
    pub fn hardlink(&self, name: &OsStr, source: &TreeDir, source_name: &OsStr) -> Result<()> {
        linkat(
            &source.fd,
            source_name,
            &self.fd,
            name,
            nix::fcntl::AtFlags::empty(),
        )
        .with_context(|| {
            format!(
                "cannot link {} to {}",
                self.path.join(name).display(),
                source.path.join(source_name).display()
            )
        })
    }

    /// Make a device node or fifo; `false` when the kernel does not let this process (device
    /// nodes need CAP_MKNOD in the initial user namespace).
    pub fn mknod(&self, name: &OsStr, special: Special, mode: u32) -> Result<bool> {
        let (kind, dev) = match special {
            Special::Char { major, minor } => (SFlag::S_IFCHR, makedev(major.into(), minor.into())),
            Special::Block { major, minor } => {
                (SFlag::S_IFBLK, makedev(major.into(), minor.into()))
            }
            Special::Fifo => (SFlag::S_IFIFO, 0),
        };
        match mknodat(
            &self.fd,
            name,
            kind,
            Mode::from_bits_truncate(mode & 0o777),
            dev,
        ) {
            Ok(()) => Ok(true),
            Err(Errno::EPERM) if special != Special::Fifo => Ok(false),
            Err(e) => {
                Err(e).with_context(|| format!("cannot create {}", self.path.join(name).display()))
            }
        }
    }

    /// Set the owner of `name` (a symlink itself, never its target).
    pub fn chown(&self, name: &OsStr, uid: u32, gid: u32) -> Result<()> {
        fchownat(
            &self.fd,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(|| {
            format!(
                "cannot change the owner of {}",
                self.path.join(name).display()
            )
        })
    }

    /// Set the mode of `name`; a symlink is left alone (Linux has no modes on links).
    pub fn chmod(&self, name: &OsStr, mode: u32) -> Result<()> {
        if self.kind(name)? == Some(NodeKind::Symlink) {
            return Ok(());
        }
        fchmodat(
            &self.fd,
            name,
            Mode::from_bits_truncate(mode & 0o7777),
            FchmodatFlags::FollowSymlink,
        )
        .with_context(|| format!("cannot set the mode of {}", self.path.join(name).display()))
    }

    /// Set the access and modification times of `name` (a symlink itself) to `mtime`.
    pub fn set_mtime(&self, name: &OsStr, mtime: i64) -> Result<()> {
        let time = TimeSpec::new(mtime, 0);
        utimensat(
            &self.fd,
            name,
            &time,
            &time,
            UtimensatFlags::NoFollowSymlink,
        )
        .with_context(|| format!("cannot set the time of {}", self.path.join(name).display()))
    }

    /// The contents of the regular file `name`, never through a symlink; `None` when missing.
    /// A symlink, fifo or device is an error naming it.
    pub fn read(&self, name: &OsStr) -> Result<Option<Vec<u8>>> {
        self.read_at_most(name, u64::MAX)
    }

    /// Like [`TreeDir::read`], for a file that must not be larger than `limit` bytes (an
    /// error naming it when it is, before anything is read).
    pub fn read_at_most(&self, name: &OsStr, limit: u64) -> Result<Option<Vec<u8>>> {
        let path = self.path.join(name);
        match openat(
            &self.fd,
            name,
            READ_FLAGS | OFlag::O_NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => read_regular_at_most(fd, &path, limit).map(Some),
            Err(Errno::ENOENT) => Ok(None),
            Err(Errno::ELOOP) => bail!("{} is a symbolic link (not followed)", path.display()),
            Err(e) => Err(e).with_context(|| format!("cannot open {}", path.display())),
        }
    }

    /// The contents of the regular file `rel`, its symlinks followed as if this directory were
    /// `/` (the kernel keeps every step inside); `None` when missing.
    pub fn read_in_root(&self, rel: &Path) -> Result<Option<Vec<u8>>> {
        let path = self.path.join(rel);
        let how = OpenHow::new()
            .flags(READ_FLAGS)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(&self.fd, rel, how) {
            Ok(fd) => read_regular(fd, &path).map(Some),
            Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot open {}", path.display())),
        }
    }
}

const READ_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);

fn read_regular(fd: OwnedFd, path: &Path) -> Result<Vec<u8>> {
    read_regular_at_most(fd, path, u64::MAX)
}

/// The bytes of a regular file of at most `limit` bytes, checked before reading and while
/// reading (it may grow meanwhile).
fn read_regular_at_most(fd: OwnedFd, path: &Path, limit: u64) -> Result<Vec<u8>> {
    let stat = fstat(fd.as_fd()).with_context(|| format!("cannot stat {}", path.display()))?;
    if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        bail!("{} is not a regular file", path.display());
    }
    let too_big = || anyhow::anyhow!("{} is larger than {limit} bytes", path.display());
    if u64::try_from(stat.st_size).unwrap_or(u64::MAX) > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    File::from(fd)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_refuse_symlinks_and_never_touch_their_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("victim"), "keep").unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("d")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("lnk")).unwrap();
        let root = TreeDir::open_root(&tree).unwrap();

        let err = root.dir(Path::new("lnk"), true).unwrap_err().to_string();
        assert!(err.contains("lnk is a symbolic link"), "{err}");
        assert!(root.dir(Path::new("d/../x"), true).is_err());
        assert!(root.dir(Path::new("missing/x"), false).unwrap().is_none());
        assert!(root.read(OsStr::new("lnk")).is_err());
        // Removing the link removes the link, not what it names.
        assert!(root.remove(OsStr::new("lnk")).unwrap());
        assert_eq!(
            std::fs::read_to_string(outside.join("victim")).unwrap(),
            "keep"
        );
        let d = root.dir(Path::new("d/e/f"), true).unwrap().unwrap();
        assert!(d.path().ends_with("d/e/f"));
        assert!(root.remove(OsStr::new("d")).unwrap());
        assert!(!tree.join("d").exists());
    }

    #[test]
    fn reads_in_root_follow_links_inside_only() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("secret"), "host").unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("usr/lib")).unwrap();
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("usr/lib/os-release"), "ID=x\n").unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", tree.join("etc/os-release")).unwrap();
        std::os::unix::fs::symlink("../../secret", tree.join("etc/escape")).unwrap();
        let root = TreeDir::open_root(&tree).unwrap();
        assert_eq!(
            root.read_in_root(Path::new("etc/os-release"))
                .unwrap()
                .unwrap(),
            b"ID=x\n"
        );
        // `../../secret` from etc/ stops at the tree's root: no such file there.
        assert_eq!(root.read_in_root(Path::new("etc/escape")).unwrap(), None);
    }
}
