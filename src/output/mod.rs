//! Where finished images go: an OCI layout directory, a docker/podman-loadable archive (with
//! its SBOM files beside it), a registry.
//!
//! Every output is written beside its final place and renamed into it, so a failed build
//! (a full disk included) leaves the previous output as it was.
//!
//! Not for: building (`build`), the bytes of images (`oci`), the registry protocol
//! (`registry`).

pub mod archive;
pub mod layout;
pub mod registry;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::oci::artifact::Artifact;
use crate::oci::blob::BlobStore;
use crate::oci::image::Image;
use crate::printer::Printer;
use crate::registry::{Client, PushReport};

/// The mode of a finished output file: 0644 less the process's umask, as a file made by
/// `open(2)` with 0644 would get. Temp files are 0600 while they are written (nobody reads
/// half an output); [`publish_mode`] gives them this mode before the rename.
pub fn file_mode() -> u32 {
    0o644 & !user_umask()
}

/// The mode of an output directory gib makes: 0755 less the user's umask.
fn dir_mode() -> u32 {
    0o755 & !user_umask()
}

/// Make `dir` and its missing parents with [`dir_mode`] (the process's own umask may be
/// wider than the user's: see `sandbox::let_the_sandbox_in`).
pub fn create_dirs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(dir_mode())
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(())
}

/// The umask gib was started with, read once: the outputs' modes follow it.
pub fn user_umask() -> u32 {
    static USER_UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *USER_UMASK.get_or_init(umask)
}

/// Give the temp file of an output, about to be renamed into place, [`file_mode`].
pub fn publish_mode(file: &std::fs::File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(file_mode()))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// The process's umask, from /proc/self/status (Linux 4.7+); reading it so needs no
/// umask(2) round trip, which would race with other threads creating files. 022 when the
/// kernel does not say.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let value = line.strip_prefix("Umask:")?.trim();
                u32::from_str_radix(value, 8).ok()
            })
        })
        .unwrap_or(0o022)
}

/// One image under one reference.
#[derive(Debug, Clone)]
pub struct TaggedImage<'a> {
    pub image: &'a Image,
    /// `name:tag` or `registry/name:tag`.
    pub reference: String,
}

/// Where a run's images go.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// An OCI image layout directory (other entries are kept).
    pub oci_layout: Option<PathBuf>,
    /// A `podman load`/`docker load` archive.
    pub archive: Option<PathBuf>,
    /// Push every tag to the registry.
    pub push: bool,
}

/// One finished image as the outputs see it.
#[derive(Debug, Clone)]
pub struct OutputImage<'a> {
    pub name: &'a str,
    /// Its push report's key: its name, with the platform for one platform of an index.
    pub key: &'a str,
    pub image: &'a Image,
    /// The references it is written under in an OCI layout, in an archive, and pushed to
    /// (all in one repository; one platform of an index has its platform's tags).
    pub layout_references: &'a [String],
    pub archive_references: &'a [String],
    pub push_references: &'a [String],
    /// The artifacts about it (its SBOM first), written and pushed beside it.
    pub referrers: &'a [Artifact],
    /// Its parent's reference, whose blobs a push mounts instead of uploading.
    pub parent_reference: Option<&'a str>,
    /// Taken from the registry in this run (`--parents-from-registry`): not pushed again.
    pub pulled: bool,
    /// Reused from the registry in this run (an image of the same inputs was there): not
    /// pushed again, only its tags are set.
    pub in_registry: bool,
}

/// An image of several platforms: its index (in the blob store; its manifests are images
/// of the same run), named by the image's own references in a layout and in the registry.
#[derive(Debug, Clone)]
pub struct OutputIndex<'a> {
    pub name: &'a str,
    pub index: &'a crate::oci::spec::Descriptor,
    pub references: &'a [String],
}

/// Write `images` (parents first) and then `indexes` to every output of `outputs`; what each
/// push did, by image key (an index's by image name).
pub fn write(
    outputs: &Outputs,
    store: &BlobStore,
    client: &Client,
    images: &[OutputImage<'_>],
    indexes: &[OutputIndex<'_>],
    printer: &Printer,
) -> Result<BTreeMap<String, PushReport>> {
    if let Some(dir) = &outputs.oci_layout {
        layout::write_layout(
            dir,
            store,
            &tagged(images, |i| i.layout_references),
            indexes,
        )
        .with_context(|| format!("cannot write the OCI layout {}", dir.display()))?;
        let referrers: Vec<&Artifact> = images
            .iter()
            .flat_map(|image| image.referrers.iter())
            .collect();
        layout::write_artifacts(dir, store, &referrers).with_context(|| {
            format!(
                "cannot add the SBOMs and other artifacts to {}",
                dir.display()
            )
        })?;
        printer.status("Wrote", &format!("OCI layout {}", dir.display()));
    }
    if let Some(file) = &outputs.archive {
        archive::write_archive(file, store, &tagged(images, |i| i.archive_references))
            .with_context(|| format!("cannot write the archive {}", file.display()))?;
        printer.status("Wrote", &format!("archive {}", file.display()));
        for written in archive::write_sbom_files(file, store, images)? {
            printer.status("Wrote", &format!("SBOM {}", written.display()));
        }
    }
    let mut pushed = BTreeMap::new();
    if outputs.push {
        for image in images.iter().filter(|image| !image.pulled) {
            if image.in_registry {
                let report = registry::tag(client, store.root(), image)?;
                printer.status(
                    "Tagged",
                    &format!(
                        "{} {} (reused from registry, nothing uploaded)",
                        image.push_references.join(" "),
                        report.manifest_digest
                    ),
                );
                pushed.insert(image.key.to_string(), report);
                continue;
            }
            let step = printer.step("Pushing", &image.push_references.join(" "));
            let report = registry::push(client, store.root(), image, &step)?;
            step.finish(
                "Pushed",
                &format!(
                    "{} {} ({} blobs uploaded, {} mounted, {} already there)",
                    image.push_references.join(" "),
                    report.manifest_digest,
                    report.uploaded.len(),
                    report.mounted.len(),
                    report.skipped.len()
                ),
            );
            pushed.insert(image.key.to_string(), report);
        }
        // Each index after its manifests: a registry refuses one whose manifests it lacks.
        for index in indexes {
            let report = registry::push_index(client, store.root(), index)?;
            printer.status(
                "Pushed",
                &format!(
                    "{} {} (index)",
                    index.references.join(" "),
                    report.manifest_digest
                ),
            );
            pushed.insert(index.name.to_string(), report);
        }
    }
    Ok(pushed)
}

/// Every image under each of the references `references` picks.
fn tagged<'a>(
    images: &[OutputImage<'a>],
    references: impl Fn(&OutputImage<'a>) -> &'a [String],
) -> Vec<TaggedImage<'a>> {
    images
        .iter()
        .flat_map(|image| {
            references(image).iter().map(|reference| TaggedImage {
                image: image.image,
                reference: reference.clone(),
            })
        })
        .collect()
}
