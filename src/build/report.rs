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
use crate::registry::PushReport;
use crate::rootfs::usage::{FileUsage, UsageReport};

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

/// Measure `image` (its layer dirs, in gib's user namespace) and read what trimming took out
/// of it from its cache entry; `largest` biggest files are listed.
pub fn image_usage_in_namespace(
    cache: &Cache,
    image: &BuiltImage,
    largest: usize,
) -> Result<ImageUsage> {
    let job = crate::jobs::Job::MeasureLayers {
        layer_dirs: image.layer_dirs.clone(),
        package_dbs: image.package_dbs.clone(),
        largest,
    };
    let what = format!("measure image {}", image.name);
    let usage: UsageReport = crate::jobs::run(cache, &job, crate::jobs::cannot(what))?;
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

/// One image in `gib build --json`: what the predecessor exported as `images_details_var`.
#[derive(Debug, Serialize)]
pub struct ImageReport {
    pub name: String,
    /// The platform of this entry, for one platform of a multi-platform image (an index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The digest of the index this entry's manifest is in, when the run wrote one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    pub references: Vec<String>,
    pub digest: String,
    pub size: u64,
    pub reused: bool,
    /// `built`, `reused` (the local cache), `registry` (reused from the registry), `pulled`.
    pub how: &'static str,
    pub packages: Vec<String>,
    /// What `--push` did for this image (absent without `--push` and for pulled parents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushReport>,
    /// Sizes by package, files of no package, what trimming removed.
    pub usage: Option<UsageSummary>,
    /// The SBOM artifact manifest (its subject is the image).
    pub sbom: Option<String>,
    /// The image's audit: the advisories that affect it (absent for pulled parents).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<super::audit::AuditReport>,
    /// What the lint found in the image when it was built (absent for pulled images).
    pub lint: Option<crate::rootfs::lint::Report>,
    /// When this run started and finished the image (built, reused or pulled), in seconds
    /// since the Unix epoch: images built side by side overlap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<f64>,
}

impl ImageReport {
    /// The report of `built`; a size report that cannot be made leaves the build a success,
    /// with a warning.
    pub fn of(
        cache: &Cache,
        store: &crate::oci::blob::BlobStore,
        built: &BuiltImage,
        how: &'static str,
        push: Option<&PushReport>,
        printer: &crate::printer::Printer,
    ) -> Self {
        // An image reused from the registry has no tree here to measure.
        let usage = match built.remote {
            Some(_) => None,
            None => match image_usage_in_namespace(cache, built, 10) {
                Ok(usage) => Some(usage.summary()),
                Err(err) => {
                    printer.warn(&format!("no size report for {}: {err:#}", built.name));
                    None
                }
            },
        };
        let audit = match super::audit::stored_report(store, built) {
            Ok(audit) => audit,
            Err(err) => {
                printer.warn(&format!("no audit report for {}: {err:#}", built.name));
                None
            }
        };
        ImageReport {
            name: built.name.clone(),
            platform: None,
            index: None,
            references: built.references.clone(),
            digest: built.image.manifest.digest.to_string(),
            size: built.size,
            reused: built.reused,
            how,
            packages: built.packages.clone(),
            push: push.cloned(),
            usage,
            sbom: built.sbom().map(|s| s.manifest.digest.to_string()),
            audit,
            lint: built.lint.clone(),
            started: None,
            finished: None,
        }
    }

    /// The report of one platform of an index.
    pub fn with_platform(mut self, platform: Option<String>) -> Self {
        self.platform = platform;
        self
    }

    /// The report with the digest of the index its manifest is in.
    pub fn with_index(mut self, index: Option<String>) -> Self {
        self.index = index;
        self
    }

    /// The report with when the image was built in this run.
    pub fn with_times(mut self, times: Option<&super::schedule::BuildTimes>) -> Self {
        let unix = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .ok()
        };
        self.started = times.and_then(|t| unix(t.started));
        self.finished = times.and_then(|t| unix(t.finished));
        self
    }
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
