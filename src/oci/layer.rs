//! Layers: a directory tree (plus what it removes from the layers below) streamed in one pass
//! into a tar, hashed (diff_id), compressed, hashed again (digest) and stored as a blob.
//!
//! Deterministic: sorted walk, parents before children, numeric owners only, mtimes clamped to
//! SOURCE_DATE_EPOCH, sorted xattrs, one fixed gzip implementation with a fixed block size.
//! Bounded memory: file contents are streamed through fixed buffers whatever the tree size.
//!
//! The writer takes everything it needs as arguments (no environment, no globals), so a
//! helper process (e.g. one inside a user namespace, where the tree's owners read back as they
//! will be in the image) can run it and hand the [`Layer`] back as JSON.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use gzp::ZWriter;
use gzp::deflate::Gzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};
use serde::{Deserialize, Serialize};

use super::blob::{BlobStore, BlobWriter};
use super::spec::{Digest, HashingWriter, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD};
use super::tar_stream::{EntryHeader, EntryKind, TarStream};
use crate::printer::{ByteProgress, CountingWriter};

/// gzip level. Measured on a 430 MB Debian root (benches/oci-bench.sh): level 4 costs 27% less
/// CPU than level 6 for a 1.5% bigger layer, still smaller than buildah's default gzip.
const GZIP_LEVEL: u32 = 4;
/// Independent gzip blocks of this size are compressed in parallel. Fixed, so the output
/// depends only on the input, never on the number of threads.
const GZIP_BLOCK_SIZE: usize = 1 << 20;
/// zstd's default level, the same `zstd` and `buildah --compression-format zstd` use.
const ZSTD_LEVEL: i32 = 3;
/// Input per zstd worker job: smaller than zstd's default for level 3 to keep peak memory
/// well under 64 MiB with a few workers.
const ZSTD_JOB_SIZE: u32 = 4 << 20;
/// Thread caps that keep peak memory under 64 MiB on big machines (each gzip thread holds
/// about 4 MiB of blocks, each zstd worker about 9 MiB). The output does not depend on them.
const MAX_GZIP_THREADS: usize = 8;
const MAX_ZSTD_WORKERS: usize = 4;
/// Buffer for file contents on their way into the tar stream.
const READ_BUFFER: usize = 256 << 10;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// What goes into a layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerSource {
    /// The tree whose contents (not the root itself) become the layer.
    pub root: PathBuf,
    /// Paths (relative to the image root; a leading `/` is ignored) that this layer removes
    /// from the layers below: each becomes a `.wh.<name>` whiteout, or an opaque directory
    /// marker when the tree has a directory at that path again.
    #[serde(default)]
    pub removed: Vec<PathBuf>,
    /// Read overlayfs markers in the tree: a 0/0 character device is a whiteout, a directory
    /// with `trusted.overlay.opaque=y` or `user.overlay.opaque=y` is opaque.
    #[serde(default)]
    pub overlay_markers: bool,
    /// Write only part of the tree (one of several layers cut from it); `None`: all of it.
    #[serde(default)]
    pub filter: Option<PathFilter>,
}

/// Which part of a tree a layer holds. Paths are relative to the tree, as the walk sees them
/// (no symlink in them is followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathFilter {
    /// These paths, and the directories leading to them (with their own metadata, so every
    /// layer that needs `usr/lib64` carries the same entry for it). No whiteouts or opaque
    /// markers: a slice of a tree adds files, it removes nothing.
    Only(Vec<PathBuf>),
    /// Everything but these paths (directories are always written).
    Except(Vec<PathBuf>),
}

/// How a layer's tar stream is compressed (`build.compression` in gib.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Gzip,
    Zstd,
}

/// How to write a layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerOptions {
    pub compression: Compression,
    /// Clamp mtimes newer than this (seconds since the epoch).
    pub source_date_epoch: Option<i64>,
    /// Compression threads (at least 1). The output is the same for any value.
    pub threads: usize,
    /// Owners rewritten on the way: for a tree read outside the sandbox's user namespace,
    /// the host ids it maps become the ids they are inside (the user is root). `None`: the
    /// owners as they are.
    #[serde(default)]
    pub owners: Option<OwnerMap>,
}

/// Ranges of host ids written as other ids, as a uid_map/gid_map reads: host ids
/// `outside..outside+count` are `inside..inside+count`. Ids in no range stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerMap {
    pub uids: Vec<IdShift>,
    pub gids: Vec<IdShift>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdShift {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl OwnerMap {
    pub fn uid(&self, host: u32) -> u32 {
        shift(&self.uids, host)
    }

    pub fn gid(&self, host: u32) -> u32 {
        shift(&self.gids, host)
    }
}

fn shift(ranges: &[IdShift], host: u32) -> u32 {
    ranges
        .iter()
        .find(|r| host >= r.outside && u64::from(host) < u64::from(r.outside) + u64::from(r.count))
        .map_or(host, |r| r.inside + (host - r.outside))
}

/// A stored layer blob: what a manifest and a config need to know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    pub media_type: String,
}

/// Write the layer of `src` into `store`. Fails (leaving no blob behind) when a file cannot
/// be read or the store's disk is full; errors name the path.
/// `progress` hears the bytes of the tar stream written so far.
pub fn write_layer(
    src: &LayerSource,
    store: &BlobStore,
    opts: &LayerOptions,
    progress: &dyn ByteProgress,
) -> Result<Layer> {
    let root_meta = std::fs::symlink_metadata(&src.root)
        .with_context(|| format!("cannot read the layer tree {}", src.root.display()))?;
    if !root_meta.is_dir() {
        bail!("the layer tree {} is not a directory", src.root.display());
    }
    let blob = store.writer()?;
    let threads = opts.threads.max(1);
    let (diff_id, blob) = match opts.compression {
        Compression::Gzip => {
            let mut gz = gzip_encoder(blob, threads)?;
            let mut hashing = HashingWriter::new(CompressorInput::new(&mut gz));
            let result = write_tar(src, opts, &mut CountingWriter::new(&mut hashing, progress));
            let (diff_id, _, input) = hashing.finish();
            let compressor_failed = input.failed;
            if compressor_failed {
                // gzp has shut itself down and returned its error; `finish` would panic.
                result?;
                bail!("gzip failed for the layer of {}", src.root.display());
            }
            // Always finish otherwise: gzp joins its threads there (and panics on drop).
            let finished = gz.finish();
            result?;
            let blob = finished.map_err(gzp_error).with_context(|| {
                format!("cannot write the layer blob in {}", store.root().display())
            })?;
            (diff_id, blob)
        }
        Compression::Zstd => {
            let mut zst =
                zstd::stream::write::Encoder::new(blob, ZSTD_LEVEL).context("cannot start zstd")?;
            // Any worker count >= 1 gives the same bytes; 0 (single-threaded mode) differs.
            zst.multithread(threads.min(MAX_ZSTD_WORKERS) as u32)
                .context("cannot start zstd workers")?;
            // A fixed job size: part of the output format, and it bounds memory per worker.
            zst.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))
                .context("cannot set the zstd job size")?;
            let mut hashing = HashingWriter::new(CompressorInput::new(&mut zst));
            write_tar(src, opts, &mut CountingWriter::new(&mut hashing, progress))?;
            let (diff_id, _, _) = hashing.finish();
            let blob = zst.finish().with_context(|| {
                format!("cannot write the layer blob in {}", store.root().display())
            })?;
            (diff_id, blob)
        }
    };
    let stored = commit(blob, store)?;
    Ok(Layer {
        diff_id,
        digest: stored.digest,
        size: stored.size,
        media_type: match opts.compression {
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
        }
        .to_string(),
    })
}

/// The one gzip compressor of layers: fixed implementation (flate2's zlib-rs backend, pinned
/// in Cargo.toml), level and block size, header mtime 0 and no file name.
fn gzip_encoder<W: Write + Send + 'static>(
    out: W,
    threads: usize,
) -> Result<ParCompress<'static, Gzip, W>> {
    Ok(ParCompressBuilder::<Gzip>::new()
        .buffer_size(GZIP_BLOCK_SIZE)
        .context("invalid gzip block size")?
        .num_threads(threads.clamp(1, MAX_GZIP_THREADS))
        .context("invalid number of gzip threads")?
        .compression_level(gzp::Compression::new(GZIP_LEVEL))
        .from_writer(out))
}

fn commit(blob: BlobWriter, store: &BlobStore) -> Result<super::blob::StoredBlob> {
    blob.commit()
        .with_context(|| format!("cannot store a layer in {}", store.root().display()))
}

fn gzp_error(err: gzp::GzpError) -> io::Error {
    match err {
        gzp::GzpError::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// The compressor's input, behind the hashing writer that yields the diff_id. Swallows
/// `flush` so the compressor's block boundaries (and so the output) never depend on when
/// anyone flushed.
struct CompressorInput<'a, W: Write> {
    inner: &'a mut W,
    /// Whether the compressor returned an error (it must not be used after that).
    failed: bool,
}

impl<'a, W: Write> CompressorInput<'a, W> {
    fn new(inner: &'a mut W) -> Self {
        CompressorInput {
            inner,
            failed: false,
        }
    }
}

impl<W: Write> Write for CompressorInput<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("the compressor has already failed"));
        }
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Write the whole tar of `src` into `out`.
fn write_tar<W: Write>(src: &LayerSource, opts: &LayerOptions, out: &mut W) -> Result<()> {
    let mut walker = TreeWalker {
        src,
        opts,
        tar: TarStream::new(out),
        hardlinks: HashMap::new(),
        removed: removed_by_parent(&src.removed)?,
        buffer: vec![0u8; READ_BUFFER],
    };
    walker.walk()?;
    walker.tar.finish().map_err(|e| write_error(e, src))?;
    Ok(())
}

/// The removed paths grouped by parent directory (relative, `b""` for the root).
fn removed_by_parent(removed: &[PathBuf]) -> Result<BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>> {
    let mut map: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for path in removed {
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => parts.push(part.as_bytes().to_vec()),
                Component::RootDir | Component::CurDir => {}
                _ => bail!("a removed path must not contain `..`: {}", path.display()),
            }
        }
        let Some(name) = parts.pop() else {
            bail!("cannot remove the image root ({})", path.display());
        };
        map.entry(parts.join(&b'/')).or_default().insert(name);
    }
    Ok(map)
}

/// A [`PathFilter`] made ready for the walk.
enum Filter {
    All,
    Only {
        paths: BTreeSet<Vec<u8>>,
        /// Every directory leading to one of `paths`.
        parents: BTreeSet<Vec<u8>>,
    },
    Except(BTreeSet<Vec<u8>>),
}

enum Decision {
    Write,
    Skip,
    /// Skip a directory and everything under it.
    SkipTree,
}

impl Filter {
    fn new(filter: Option<&PathFilter>) -> Filter {
        let relative = |paths: &[PathBuf]| -> BTreeSet<Vec<u8>> {
            paths
                .iter()
                .map(|p| {
                    let parts: Vec<&[u8]> = p
                        .components()
                        .filter_map(|c| match c {
                            Component::Normal(part) => Some(part.as_bytes()),
                            _ => None,
                        })
                        .collect();
                    parts.join(&b'/')
                })
                .filter(|p| !p.is_empty())
                .collect()
        };
        match filter {
            None => Filter::All,
            Some(PathFilter::Except(paths)) => Filter::Except(relative(paths)),
            Some(PathFilter::Only(paths)) => {
                let paths = relative(paths);
                let mut parents = BTreeSet::new();
                for path in &paths {
                    let mut rest: &[u8] = path;
                    while let Some(slash) = rest.iter().rposition(|&b| b == b'/') {
                        rest = &rest[..slash];
                        if !parents.insert(rest.to_vec()) {
                            break;
                        }
                    }
                }
                Filter::Only { paths, parents }
            }
        }
    }

    fn decide(&self, rel: &[u8], is_dir: bool) -> Decision {
        match self {
            Filter::All => Decision::Write,
            Filter::Except(paths) if !is_dir && paths.contains(rel) => Decision::Skip,
            Filter::Except(_) => Decision::Write,
            Filter::Only { paths, parents } => {
                if paths.contains(rel) || (is_dir && parents.contains(rel)) {
                    Decision::Write
                } else if is_dir {
                    Decision::SkipTree
                } else {
                    Decision::Skip
                }
            }
        }
    }
}

struct TreeWalker<'a, W: Write> {
    src: &'a LayerSource,
    opts: &'a LayerOptions,
    tar: TarStream<W>,
    /// First tar path seen for each (dev, inode) of a multiply-linked non-directory.
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    /// Whiteouts still to write, by parent directory.
    removed: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>,
    buffer: Vec<u8>,
}

impl<W: Write> TreeWalker<'_, W> {
    fn walk(&mut self) -> Result<()> {
        self.write_removed(b"", &self.src.root.clone())?;
        let filter = Filter::new(self.src.filter.as_ref());
        let mut walk = walkdir::WalkDir::new(&self.src.root)
            .follow_links(false)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = walk.next() {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(&self.src.root).to_path_buf();
                anyhow::Error::new(e).context(format!("cannot read {}", path.display()))
            })?;
            let rel = entry
                .path()
                .strip_prefix(&self.src.root)
                .with_context(|| format!("{} is outside the tree", entry.path().display()))?
                .as_os_str()
                .as_bytes()
                .to_vec();
            match filter.decide(&rel, entry.file_type().is_dir()) {
                Decision::Write => self.write_entry(entry.path(), rel)?,
                Decision::Skip => {}
                Decision::SkipTree => walk.skip_current_dir(),
            }
        }
        // Whiteouts whose parent directory is not in this tree (it lives in a lower layer).
        let rest = std::mem::take(&mut self.removed);
        for (parent, names) in rest {
            for name in names {
                self.write_whiteout(&join(
                    &parent,
                    &[WHITEOUT_PREFIX.as_bytes(), &name].concat(),
                ))?;
            }
        }
        Ok(())
    }

    fn write_entry(&mut self, path: &Path, rel: Vec<u8>) -> Result<()> {
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let file_type = meta.file_type();
        let markers =
            self.src.overlay_markers && !matches!(self.src.filter, Some(PathFilter::Only(_)));
        if markers && file_type.is_char_device() && meta.rdev() == 0 {
            let name = path.file_name().unwrap_or_default().as_bytes();
            let parent = parent_of(&rel);
            return self
                .write_whiteout(&join(parent, &[WHITEOUT_PREFIX.as_bytes(), name].concat()));
        }
        let xattrs = read_xattrs(path)?;
        let opaque = file_type.is_dir()
            && ((markers
                && xattrs.iter().any(|(k, v)| {
                    (k == "trusted.overlay.opaque" || k == "user.overlay.opaque") && v == b"y"
                }))
                || self.removed_contains(&rel));
        let xattrs: Vec<(String, Vec<u8>)> =
            xattrs.into_iter().filter(|(k, _)| keep_xattr(k)).collect();
        let mut header = EntryHeader {
            path: rel.clone(),
            kind: EntryKind::Directory,
            mode: meta.mode() & 0o7777,
            uid: u64::from(
                self.opts
                    .owners
                    .as_ref()
                    .map_or(meta.uid(), |m| m.uid(meta.uid())),
            ),
            gid: u64::from(
                self.opts
                    .owners
                    .as_ref()
                    .map_or(meta.gid(), |m| m.gid(meta.gid())),
            ),
            mtime: self.clamp_mtime(meta.mtime()),
            xattrs,
        };
        // A path that is in the tree again needs no whiteout; a directory becomes opaque.
        self.take_removed(&rel);

        if file_type.is_dir() {
            self.append(&header)?;
            if opaque {
                self.write_whiteout(&join(&rel, OPAQUE_WHITEOUT.as_bytes()))?;
            }
            self.write_removed(&rel, path)?;
            return Ok(());
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(target) = self.hardlinks.get(&key) {
                header.kind = EntryKind::HardLink {
                    target: target.clone(),
                };
                return self.append(&header);
            }
            self.hardlinks.insert(key, rel.clone());
        }
        if file_type.is_file() {
            return self.write_file(path, &meta, header);
        }
        header.kind = if file_type.is_symlink() {
            let target = std::fs::read_link(path)
                .with_context(|| format!("cannot read the symlink {}", path.display()))?;
            EntryKind::Symlink {
                target: target.into_os_string().into_encoded_bytes(),
            }
        } else if file_type.is_char_device() {
            let (major, minor) = dev_numbers(meta.rdev());
            EntryKind::CharDevice { major, minor }
        } else if file_type.is_block_device() {
            let (major, minor) = dev_numbers(meta.rdev());
            EntryKind::BlockDevice { major, minor }
        } else if file_type.is_fifo() {
            EntryKind::Fifo
        } else {
            // Sockets cannot be stored in a tar (and are meaningless in an image).
            return Ok(());
        };
        self.append(&header)
    }

    fn write_file(&mut self, path: &Path, meta: &Metadata, mut header: EntryHeader) -> Result<()> {
        let mut file =
            File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let size = meta.len();
        header.kind = EntryKind::File { size };
        self.append(&header)?;
        let mut left = size;
        while left > 0 {
            let want = self
                .buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file
                .read(&mut self.buffer[..want])
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                bail!("{} shrank while it was being read", path.display());
            }
            self.tar
                .write_data(&self.buffer[..n])
                .map_err(|e| write_error(e, self.src))?;
            left -= n as u64;
        }
        self.tar
            .end_data(size)
            .map_err(|e| write_error(e, self.src))
    }

    fn append(&mut self, header: &EntryHeader) -> Result<()> {
        self.tar
            .append_header(header)
            .map_err(|e| write_error(e, self.src))
    }

    /// Whiteouts for the removed children of directory `rel` that the tree does not have.
    fn write_removed(&mut self, rel: &[u8], dir: &Path) -> Result<()> {
        let Some(names) = self.removed.get(rel).cloned() else {
            return Ok(());
        };
        for name in names {
            let present = std::fs::symlink_metadata(dir.join(OsStr::from_bytes(&name))).is_ok();
            if !present {
                self.take_removed(&join(rel, &name));
                self.write_whiteout(&join(rel, &[WHITEOUT_PREFIX.as_bytes(), &name].concat()))?;
            }
        }
        Ok(())
    }

    fn removed_contains(&self, rel: &[u8]) -> bool {
        let (parent, name) = split_last(rel);
        self.removed.get(parent).is_some_and(|s| s.contains(name))
    }

    fn take_removed(&mut self, rel: &[u8]) {
        let (parent, name) = split_last(rel);
        if let Some(set) = self.removed.get_mut(parent) {
            set.remove(name);
            if set.is_empty() {
                self.removed.remove(parent);
            }
        }
    }

    fn write_whiteout(&mut self, path: &[u8]) -> Result<()> {
        let header = EntryHeader {
            path: path.to_vec(),
            kind: EntryKind::File { size: 0 },
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: self.opts.source_date_epoch.unwrap_or(0).max(0),
            xattrs: Vec::new(),
        };
        self.append(&header)
    }

    fn clamp_mtime(&self, mtime: i64) -> i64 {
        match self.opts.source_date_epoch {
            Some(epoch) if mtime > epoch => epoch,
            _ => mtime,
        }
    }
}

fn write_error(err: io::Error, src: &LayerSource) -> anyhow::Error {
    anyhow::Error::new(err).context(format!("cannot write the layer of {}", src.root.display()))
}

fn parent_of(rel: &[u8]) -> &[u8] {
    split_last(rel).0
}

fn split_last(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (b"", rel),
    }
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

/// Extended attributes of `path` (not following symlinks), sorted by name.
fn read_xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        // Filesystems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot list the xattrs of {}", path.display()));
        }
    };
    let mut out = Vec::new();
    for name in names {
        let Some(key) = name.to_str() else {
            bail!(
                "{} has an xattr whose name is not UTF-8: {:?}",
                path.display(),
                name
            );
        };
        let value = xattr::get(path, &name)
            .with_context(|| format!("cannot read xattr {key} of {}", path.display()))?;
        if let Some(value) = value {
            out.push((key.to_string(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// Which xattrs go into a layer: not SELinux labels (the host's policy, not the image's) and
/// not overlayfs bookkeeping (turned into whiteouts instead).
fn keep_xattr(name: &str) -> bool {
    name != "security.selinux"
        && !name.starts_with("trusted.overlay.")
        && !name.starts_with("user.overlay.")
}

/// Major and minor of a device number (glibc's `gnu_dev_major`/`gnu_dev_minor` encoding).
fn dev_numbers(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};
    use std::fs;

    fn entries(store: &BlobStore, layer: &Layer) -> Vec<(String, tar::EntryType)> {
        let file = File::open(store.path(&layer.digest)).unwrap();
        let reader: Box<dyn Read> = if layer.media_type == MEDIA_TYPE_LAYER_GZIP {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(zstd::stream::read::Decoder::new(file).unwrap())
        };
        let mut archive = tar::Archive::new(reader);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    fn opts(compression: Compression, threads: usize) -> LayerOptions {
        LayerOptions {
            compression,
            source_date_epoch: Some(1_000),
            threads,
            owners: None,
        }
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("b/c")).unwrap();
        fs::write(dir.path().join("b/c/f"), vec![7u8; 3 << 20]).unwrap();
        fs::write(dir.path().join("a"), b"a").unwrap();
        fs::hard_link(dir.path().join("a"), dir.path().join("z")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("dangling")).unwrap();
        dir
    }

    #[test]
    fn sorted_parents_first_with_hardlinks() {
        let dir = tree();
        let store_dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let src = LayerSource {
            root: dir.path().to_path_buf(),
            removed: vec!["/etc/gone".into(), "b/c/old".into()],
            overlay_markers: false,
            filter: None,
        };
        let layer = write_layer(&src, &store, &opts(Compression::Gzip, 2), &()).unwrap();
        let names: Vec<_> = entries(&store, &layer)
            .into_iter()
            .map(|(p, t)| format!("{p}:{t:?}"))
            .collect();
        assert_eq!(
            names,
            [
                "a:Regular",
                "b/:Directory",
                "b/c/:Directory",
                "b/c/.wh.old:Regular",
                "b/c/f:Regular",
                "dangling:Symlink",
                "z:Link",
                "etc/.wh.gone:Regular",
            ]
        );
    }

    #[test]
    fn filters_cut_a_tree_and_a_slice_is_the_same_blob_in_any_tree() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let slice = |root: &Path, filter: PathFilter| {
            let src = LayerSource {
                root: root.to_path_buf(),
                removed: Vec::new(),
                overlay_markers: true,
                filter: Some(filter),
            };
            write_layer(&src, &store, &opts(Compression::Gzip, 1), &()).unwrap()
        };
        let names = |layer: &Layer| -> Vec<String> {
            entries(&store, layer).into_iter().map(|(p, _)| p).collect()
        };
        let dir = tree();
        let only = slice(dir.path(), PathFilter::Only(vec!["b/c/f".into()]));
        assert_eq!(names(&only), ["b/", "b/c/", "b/c/f"]);
        let except = slice(dir.path(), PathFilter::Except(vec!["b/c/f".into()]));
        assert_eq!(names(&except), ["a", "b/", "b/c/", "dangling", "z"]);

        // Another tree with the same file and more around it: the same slice, the same blob.
        let other = tree();
        fs::write(other.path().join("b/other"), b"x").unwrap();
        fs::create_dir(other.path().join("b/c/d")).unwrap();
        let again = slice(other.path(), PathFilter::Only(vec!["/b/c/f".into()]));
        assert_eq!(again, only);
    }

    #[test]
    fn output_does_not_depend_on_threads() {
        let dir = tree();
        let store_dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(store_dir.path()).unwrap();
        let src = LayerSource {
            root: dir.path().to_path_buf(),
            removed: Vec::new(),
            overlay_markers: false,
            filter: None,
        };
        for compression in [Compression::Gzip, Compression::Zstd] {
            let one = write_layer(&src, &store, &opts(compression, 1), &()).unwrap();
            let three = write_layer(&src, &store, &opts(compression, 3), &()).unwrap();
            assert_eq!(one, three);
        }
        let gz = write_layer(&src, &store, &opts(Compression::Gzip, 1), &()).unwrap();
        let zst = write_layer(&src, &store, &opts(Compression::Zstd, 1), &()).unwrap();
        assert_eq!(gz.diff_id, zst.diff_id);
        assert_ne!(gz.digest, zst.digest);
    }

    /// Pins the gzip bytes: a changed backend, level or block size changes every layer
    /// digest (and defeats "skip blobs the registry has"), so it must be a deliberate change.
    #[test]
    fn gzip_output_is_pinned() {
        let data: Vec<u8> = (0u32..3_000_000)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 % 7 + b'a')
            .collect();
        for threads in [1, 2, 5] {
            let mut gz = gzip_encoder(Vec::new(), threads).unwrap();
            gz.write_all(&data).unwrap();
            let out = gz.finish().unwrap();
            assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
            assert_eq!(
                hex::encode(Sha256::digest(&out)),
                GZIP_GOLDEN,
                "{threads} threads"
            );
        }
    }

    const GZIP_GOLDEN: &str = "5195cdfc4af9fbb5653ccfa91b5d10d616368246e4f68c3ac94e348761f4bdba";

    #[test]
    fn layer_serialises_as_json() {
        let layer = Layer {
            diff_id: Digest::of_bytes(b"a"),
            digest: Digest::of_bytes(b"b"),
            size: 3,
            media_type: MEDIA_TYPE_LAYER_GZIP.into(),
        };
        let text = serde_json::to_string(&layer).unwrap();
        assert_eq!(serde_json::from_str::<Layer>(&text).unwrap(), layer);
    }

    #[test]
    fn device_numbers() {
        // makedev(8, 1) and makedev(259, 65536) in glibc's encoding.
        assert_eq!(dev_numbers(0x801), (8, 1));
        let (major, minor) = (259u64, 65536u64);
        let dev =
            ((major & 0xfff) << 8) | ((major >> 12) << 44) | (minor & 0xff) | ((minor >> 8) << 20);
        assert_eq!(dev_numbers(dev), (259, 65536));
    }
}
