//! `layering: {strategy: per-package, budget: N}`: an image's own tree cut into layers by
//! package, so images that hold the same package share that package's layer blob.
//!
//! Each package's files come from its CONTENTS (the paths still in the tree), plus its own
//! database dir (`var/db/pkg/<cat>/<pf>/`), so a per-layer scanner sees the package in its
//! layer. The `budget - 1` biggest packages by bytes in the tree (ties by name) get a layer
//! each, in name order; everything else (other packages, files of no package or of several,
//! whiteouts, opaque directories) goes into one layer *below* them: a removal this image
//! makes must not hide the files of its own package layers, which only add files.
//!
//! A package layer is the same blob in any image that holds the same build of the package:
//! its content is only the package's files and the directories leading to them, with mtimes
//! clamped to SOURCE_DATE_EPOCH like everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::{Layering, LayeringStrategy};
use crate::gentoo::vdb::{ContentsEntry, InstalledPackage};
use crate::oci::layer::PathFilter;

/// The package database inside a root.
const VDB: &str = "var/db/pkg";

/// One layer to cut from the tree: `package` is `None` for the layer of everything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerCut {
    pub package: Option<String>,
    pub filter: Option<PathFilter>,
}

/// The layers of the tree at `root` (the image's own layer dir) holding `packages`, bottom
/// first: one unfiltered layer unless `layering` asks for per-package layers and some
/// package has files.
pub fn plan_cuts(
    root: &Path,
    packages: &[InstalledPackage],
    layering: &Layering,
) -> Result<Vec<LayerCut>> {
    let whole = vec![LayerCut {
        package: None,
        filter: None,
    }];
    if layering.strategy != LayeringStrategy::PerPackage || layering.budget < 2 {
        return Ok(whole);
    }
    // path -> the packages that list it
    let mut owners: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut bytes: BTreeMap<String, u64> = BTreeMap::new();
    for package in packages {
        let cpv = package.cpv();
        for (path, size) in package_paths(root, package)? {
            *bytes.entry(cpv.clone()).or_default() += size;
            owners.entry(path).or_default().insert(cpv.clone());
        }
    }
    let mut by_size: Vec<(&String, &u64)> = bytes.iter().filter(|(_, b)| **b > 0).collect();
    by_size.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let chosen: BTreeSet<&String> = by_size
        .iter()
        .take(layering.budget as usize - 1)
        .map(|(cpv, _)| *cpv)
        .collect();
    if chosen.is_empty() {
        return Ok(whole);
    }
    // A path several packages list is nobody's alone: it goes below, with the rest.
    let mut own: BTreeMap<&String, Vec<PathBuf>> = BTreeMap::new();
    for (path, listed_by) in &owners {
        if listed_by.len() == 1
            && let Some(cpv) = listed_by.iter().next().and_then(|c| chosen.get(c))
        {
            own.entry(*cpv).or_default().push(path.clone());
        }
    }
    let taken: Vec<PathBuf> = own.values().flatten().cloned().collect();
    let mut cuts = vec![LayerCut {
        package: None,
        filter: Some(PathFilter::Except(taken)),
    }];
    for (cpv, paths) in own {
        cuts.push(LayerCut {
            package: Some(cpv.clone()),
            filter: Some(PathFilter::Only(paths)),
        });
    }
    Ok(cuts)
}

/// The non-directory paths of `package` in the tree at `root` (relative, as the layer walk
/// sees them: symlinked parent directories resolved inside the tree) with their sizes.
fn package_paths(root: &Path, package: &InstalledPackage) -> Result<Vec<(PathBuf, u64)>> {
    let mut paths = Vec::new();
    for entry in &package.contents {
        if matches!(entry, ContentsEntry::Dir { .. }) {
            continue;
        }
        let Some(path) = in_tree(root, entry.path()) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(root.join(&path)) else {
            continue;
        };
        if meta.is_dir() || is_whiteout(&meta) {
            continue;
        }
        let size = if meta.is_file() { meta.len() } else { 0 };
        paths.push((path, size));
    }
    let db = Path::new(VDB)
        .join(&package.category)
        .join(format!("{}-{}", package.name, package.full_version));
    let db_dir = root.join(&db);
    if db_dir.is_dir() {
        for entry in walkdir::WalkDir::new(&db_dir).min_depth(1) {
            let entry = entry.with_context(|| format!("cannot read {}", db_dir.display()))?;
            if entry.file_type().is_dir() {
                continue;
            }
            let relative = entry
                .path()
                .strip_prefix(root)
                .with_context(|| {
                    format!("{} is outside {}", entry.path().display(), root.display())
                })?
                .to_path_buf();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            paths.push((relative, size));
        }
    }
    Ok(paths)
}

/// `image_path` (absolute in the image) relative to the tree, its parent directory resolved
/// through the tree's symlinks (`/lib64/x` is `usr/lib64/x` when `lib64 -> usr/lib64`);
/// `None` when it leads out of the tree or is not there.
fn in_tree(root: &Path, image_path: &str) -> Option<PathBuf> {
    let relative = Path::new(image_path.trim_start_matches('/'));
    let name = relative.file_name()?;
    let parent = root.join(relative.parent()?);
    let root = root.canonicalize().ok()?;
    let parent = parent.canonicalize().ok()?;
    Some(parent.strip_prefix(&root).ok()?.join(name))
}

/// An overlayfs whiteout: a 0/0 character device.
fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Write the layers of `image`'s own tree `root` (with its own `packages`), bottom first,
/// each in gib's user namespace. `overlay_markers`: the tree is an overlay's upper dir.
pub fn write_layers(
    ctx: &super::BuildContext<'_>,
    image: &crate::plan::ImagePlan,
    root: &Path,
    overlay_markers: bool,
    packages: &[InstalledPackage],
) -> Result<Vec<crate::oci::layer::Layer>> {
    let cuts = plan_cuts(root, packages, &image.layering)?;
    let mut layers = Vec::new();
    for cut in cuts {
        let source = crate::oci::layer::LayerSource {
            root: root.to_path_buf(),
            removed: Vec::new(),
            overlay_markers,
            filter: cut.filter,
        };
        let what = match &cut.package {
            Some(cpv) => format!("image {}: the layer of {cpv}", image.name),
            None => format!("image {}: its layer", image.name),
        };
        let options = super::layer::layer_options(ctx, image)?;
        let layer = super::layer::write_in_namespace(ctx, &what, source, options)
            .with_context(|| what.clone())?;
        layers.push(layer);
    }
    Ok(layers)
}
