//! An image's SBOM: the SPDX 2.3 document of every package in the image (its own layer's
//! package database and its ancestors'), stored as an OCI artifact whose subject is the
//! image, so the layout and the registry push carry it with the image.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::gentoo::vdb::{InstalledPackage, read_installed};
use crate::oci::artifact::{Artifact, write_artifact};
use crate::oci::blob::BlobStore;
use crate::oci::image::Image;
use crate::oci::spec::MEDIA_TYPE_SPDX;
use crate::rootfs::sbom::{read_os_release, spdx_document};

/// The package database inside a root.
const VDB: &str = "var/db/pkg";

/// The packages the merged image shows: each layer's database, nearest layer first. A
/// package whose database dir a nearer layer removed (an overlayfs whiteout, left by an
/// upgrade or an unmerge in a child) is not in the image.
pub fn merged_packages(layer_dirs: &[PathBuf]) -> Result<Vec<InstalledPackage>> {
    let mut packages: Vec<InstalledPackage> = Vec::new();
    for (depth, layer) in layer_dirs.iter().enumerate() {
        for package in read_installed(layer)? {
            let relative = Path::new(VDB)
                .join(&package.category)
                .join(format!("{}-{}", package.name, package.full_version));
            let hidden = layer_dirs[..depth].iter().any(|nearer| {
                std::fs::symlink_metadata(nearer.join(&relative)).is_ok_and(|m| !m.is_dir())
            });
            if !hidden && !packages.iter().any(|p| p.cpv() == package.cpv()) {
                packages.push(package);
            }
        }
    }
    packages.sort_by_key(|p| (p.category.clone(), p.name.clone()));
    Ok(packages)
}

/// The image's SBOM document as JSON bytes. `reference` names the image in it; `created` is
/// SOURCE_DATE_EPOCH.
pub fn document(
    image_name: &str,
    reference: &str,
    layer_dirs: &[PathBuf],
    packages: &[InstalledPackage],
    created: i64,
) -> Result<Vec<u8>> {
    let mut os = None;
    for layer in layer_dirs {
        if let Some(found) = read_os_release(layer)? {
            os = Some(found);
            break;
        }
    }
    let json = spdx_document(image_name, reference, created, packages, os.as_ref())?;
    let mut bytes = serde_json::to_vec_pretty(&json)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Write the SBOM of `image` (named `image_name`, built from `layer_dirs`, which hold
/// `packages`: [`merged_packages`]) and attach it.
pub fn attach(
    store: &BlobStore,
    image_name: &str,
    image: &Image,
    layer_dirs: &[PathBuf],
    packages: &[InstalledPackage],
    created: i64,
) -> Result<Artifact> {
    let reference = format!("{image_name}@{}", image.manifest.digest);
    let bytes = document(image_name, &reference, layer_dirs, packages, created)?;
    write_artifact(
        store,
        MEDIA_TYPE_SPDX,
        &image.manifest,
        &bytes,
        &format!("{image_name}.spdx.json"),
        created,
    )
}
