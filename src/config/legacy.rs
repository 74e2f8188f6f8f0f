//! The predecessor's single-image `config.yaml` (see "The predecessor's `config.yaml`" in
//! docs/gib-yaml.md), mapped onto the same `Config` as a gib.yaml with one image.
//!
//! Only the mapping lives here; the keys both formats share (`build`, the repository keys)
//! are checked by the gib.yaml validator.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::raw::{LegacyCustomRepository, RawLegacyFile, RawRepository, S};
use super::validate::{
    DEFAULT_STAGE3_MIRROR, Validator, check_tag, default_audit, default_build, default_layering,
};
use super::{AuditOverride, Config, Image, Parent, Runtime, Stage3, Trust};

/// The predecessor's format has no stage3 key; its builds ran on an amd64 OpenRC stage3.
pub const LEGACY_STAGE3_FLAVOR: &str = "amd64-openrc";
/// The overlay name given to the predecessor's `custom_ebuild_repository`, which had none.
pub const LEGACY_REPOSITORY_NAME: &str = "custom";

impl Validator<'_> {
    pub fn legacy_config(&self, file: PathBuf, raw: RawLegacyFile) -> anyhow::Result<Config> {
        let portage = self.portage(raw.portage_mirror)?;
        let build = match raw.build {
            Some(b) => self.build(b.value)?,
            None => default_build(),
        };
        let mut repositories = Vec::new();
        if let Some(custom) = raw.custom_ebuild_repository {
            let at = custom.referenced;
            if let LegacyCustomRepository::Enabled(repo) = custom.value {
                let spanned = |v: Option<String>| v.map(|value| S::new(value, at, at));
                let raw_repo = RawRepository {
                    name: S::new(LEGACY_REPOSITORY_NAME.to_string(), at, at),
                    sync_type: spanned(repo.sync_type),
                    uri: spanned(repo.uri),
                    ca_certificate: spanned(repo.certificate),
                    priority: None,
                };
                repositories.push(self.repository(&S::new(raw_repo, at, at))?);
            }
        }

        let target = raw.target.value;
        let tag_at = target.container_tag.referenced;
        let container_tag = target.container_tag.value.trim();
        // `mycontainers/python:3.12`: the image is the last path part, the rest its registry.
        let (repository, tag) = match container_tag.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
            _ => (container_tag, None),
        };
        let (registry, name) = match repository.rsplit_once('/') {
            Some((registry, name)) => (Some(registry.to_string()), name),
            None => (None, repository),
        };
        self.image_name(name, tag_at)?;
        if let Some(tag) = tag {
            check_tag(tag).map_err(|m| self.source.error(tag_at, m))?;
        }
        let packages = match target.package_atoms {
            Some(atoms) => self.atoms(atoms)?,
            None => Vec::new(),
        };
        let image = Image {
            name: name.to_string(),
            from: Parent::Scratch,
            packages,
            builder_packages: Vec::new(),
            script: None,
            context: None,
            rootfs: None,
            tag: tag.map(str::to_string),
            latest: None,
            runtime: Runtime::default(),
            test: None,
            layering: default_layering(),
            accounts: None,
            paths: Vec::new(),
            keep_headers: None,
            keep_static_libs: None,
            keep_service_files: None,
            keep_package_db: None,
            audit: AuditOverride::default(),
            platforms: None,
            lint: Default::default(),
        };
        Ok(Config {
            file,
            stage3: Some(Stage3::Flavor {
                flavor: LEGACY_STAGE3_FLAVOR.to_string(),
                mirror: DEFAULT_STAGE3_MIRROR.to_string(),
                pin: None,
            }),
            stage3_per_arch: BTreeMap::new(),
            portage,
            trust: Trust::gentoo(),
            repositories,
            build,
            registry,
            registries: BTreeMap::new(),
            images: BTreeMap::from([(name.to_string(), image)]),
            audit: default_audit(),
            platforms: None,
        })
    }
}
