//! gib.yaml: the strict, typed form of the user's configuration (docs/gib-yaml.md is its
//! reference), and the predecessor's single-image `config.yaml`. Parsing and validation only;
//! what the keys mean is resolved in `plan`.
//!
//! Every relative path in the file is resolved against the file's directory at load time, so
//! the rest of gib only sees absolute paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::printer::UserError;
use diagnostic::SourceFile;
use validate::Validator;

mod diagnostic;
mod legacy;
mod raw;
mod schema;
mod validate;

pub use diagnostic::did_you_mean;
pub use schema::json_schema;

/// A whole gib.yaml, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from.
    pub file: PathBuf,
    /// Absent only when every image is a `rootfs:` image.
    pub stage3: Option<Stage3>,
    /// A per-architecture `url:`/`path:` (Gentoo's architecture name -> its stage3); empty
    /// for one file or a flavor, which every platform derives its own from.
    pub stage3_per_arch: BTreeMap<String, Stage3>,
    pub portage: Portage,
    /// The keys and CA the stage3 and snapshots are checked with (`stage3.fingerprint`,
    /// `keyring`, `ca_certificate`; `portage.fingerprint`, `keyring`): Gentoo's unless named.
    pub trust: Trust,
    pub repositories: Vec<Repository>,
    pub build: Build,
    /// Prefix for image references, e.g. `registry.example.org/mycontainers`.
    pub registry: Option<String>,
    /// How to reach registries, by `host[:port]` as written in references.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// Images by name (the DAG; order in the file does not matter).
    pub images: BTreeMap<String, Image>,
    /// `audit:`: what a build does with the advisories that affect an image.
    pub audit: AuditPolicy,
    /// `platforms:`: the platforms of every image that names none; `None`: the host's alone.
    pub platforms: Option<Vec<Platform>>,
}

/// `platforms:`: the OCI vocabulary's own type.
pub use crate::oci::spec::Platform;

/// `audit:`: the Gentoo room's own type.
pub use crate::gentoo::glsa::{AuditPolicy, IgnoredAdvisory, Severity};

/// An image's `audit:`, over the file's: its `fail_on` when given, its ignores added.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuditOverride {
    /// `Some(None)`: `never`.
    pub fail_on: Option<Option<Severity>>,
    pub ignore: Vec<IgnoredAdvisory>,
}

/// Which signing keys and CA gib trusts: the OpenPGP room's own type.
pub use crate::openpgp::{Trust, TrustedKey};
/// `portage:` and `repositories:`: the repository room's own types.
pub use crate::repository::{Portage, Repository, SyncType};
/// Where the stage3 comes from (`stage3:`): the stage3 room's own type.
pub use crate::stage3::Stage3;

/// An image's runtime keys: the image writer's own type.
pub use crate::oci::image::Runtime;
/// `build.compression`: the layer writer's own type.
pub use crate::oci::layer::Compression;
/// How to reach one registry (`registries:`): the registry client's own type.
pub use crate::registry::RegistryOptions as RegistrySettings;

/// Where `emerge --getbinpkg` looks for binary packages (`build.binhost`).
#[derive(Debug, Clone, PartialEq)]
pub enum Binhost {
    /// Gentoo's signed binary packages for the stage3's architecture and libc.
    Official,
    /// A binhost of the user's own, served over http(s)/ftp/ssh: a directory with Portage's
    /// `Packages` index, such as another machine's `<cache>/binpkgs`.
    Url {
        uri: String,
        verify_signature: bool,
    },
    /// The same on this machine (absolute path after load); bound read-only into the builder.
    Directory {
        path: PathBuf,
        verify_signature: bool,
    },
    None,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UseFlags {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    pub threads: Option<u32>,
    pub max_parallel_jobs: Option<u32>,
    /// Images built at once (`gib build --jobs` overrides it).
    pub parallel_images: Option<u32>,
    pub global_use_flags: UseFlags,
    /// atom -> flags ("-flag" disables)
    pub package_use_flags: BTreeMap<String, Vec<String>>,
    /// atom -> keywords
    pub accept_keywords: BTreeMap<String, Vec<String>>,
    /// atom -> licenses and @groups accepted beyond the profile's ACCEPT_LICENSE
    pub accept_licenses: BTreeMap<String, Vec<String>>,
    pub compression: Compression,
    pub keep_headers: bool,
    pub keep_static_libs: bool,
    /// OpenRC's /etc/init.d and /etc/conf.d, systemd's units: no container runs them.
    pub keep_service_files: bool,
    pub keep_package_db: bool,
    pub binhost: Binhost,
    /// Gentoo mirrors for distfiles (GENTOO_MIRRORS); `None` keeps the stage3's.
    pub distfile_mirrors: Option<Vec<String>>,
    /// Every image's `lint:` defaults.
    pub lint: Lint,
}

/// `lint:` (in `build:` for every image, or an image's own): whether the lint's errors fail
/// the build, and the image paths (files, or directories and all under them) it leaves out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lint {
    /// `None`: not said here.
    pub fail: Option<bool>,
    pub ignore: Vec<String>,
}

/// Where an image starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parent {
    Scratch,
    /// Another image of this file.
    Image(String),
    /// A registry reference (`registry.example.org/base:1.0`, or by digest).
    Registry(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayeringStrategy {
    #[default]
    Single,
    PerPackage,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Layering {
    pub strategy: LayeringStrategy,
    pub budget: u32,
}

/// `accounts:` and `paths:`: the types of the room that writes them into the root.
pub use crate::rootfs::accounts::{Accounts, Group, PathEntry, PathKind, User};

/// An image's `test:`, run in the finished image.
#[derive(Clone, PartialEq)]
pub struct ImageTest {
    /// The command line: run by the image's `/bin/sh -c`, else split into words.
    pub command: String,
    /// The first shell syntax in it (`&&`, a pipe, a redirection…): only a shell runs it,
    /// so an image without one refuses the test.
    pub shell_syntax: Option<&'static str>,
    /// Where it is written, `FILE:LINE:COLUMN`, for that refusal.
    pub at: String,
}

/// The command alone: an image's input key is made of its plan's `Debug` text, which must
/// not change when the test moves to another line of the file.
impl std::fmt::Debug for ImageTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.command, f)
    }
}

/// One image of the DAG.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub name: String,
    pub from: Parent,
    /// Package atoms to emerge (may be empty for `script:` or `rootfs:` images).
    pub packages: Vec<String>,
    /// Package atoms to emerge into the builder root only (toolchains a script needs).
    pub builder_packages: Vec<String>,
    /// A user script run in the builder with ROOT=/staging (absolute path after load).
    pub script: Option<PathBuf>,
    /// A directory the script reads (bound read-only at `$GIB_CONTEXT`), absolute.
    pub context: Option<PathBuf>,
    /// A directory or tarball taken as the image's layer (absolute path after load).
    pub rootfs: Option<PathBuf>,
    pub tag: Option<String>,
    /// `None`: the default (true only for images built from scratch).
    pub latest: Option<bool>,
    /// entrypoint, cmd, env, user, workdir, labels, expose, volumes.
    pub runtime: Runtime,
    pub test: Option<ImageTest>,
    pub layering: Layering,
    pub accounts: Option<Accounts>,
    pub paths: Vec<PathEntry>,
    /// The image's own trimming switches; `None`: `build:`'s.
    pub keep_headers: Option<bool>,
    pub keep_static_libs: Option<bool>,
    pub keep_service_files: Option<bool>,
    pub keep_package_db: Option<bool>,
    pub audit: AuditOverride,
    /// The image's own `platforms:`; `None`: the file's.
    pub platforms: Option<Vec<Platform>>,
    /// Added to `build.lint`: `fail` wins over it, `ignore` extends it.
    pub lint: Lint,
}

impl Image {
    /// Whether `latest` is among the image's tags.
    pub fn wants_latest(&self) -> bool {
        self.latest.unwrap_or(self.from == Parent::Scratch)
    }
}

impl Config {
    /// The platforms `image` is built for: its own, else the file's, else the host's.
    pub fn platforms_of(&self, image: &Image) -> Vec<Platform> {
        image
            .platforms
            .clone()
            .or_else(|| self.platforms.clone())
            .unwrap_or_else(|| vec![Platform::host()])
    }

    /// `--platform`: the images built for `platform` (`os/arch`), each for it alone; the
    /// others are left out (a child has no platform its parent lacks, so no kept image loses
    /// its parent).
    pub fn keep_only_platform(&mut self, platform: &str) -> Result<()> {
        let wanted = Platform::parse(platform).map_err(UserError::new)?;
        let mut all: Vec<String> = Vec::new();
        let mut kept = BTreeMap::new();
        for (name, image) in &self.images {
            let platforms = self.platforms_of(image);
            for p in &platforms {
                if !all.contains(&p.to_string()) {
                    all.push(p.to_string());
                }
            }
            if let Some(p) = platforms.into_iter().find(|p| wanted.matches(p)) {
                let mut image = image.clone();
                image.platforms = Some(vec![p]);
                kept.insert(name.clone(), image);
            }
        }
        if kept.is_empty() {
            return Err(UserError::with_hint(
                format!(
                    "--platform {platform}: no image of {} is built for it",
                    self.file.display()
                ),
                format!("the platforms are: {}", all.join(", ")),
            ));
        }
        self.images = kept;
        Ok(())
    }

    /// The stage3 `platform` builds in: the per-architecture one gib.yaml names, else its
    /// flavor made the platform's (`amd64-openrc` -> `arm64-openrc`), else its one file,
    /// which is the host's.
    pub fn stage3_for(&self, platform: &Platform) -> Option<Stage3> {
        let arch = crate::stage3::arch::of(platform)?;
        if !self.stage3_per_arch.is_empty() {
            return self.stage3_per_arch.get(arch.gentoo).cloned();
        }
        match self.stage3.as_ref()? {
            Stage3::Flavor {
                flavor,
                mirror,
                pin,
            } => Some(Stage3::Flavor {
                flavor: crate::stage3::arch::flavor_for(flavor, platform),
                mirror: mirror.clone(),
                pin: pin.clone(),
            }),
            one if crate::stage3::arch::of(&Platform::host()) == Some(arch) => Some(one.clone()),
            _ => None,
        }
    }
}

/// Read and validate a gib.yaml (or the predecessor's config.yaml, recognised by its
/// top-level `target:`).
///
/// Every problem with the file is a `UserError` whose message starts with `FILE:LINE:COLUMN:`
/// (FILE as given), so the command line exits with 2. Relative paths in the file are resolved
/// against its directory; the returned `Config` holds absolute paths only.
pub fn load(path: &Path) -> Result<Config> {
    let source = SourceFile {
        label: path.display().to_string(),
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        UserError::with_hint(
            format!("cannot read {}: {e}", path.display()),
            "pass the configuration with -f FILE (default: ./gib.yaml)",
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let base = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve the directory of {}", path.display()))?;
    let file = base.join(path.file_name().unwrap_or(path.as_os_str()));
    let validator = Validator {
        source: &source,
        base: &base,
    };
    let options = serde_saphyr::options! {
        with_snippet: false,
    };
    if is_legacy_format(&text) {
        let raw: raw::RawLegacyFile = serde_saphyr::from_str_with_options(&text, options)
            .map_err(|e| source.yaml_error(&e))?;
        return validator.legacy_config(file, raw);
    }
    let raw: raw::RawFile =
        serde_saphyr::from_str_with_options(&text, options).map_err(|e| source.yaml_error(&e))?;
    validator.config(file, raw)
}

/// Whether the text is the predecessor's format: a mapping with `target:` and no `images:`
/// (a gib.yaml with a stray `target:` gets gib.yaml's "unknown key" error instead).
fn is_legacy_format(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        target: Option<serde::de::IgnoredAny>,
        images: Option<serde::de::IgnoredAny>,
    }
    // A file that does not even parse is reported by the strict gib.yaml reader.
    serde_saphyr::from_str::<Probe>(text)
        .is_ok_and(|probe| probe.target.is_some() && probe.images.is_none())
}

#[cfg(test)]
mod tests;
