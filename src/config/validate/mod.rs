//! From the file as written (`raw`) to a `Config`: defaults, path resolution, and every check
//! that needs more than one key (stage3 sources, parents, cycles, exclusive keys).
//!
//! Each error points at the value that is wrong. What an accepted value means for the build is
//! decided later, in `plan`.
//!
//! One file per section of the file (`stage3`, `repositories`, `build`, `registries`,
//! `images`, `accounts`; `trust` for the keys of `stage3` and `portage`), each adding its checks to [`Validator`]; `defaults` holds the values
//! of left-out keys. This file walks the whole file and keeps the checks sections share.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

use super::diagnostic::{SourceFile, did_you_mean};
use super::raw::{
    AUDIT_FAIL_ON, COMPRESSIONS, Entries, LAYERING_STRATEGIES, OneOrMany, PATH_TYPES, RawAccounts,
    RawAudit, RawBuild, RawFile, RawImage, RawLayering, RawLint, RawPath, RawPortage,
    RawRegistrySettings, RawRepository, RawStage3, S, SYNC_TYPES,
};
use super::*;
use crate::gentoo::atom::{self, Atom};

mod accounts;
mod audit;
mod build;
mod defaults;
mod image_test;
mod images;
mod platforms;
mod registries;
mod repositories;
mod stage3;
mod trust;

pub use defaults::*;
pub(super) use images::check_tag;

type Checked<T> = anyhow::Result<T>;

pub struct Validator<'a> {
    pub source: &'a SourceFile,
    /// The directory of the configuration file; relative paths are resolved against it.
    pub base: &'a Path,
}

impl Validator<'_> {
    pub fn config(&self, file: PathBuf, raw: RawFile) -> Checked<Config> {
        let start = start_of_file();
        let trust = self.trust(raw.stage3.as_ref(), raw.portage.as_ref())?;
        let stage3_at = raw.stage3.as_ref().map(|s| s.referenced);
        let stage3 = raw.stage3.map(|s| self.stage3(s)).transpose()?;
        let portage = self.portage(raw.portage)?;
        let repositories = self.repositories(raw.repositories.unwrap_or_default())?;
        let build = match raw.build {
            Some(b) => self.build(b.value)?,
            None => default_build(),
        };
        let registry = raw.registry.map(|r| self.registry(&r)).transpose()?;
        let registries = self.registries(raw.registries.unwrap_or(Entries(Vec::new())))?;
        let audit = self.audit(raw.audit)?;
        let platforms = raw.platforms.map(|p| self.platforms(p)).transpose()?;
        let images = raw.images.ok_or_else(|| {
            self.source.error_with_hint(
                start,
                "the file has no `images:`",
                "add at least one image, e.g.\nimages:\n  base:\n    from: scratch\n    packages: [sys-libs/glibc]",
            )
        })?;
        let images_at = images.referenced;
        let images = self.images(images_at, images.value)?;
        self.check_parent_platforms(&images, platforms.as_deref())?;
        if let (Some(stage3), Some(at)) = (&stage3, stage3_at) {
            self.check_stage3_platforms(stage3, at, &images, platforms.as_deref())?;
        }
        let (stage3, stage3_per_arch) = match stage3 {
            Some(s) => (Some(s.main), s.per_arch),
            None => (None, BTreeMap::new()),
        };
        if stage3.is_none()
            && let Some((name, at)) = images.needs_stage3.first()
        {
            return Err(self.source.error_with_hint(
                *at,
                format!("image `{name}` is built with Portage, but the file has no `stage3:`"),
                "add a stage3 to build in, e.g.\nstage3:\n  flavor: amd64-openrc",
            ));
        }
        Ok(Config {
            file,
            stage3,
            stage3_per_arch,
            portage,
            trust,
            repositories,
            build,
            registry,
            registries,
            images: images.images,
            audit,
            platforms,
        })
    }

    fn choice_error(&self, at: Location, key: &str, given: &str, names: &[&str]) -> anyhow::Error {
        let hint = match did_you_mean(given, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("one of: {}", names.join(", ")),
        };
        self.source
            .error_with_hint(at, format!("`{given}` is not a valid `{key}`"), hint)
    }

    /// The items of a string-or-list value; a single string may hold several words
    /// (`-ensurepip sqlite`), as in Portage's own files.
    fn words(&self, value: Option<S<OneOrMany>>) -> Vec<S<String>> {
        let Some(value) = value else {
            return Vec::new();
        };
        let at = value.referenced;
        value
            .value
            .items(at)
            .into_iter()
            .flat_map(|item| {
                let at = item.referenced;
                item.value
                    .split_whitespace()
                    .map(|w| S::new(w.to_string(), at, at))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn atom(&self, raw: &S<String>) -> Checked<String> {
        let text = raw.value.trim();
        if text.is_empty() {
            return Err(self.source.error(raw.referenced, "empty package atom"));
        }
        Atom::parse(text).map_err(|e| {
            self.source.error_with_hint(
                raw.referenced,
                e.to_string(),
                "an atom is `category/package`, optionally with an operator, version, slot and USE deps, e.g. >=dev-lang/python-3.12:3.12",
            )
        })?;
        Ok(text.to_string())
    }

    pub(super) fn atoms(&self, raw: S<OneOrMany>) -> Checked<Vec<String>> {
        let at = raw.referenced;
        let items = raw.value.items(at);
        if items.is_empty() {
            return Ok(Vec::new());
        }
        items.iter().map(|item| self.atom(item)).collect()
    }

    fn url(&self, raw: &S<String>, key: &str) -> Checked<String> {
        let value = raw.value.trim();
        let ok = [
            "https://", "http://", "rsync://", "ssh://", "git://", "file://", "ftp://",
        ]
        .iter()
        .any(|scheme| value.len() > scheme.len() && value.starts_with(scheme))
            || (value.contains('@') && value.contains(':') && !value.contains(' '));
        if ok {
            Ok(value.to_string())
        } else {
            Err(self.source.error_with_hint(
                raw.referenced,
                format!("`{value}` is not a URL (`{key}`)"),
                "e.g. https://example.org/path",
            ))
        }
    }

    /// Resolve a path of the file against its directory and check that it exists.
    fn existing_path(&self, raw: &S<String>, what: &str) -> Checked<PathBuf> {
        let value = raw.value.trim();
        if value.is_empty() {
            return Err(self
                .source
                .error(raw.referenced, format!("empty {what} path")));
        }
        // Lexically, without `.` parts; symlinks are left for the reader to follow.
        let path: PathBuf = self
            .base
            .join(value)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        if std::fs::symlink_metadata(&path).is_err() {
            return Err(self.source.error_with_hint(
                raw.referenced,
                format!("{what} `{value}` does not exist"),
                format!(
                    "looked for {} (relative paths start at the directory of {})",
                    path.display(),
                    self.source.label
                ),
            ));
        }
        Ok(path)
    }

    fn existing_dir(&self, raw: &S<String>, what: &str) -> Checked<String> {
        let path = self.existing_path(raw, what)?;
        if !path.is_dir() {
            return Err(self.source.error(
                raw.referenced,
                format!("{what} `{}` is not a directory", raw.value.trim()),
            ));
        }
        Ok(path.to_string_lossy().into_owned())
    }

    fn absolute(&self, raw: &S<String>, what: &str) -> Checked<String> {
        let value = raw.value.trim();
        if value.starts_with('/') {
            Ok(value.to_string())
        } else {
            Err(self.source.error(
                raw.referenced,
                format!("{what} `{value}` must be an absolute path in the image"),
            ))
        }
    }
}

fn start_of_file() -> Location {
    // Location has no public constructor; an error at "the whole file" is reported at 1:1.
    Location::UNKNOWN
}

#[cfg(test)]
mod tests {
    use super::accounts::parse_mode;
    use super::images::{is_image_name, normalize_port};
    use super::repositories::is_date;
    use super::stage3::is_stage3_timestamp;
    use super::*;

    #[test]
    fn image_names() {
        for good in ["base", "python", "my-app", "a.b", "a__b", "a--b", "x1"] {
            assert!(is_image_name(good), "{good}");
        }
        for bad in ["", "Base", "-a", "a-", "a..b", "a___b", "a/b", "a:b", "a b"] {
            assert!(!is_image_name(bad), "{bad}");
        }
    }

    #[test]
    fn ports_modes_dates() {
        assert_eq!(normalize_port("8080/tcp").unwrap(), "8080/tcp");
        assert_eq!(normalize_port("53/udp").unwrap(), "53/udp");
        assert_eq!(normalize_port("80").unwrap(), "80/tcp");
        for bad in ["0/tcp", "65536", "80/http", "http", "080"] {
            assert!(normalize_port(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_mode("0755"), Some(0o755));
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        assert_eq!(parse_mode("0o700"), Some(0o700));
        for bad in ["", "8", "0789", "rwx", "77777"] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
        assert!(is_date("2026-11-20") && is_date("20261120"));
        assert!(!is_date("2026-1120") && !is_date("2026112"));
        assert!(is_stage3_timestamp("20261117T170000Z"));
        assert!(!is_stage3_timestamp("20261117"));
        assert!(check_tag("3.12").is_ok() && check_tag("latest").is_ok());
        assert!(check_tag(".x").is_err() && check_tag("a:b").is_err());
    }
}
