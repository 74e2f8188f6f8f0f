//! Applying an image's layers, base first, onto one directory: the tree a pulled parent image
//! shows, for children to build on (an overlay lower dir) and for tests to run in.
//!
//! OCI whiteouts are applied as the image spec says: `.wh.<name>` removes `<name>` of the
//! layers below, `.wh..wh..opq` empties its directory of what the layers below put there.
//! Neither marker is kept. Runs as gib's hidden `unpack-layers` helper inside the user
//! namespace, so owners are kept as the image's ids. Device nodes and fifos are skipped (a user
//! namespace cannot mknod; the sandbox binds /dev anyway).
//!
//! Not for: writing layers (`layer`) or plain tarballs (`unpack`).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::blob::BlobStore;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// Apply the layer blobs `digests` (base first) from `store` onto `dest` (created).
pub fn apply_layers(store: &BlobStore, digests: &[String], dest: &Path) -> Result<u64> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut entries = 0;
    for digest in digests {
        let path = store.path(digest)?;
        entries += apply_layer(&path, dest)
            .with_context(|| format!("cannot apply layer {digest} ({})", path.display()))?;
    }
    Ok(entries)
}

fn apply_layer(blob: &Path, dest: &Path) -> Result<u64> {
    let file = File::open(blob).with_context(|| format!("cannot open {}", blob.display()))?;
    let mut archive = tar::Archive::new(decompressor(BufReader::with_capacity(1 << 20, file))?);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    // What this layer itself wrote: an opaque marker hides only the layers below.
    let mut written: HashSet<PathBuf> = HashSet::new();
    let mut entries = 0;
    for entry in archive.entries().context("cannot read the layer")? {
        let mut entry = entry.context("corrupt or truncated layer")?;
        let path = relative(&entry.path().context("bad path in the layer")?)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE {
            let dir = dest.join(&parent);
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten() {
                    if !written.contains(&parent.join(child.file_name())) {
                        remove(&child.path())?;
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            remove(&dest.join(&parent).join(hidden))?;
            continue;
        }
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
        ) {
            continue;
        }
        // A file replacing a directory of a lower layer (or the reverse) replaces it whole.
        let target = dest.join(&path);
        if let Ok(meta) = std::fs::symlink_metadata(&target)
            && (meta.is_dir() != entry.header().entry_type().is_dir())
        {
            remove(&target)?;
        }
        entry
            .unpack_in(dest)
            .with_context(|| format!("cannot unpack {}", path.display()))?;
        written.insert(path);
        entries += 1;
    }
    Ok(entries)
}

/// The entry's path without `./` or a leading `/`; `..` is refused.
fn relative(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            _ => bail!("unsafe path in the layer: {}", path.display()),
        }
    }
    Ok(out)
}

fn remove(path: &Path) -> Result<()> {
    crate::cache::remove_any(path)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        })
        .with_context(|| format!("cannot remove {}", path.display()))
}

/// gzip, zstd or plain tar, told apart by the magic bytes (media types lie in the wild).
fn decompressor<'a>(mut input: BufReader<File>) -> Result<Box<dyn Read + 'a>> {
    let magic = input.fill_buf().context("cannot read the layer")?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input).context("cannot start zstd")?)
    } else {
        Box::new(input)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(store: &BlobStore, files: &[(&str, Option<&str>)]) -> String {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match content {
                Some(text) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(text.len() as u64);
                    header.set_mode(0o644);
                    builder
                        .append_data(&mut header, path, text.as_bytes())
                        .unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
            }
        }
        store.put(&builder.into_inner().unwrap()).unwrap().digest
    }

    #[test]
    fn whiteouts_delete_and_opaque_dirs_hide_only_lower_layers() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&dir.path().join("blobs")).unwrap();
        let base = layer(
            &store,
            &[
                ("etc", None),
                ("etc/a", Some("a")),
                ("etc/b", Some("b")),
                ("opt", None),
                ("opt/old", Some("old")),
            ],
        );
        let top = layer(
            &store,
            &[
                ("etc/.wh.a", Some("")),
                ("opt", None),
                ("opt/new", Some("new")),
                ("opt/.wh..wh..opq", Some("")),
            ],
        );
        let dest = dir.path().join("tree");
        apply_layers(&store, &[base, top], &dest).unwrap();
        assert!(!dest.join("etc/a").exists());
        assert_eq!(std::fs::read_to_string(dest.join("etc/b")).unwrap(), "b");
        assert!(!dest.join("opt/old").exists());
        assert_eq!(
            std::fs::read_to_string(dest.join("opt/new")).unwrap(),
            "new"
        );
        assert!(!dest.join("opt/.wh..wh..opq").exists());
    }
}
