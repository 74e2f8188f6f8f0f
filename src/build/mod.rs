//! Building the images of a plan, parents first: each image's builder and staging roots, its
//! build (emerge, or a rootfs taken as it is), its layer, image and test, and the cache entry
//! that lets an unchanged image be reused without entering a sandbox.
//!
//! Not for: choosing what to build (`plan`), running things (`sandbox`, `emerge`), writing
//! bytes (`oci`), or the outputs (`output`).
//!
//! Each image has a cache entry (`entry`) that lets an unchanged image be reused without
//! entering a sandbox. Its key hashes every input of the image, its parent's key among them,
//! so a change rebuilds the image and its descendants only (`key`: a package's USE line
//! counts only for the images whose build merged it).

pub mod audit;
mod entry;
mod finish;
mod from_registry;
mod inputs;
mod key;
mod layer;
mod layering;
mod legs;
mod lint;
mod packages;
mod preflight;
mod provenance;
mod registry_cache;
pub mod report;
mod rootfs;
mod run;
mod sbom;
mod schedule;
mod script;
mod shell;
mod test;

pub use entry::latest_record;
pub use from_registry::pull_plan_image;
pub use inputs::{LockMode, LockStatus, UpdateSelection, lock_status};
pub use run::{RunOutcome, RunRequest, Session, run};
pub use schedule::{Parallelism, build_plan};
pub use shell::{run_in_stage3, shell};

pub use lint::LintFailed;
pub use test::TestFailed;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::Cache;
use crate::config::Parent;
use crate::gentoo::vdb::InstalledPackage;
use crate::oci::blob::BlobStore;
use crate::oci::image::Image;
use crate::plan::{BuildKind, ImagePlan, Plan, TagRule};
use crate::printer::Printer;
use crate::repository::SyncedRepo;
use crate::sandbox::Network;
use crate::stage3::Stage3Root;

/// An image built (or reused) in this run, and what its children build on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuiltImage {
    pub name: String,
    /// The hash of the image's inputs.
    pub key: String,
    pub image: Image,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    /// `category/name-version` of every package in the image, its parents' included.
    pub packages: Vec<String>,
    /// The image's own tree and its ancestors' (nearest first): the lower dirs of an
    /// overlay that shows the whole image.
    pub layer_dirs: Vec<PathBuf>,
    /// What this image's build and its ancestors' added to the builder (nearest first).
    pub builder_dirs: Vec<PathBuf>,
    /// The package databases of this image and its ancestors that their images do not keep
    /// (`keep_package_db: false`), nearest first: each a root holding `var/db/pkg`, shown
    /// under a child's /staging during its emerge so it does not merge their packages again.
    #[serde(default)]
    pub package_dbs: Vec<PathBuf>,
    /// Bytes of the image's blobs (layers and config) as stored.
    pub size: u64,
    /// The artifacts about the image, each stored as an artifact manifest (and its blobs)
    /// whose subject is the image, the SPDX SBOM first: the outputs write them beside the
    /// image, a push uploads them after it and lists them under its referrers.
    #[serde(default)]
    pub referrers: Vec<crate::oci::artifact::Artifact>,
    /// What the lint found in the finished image (its `lint:` applied); none for pulled
    /// images and entries of older gibs.
    #[serde(default)]
    pub lint: Option<crate::rootfs::lint::Report>,
    /// Reused from the cache in this run rather than built.
    #[serde(skip)]
    pub reused: bool,
    /// Known from the registry by its manifest and config alone (this reference, by
    /// digest): its layers are not pulled and it has no trees until a child builds on it
    /// (`registry_cache`).
    #[serde(skip)]
    pub remote: Option<crate::registry::Reference>,
}

impl BuiltImage {
    /// The platform its config names.
    pub fn platform(&self) -> crate::oci::spec::Platform {
        let field = |name: &str| {
            self.image.config_json[name]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        crate::oci::spec::Platform {
            architecture: field("architecture"),
            os: field("os"),
            variant: self.image.config_json["variant"]
                .as_str()
                .map(str::to_string),
        }
    }

    /// The image's SPDX SBOM artifact, when it has one (pulled parents have none).
    pub fn sbom(&self) -> Option<&crate::oci::artifact::Artifact> {
        self.referrers
            .iter()
            .find(|a| a.artifact_type == crate::oci::spec::MEDIA_TYPE_SPDX)
    }

    /// A cache entry's record, reused in this run rather than built: said so.
    fn reused(mut self, printer: &Printer) -> BuiltImage {
        printer.status(
            "Reusing",
            &format!("{} {} (unchanged)", self.name, self.image.manifest.digest),
        );
        self.reused = true;
        self
    }

    /// How this run got the image, as the summary and `--json` say it: `built`, `reused`
    /// (the local cache), `registry` (reused from the registry), `pulled` (a parent pulled
    /// by reference, `pulled` being the run's set of them).
    pub fn how(&self, pulled: &BTreeSet<String>) -> &'static str {
        if pulled.contains(&self.name) {
            "pulled"
        } else if self.remote.is_some() {
            "registry"
        } else if self.reused {
            "reused"
        } else {
            "built"
        }
    }
}

/// The trees an image stands on, each nearest first (see `BuiltImage`).
struct Trees {
    layer_dirs: Vec<PathBuf>,
    builder_dirs: Vec<PathBuf>,
    package_dbs: Vec<PathBuf>,
}

impl BuiltImage {
    /// An image built in this run from `tail`'s output: the one place a build's record is
    /// assembled (pulled parents are made in `from_registry`).
    fn built(
        image: &ImagePlan,
        key: String,
        version_tag: &str,
        (written, referrers, lint): (
            Image,
            Vec<crate::oci::artifact::Artifact>,
            crate::rootfs::lint::Report,
        ),
        packages: Vec<String>,
        trees: Trees,
    ) -> BuiltImage {
        BuiltImage {
            name: image.name.clone(),
            key,
            size: image_size(&written),
            tags: image.tags(version_tag),
            references: image.references(version_tag),
            packages,
            layer_dirs: trees.layer_dirs,
            builder_dirs: trees.builder_dirs,
            package_dbs: trees.package_dbs,
            image: written,
            referrers,
            lint: Some(lint),
            reused: false,
            remote: None,
        }
    }
}

/// What every image build of one run shares.
pub struct BuildContext<'a> {
    pub plan: &'a Plan,
    pub cache: &'a Cache,
    pub store: &'a BlobStore,
    pub printer: &'a Printer,
    pub network: Network,
    pub source_date_epoch: Option<i64>,
    pub force: bool,
    pub offline: bool,
    /// The registry client parents are pulled with (per-registry TLS from gib.yaml).
    pub registries: crate::registry::Client,
    /// Ask the registry for an image of the same inputs before building one
    /// (`registry_cache`): on with `--push` and `--parents-from-registry`.
    pub registry_cache: bool,
    /// `gib push --index`: every image must come from the cache or the registry (the legs
    /// built it elsewhere); one that would need a build is an error.
    pub registry_only: bool,
    stage3: OnceLock<Stage3Root>,
    repositories: OnceLock<Vec<SyncedRepo>>,
    /// gib.lock, as read and as this run resolves it.
    lock: inputs::RunLock,
    inputs: OnceLock<inputs::ResolvedInputs>,
    /// Repositories synced while resolving the lock, by name.
    synced: Mutex<BTreeMap<String, SyncedRepo>>,
    /// Held while the stage3 and the repositories are prepared (see `sources`).
    preparing: Mutex<()>,
    /// Held while gib.lock's inputs are resolved (see `inputs`).
    resolving: Mutex<()>,
    /// Set once `package_use_flags`' atoms were checked against the repositories.
    atoms_checked: OnceLock<()>,
    /// Set once the stage3 was found to run here (see `sources`).
    stage3_runs: OnceLock<()>,
    epoch: OnceLock<i64>,
    /// Set once the binhost's index was compared with gib.lock's.
    binhost_checked: OnceLock<()>,
    /// How many images build at once, and what happens when one fails.
    pub parallelism: schedule::Parallelism,
    /// Each image's emerge's part of the machine, by image name, set by the scheduler as it
    /// starts the image when images build side by side (none: make.conf's settings, the
    /// whole machine).
    cpu_shares: Mutex<BTreeMap<String, crate::emerge::run::CpuShare>>,
    /// The GLSAs of the repositories, read once per run (`audit`).
    advisories: std::sync::OnceLock<audit::RunAdvisories>,
}

/// How a run builds: the settings of `gib build` (and `gib shell`) that are not the plan.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Network inside the builder.
    pub network: Network,
    /// SOURCE_DATE_EPOCH from the environment, when set.
    pub source_date_epoch: Option<i64>,
    /// Rebuild even when an entry of the same inputs exists.
    pub force: bool,
    /// Fetch nothing: use the cached stage3 and repositories.
    pub offline: bool,
    /// How gib.lock is used.
    pub lock: LockMode,
    /// How many images build at once (`--jobs`), and `--fail-fast`.
    pub parallelism: schedule::Parallelism,
}

impl<'a> BuildContext<'a> {
    pub fn new(
        plan: &'a Plan,
        cache: &'a Cache,
        store: &'a BlobStore,
        printer: &'a Printer,
        options: BuildOptions,
    ) -> Result<Self> {
        let BuildOptions {
            network,
            source_date_epoch,
            force,
            offline,
            lock,
            parallelism,
        } = options;
        Ok(BuildContext {
            plan,
            cache,
            store,
            printer,
            network,
            source_date_epoch,
            force,
            offline,
            registries: crate::registry::Client::new(),
            registry_cache: false,
            registry_only: false,
            stage3: OnceLock::new(),
            repositories: OnceLock::new(),
            lock: inputs::RunLock::open(plan, lock)?,
            inputs: OnceLock::new(),
            synced: Default::default(),
            preparing: Mutex::new(()),
            resolving: Mutex::new(()),
            atoms_checked: OnceLock::new(),
            stage3_runs: OnceLock::new(),
            epoch: OnceLock::new(),
            binhost_checked: OnceLock::new(),
            parallelism,
            cpu_shares: Mutex::default(),
            advisories: std::sync::OnceLock::new(),
        })
    }

    /// Pull parents with this client (its per-registry CA and plain-HTTP settings).
    pub fn with_registries(mut self, client: crate::registry::Client) -> Self {
        self.registries = client;
        self
    }

    /// Reuse images of the same inputs from the registry (`registry_cache`).
    pub fn with_registry_cache(mut self, on: bool) -> Self {
        self.registry_cache = on;
        self
    }

    /// Build nothing: every image comes from the cache or the registry (`registry_only`).
    pub fn with_registry_only(mut self, on: bool) -> Self {
        self.registry_only = on;
        self
    }

    /// Identities of the sources every packages image depends on, for input keys: the
    /// stage3's SHA-512 and each repository's snapshot, as gib.lock names them.
    fn source_identity(&self) -> Result<String> {
        Ok(self.inputs()?.identity.clone())
    }

    /// The repository snapshot date (`YYYYMMDD`) of the build's snapshot (see `snapshot`).
    fn snapshot_date(&self) -> Result<Option<String>> {
        Ok(self.snapshot()?.map(|s| s.date))
    }

    /// The repository snapshot this build's times and dates come from, when gib.yaml has a
    /// stage3 (then the ebuild repository is an input of the plan, whichever images are
    /// selected or come first): the main repository's as gib.lock names it (with
    /// `sync_type: none`, that of the stage3's own tree). Resolves the inputs if this run has
    /// not yet, so the answer never depends on which image asked first. `None`: no stage3,
    /// or the tree says no time.
    fn snapshot(&self) -> Result<Option<crate::repository::SnapshotTime>> {
        if self.plan.stage3.is_none() {
            return Ok(None);
        }
        self.inputs()?;
        Ok(self.snapshot_time())
    }

    /// The build's epoch (SOURCE_DATE_EPOCH): the environment's when set, else the
    /// repository snapshot's time, else 0. Every layer's mtimes are clamped to it and every
    /// image's `created` is it, rootfs images included, so the same inputs give the same
    /// digests whenever and in whatever order they are built; the wall clock would make
    /// every build differ. Resolved once, on first use (through gib.lock: see [`BuildContext::epoch_identity`]
    /// for what decides it without resolving it).
    pub fn epoch(&self) -> Result<i64> {
        if let Some(epoch) = self.epoch.get() {
            return Ok(*epoch);
        }
        let epoch = match self.source_date_epoch {
            Some(epoch) => epoch,
            None => self.snapshot()?.map_or(0, |s| s.epoch),
        };
        Ok(*self.epoch.get_or_init(|| epoch))
    }

    /// What [`BuildContext::epoch`] and the snapshot date are, for the input keys of images
    /// that depend on nothing else of the sources (`rootfs:` images): with gib.lock both are
    /// known without syncing or unpacking anything, so a new overlay commit does not rebuild
    /// them, and a new main snapshot (a new epoch) does.
    fn epoch_identity(&self) -> Result<String> {
        Ok(format!(
            "epoch {} date {:?}",
            self.epoch()?,
            self.snapshot_date()?
        ))
    }
}

/// Which images of the plan a run builds, and how.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanScope<'s> {
    /// `--parents-from-registry`: the images not named here are pulled by their reference
    /// instead of built (when the set is not empty).
    pub pull_all_but: Option<&'s BTreeSet<&'s str>>,
    /// An image not to build: `gib shell IMAGE` builds (or reuses) its ancestors only.
    pub leave_out: Option<&'s str>,
}

/// Build (or reuse) `image`, whose ancestors are in `built`.
pub fn build_image(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    built: &BTreeMap<String, BuiltImage>,
) -> Result<BuiltImage> {
    let pulled;
    let parent = match &image.parent {
        Parent::Scratch => None,
        Parent::Image(name) => Some(
            built
                .get(name)
                .with_context(|| format!("image {name} was not built before {}", image.name))?,
        ),
        Parent::Registry(reference) => {
            pulled = from_registry::pull_reference(ctx, &image.name, reference)?;
            Some(&pulled)
        }
    };
    let built = match &image.kind {
        BuildKind::Rootfs(path) => rootfs::build(ctx, image, parent, path)?,
        BuildKind::Portage(work) => packages::build(ctx, image, parent, work)?,
    };
    if built.reused {
        audit::recheck(ctx, image, &built)?;
    }
    Ok(built)
}

/// The image's version tag by the tag rule, from the packages it holds.
fn version_tag(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    packages: &[InstalledPackage],
) -> Result<String> {
    let snapshot =
        || -> Result<String> { Ok(ctx.snapshot_date()?.unwrap_or_else(|| "latest".to_string())) };
    Ok(match &image.tag_rule {
        TagRule::Explicit(tag) => tag.clone(),
        TagRule::PackageVersion { package } => match packages.iter().find(|p| &p.name == package) {
            Some(p) => p.version.clone(),
            None => snapshot()?,
        },
        TagRule::SnapshotDate => snapshot()?,
    })
}

/// sha256 of the given parts and of gib's version (an upgrade may write other bytes for the
/// same inputs, so it makes new entries), hex.
fn hash_parts(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    let version = env!("CARGO_PKG_VERSION");
    hasher.update((version.len() as u64).to_le_bytes());
    hasher.update(version.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// What the tail of a build needs besides the image's plan and parent.
struct Tail<'t> {
    /// The image's own layers, written.
    layers: Vec<crate::oci::layer::Layer>,
    version_tag: &'t str,
    /// How it was built, for the config's history (`emerge`, `rootfs`).
    how: &'t str,
    /// The image's input key, carried in its manifest's annotations.
    input_key: &'t registry_cache::InputKey,
    /// The trees whose packages the SBOM lists (kept-aside package databases included).
    sbom_trees: &'t [PathBuf],
    /// The image's tree and its ancestors' (nearest first): what its `test:` runs on.
    test_trees: &'t [PathBuf],
    /// When the image's build started (after the cache missed): its provenance says so.
    started: std::time::SystemTime,
}

/// The one tail of every build: write the image (config and manifest), attach its SBOM
/// (and the other artifacts about it: the returned list, SBOM first), lint and audit it,
/// then run its `test:`, so a failing lint, audit or test leaves nothing the outputs would
/// write.
fn write_image_sbom_test(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    mut tail: Tail<'_>,
) -> Result<(
    Image,
    Vec<crate::oci::artifact::Artifact>,
    crate::rootfs::lint::Report,
)> {
    let layers = std::mem::take(&mut tail.layers);
    let written = crate::oci::image::write_image(
        ctx.store,
        &image_request(ctx, image, parent, layers, &tail)?,
    )?;
    // The image's packages, read once for its SBOM, its lint (their files) and its audit.
    let packages = sbom::merged_packages(tail.sbom_trees)?;
    let sbom = sbom::attach(
        ctx.store,
        &image.name,
        &written,
        tail.sbom_trees,
        &packages,
        ctx.epoch()?,
    )?;
    let lint = lint::check(ctx, image, tail.test_trees, &packages)?;
    let referrers = vec![sbom, audit::check(ctx, image, parent, &written, &packages)?];
    test::run(ctx, image, tail.test_trees)?;
    // Last: its finish time is the build's, test included.
    let provenance =
        provenance::attach(ctx, image, parent, &written, tail.version_tag, tail.started)?;
    Ok((written, [referrers, vec![provenance]].concat(), lint))
}

/// Sum of the stored sizes of an image's config and layers.
fn image_size(image: &Image) -> u64 {
    image.config.size + image.layers.iter().map(|l| l.size).sum::<u64>()
}

/// The image config and manifest request for `image` on `parent` with its own `layers`
/// (and the rest of `tail`).
fn image_request<'p>(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&'p BuiltImage>,
    layers: Vec<crate::oci::layer::Layer>,
    tail: &Tail<'_>,
) -> Result<crate::oci::image::ImageRequest<'p>> {
    let (version_tag, how) = (tail.version_tag, tail.how);
    use crate::oci::image::ImageRequest;
    use crate::oci::spec::{
        ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME, ANNOTATION_REVISION, ANNOTATION_SOURCE,
        ANNOTATION_VERSION,
    };
    let runtime = &image.runtime;
    let mut annotations = BTreeMap::new();
    annotations.insert(
        ANNOTATION_REF_NAME.to_string(),
        image.reference(version_tag),
    );
    annotations.insert(ANNOTATION_VERSION.to_string(), version_tag.to_string());
    // Source and revision are known when the user labelled the image with them.
    for key in [ANNOTATION_SOURCE, ANNOTATION_REVISION] {
        if let Some(value) = runtime.labels.get(key) {
            annotations.insert(key.to_string(), value.clone());
        }
    }
    // In the manifest, so a runner with an empty cache can tell an image of the same inputs
    // in the registry (`registry_cache`).
    annotations.extend(tail.input_key.annotations());
    if let Some(parent) = parent
        && let Some(reference) = parent.references.first()
    {
        annotations.insert(ANNOTATION_BASE_NAME.to_string(), reference.clone());
    }
    let user = image
        .accounts
        .as_ref()
        .and_then(crate::rootfs::accounts::resolve_run_as)
        .or_else(|| runtime.user.clone());
    Ok(ImageRequest {
        parent: parent.map(|p| &p.image),
        layers,
        settings: crate::oci::image::Runtime {
            user,
            ..runtime.clone()
        },
        created: ctx.epoch()?,
        created_by: format!("gib {}: {how} {}", env!("CARGO_PKG_VERSION"), image.name),
        annotations,
        platform: ctx.plan.platform(),
    })
}
