//! `--archive FILE`: one tar that is both an OCI layout (`oci-layout`, `index.json`,
//! `blobs/sha256/*`) and a docker archive (`manifest.json` with `RepoTags`, paths into
//! `blobs/`), as `docker save` writes since Docker 25, so `podman load`, `docker load` and
//! `skopeo copy oci-archive:FILE …` all accept it with its tags.
//!
//! Written to a temp file beside FILE and renamed over it when complete.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::TaggedImage;
use super::layout::{blob_order, index_entry};
use crate::oci::blob::BlobStore;
use crate::oci::spec::{Digest, MEDIA_TYPE_INDEX};
use crate::oci::tar_stream::{EntryHeader, EntryKind, TarStream};

/// Write `images` as one dual-format archive at `file`.
pub fn write_archive(file: &Path, store: &BlobStore, images: &[TaggedImage]) -> Result<()> {
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let write_err = || format!("cannot write {}", file.display());

    let mut tar = TarStream::new(BufWriter::with_capacity(1 << 20, temp));
    for name in ["blobs", "blobs/sha256"] {
        tar.append_header(&header(name, EntryKind::Directory, 0o755))
            .with_context(write_err)?;
    }

    // Every blob once, in a fixed order.
    let mut blobs: BTreeMap<&Digest, u64> = BTreeMap::new();
    for tagged in images {
        for desc in blob_order(tagged) {
            blobs.insert(&desc.digest, desc.size);
        }
    }
    let mut buffer = vec![0u8; 256 << 10];
    for (digest, size) in &blobs {
        let path = store.path(digest);
        let mut input =
            File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = format!("blobs/{}", digest.blob_name());
        tar.append_header(&header(&name, EntryKind::File { size: *size }, 0o644))
            .with_context(write_err)?;
        let mut left = *size;
        while left > 0 {
            let want = buffer
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = input
                .read(&mut buffer[..want])
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                bail!("{} is shorter than its descriptor says", path.display());
            }
            tar.write_data(&buffer[..n]).with_context(write_err)?;
            left -= n as u64;
        }
        tar.end_data(*size).with_context(write_err)?;
    }

    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": images
            .iter()
            .map(|tagged| index_entry(tagged.image.manifest.clone(), &tagged.reference))
            .collect::<Vec<_>>(),
    });
    let docker_manifest = docker_manifest(images);
    let files: [(&str, Vec<u8>); 3] = [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", serde_json::to_vec(&index)?),
        ("manifest.json", serde_json::to_vec(&docker_manifest)?),
    ];
    for (name, bytes) in files {
        let size = bytes.len() as u64;
        tar.append_header(&header(name, EntryKind::File { size }, 0o644))
            .with_context(write_err)?;
        tar.write_data(&bytes).with_context(write_err)?;
        tar.end_data(size).with_context(write_err)?;
    }

    let out = tar.finish().with_context(write_err)?;
    let temp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(write_err)?;
    super::publish_mode(temp.as_file(), file)?;
    temp.as_file().sync_all().with_context(write_err)?;
    temp.persist(file)
        .map_err(|e| anyhow::Error::new(e.error).context(write_err()))?;
    Ok(())
}

/// docker's `manifest.json`: one entry per image, with all its references as `RepoTags`.
fn docker_manifest(images: &[TaggedImage]) -> Value {
    let mut by_manifest: BTreeMap<&Digest, (usize, &TaggedImage, Vec<String>)> = BTreeMap::new();
    for (i, tagged) in images.iter().enumerate() {
        by_manifest
            .entry(&tagged.image.manifest.digest)
            .or_insert((i, tagged, Vec::new()))
            .2
            .push(tagged.reference.clone());
    }
    let mut entries: Vec<_> = by_manifest.into_values().collect();
    entries.sort_by_key(|(i, _, _)| *i);
    let path = |digest: &Digest| format!("blobs/{}", digest.blob_name());
    Value::Array(
        entries
            .into_iter()
            .map(|(_, tagged, tags)| {
                json!({
                    "Config": path(&tagged.image.config.digest),
                    "RepoTags": tags,
                    "Layers": tagged.image.layers.iter().map(|l| path(&l.digest)).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn header(name: &str, kind: EntryKind, mode: u32) -> EntryHeader {
    EntryHeader {
        path: name.as_bytes().to_vec(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: Vec::new(),
    }
}

/// The SBOM files next to an archive: `<archive>.spdx.json` for one image, else
/// `<archive>.<image>.spdx.json` each. Returns the files written.
pub fn write_sbom_files(
    archive: &Path,
    store: &BlobStore,
    images: &[super::OutputImage<'_>],
) -> Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    for image in images {
        let Some(blob) = image
            .referrers
            .iter()
            .flat_map(|artifact| artifact.blobs.iter())
            .find(|b| b.media_type == crate::oci::spec::MEDIA_TYPE_SPDX)
        else {
            continue;
        };
        let mut name = archive.as_os_str().to_owned();
        if images.len() > 1 {
            // One platform of an index: `app@linux/arm64` -> `.app.linux-arm64`.
            name.push(format!(
                ".{}",
                image.key.replace('@', ".").replace('/', "-")
            ));
        }
        name.push(".spdx.json");
        let path = std::path::PathBuf::from(name);
        let src = store.path(&blob.digest);
        let bytes =
            std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
        super::layout::write_atomically(&path, &bytes)?;
        written.push(path);
    }
    Ok(written)
}
