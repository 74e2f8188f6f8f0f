//! `--oci-layout DIR`: images written into an OCI image layout directory, which may already
//! hold other images (their entries are kept; only entries of the same reference are replaced).
//!
//! Blobs are copied (hardlinked when possible) before `index.json` references them, and
//! `index.json` is replaced by a rename, so a reader never sees a dangling or half entry.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::TaggedImage;
use crate::oci::artifact::Artifact;
use crate::oci::blob::{BlobStore, copy_blob};
use crate::oci::spec::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, Digest, MEDIA_TYPE_INDEX,
};

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// Write `images`, then `indexes` (whose manifests are among `images`), into the layout at
/// `dir` (created when missing).
pub fn write_layout(
    dir: &Path,
    store: &BlobStore,
    images: &[TaggedImage],
    indexes: &[super::OutputIndex<'_>],
) -> Result<()> {
    let blobs = dir.join("blobs");
    let sha256 = blobs.join("sha256");
    super::create_dirs(&sha256)?;
    let layout_file = dir.join("oci-layout");
    if !layout_file.exists() {
        write_atomically(&layout_file, OCI_LAYOUT.as_bytes())?;
    }

    for tagged in images {
        copy_blobs(&blobs, store, blob_order(tagged))?;
    }
    copy_blobs(&blobs, store, indexes.iter().map(|index| index.index))?;
    update_index(dir, |manifests| {
        let entries = images
            .iter()
            .map(|tagged| {
                (
                    &tagged.reference,
                    index_entry(tagged.image.manifest.clone(), &tagged.reference),
                )
            })
            .chain(indexes.iter().flat_map(|index| {
                index
                    .references
                    .iter()
                    .map(|reference| (reference, index_entry(index.index.clone(), reference)))
            }));
        for (reference, entry) in entries {
            manifests.retain(|old| !same_reference(old, reference));
            manifests.push(serde_json::to_value(entry).context("cannot encode index")?);
        }
        Ok(())
    })
}

/// Copy blobs from the store into the layout's `blobs/`.
fn copy_blobs<'a>(
    blobs: &Path,
    store: &BlobStore,
    descriptors: impl IntoIterator<Item = &'a Descriptor>,
) -> Result<()> {
    for desc in descriptors {
        copy_blob(
            &store.path(&desc.digest),
            &desc.digest.blob_path(blobs),
            super::file_mode(),
        )?;
    }
    Ok(())
}

/// Read the layout's index.json (a new one when missing), let `change` edit its manifests
/// list, and replace the file.
///
/// Two gibs writing one layout take turns: the read-change-replace runs under a lock on the
/// layout directory itself (flock; nothing is added to the layout), so neither loses the
/// other's entries.
fn update_index(dir: &Path, change: impl FnOnce(&mut Vec<Value>) -> Result<()>) -> Result<()> {
    let lock = fs::File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", dir.display()))?;
    let index_path = dir.join("index.json");
    let mut index = read_index(&index_path)?;
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .with_context(|| format!("{} has no manifests list", index_path.display()))?;
    change(manifests)?;
    let bytes = serde_json::to_vec(&index).context("cannot encode index.json")?;
    write_atomically(&index_path, &bytes)
}

/// Add `artifacts` (SBOMs) to the layout at `dir`, after their subjects were written: their
/// blobs, then an index entry each (with its `artifactType`, and no `ref.name`, so tools that
/// pick images by name never pick one). Artifact entries whose subject no image entry names
/// any more (an older build's SBOM) are dropped.
pub fn write_artifacts(dir: &Path, store: &BlobStore, artifacts: &[&Artifact]) -> Result<()> {
    let blobs = dir.join("blobs");
    for artifact in artifacts {
        copy_blobs(
            &blobs,
            store,
            artifact.blobs.iter().chain([&artifact.manifest]),
        )?;
    }
    update_index(dir, |manifests| {
        for artifact in artifacts {
            manifests.retain(|entry| {
                entry.get("digest").and_then(Value::as_str)
                    != Some(artifact.manifest.digest.as_str())
            });
            let mut entry =
                serde_json::to_value(&artifact.manifest).context("cannot encode an index entry")?;
            entry["artifactType"] = Value::String(artifact.artifact_type.clone());
            manifests.push(entry);
        }
        let images: Vec<String> = manifests
            .iter()
            .filter(|e| e.get("artifactType").is_none())
            .filter_map(|e| e.get("digest").and_then(Value::as_str).map(str::to_string))
            .collect();
        manifests.retain(|entry| {
            entry.get("artifactType").is_none()
                || artifact_subject(&blobs, entry).is_none_or(|subject| images.contains(&subject))
        });
        Ok(())
    })
}

/// The subject digest of the artifact manifest an index entry names, when it can be read.
fn artifact_subject(blobs: &Path, entry: &Value) -> Option<String> {
    let digest = Digest::parse(entry.get("digest")?.as_str()?).ok()?;
    let bytes = fs::read(digest.blob_path(blobs)).ok()?;
    let manifest: Value = serde_json::from_slice(&bytes).ok()?;
    Some(manifest.pointer("/subject/digest")?.as_str()?.to_string())
}

/// The blobs of an image, the manifest last (nothing references it before it is complete).
pub fn blob_order<'a>(tagged: &TaggedImage<'a>) -> Vec<&'a Descriptor> {
    let image = tagged.image;
    let mut order: Vec<&Descriptor> = image.layers.iter().collect();
    order.push(&image.config);
    order.push(&image.manifest);
    order
}

/// The index descriptor of one image under one reference. `ref.name` is the whole reference
/// (`name:tag`, which the spec's ref grammar allows), not the bare tag: a layout holds many
/// images, and several of them are tagged `latest`. `skopeo copy oci:DIR:name:tag …` and
/// containerd both read it so.
pub fn index_entry(mut desc: Descriptor, reference: &str) -> Descriptor {
    desc.annotations
        .insert(ANNOTATION_REF_NAME.to_string(), reference.to_string());
    desc.annotations.insert(
        ANNOTATION_CONTAINERD_NAME.to_string(),
        reference.to_string(),
    );
    desc
}

/// Whether an existing index entry names the same image reference: the same full name when
/// it has one, else the same `ref.name`.
fn same_reference(entry: &Value, reference: &str) -> bool {
    let annotation = |key: &str| entry.pointer(&format!("/annotations/{}", key.replace('/', "~1")));
    match annotation(ANNOTATION_CONTAINERD_NAME).and_then(Value::as_str) {
        Some(name) => name == reference,
        None => annotation(ANNOTATION_REF_NAME).and_then(Value::as_str) == Some(reference),
    }
}

fn read_index(path: &Path) -> Result<Value> {
    match fs::read(path) {
        Ok(bytes) => {
            let index: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            if !index.get("manifests").is_some_and(Value::is_array) {
                bail!("{} is not an OCI image index", path.display());
            }
            Ok(index)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [],
        })),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replace `path` with `bytes` through a synced temp file beside it and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .with_context(|| format!("no parent directory for {}", path.display()))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    super::publish_mode(temp.as_file(), path)?;
    temp.persist(path).map_err(|e| {
        anyhow::Error::new(e.error).context(format!("cannot write {}", path.display()))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::image::{ImageRequest, Runtime, write_image};
    use crate::oci::layer::Compression;
    use crate::oci::layer::{LayerOptions, LayerSource, write_layer};
    use std::collections::BTreeMap;
    use std::process::Command;

    fn run(cmd: &mut Command) {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writers in parallel (threads here, processes in real life: flock locks belong to the
    /// open file, so both conflict the same way) all keep their entries.
    #[test]
    fn concurrent_index_updates_lose_no_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for n in 0..25 {
                        update_index(&dir, |manifests| {
                            manifests.push(serde_json::json!({ "n": format!("{writer}-{n}") }));
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let index = read_index(&dir.join("index.json")).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 100);
    }

    /// A child layer removes files of its parent, through both the removed-paths list and
    /// overlayfs markers; umoci (which applies whiteouts) must not show them.
    #[test]
    fn whiteouts_remove_parent_files_in_umoci_unpack() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&tmp.path().join("blobs")).unwrap();
        let opts = LayerOptions {
            compression: Compression::Gzip,
            source_date_epoch: None,
            threads: 2,
            owners: None,
        };
        let parent_tree = tmp.path().join("parent");
        for dir in ["etc", "opaque", "var"] {
            fs::create_dir_all(parent_tree.join(dir)).unwrap();
        }
        for file in [
            "etc/keep",
            "etc/gone",
            "etc/marked",
            "opaque/old",
            "var/listed",
        ] {
            fs::write(parent_tree.join(file), file).unwrap();
        }
        let layer = |root: &Path, removed: Vec<std::path::PathBuf>| {
            let src = LayerSource {
                root: root.to_path_buf(),
                removed,
                overlay_markers: true,
                filter: None,
            };
            write_layer(&src, &store, &opts, &()).unwrap()
        };
        let request = |parent, layers| ImageRequest {
            parent,
            layers,
            settings: Runtime::default(),
            created: 0,
            created_by: "test".into(),
            annotations: BTreeMap::new(),
            platform: crate::oci::spec::Platform::host(),
        };
        let parent = write_image(
            &store,
            &request(None, vec![layer(&parent_tree, Vec::new())]),
        )
        .unwrap();

        // The child: an overlayfs upper dir with a whiteout device and an opaque directory,
        // plus a removed-paths list for a file elsewhere.
        let child_tree = tmp.path().join("child");
        fs::create_dir_all(child_tree.join("etc")).unwrap();
        fs::create_dir_all(child_tree.join("opaque")).unwrap();
        fs::write(child_tree.join("opaque/new"), "new").unwrap();
        run(Command::new("mknod")
            .arg(child_tree.join("etc/marked"))
            .args(["c", "0", "0"]));
        run(Command::new("setfattr")
            .args(["-n", "trusted.overlay.opaque", "-v", "y"])
            .arg(child_tree.join("opaque")));
        let child_layer = layer(&child_tree, vec!["/etc/gone".into(), "var/listed".into()]);
        let child = write_image(&store, &request(Some(&parent), vec![child_layer])).unwrap();

        let layout = tmp.path().join("oci");
        let tagged = TaggedImage {
            image: &child,
            reference: "child:1".into(),
        };
        write_layout(&layout, &store, &[tagged], &[]).unwrap();
        let bundle = tmp.path().join("bundle");
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:child:1", layout.display()))
            .arg(&bundle));
        let rootfs = bundle.join("rootfs");
        assert!(rootfs.join("etc/keep").exists());
        assert!(!rootfs.join("etc/gone").exists(), "removed-paths whiteout");
        assert!(
            !rootfs.join("var/listed").exists(),
            "whiteout in a lower-only dir"
        );
        assert!(
            !rootfs.join("etc/marked").exists(),
            "overlay whiteout device"
        );
        assert!(!rootfs.join("opaque/old").exists(), "opaque directory");
        assert_eq!(fs::read(rootfs.join("opaque/new")).unwrap(), b"new");
    }
}
