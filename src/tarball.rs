//! The one way gib writes a tar stream into a tree: `rootfs:` tarballs, stage3s and the
//! layers of pulled images (with their OCI whiteouts) all go through [`unpack_stream`].
//!
//! The archive is hostile until proven otherwise. Every entry's parent is resolved inside the
//! target through [`TreeDir`] (no symlink followed, `..` an error naming the entry), and only
//! the entry's own name is created, replaced or removed there. Owners (when kept), modes
//! (setuid included), xattrs and mtimes are set on the entry itself, never through a link.
//! Device nodes and fifos are made in place the same way everywhere; where the kernel refuses
//! a device node (any user namespace) it is counted as skipped, never written as a file.
//!
//! Not for: writing tars (`oci::tar_stream`, `oci::layer`) or reading trees gib made itself.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{File, FileTimes};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::printer::{ByteProgress, CountingReader};
use crate::sandbox::safe_fs::{NodeKind, Special, TreeDir, tree_components};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What an unpack did (the hidden unpack subcommands print it as one JSON line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackSummary {
    pub entries: u64,
    /// Character and block devices the kernel would not let gib make (a user namespace).
    pub skipped_special: u64,
}

impl UnpackSummary {
    pub fn add(&mut self, other: &UnpackSummary) {
        self.entries += other.entries;
        self.skipped_special += other.skipped_special;
    }
}

/// How a stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackMode {
    /// Give entries the owners of the archive (not in a single-id namespace).
    pub keep_owners: bool,
    /// An OCI layer: `.wh.<name>` removes `<name>` of the layers below, `.wh..wh..opq` empties
    /// its directory of what they put there; neither marker is kept.
    pub whiteouts: bool,
}

/// The compression of a tarball, from its file name (to tell a tarball from a directory in
/// gib.yaml; the stream itself is told apart by its magic bytes).
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

/// Unpack the tarball at `tarball` into `dest` (replaced if it exists). On failure `dest` is
/// removed, so nothing half-written is left behind.
/// `progress` hears the tarball's bytes read so far, of its size.
pub fn unpack_tarball(
    tarball: &Path,
    dest: &Path,
    keep_owners: bool,
    progress: impl ByteProgress + 'static,
) -> Result<UnpackSummary> {
    remove_existing(dest)?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let result = (|| {
        let root = TreeDir::open_root(dest)?;
        let mode = UnpackMode {
            keep_owners,
            whiteouts: false,
        };
        let summary = unpack_stream(open_with_progress(tarball, progress)?, &root, mode)?;
        if summary.entries == 0 && summary.skipped_special == 0 {
            bail!("the archive has no entries");
        }
        Ok(summary)
    })();
    if result.is_err() {
        remove_existing(dest).ok();
    }
    result
}

/// The error of a failed unpack: the same whether gib unpacked in-process (root) or through
/// its helper in the user namespace, so the same broken tarball gives the same exit code.
pub fn unpack_failed(what: &str, tarball: &Path, cause: &str) -> anyhow::Error {
    crate::printer::UserError::new(format!(
        "cannot unpack the {what} {}: {cause}",
        tarball.display()
    ))
    .into()
}

fn remove_existing(path: &Path) -> Result<()> {
    crate::cache::remove_any(path).with_context(|| format!("cannot remove {}", path.display()))
}

/// The decompressed stream of a tarball or layer blob: xz, gzip, zstd, bzip2 or plain tar,
/// told apart by the magic bytes (names and media types lie in the wild).
pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    open_with_progress(path, ())
}

/// [`open`], telling `progress` how many of the file's bytes were read.
pub fn open_with_progress(
    path: &Path,
    progress: impl ByteProgress + 'static,
) -> Result<Box<dyn Read>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = file.metadata().ok().map(|m| m.len());
    let file = CountingReader::new(file, total, progress);
    let mut input = BufReader::with_capacity(1 << 20, file);
    let magic = input
        .fill_buf()
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input))
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input).context("cannot start zstd")?)
    } else if magic.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(input))
    } else if magic.len() >= 262 && &magic[257..262] == b"ustar" || magic.is_empty() {
        Box::new(input)
    } else {
        bail!(
            "{} is not a tar archive (nor xz, gzip, zstd or bzip2 compressed)",
            path.display()
        )
    })
}

/// A directory's metadata, set after its children are written (a read-only directory must
/// not block them), deepest first.
struct DirMeta {
    path: PathBuf,
    meta: Meta,
}

/// Owner, mode, mtime and xattrs of one entry.
struct Meta {
    owner: (u32, u32),
    mode: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Write the tar stream `input` into the tree `root`.
pub fn unpack_stream(input: impl Read, root: &TreeDir, mode: UnpackMode) -> Result<UnpackSummary> {
    let mut archive = tar::Archive::new(input);
    let mut summary = UnpackSummary::default();
    let mut directories = Vec::new();
    // What this stream itself wrote: an opaque marker hides only the layers below.
    let mut written: HashSet<PathBuf> = HashSet::new();
    for entry in archive
        .entries()
        .map_err(|e| anyhow!("corrupt archive: {}", innermost(&e)))?
    {
        let mut entry =
            entry.map_err(|e| anyhow!("corrupt or truncated archive: {}", innermost(&e)))?;
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        unpack_entry(
            &mut entry,
            root,
            mode,
            &mut written,
            &mut directories,
            &mut summary,
        )
        .map_err(|e| anyhow!("entry `{shown}`: {e:#}"))?;
    }
    // Read to the end, so a truncated or corrupt compressed stream fails its checks even
    // when the tar end marker came before the damage.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(|e| {
        anyhow!(
            "corrupt or truncated archive (after the last entry): {}",
            innermost(&e)
        )
    })?;
    directories.sort_by(|a: &DirMeta, b: &DirMeta| b.path.cmp(&a.path));
    for dir in directories {
        let (parent, name) = split(&dir.path)?;
        let shown = || format!("entry `{}`", dir.path.display());
        // A later entry of the stream may have replaced or removed it.
        let Some(parent) = root.dir(&parent, false).with_context(shown)? else {
            continue;
        };
        if parent.kind(name)? == Some(NodeKind::Dir) {
            set_meta(&parent, name, &dir.meta, mode.keep_owners, None).with_context(shown)?;
        }
    }
    Ok(summary)
}

fn split(path: &Path) -> Result<(PathBuf, &OsStr)> {
    let components = tree_components(path)?;
    let (name, parents) = components.split_last().context("the tree's root itself")?;
    Ok((parents.iter().collect(), name))
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    root: &TreeDir,
    mode: UnpackMode,
    written: &mut HashSet<PathBuf>,
    directories: &mut Vec<DirMeta>,
    summary: &mut UnpackSummary,
) -> Result<()> {
    let path = entry.path()?.into_owned();
    let components = tree_components(&path)?;
    // The root itself (`./`): the target keeps its own metadata, as tar-rs did.
    let Some((name, parents)) = components.split_last() else {
        return Ok(());
    };
    let (name, parents): (&OsStr, PathBuf) = (name, parents.iter().collect());
    let rel: PathBuf = parents.join(name);
    if mode.whiteouts {
        if name == OPAQUE {
            if let Some(dir) = root.dir(&parents, false)? {
                for child in dir.names()? {
                    if !written.contains(&parents.join(&child)) {
                        dir.remove(&child)?;
                    }
                }
            }
            return Ok(());
        }
        if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                bail!("a whiteout must name one file (not `.`, `..` or nothing)");
            }
            if let Some(dir) = root.dir(&parents, false)? {
                dir.remove(OsStr::from_bytes(hidden))?;
            }
            return Ok(());
        }
    }
    let header = entry.header().clone();
    let kind = header.entry_type();
    let meta = Meta {
        owner: (header.uid()? as u32, header.gid()? as u32),
        mode: header.mode()? & 0o7777,
        mtime: header.mtime()? as i64,
        xattrs: xattrs(entry)?,
    };
    let dir = root.dir(&parents, true)?.context("no parent")?;
    // What is there is replaced whole, unless a directory meets a directory.
    match dir.kind(name)? {
        Some(NodeKind::Dir) if kind.is_dir() => {}
        Some(_) => {
            dir.remove(name)?;
        }
        None => {}
    }
    let special = |kind: tar::EntryType| -> Result<Special> {
        let major = header.device_major()?.unwrap_or(0);
        let minor = header.device_minor()?.unwrap_or(0);
        Ok(match kind {
            tar::EntryType::Char => Special::Char { major, minor },
            tar::EntryType::Block => Special::Block { major, minor },
            _ => Special::Fifo,
        })
    };
    match kind {
        tar::EntryType::Directory => {
            if dir.kind(name)?.is_none() {
                dir.mkdir(name)?;
            }
            directories.push(DirMeta {
                path: rel.clone(),
                meta,
            });
        }
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            let mut file = dir.create_file(name)?;
            std::io::copy(entry, &mut file)
                .map_err(|e| anyhow!("cannot write it: {}", innermost(&e)))?;
            set_meta(&dir, name, &meta, mode.keep_owners, Some(&file))?;
        }
        tar::EntryType::Symlink => {
            let target = entry.link_name()?.context("a symlink without a target")?;
            dir.symlink(&target, name)?;
            set_meta(&dir, name, &meta, mode.keep_owners, None)?;
        }
        tar::EntryType::Link => {
            let target = entry.link_name()?.context("a hardlink without a target")?;
            let (source_parent, source_name) =
                split(&target).with_context(|| format!("hardlink to `{}`", target.display()))?;
            let source = root.dir(&source_parent, false)?.with_context(|| {
                format!("hardlink to `{}`, which is not there", target.display())
            })?;
            dir.hardlink(name, &source, source_name)?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            if !dir.mknod(name, special(kind)?, meta.mode)? {
                summary.skipped_special += 1;
                return Ok(());
            }
            set_meta(&dir, name, &meta, mode.keep_owners, None)?;
        }
        tar::EntryType::XGlobalHeader => return Ok(()),
        other => bail!("unsupported entry type {other:?}"),
    }
    // Its ancestors count as written too: an opaque marker after `dir/sub/new` must keep
    // `dir/sub` (and `new` in it).
    let ancestors = rel.ancestors().filter(|a| !a.as_os_str().is_empty());
    for ancestor in ancestors.take_while(|_| mode.whiteouts) {
        if !written.insert(ancestor.to_path_buf()) {
            break;
        }
    }
    summary.entries += 1;
    Ok(())
}

/// The `SCHILY.xattr.*` records of an entry.
fn xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(extensions) = entry.pax_extensions()? {
        for extension in extensions {
            let extension = extension?;
            if let Ok(key) = extension.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            {
                out.push((name.to_string(), extension.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Owner, then mode (chown clears setuid bits), then xattrs (a file capability is cleared by
/// chown too), then the mtime. `file`: the entry already open (a regular file).
fn set_meta(
    dir: &TreeDir,
    name: &OsStr,
    meta: &Meta,
    keep_owners: bool,
    file: Option<&File>,
) -> Result<()> {
    let is_symlink = dir.kind(name)? == Some(NodeKind::Symlink);
    if keep_owners {
        dir.chown(name, meta.owner.0, meta.owner.1)?;
    }
    if is_symlink {
        return dir.set_mtime(name, meta.mtime);
    }
    dir.chmod(name, meta.mode)?;
    if !meta.xattrs.is_empty() {
        use xattr::FileExt;
        let opened;
        let target = match (file, dir.kind(name)?) {
            (Some(file), _) => Some(file),
            (None, Some(NodeKind::Dir)) => {
                opened = dir.open_dir_file(name)?;
                Some(&opened)
            }
            // Device nodes and fifos are not opened (a fifo would block): their xattrs go.
            _ => None,
        };
        if let Some(target) = target {
            for (key, value) in &meta.xattrs {
                target.set_xattr(key, value).with_context(|| {
                    format!(
                        "cannot set the xattr {key} of {}",
                        dir.path().join(name).display()
                    )
                })?;
            }
        }
    }
    match file {
        Some(file) => {
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(meta.mtime.max(0) as u64);
            file.set_times(FileTimes::new().set_accessed(time).set_modified(time))
                .with_context(|| {
                    format!("cannot set the time of {}", dir.path().join(name).display())
                })
        }
        None => dir.set_mtime(name, meta.mtime),
    }
}

fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
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

    /// A tar of raw entries: (path, type, link target or contents).
    fn tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o755);
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            let name = header.as_old_mut();
            name.name[..path.len()].copy_from_slice(path.as_bytes());
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                name.linkname[..data.len()].copy_from_slice(data.as_bytes());
                header.set_size(0);
                header.set_cksum();
                builder.append(&header, &[][..]).unwrap();
            } else {
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder.append(&header, data.as_bytes()).unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    fn unpack(bytes: &[u8], tree: &Path, whiteouts: bool) -> Result<UnpackSummary> {
        let root = TreeDir::open_root(tree).unwrap();
        let mode = UnpackMode {
            keep_owners: false,
            whiteouts,
        };
        unpack_stream(bytes, &root, mode)
    }

    #[test]
    fn hostile_entries_fail_naming_the_entry_and_touch_nothing_outside() {
        use tar::EntryType::{Directory, Fifo, Link, Regular, Symlink};
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("victim"), "keep").unwrap();
        let out = outside.to_str().unwrap();
        type Case<'a> = (Vec<(&'a str, tar::EntryType, &'a str)>, bool, &'a str);
        let cases: Vec<Case> = vec![
            (
                vec![("lnk", Symlink, out), ("lnk/.wh.victim", Regular, "")],
                true,
                "lnk/.wh.victim",
            ),
            (
                vec![("lnk", Symlink, out), ("lnk/.wh..wh..opq", Regular, "")],
                true,
                "lnk/.wh..wh..opq",
            ),
            (
                vec![("lnk", Symlink, out), ("lnk/.wh...", Regular, "")],
                true,
                "lnk/.wh...",
            ),
            (
                vec![("d", Directory, ""), ("d/.wh...", Regular, "")],
                true,
                "d/.wh...",
            ),
            (
                vec![("lnk", Symlink, out), ("lnk/dir", Regular, "x")],
                false,
                "lnk/dir",
            ),
            (
                vec![("lnk", Symlink, out), ("lnk/fifo", Fifo, "")],
                false,
                "lnk/fifo",
            ),
            (
                vec![("lnk", Symlink, out), ("lnk/victim", Link, "lnk")],
                false,
                "lnk/victim",
            ),
            (vec![("l", Link, "../outside/victim")], false, "`l`"),
            (vec![("../x", Regular, "x")], false, "../x"),
        ];
        for (entries, whiteouts, named) in cases {
            let tree = tmp.path().join("tree");
            crate::cache::remove_any(&tree).unwrap();
            std::fs::create_dir_all(&tree).unwrap();
            let err = unpack(&tar(&entries), &tree, whiteouts).unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(named), "{entries:?}: {text}");
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(
                std::fs::read_to_string(outside.join("victim")).unwrap(),
                "keep"
            );
            assert!(outside.join("dir").is_dir());
            let names: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
            assert_eq!(names.len(), 2, "{entries:?}");
        }
    }

    #[test]
    fn whiteouts_delete_and_opaque_dirs_hide_only_lower_layers() {
        use tar::EntryType::{Directory, Regular};
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        let base = tar(&[
            ("etc", Directory, ""),
            ("etc/a", Regular, "a"),
            ("etc/b", Regular, "b"),
            ("opt", Directory, ""),
            ("opt/old", Regular, "old"),
        ]);
        let top = tar(&[
            ("etc/.wh.a", Regular, ""),
            ("opt", Directory, ""),
            ("opt/new", Regular, "new"),
            ("opt/.wh..wh..opq", Regular, ""),
        ]);
        unpack(&base, &tree, true).unwrap();
        unpack(&top, &tree, true).unwrap();
        assert!(!tree.join("etc/a").exists());
        assert_eq!(std::fs::read_to_string(tree.join("etc/b")).unwrap(), "b");
        assert!(!tree.join("opt/old").exists());
        assert_eq!(
            std::fs::read_to_string(tree.join("opt/new")).unwrap(),
            "new"
        );
        assert!(!tree.join("opt/.wh..wh..opq").exists());

        // An opaque marker after the layer's own nested entries keeps them.
        let nested = tar(&[
            ("srv/sub/new", Regular, "n"),
            ("srv/.wh..wh..opq", Regular, ""),
        ]);
        std::fs::create_dir_all(tree.join("srv/sub")).unwrap();
        std::fs::write(tree.join("srv/sub/old"), "o").unwrap();
        std::fs::write(tree.join("srv/gone"), "g").unwrap();
        unpack(&nested, &tree, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("srv/sub/new")).unwrap(),
            "n"
        );
        assert!(!tree.join("srv/gone").exists());
    }
}
