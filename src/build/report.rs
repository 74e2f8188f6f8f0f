//! What an image holds and what trimming took out of it: the size report `gib inspect` prints
//! and `gib build --json` summarises, read from a build's cache entry.
//!
//! The image is measured layer dir by layer dir (its own, then its ancestors'), each against
//! the packages whose database is in it; a file a child replaced is counted in both layers,
//! as the image's layers store it twice.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::BuiltImage;
use crate::cache::Cache;
use crate::gentoo::vdb::read_installed;
use crate::rootfs::usage::{FileUsage, UsageReport, usage_report_under};

/// The copy of finish-root.sh's trim report in an image's cache entry.
pub const TRIMMED_FILE: &str = "trimmed.tsv";

/// The report of one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageUsage {
    pub name: String,
    pub digest: String,
    /// Bytes of the image's blobs as stored (compressed).
    pub stored_bytes: u64,
    /// Every layer's files, packages and unowned files (the nearest layer first).
    pub usage: UsageReport,
    /// What finish-root.sh removed from this image's own layer (largest first).
    pub trimmed: Vec<FileUsage>,
    pub trimmed_bytes: u64,
}

/// A short form for `gib build --json`.
#[derive(Debug, Clone, Serialize)]
pub struct UsageSummary {
    pub total_bytes: u64,
    pub total_files: u64,
    pub unowned_bytes: u64,
    pub trimmed_bytes: u64,
    /// The biggest packages (at most five), largest first: `(cpv, bytes)`.
    pub largest_packages: Vec<(String, u64)>,
}

impl ImageUsage {
    pub fn summary(&self) -> UsageSummary {
        UsageSummary {
            total_bytes: self.usage.total_bytes,
            total_files: self.usage.total_files,
            unowned_bytes: self.usage.unowned.bytes,
            trimmed_bytes: self.trimmed_bytes,
            largest_packages: self
                .usage
                .packages
                .iter()
                .take(5)
                .map(|p| (p.package.clone(), p.bytes))
                .collect(),
        }
    }
}

/// [`image_usage`] in gib's user namespace: a rootless build's layer dirs hold directories
/// only the image's users may read (a 0700 home), which the namespace reads as their owner.
pub fn image_usage_in_namespace(
    cache: &Cache,
    image: &BuiltImage,
    largest: usize,
) -> Result<ImageUsage> {
    let job = UsageJob {
        image: image.clone(),
        largest,
    };
    let what = format!("measure image {}", image.name);
    crate::jobs::run(
        cache,
        &crate::jobs::Job::ImageUsage(Box::new(job)),
        crate::jobs::cannot(what),
    )
}

/// What the `image_usage` job measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageJob {
    pub image: BuiltImage,
    pub largest: usize,
}

/// Measure `image`, listing its `largest` biggest files.
pub fn image_usage(image: &BuiltImage, largest: usize) -> Result<ImageUsage> {
    // A layer without a package database of its own (`keep_package_db: false`) is read with
    // the databases gib kept aside for the image and its ancestors.
    let mut kept: Vec<crate::gentoo::vdb::InstalledPackage> = Vec::new();
    for db in &image.package_dbs {
        for package in read_installed(db)? {
            if !kept.iter().any(|k| k.cpv() == package.cpv()) {
                kept.push(package);
            }
        }
    }
    let mut total: Option<UsageReport> = None;
    // Nearest layer first: a file a child rewrote (ld.so.cache) counts once, as the child's.
    let mut shadowed = std::collections::BTreeSet::new();
    for layer in &image.layer_dirs {
        let mut packages = read_installed(layer)?;
        if packages.is_empty() {
            packages = kept.clone();
        }
        let report = usage_report_under(layer, &packages, largest, &mut shadowed)
            .with_context(|| format!("cannot measure {}", layer.display()))?;
        total = Some(match total {
            None => report,
            Some(mut sum) => {
                sum.total_bytes += report.total_bytes;
                sum.total_files += report.total_files;
                sum.packages.extend(report.packages);
                sum.unowned.bytes += report.unowned.bytes;
                sum.unowned.files.extend(report.unowned.files);
                sum.largest_files.extend(report.largest_files);
                sum
            }
        });
    }
    let mut usage = total.context("the image has no layer dirs")?;
    // A package whose database a child's layer also carries is one package.
    let mut merged: Vec<crate::rootfs::usage::PackageUsage> = Vec::new();
    for package in usage.packages.drain(..) {
        match merged.iter_mut().find(|p| p.package == package.package) {
            Some(known) => {
                known.bytes += package.bytes;
                known.files += package.files;
            }
            None => merged.push(package),
        }
    }
    usage.packages = merged;
    let by_size = |a: &FileUsage, b: &FileUsage| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path));
    usage
        .packages
        .sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.package.cmp(&b.package)));
    usage.unowned.files.sort_by(by_size);
    usage.largest_files.sort_by(by_size);
    usage.largest_files.truncate(largest);
    let trimmed = match image.layer_dirs.first().and_then(|l| l.parent()) {
        Some(entry) => read_trimmed(&entry.join(TRIMMED_FILE))?,
        None => Vec::new(),
    };
    Ok(ImageUsage {
        name: image.name.clone(),
        digest: image.image.manifest.digest.to_string(),
        stored_bytes: image.size,
        trimmed_bytes: trimmed.iter().map(|t| t.bytes).sum(),
        trimmed,
        usage,
    })
}

/// finish-root.sh's `<bytes>\t<path>` lines; none when the file is missing (an image that
/// neither emerged nor ran a script: a `rootfs:` image, or one pulled from a registry).
fn read_trimmed(path: &Path) -> Result<Vec<FileUsage>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut trimmed: Vec<FileUsage> = text
        .lines()
        .filter_map(|line| {
            let (bytes, path) = line.split_once('\t')?;
            Some(FileUsage {
                path: path.to_string(),
                bytes: bytes.trim().parse().ok()?,
                owner: None,
            })
        })
        .collect();
    trimmed.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path)));
    Ok(trimmed)
}

/// Keep finish-root.sh's trim reports (left in the image's Portage log dir, one per job that
/// ran) as one list in the cache entry being built at `entry_scratch`.
pub fn keep_trimmed(log_dir: &Path, entry_scratch: &Path) -> Result<()> {
    let mut kept = Vec::new();
    let mut found = false;
    for report in crate::rootfs_tools::trim_reports(log_dir) {
        match std::fs::read(&report) {
            Ok(text) => {
                kept.extend(text);
                found = true;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", report.display())),
        }
    }
    if !found {
        return Ok(());
    }
    let dest = entry_scratch.join(TRIMMED_FILE);
    std::fs::write(&dest, kept).with_context(|| format!("cannot write {}", dest.display()))
}
