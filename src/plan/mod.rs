//! The resolved form of a `Config`: images in build order with their parents, tags, and the
//! exact Portage files to write. `gib plan` prints it; `gib build` executes it.
//!
//! Resolving decides; it does not touch the network or the disk. Values only known after a
//! build (an installed package's version, the repository's snapshot date) are carried as a
//! `TagRule` and turned into tags by the builder.

mod portage;

pub use portage::official_flavor;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Result;

use crate::config::{
    Accounts, Compression, Config, Image, Layering, Parent, PathEntry, Portage, Repository, Stage3,
};
use crate::gentoo::portage_conf::PortageFiles;
use crate::oci::spec::Platform;
use crate::printer::UserError;

/// Every image to build, parents first.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The configuration file the plan comes from (absolute).
    pub file: PathBuf,
    pub stage3: Option<Stage3>,
    /// The stage3 of each platform an image is built for, in the order first named: the
    /// flavor made that architecture's, or the per-architecture `url:`/`path:`.
    pub stage3_by_platform: Vec<(Platform, Stage3)>,
    /// gib.yaml's first `platforms:`, whose inputs are gib.lock's top-level entries (the
    /// other platforms' are kept apart); `None` without `platforms:` (the host's are).
    pub lock_platform: Option<Platform>,
    /// The main ebuild repository and the overlays, to sync before building.
    pub portage: Portage,
    /// The signing keys and CAs the stage3 and snapshots are checked with.
    pub trust: crate::openpgp::Trust,
    pub repositories: Vec<Repository>,
    /// The prefix of the image references, if any.
    pub registry: Option<String>,
    /// Where emerge looks for binary packages (`build.binhost`).
    pub binhost: crate::config::Binhost,
    /// In build order: every image comes after its parent; ties are broken by name.
    pub images: Vec<ImagePlan>,
    /// The images gib.yaml gives several platforms, each with all of them in its order: this
    /// plan builds one of them (a leg), and the image is an index of one manifest each. Not
    /// in `ImagePlan`, whose text is the image's input key: a leg's image is the same image
    /// whether or not other platforms are built beside it.
    pub indexes: BTreeMap<String, Vec<Platform>>,
}

/// An image made in a builder: emerge `builder_packages` into the builder and `packages` into
/// the staging root, then run `script` with `context` bound (any may be absent; with neither
/// packages nor script, the layer holds only `paths` and `accounts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortageBuild {
    pub packages: Vec<String>,
    pub builder_packages: Vec<String>,
    pub script: Option<PathBuf>,
    pub context: Option<PathBuf>,
}

/// What the builder does to produce an image's layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildKind {
    /// Emerge and/or run a script in the builder.
    Portage(PortageBuild),
    /// Take this directory or tarball as the layer.
    Rootfs(PathBuf),
}

impl BuildKind {
    /// A short name for output: `packages`, `script`, `packages+script`, `files`, `rootfs`.
    pub fn label(&self) -> &'static str {
        match self {
            BuildKind::Rootfs(_) => "rootfs",
            BuildKind::Portage(PortageBuild {
                packages, script, ..
            }) => match (packages.is_empty(), script) {
                (false, None) => "packages",
                (false, Some(_)) => "packages+script",
                (true, Some(_)) => "script",
                (true, None) => "files",
            },
        }
    }

    pub fn packages(&self) -> &[String] {
        match self {
            BuildKind::Portage(work) => &work.packages,
            BuildKind::Rootfs(_) => &[],
        }
    }
}

/// Where the image's version tag comes from (the tag rule of docs/gib-yaml.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagRule {
    /// `tag:` in the file.
    Explicit(String),
    /// The version (without `-rN`) of the installed package named `package` (the image's
    /// name); when none is installed, the builder falls back to `SnapshotDate`.
    PackageVersion { package: String },
    /// The ebuild repository's snapshot date, `YYYYMMDD`.
    SnapshotDate,
}

/// The image's runtime configuration (the OCI image config), as gib.yaml gave it.
pub use crate::oci::image::Runtime;

/// One image of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePlan {
    pub name: String,
    pub parent: Parent,
    pub kind: BuildKind,
    pub runtime: Runtime,
    /// The command run in the finished image.
    pub test: Option<crate::config::ImageTest>,
    pub layering: Layering,
    pub accounts: Option<Accounts>,
    pub paths: Vec<PathEntry>,
    pub tag_rule: TagRule,
    /// Whether `latest` is among the tags.
    pub latest: bool,
    /// The registry prefix of the references, if any.
    pub registry: Option<String>,
    pub compression: Compression,
    pub keep_headers: bool,
    pub keep_static_libs: bool,
    pub keep_service_files: bool,
    pub keep_package_db: bool,
    /// `audit:`, the image's over the file's.
    pub audit: crate::config::AuditPolicy,
    /// What the lint of the finished image may fail and leaves out.
    pub lint: LintPolicy,
    /// `build.package_use_flags` (atom -> flags), also in `portage`'s package.use: gib
    /// checks them against what the packages declare.
    pub package_use_flags: BTreeMap<String, Vec<String>>,
    /// The Portage files written into the builder before this image's emerge.
    pub portage: PortageFiles,
    /// The platforms it is built for (`platforms:`, the image's over the file's; the host's
    /// when neither names any), in the order written.
    pub platforms: Vec<Platform>,
}

/// An image's `lint:` over `build.lint`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintPolicy {
    /// Whether the lint's errors (missing libraries and interpreters) fail the build; else
    /// they only warn.
    pub fail: bool,
    /// Image paths left out: each a file, or a directory with everything under it.
    pub ignore: Vec<String>,
}

impl LintPolicy {
    fn of(image: &crate::config::Image, build: &crate::config::Build) -> LintPolicy {
        let mut ignore = build.lint.ignore.clone();
        ignore.extend(image.lint.ignore.iter().cloned());
        LintPolicy {
            fail: image
                .lint
                .fail
                .or(build.lint.fail)
                .unwrap_or_else(default_lint_fail),
            ignore,
        }
    }

    /// Whether the lint leaves out `path` (absolute in the image).
    pub fn ignores(&self, path: &str) -> bool {
        self.ignore.iter().any(|ignored| {
            ignored == "/"
                || path == ignored
                || path
                    .strip_prefix(ignored.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }
}

/// `lint.fail: true`: an image whose programs cannot start (a library or loader it needs is
/// not in it) must not leave gib; the error is in the image, which only a rebuild can fix.
fn default_lint_fail() -> bool {
    true
}

impl ImagePlan {
    /// The image of this file it is built on, if any.
    pub fn depends_on(&self) -> Option<&str> {
        match &self.parent {
            Parent::Image(name) => Some(name),
            _ => None,
        }
    }

    /// The tag the rule gives without building, if it does (an explicit `tag:`).
    pub fn known_tag(&self) -> Option<&str> {
        match &self.tag_rule {
            TagRule::Explicit(tag) => Some(tag),
            _ => None,
        }
    }

    /// All tags once the version tag is known: it, then `latest` where it applies.
    pub fn tags(&self, version_tag: &str) -> Vec<String> {
        let mut tags = vec![version_tag.to_string()];
        if self.latest && version_tag != "latest" {
            tags.push("latest".to_string());
        }
        tags
    }

    /// `<registry>/<name>:<tag>`, or `<name>:<tag>` without a registry.
    pub fn reference(&self, tag: &str) -> String {
        match &self.registry {
            Some(registry) => format!("{registry}/{}:{tag}", self.name),
            None => format!("{}:{tag}", self.name),
        }
    }

    /// The references of all tags once the version tag is known.
    pub fn references(&self, version_tag: &str) -> Vec<String> {
        self.tags(version_tag)
            .iter()
            .map(|tag| self.reference(tag))
            .collect()
    }
}

impl Plan {
    /// The selected images (all when `selected` is empty) and their ancestors, parents first.
    pub fn resolve(config: &Config, selected: &[String]) -> Result<Plan> {
        let wanted = wanted_images(config, selected)?;
        let threads = config.build.threads.unwrap_or_else(cpu_count);
        // Parallel emerge jobs default to the thread count: `--load-average` holds back new
        // jobs while the machine is busy, so this only helps when single packages cannot use
        // every CPU (configure steps, small packages).
        let jobs = config.build.max_parallel_jobs.unwrap_or(threads);
        let order = build_order(config, &wanted);
        // A run of one platform builds in that platform's stage3 (the file's own when it is
        // the host's), which also chooses the official binhost's architecture.
        let platforms: Vec<Vec<Platform>> = order
            .iter()
            .map(|image| config.platforms_of(image))
            .collect();
        let platform = run_platform(platforms.iter().map(Vec::as_slice));
        let stage3 = config
            .stage3_for(&platform)
            .or_else(|| config.stage3.clone());
        let portage = portage::portage_files(
            &config.build,
            &config.repositories,
            stage3.as_ref(),
            &platform,
            threads,
            jobs,
        )?;
        let images: Vec<ImagePlan> = order
            .into_iter()
            .map(|image| image_plan(config, image, &portage))
            .collect();
        let mut stage3_by_platform: Vec<(Platform, Stage3)> = Vec::new();
        for platform in images.iter().flat_map(|i| &i.platforms) {
            if stage3_by_platform.iter().any(|(p, _)| p == platform) {
                continue;
            }
            if let Some(stage3) = config.stage3_for(platform) {
                stage3_by_platform.push((platform.clone(), stage3));
            }
        }
        Ok(Plan {
            file: config.file.clone(),
            stage3,
            stage3_by_platform,
            lock_platform: config.platforms.as_ref().and_then(|p| p.first().cloned()),
            portage: config.portage.clone(),
            trust: config.trust.clone(),
            repositories: config.repositories.clone(),
            registry: config.registry.clone(),
            binhost: config.build.binhost.clone(),
            images,
            indexes: BTreeMap::new(),
        })
    }

    /// The one platform this run builds: every image's when they share a single one (a
    /// file's only platform, or a `--platform` leg), else the host's.
    pub fn platform(&self) -> Platform {
        run_platform(self.images.iter().map(|i| i.platforms.as_slice()))
    }

    /// The platforms of the index `image` is one manifest of, when it has several.
    pub fn index_platforms(&self, image: &str) -> Option<&[Platform]> {
        self.indexes.get(image).map(Vec::as_slice)
    }

    /// The image names in build order.
    pub fn order(&self) -> Vec<&str> {
        self.images.iter().map(|i| i.name.as_str()).collect()
    }
}

/// The one platform of images with these platforms, when they all have the same single one;
/// else the host's.
fn run_platform<'a>(mut platforms: impl Iterator<Item = &'a [Platform]>) -> Platform {
    match platforms.next() {
        Some([only]) if platforms.all(|p| p == std::slice::from_ref(only)) => only.clone(),
        _ => Platform::host(),
    }
}

/// The CPUs gib may use (its affinity), at least 1.
pub(crate) fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// The selected names and every ancestor of them within the file.
fn wanted_images(config: &Config, selected: &[String]) -> Result<BTreeSet<String>> {
    if selected.is_empty() {
        return Ok(config.images.keys().cloned().collect());
    }
    let mut wanted = BTreeSet::new();
    for name in selected {
        if !config.images.contains_key(name) {
            let message = format!(
                "no image `{name}` in {}",
                config.file.file_name().map_or_else(
                    || config.file.display().to_string(),
                    |f| f.to_string_lossy().into_owned()
                )
            );
            let candidates = config.images.keys().map(String::as_str);
            let hint = match crate::config::did_you_mean(name, candidates) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "the images are: {}",
                    config.images.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
            return Err(UserError::with_hint(message, hint));
        }
        let mut current = Some(name.as_str());
        while let Some(name) = current {
            if !wanted.insert(name.to_string()) {
                break;
            }
            current = match config.images.get(name).map(|i| &i.from) {
                Some(Parent::Image(parent)) => Some(parent.as_str()),
                _ => None,
            };
        }
    }
    Ok(wanted)
}

/// Kahn's algorithm over the wanted images, always taking the smallest ready name so that
/// the order is stable. The loader has already refused cycles and unknown parents.
fn build_order<'a>(config: &'a Config, wanted: &BTreeSet<String>) -> Vec<&'a Image> {
    let mut ready: BTreeSet<&str> = BTreeSet::new();
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for name in wanted {
        let Some(image) = config.images.get(name) else {
            continue;
        };
        match &image.from {
            Parent::Image(parent) if wanted.contains(parent) => {
                children
                    .entry(parent.as_str())
                    .or_default()
                    .push(&image.name);
            }
            _ => {
                ready.insert(&image.name);
            }
        }
    }
    let mut order = Vec::new();
    while let Some(name) = ready.pop_first() {
        if let Some(image) = config.images.get(name) {
            order.push(image);
        }
        for child in children.remove(name).unwrap_or_default() {
            ready.insert(child);
        }
    }
    order
}

fn image_plan(config: &Config, image: &Image, portage: &PortageFiles) -> ImagePlan {
    let kind = match &image.rootfs {
        Some(rootfs) => BuildKind::Rootfs(rootfs.clone()),
        None => BuildKind::Portage(PortageBuild {
            packages: image.packages.clone(),
            builder_packages: image.builder_packages.clone(),
            script: image.script.clone(),
            context: image.context.clone(),
        }),
    };
    let tag_rule = match (&image.tag, &kind) {
        (Some(tag), _) => TagRule::Explicit(tag.clone()),
        // A rootfs image installs no package whose version could name it.
        (None, BuildKind::Rootfs(_)) => TagRule::SnapshotDate,
        (None, BuildKind::Portage(_)) => TagRule::PackageVersion {
            package: image.name.clone(),
        },
    };
    ImagePlan {
        name: image.name.clone(),
        parent: image.from.clone(),
        runtime: image.runtime.clone(),
        test: image.test.clone(),
        layering: image.layering.clone(),
        accounts: image.accounts.clone(),
        paths: image.paths.clone(),
        tag_rule,
        latest: image.wants_latest(),
        registry: config.registry.clone(),
        compression: config.build.compression,
        // An image's own switch wins over `build:`'s.
        keep_headers: image.keep_headers.unwrap_or(config.build.keep_headers),
        keep_static_libs: image
            .keep_static_libs
            .unwrap_or(config.build.keep_static_libs),
        keep_service_files: image
            .keep_service_files
            .unwrap_or(config.build.keep_service_files),
        keep_package_db: image
            .keep_package_db
            .unwrap_or(config.build.keep_package_db),
        audit: crate::config::AuditPolicy {
            fail_on: image.audit.fail_on.unwrap_or(config.audit.fail_on),
            ignore: config
                .audit
                .ignore
                .iter()
                .chain(&image.audit.ignore)
                .cloned()
                .collect(),
        },
        lint: LintPolicy::of(image, &config.build),
        kind,
        package_use_flags: config.build.package_use_flags.clone(),
        portage: portage.clone(),
        platforms: config.platforms_of(image),
    }
}

#[cfg(test)]
mod tests;
