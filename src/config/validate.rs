//! From the file as written (`raw`) to a `Config`: defaults, path resolution, and every check
//! that needs more than one key (stage3 sources, parents, cycles, exclusive keys).
//!
//! Each error points at the value that is wrong. What an accepted value means for the build is
//! decided later, in `plan`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_saphyr::Location;

use super::diagnostic::{SourceFile, did_you_mean};
use super::raw::{
    Entries, OneOrMany, RawAccounts, RawBuild, RawFile, RawImage, RawLayering, RawPath, RawPortage,
    RawRegistrySettings, RawRepository, RawStage3, S,
};
use super::*;
use crate::gentoo::atom::{self, Atom};
use crate::printer::UserError;

type Checked<T> = std::result::Result<T, UserError>;

/// Where stage3 tarballs and their DIGESTS come from unless `mirror:` says otherwise.
pub const DEFAULT_STAGE3_MIRROR: &str = crate::gentoo::MIRROR;
/// The main repository's `uri` for `sync_type: git` without one.
pub const DEFAULT_PORTAGE_GIT_URI: &str = crate::gentoo::GIT_URI;
/// The main repository's `uri` for `sync_type: rsync` without one.
pub const DEFAULT_PORTAGE_RSYNC_URI: &str = crate::gentoo::RSYNC_URI;
/// Layers for `strategy: per-package` without `budget:`: enough to split the big packages
/// out of the shared base, few enough to stay far below overlayfs' layer limits.
pub const DEFAULT_PER_PACKAGE_BUDGET: u32 = 8;

const STAGE3_KEYS: [&str; 3] = ["flavor", "url", "path"];

pub struct Validator<'a> {
    pub source: &'a SourceFile,
    /// The directory of the configuration file; relative paths are resolved against it.
    pub base: &'a Path,
}

impl Validator<'_> {
    pub fn config(&self, file: PathBuf, raw: RawFile) -> Checked<Config> {
        let start = start_of_file();
        let stage3 = raw.stage3.map(|s| self.stage3(s)).transpose()?;
        let portage = self.portage(raw.portage)?;
        let repositories = self.repositories(raw.repositories.unwrap_or_default())?;
        let build = match raw.build {
            Some(b) => self.build(b.value)?,
            None => default_build(),
        };
        let registry = raw.registry.map(|r| self.registry(&r)).transpose()?;
        let registries = self.registries(raw.registries.unwrap_or(Entries(Vec::new())))?;
        let images = raw.images.ok_or_else(|| {
            self.source.error_with_hint(
                start,
                "the file has no `images:`",
                "add at least one image, e.g.\nimages:\n  base:\n    from: scratch\n    packages: [sys-libs/glibc]",
            )
        })?;
        let images_at = images.referenced;
        let images = self.images(images_at, images.value)?;
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
            portage,
            repositories,
            build,
            registry,
            registries,
            images: images.images,
        })
    }

    fn stage3(&self, raw: S<RawStage3>) -> Checked<Stage3> {
        let at = raw.referenced;
        let r = raw.value;
        let sources: Vec<(&str, &S<String>)> =
            [("flavor", &r.flavor), ("url", &r.url), ("path", &r.path)]
                .into_iter()
                .filter_map(|(key, value)| value.as_ref().map(|v| (key, v)))
                .collect();
        let (key, value) = match sources.as_slice() {
            [] => {
                return Err(self.source.error_with_hint(
                    at,
                    "`stage3` needs a source: one of `flavor`, `url` or `path`",
                    "e.g. `flavor: amd64-openrc`",
                ));
            }
            [one] => *one,
            [first, second, ..] => {
                return Err(self.source.error_with_hint(
                    second.1.referenced,
                    format!(
                        "`stage3` has both `{}` and `{}`; it needs exactly one source",
                        first.0, second.0
                    ),
                    format!(
                        "keep one of {}",
                        STAGE3_KEYS.map(|k| format!("`{k}`")).join(", ")
                    ),
                ));
            }
        };
        let sha512 = r
            .sha512
            .as_ref()
            .map(|s| {
                let hex = s.value.trim().to_ascii_lowercase();
                if hex.len() == 128 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok(hex)
                } else {
                    Err(self.source.error(
                        s.referenced,
                        "`sha512` must be 128 hexadecimal digits (the output of sha512sum)",
                    ))
                }
            })
            .transpose()?;
        if key == "flavor" {
            if let Some(s) = &r.sha512 {
                return Err(self.source.error(
                    s.referenced,
                    "`sha512` pins a `url` or `path`; a `flavor` is checked against the mirror's signed DIGESTS",
                ));
            }
            let flavor = value.value.trim();
            if flavor.is_empty()
                || !flavor
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_+.".contains(c))
            {
                return Err(self.source.error_with_hint(
                    value.referenced,
                    format!("`{flavor}` is not a stage3 flavor"),
                    "flavors look like amd64-openrc, amd64-systemd, arm64-musl",
                ));
            }
            let mirror = match &r.mirror {
                Some(m) => self.url(m, "mirror")?.trim_end_matches('/').to_string(),
                None => DEFAULT_STAGE3_MIRROR.to_string(),
            };
            let pin = r
                .pin
                .as_ref()
                .map(|p| {
                    if is_stage3_timestamp(p.value.trim()) {
                        Ok(p.value.trim().to_string())
                    } else {
                        Err(self.source.error_with_hint(
                            p.referenced,
                            format!("`{}` is not a stage3 build time", p.value),
                            "stage3 builds are named by UTC time, e.g. 20261117T170000Z",
                        ))
                    }
                })
                .transpose()?;
            return Ok(Stage3::Flavor {
                flavor: flavor.to_string(),
                mirror,
                pin,
            });
        }
        for (extra, name) in [(&r.mirror, "mirror"), (&r.pin, "pin")] {
            if let Some(extra) = extra {
                return Err(self.source.error(
                    extra.referenced,
                    format!("`{name}` only applies to `flavor`; `{key}` names the tarball itself"),
                ));
            }
        }
        if key == "url" {
            return Ok(Stage3::Url {
                url: self.url(value, "url")?,
                sha512,
            });
        }
        let path = self.existing_path(value, "stage3 tarball")?;
        if !path.is_file() {
            return Err(self
                .source
                .error(value.referenced, format!("`{}` is not a file", value.value)));
        }
        Ok(Stage3::Path { path, sha512 })
    }

    pub(super) fn portage(&self, raw: Option<S<RawPortage>>) -> Checked<Portage> {
        let Some(raw) = raw else {
            return Ok(default_portage());
        };
        let at = raw.referenced;
        let r = raw.value;
        let sync_type = match &r.sync_type {
            Some(s) => self.sync_type(s)?,
            None => default_sync_type(),
        };
        let uri = match (sync_type, &r.uri) {
            (SyncType::None, Some(u)) => {
                return Err(self.source.error(
                    u.referenced,
                    "`sync_type: none` uses the stage3's own tree; it takes no `uri`",
                ));
            }
            (SyncType::None, None) => None,
            (SyncType::Local, Some(u)) => Some(self.existing_dir(u, "repository")?),
            (SyncType::Local, None) => {
                return Err(self.source.error(
                    at,
                    "`sync_type: local` needs `uri:`, the repository's directory",
                ));
            }
            (_, Some(u)) => Some(self.url(u, "uri")?),
            (SyncType::Git, None) => Some(DEFAULT_PORTAGE_GIT_URI.to_string()),
            (SyncType::Rsync, None) => Some(DEFAULT_PORTAGE_RSYNC_URI.to_string()),
            // webrsync defaults to the stage3 mirror's snapshots/.
            (SyncType::Webrsync, None) => None,
        };
        let pin = r
            .pin
            .as_ref()
            .map(|p| self.repository_pin(p, sync_type))
            .transpose()?;
        Ok(Portage {
            sync_type,
            uri,
            pin,
        })
    }

    fn repository_pin(&self, pin: &S<String>, sync_type: SyncType) -> Checked<String> {
        let value = pin.value.trim();
        let is_commit =
            value.len() >= 7 && value.len() <= 40 && value.bytes().all(|b| b.is_ascii_hexdigit());
        let ok = match sync_type {
            SyncType::Git => is_date(value) || is_commit,
            SyncType::Webrsync => is_date(value),
            SyncType::Rsync | SyncType::Local | SyncType::None => {
                return Err(self.source.error(
                    pin.referenced,
                    "`pin` needs `sync_type: git` (a date or commit) or `webrsync` (a date)",
                ));
            }
        };
        if ok {
            Ok(value.to_string())
        } else {
            Err(self.source.error_with_hint(
                pin.referenced,
                format!("`{value}` is not a snapshot date or commit"),
                "write a date as 2026-11-20 (or 20261120), a commit as its hexadecimal id",
            ))
        }
    }

    fn repositories(&self, raw: Vec<S<RawRepository>>) -> Checked<Vec<Repository>> {
        let mut seen = BTreeSet::new();
        let mut repositories = Vec::new();
        for r in &raw {
            let repo = self.repository(r)?;
            if !seen.insert(repo.name.clone()) {
                return Err(self.source.error(
                    r.value.name.referenced,
                    format!("repository `{}` is listed twice", repo.name),
                ));
            }
            repositories.push(repo);
        }
        Ok(repositories)
    }

    pub(super) fn repository(&self, raw: &S<RawRepository>) -> Checked<Repository> {
        let r = &raw.value;
        let name = r.name.value.trim();
        if !atom::is_repository_name(name) {
            return Err(self.source.error(
                r.name.referenced,
                format!("`{name}` is not a repository name (letters, digits, `_` and `-`)"),
            ));
        }
        if name == "gentoo" {
            return Err(self.source.error_with_hint(
                r.name.referenced,
                "`gentoo` is the main repository",
                "configure it under `portage:`",
            ));
        }
        let sync_type = match &r.sync_type {
            Some(s) => self.sync_type(s)?,
            None => SyncType::Git,
        };
        let uri = match (sync_type, &r.uri) {
            (SyncType::None, _) => {
                return Err(self.source.error(
                    r.sync_type.as_ref().map_or(raw.referenced, |s| s.referenced),
                    format!("repository `{name}` needs a source; `sync_type: none` only applies to `portage:`"),
                ));
            }
            (_, None) => {
                return Err(self
                    .source
                    .error(raw.referenced, format!("repository `{name}` needs `uri:`")));
            }
            (SyncType::Local, Some(u)) => self.existing_dir(u, "repository")?,
            (_, Some(u)) => self.url(u, "uri")?,
        };
        let ca_certificate = r
            .ca_certificate
            .as_ref()
            .map(|c| self.existing_path(c, "certificate"))
            .transpose()?;
        Ok(Repository {
            name: name.to_string(),
            sync_type,
            uri: Some(uri),
            ca_certificate,
            priority: r.priority.as_ref().map(|p| p.value),
        })
    }

    fn sync_type(&self, raw: &S<String>) -> Checked<SyncType> {
        const NAMES: [&str; 5] = ["git", "rsync", "webrsync", "local", "none"];
        match raw.value.trim() {
            "git" => Ok(SyncType::Git),
            "rsync" => Ok(SyncType::Rsync),
            "webrsync" => Ok(SyncType::Webrsync),
            "local" => Ok(SyncType::Local),
            "none" => Ok(SyncType::None),
            other => Err(self.choice_error(raw.referenced, "sync_type", other, &NAMES)),
        }
    }

    fn choice_error(&self, at: Location, key: &str, given: &str, names: &[&str]) -> UserError {
        let hint = match did_you_mean(given, names.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("one of: {}", names.join(", ")),
        };
        self.source
            .error_with_hint(at, format!("`{given}` is not a valid `{key}`"), hint)
    }

    pub(super) fn build(&self, r: RawBuild) -> Checked<Build> {
        let positive = |v: &Option<S<u32>>, key: &str| -> Checked<Option<u32>> {
            match v {
                Some(n) if n.value == 0 => Err(self
                    .source
                    .error(n.referenced, format!("`{key}` must be at least 1"))),
                Some(n) => Ok(Some(n.value)),
                None => Ok(None),
            }
        };
        let threads = positive(&r.threads, "threads")?;
        let max_parallel_jobs = positive(&r.max_parallel_jobs, "max_parallel_jobs")?;

        let mut global_use_flags = UseFlags::default();
        if let Some(flags) = r.global_use_flags {
            let flags = flags.value;
            let check = |list: Option<S<OneOrMany>>, key: &str| -> Checked<Vec<S<String>>> {
                let words = self.words(list);
                for flag in &words {
                    let name = flag.value.as_str();
                    if let Some(plain) = name.strip_prefix('-') {
                        return Err(self.source.error_with_hint(
                            flag.referenced,
                            format!("`{name}` under `{key}`: flags here are plain names"),
                            format!("write `{plain}` under `remove:` to disable it"),
                        ));
                    }
                    if !atom::is_use_flag_name(name) {
                        return Err(self
                            .source
                            .error(flag.referenced, format!("`{name}` is not a USE flag name")));
                    }
                }
                Ok(words)
            };
            let add = check(flags.add, "add")?;
            let remove = check(flags.remove, "remove")?;
            if let Some(both) = remove
                .iter()
                .find(|r| add.iter().any(|a| a.value == r.value))
            {
                return Err(self.source.error(
                    both.referenced,
                    format!("USE flag `{}` is both added and removed", both.value),
                ));
            }
            global_use_flags.add = add.into_iter().map(|f| f.value).collect();
            global_use_flags.remove = remove.into_iter().map(|f| f.value).collect();
        }

        let mut package_use_flags = BTreeMap::new();
        for (key, flags) in r.package_use_flags.map(|e| e.0).unwrap_or_default() {
            let atom = self.atom(&key)?;
            let mut list = Vec::new();
            for flag in self.words(Some(flags)) {
                let name = flag.value.strip_prefix('-').unwrap_or(&flag.value);
                if !atom::is_use_flag_name(name) {
                    return Err(self.source.error(
                        flag.referenced,
                        format!(
                            "`{}` is not a USE flag (`flag` enables, `-flag` disables)",
                            flag.value
                        ),
                    ));
                }
                list.push(flag.value);
            }
            package_use_flags.insert(atom, list);
        }

        let mut accept_keywords = BTreeMap::new();
        for (key, keywords) in r.accept_keywords.map(|e| e.0).unwrap_or_default() {
            let atom = self.atom(&key)?;
            let mut list = Vec::new();
            for keyword in self.words(keywords) {
                if !atom::is_keyword(&keyword.value) {
                    return Err(self.source.error_with_hint(
                        keyword.referenced,
                        format!("`{}` is not a keyword", keyword.value),
                        "keywords look like ~amd64, amd64 or **",
                    ));
                }
                list.push(keyword.value);
            }
            accept_keywords.insert(atom, list);
        }

        let mut accept_licenses = BTreeMap::new();
        for (key, licenses) in r.accept_licenses.map(|e| e.0).unwrap_or_default() {
            let atom = self.atom(&key)?;
            let at = licenses.referenced;
            let mut list = Vec::new();
            for license in self.words(Some(licenses)) {
                if !atom::is_license_token(&license.value) {
                    return Err(self.source.error_with_hint(
                        license.referenced,
                        format!("`{}` is not a license name", license.value),
                        "a license as named in the repository's licenses/, or an @GROUP of profiles/license_groups",
                    ));
                }
                list.push(license.value);
            }
            if list.is_empty() {
                return Err(self
                    .source
                    .error(at, format!("`{atom}` lists no license to accept")));
            }
            accept_licenses.insert(atom, list);
        }

        let compression = match r.compression.as_ref() {
            None => Compression::default(),
            Some(c) => match c.value.trim() {
                "gzip" => Compression::Gzip,
                "zstd" => Compression::Zstd,
                other => {
                    return Err(self.choice_error(
                        c.referenced,
                        "compression",
                        other,
                        &["gzip", "zstd"],
                    ));
                }
            },
        };
        let binhost = self.binhost(r.binhost.as_ref(), r.binhost_verify_signature.as_ref())?;
        let distfile_mirrors = match r.distfile_mirrors {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|m| self.distfile_mirror(m))
                    .collect::<Checked<Vec<_>>>()?,
            ),
        };
        Ok(Build {
            threads,
            max_parallel_jobs,
            global_use_flags,
            package_use_flags,
            accept_keywords,
            accept_licenses,
            compression,
            keep_headers: r.keep_headers.unwrap_or(false),
            keep_static_libs: r.keep_static_libs.unwrap_or(false),
            keep_service_files: r.keep_service_files.unwrap_or(false),
            keep_package_db: r.keep_package_db.unwrap_or_else(default_keep_package_db),
            binhost,
            distfile_mirrors,
        })
    }

    /// One of `distfile_mirrors:`: a URL Portage's FETCHCOMMAND can fetch `distfiles/<file>`
    /// under, one word (GENTOO_MIRRORS is a space-separated list in make.conf).
    fn distfile_mirror(&self, raw: &S<String>) -> Checked<String> {
        let uri = self.url(raw, "distfile_mirrors")?;
        let scheme = uri.split("://").next().unwrap_or_default();
        if !["http", "https", "ftp"].contains(&scheme)
            || uri.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\' || c == '$')
        {
            return Err(self.source.error_with_hint(
                raw.referenced,
                format!("`{uri}` cannot be a distfile mirror"),
                "a Gentoo mirror is an http(s) or ftp URL that serves distfiles/<file>, e.g. https://distfiles.gentoo.org",
            ));
        }
        Ok(uri.trim_end_matches('/').to_string())
    }

    /// `binhost:` and `binhost_verify_signature:`. A binhost of the user's own is verified
    /// unless the file says otherwise, as Portage's own binrepos.conf default does; gib's
    /// packages are unsigned, so sharing a gib cache needs `binhost_verify_signature: false`.
    fn binhost(&self, raw: Option<&S<String>>, verify: Option<&S<bool>>) -> Checked<Binhost> {
        let verify_signature = verify.map(|v| v.value).unwrap_or(true);
        let binhost = match raw {
            None => default_binhost(),
            Some(b) => match b.value.trim() {
                "official" => Binhost::Official,
                "none" => Binhost::None,
                url if url.starts_with("file://") => {
                    let path = S::new(
                        url.trim_start_matches("file://").to_string(),
                        b.referenced,
                        b.defined,
                    );
                    Binhost::Directory {
                        path: PathBuf::from(self.existing_dir(&path, "binhost")?),
                        verify_signature,
                    }
                }
                url if url.contains("://") => {
                    let uri = self.url(b, "binhost")?;
                    let scheme = uri.split("://").next().unwrap_or_default();
                    if !["http", "https", "ftp", "ssh"].contains(&scheme) {
                        return Err(self.source.error_with_hint(
                            b.referenced,
                            format!("a binhost cannot be fetched over {scheme}://"),
                            "use an http(s), ftp or ssh URL, or a directory",
                        ));
                    }
                    Binhost::Url {
                        uri,
                        verify_signature,
                    }
                }
                _ => Binhost::Directory {
                    path: PathBuf::from(self.existing_dir(b, "binhost")?),
                    verify_signature,
                },
            },
        };
        if let Some(v) = verify {
            let refused = match binhost {
                Binhost::None => Some("`binhost_verify_signature` needs a `binhost`"),
                // Gentoo signs its packages; not checking them would trust the transport alone.
                Binhost::Official if !v.value => {
                    Some("the official binhost's signatures are always verified")
                }
                _ => None,
            };
            if let Some(message) = refused {
                return Err(self.source.error(v.referenced, message));
            }
        }
        Ok(binhost)
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

    /// `registry:` must make valid references with any image name, so a typo fails here
    /// rather than at `--push`.
    fn registry(&self, raw: &S<String>) -> Checked<String> {
        let value = raw.value.trim().trim_end_matches('/');
        if value.is_empty() || value.contains("://") || value.chars().any(char::is_whitespace) {
            return Err(self.source.error_with_hint(
                raw.referenced,
                format!("`{}` is not a registry prefix", raw.value),
                "write it without a scheme, e.g. registry.example.org/mycontainers",
            ));
        }
        let probe = format!("{value}/image:tag");
        if let Err(why) = crate::registry::Reference::parse(&probe) {
            let why = why.replace(&format!("invalid image reference `{probe}`: "), "");
            return Err(self.source.error_with_hint(
                raw.referenced,
                format!("`{value}` is not a registry prefix: {why}"),
                "write `host[:port]/path` with a lowercase path, e.g. registry.example.org/mycontainers",
            ));
        }
        Ok(value.to_string())
    }

    /// `registries:`: keys are `host[:port]` (no scheme, no path); CA paths must exist.
    fn registries(
        &self,
        raw: Entries<S<RawRegistrySettings>>,
    ) -> Checked<BTreeMap<String, RegistrySettings>> {
        let mut out = BTreeMap::new();
        for (host, settings) in raw.0 {
            let name = host.value.trim();
            let valid = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
            if !valid {
                return Err(self.source.error_with_hint(
                    host.referenced,
                    format!("`{}` is not a registry host", host.value),
                    "write `host` or `host:port` as in image references, e.g. registry.example.org:5000",
                ));
            }
            let r = settings.value;
            let ca_certificate = r
                .ca_certificate
                .as_ref()
                .map(|c| self.existing_path(c, "certificate"))
                .transpose()?;
            let chunk_size = match r.chunk_size {
                Some(n) if n.value == 0 => {
                    return Err(self.source.error(
                        n.referenced,
                        "`chunk_size` must be a number of bytes above 0",
                    ));
                }
                other => other.map(|n| n.value),
            };
            out.insert(
                name.to_string(),
                RegistrySettings {
                    ca_certificate,
                    plain_http: r.plain_http.unwrap_or(false),
                    chunk_size,
                },
            );
        }
        Ok(out)
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

    pub(super) fn image_name(&self, name: &str, at: Location) -> Checked<()> {
        if name == "scratch" {
            return Err(self
                .source
                .error(at, "`scratch` is the empty parent, not an image name"));
        }
        if !is_image_name(name) {
            return Err(self.source.error_with_hint(
                at,
                format!("`{name}` is not a valid image name"),
                "image names are lowercase letters and digits, separated by `.`, `_`, `__` or `-`",
            ));
        }
        Ok(())
    }

    fn images(&self, at: Location, raw: Entries<S<RawImage>>) -> Checked<ValidatedImages> {
        if raw.0.is_empty() {
            return Err(self.source.error(at, "`images:` is empty"));
        }
        let names: BTreeSet<String> = raw.0.iter().map(|(k, _)| k.value.clone()).collect();
        let mut images = BTreeMap::new();
        let mut from_at = BTreeMap::new();
        let mut needs_stage3 = Vec::new();
        for (key, raw_image) in raw.0 {
            self.image_name(&key.value, key.referenced)?;
            let image_at = raw_image.referenced;
            let (image, parent_at) = self.image(&key.value, raw_image.value, image_at, &names)?;
            if image.rootfs.is_none() {
                needs_stage3.push((image.name.clone(), key.referenced));
            }
            from_at.insert(image.name.clone(), parent_at);
            images.insert(image.name.clone(), image);
        }
        self.check_cycles(&images, &from_at)?;
        Ok(ValidatedImages {
            images,
            needs_stage3,
        })
    }

    fn check_cycles(
        &self,
        images: &BTreeMap<String, Image>,
        from_at: &BTreeMap<String, Location>,
    ) -> Checked<()> {
        for start in images.keys() {
            let mut path = vec![start.as_str()];
            let mut current = start.as_str();
            while let Some(Parent::Image(parent)) = images.get(current).map(|i| &i.from) {
                if let Some(pos) = path.iter().position(|p| p == parent) {
                    let mut cycle: Vec<&str> = path[pos..].to_vec();
                    cycle.push(parent);
                    let first = cycle[0];
                    return Err(self.source.error(
                        from_at.get(first).copied().unwrap_or(Location::UNKNOWN),
                        format!("the images form a cycle: {}", cycle.join(" -> ")),
                    ));
                }
                path.push(parent);
                current = parent;
            }
        }
        Ok(())
    }

    fn image(
        &self,
        name: &str,
        r: RawImage,
        at: Location,
        names: &BTreeSet<String>,
    ) -> Checked<(Image, Location)> {
        let (from, from_at) = match &r.from {
            None => (Parent::Scratch, at),
            Some(f) => (self.parent(name, f, names)?, f.referenced),
        };
        let packages = match r.packages {
            Some(p) => self.atoms(p)?,
            None => Vec::new(),
        };
        let builder_packages = match r.builder_packages {
            Some(p) => self.atoms(p)?,
            None => Vec::new(),
        };
        if let Some(rootfs) = &r.rootfs {
            let other = if !packages.is_empty() {
                Some("packages")
            } else if !builder_packages.is_empty() {
                Some("builder_packages")
            } else if r.script.is_some() {
                Some("script")
            } else {
                None
            };
            if let Some(other) = other {
                return Err(self.source.error_with_hint(
                    rootfs.referenced,
                    format!("image `{name}` has both `rootfs:` and `{other}:`"),
                    "a rootfs image takes its layer as it is; build on it with another image (`from: {name}`)".replace("{name}", name),
                ));
            }
        }
        let script = r
            .script
            .as_ref()
            .map(|s| {
                let path = self.existing_path(s, "script")?;
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(self
                        .source
                        .error(s.referenced, format!("script `{}` is not a file", s.value)))
                }
            })
            .transpose()?;
        let context = match (&r.context, &r.script) {
            (None, _) => None,
            (Some(c), None) => {
                return Err(self.source.error_with_hint(
                    c.referenced,
                    format!("image `{name}` has `context:` but no `script:`"),
                    "the context is the directory a `script:` reads; add the script or drop the context",
                ));
            }
            (Some(c), Some(_)) => {
                let path = self.existing_path(c, "context")?;
                if !path.is_dir() {
                    return Err(self.source.error(
                        c.referenced,
                        format!("context `{}` is not a directory", c.value),
                    ));
                }
                Some(path)
            }
        };
        let rootfs = r
            .rootfs
            .as_ref()
            .map(|p| self.existing_path(p, "rootfs"))
            .transpose()?;
        let tag = r
            .tag
            .as_ref()
            .map(|t| {
                check_tag(t.value.trim())
                    .map(|()| t.value.trim().to_string())
                    .map_err(|m| self.source.error(t.referenced, m))
            })
            .transpose()?;
        let mut env = BTreeMap::new();
        for (key, value) in r.env.map(|e| e.0).unwrap_or_default() {
            let k = key.value.as_str();
            let valid = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(self.source.error(
                    key.referenced,
                    format!("`{k}` is not an environment variable name"),
                ));
            }
            env.insert(key.value, value);
        }
        let mut labels = BTreeMap::new();
        for (key, value) in r.labels.map(|e| e.0).unwrap_or_default() {
            if key.value.trim().is_empty() {
                return Err(self.source.error(key.referenced, "empty label name"));
            }
            labels.insert(key.value, value);
        }
        let workdir = r
            .workdir
            .as_ref()
            .map(|w| self.absolute(w, "workdir"))
            .transpose()?;
        let expose = r
            .expose
            .unwrap_or_default()
            .iter()
            .map(|e| normalize_port(&e.value).map_err(|m| self.source.error(e.referenced, m)))
            .collect::<Checked<Vec<_>>>()?;
        let volumes = r
            .volumes
            .unwrap_or_default()
            .iter()
            .map(|v| self.absolute(v, "volume"))
            .collect::<Checked<Vec<_>>>()?;
        let test = match &r.test {
            Some(t) if t.value.trim().is_empty() => {
                return Err(self.source.error(t.referenced, "`test` is empty"));
            }
            Some(t) => Some(t.value.clone()),
            None => None,
        };
        let layering = match r.layering {
            Some(l) => self.layering(l.value)?,
            None => default_layering(),
        };
        let accounts = r.accounts.map(|a| self.accounts(a)).transpose()?;
        let mut user = match &r.user {
            Some(u) if u.value.trim().is_empty() => {
                return Err(self.source.error(u.referenced, "`user` is empty"));
            }
            Some(u) => Some(u.value.trim().to_string()),
            None => None,
        };
        if let Some(run_as) = accounts.as_ref().and_then(|a| a.run_as.clone()) {
            if let Some(u) = &r.user {
                return Err(self.source.error_with_hint(
                    u.referenced,
                    format!("image `{name}` sets both `user:` and `accounts.run_as:`"),
                    "keep one of them",
                ));
            }
            user = Some(run_as);
        }
        let paths = r
            .paths
            .unwrap_or_default()
            .into_iter()
            .map(|p| self.path_entry(p))
            .collect::<Checked<Vec<_>>>()?;
        let image = Image {
            name: name.to_string(),
            from,
            packages,
            builder_packages,
            script,
            context,
            rootfs,
            tag,
            latest: r.latest,
            runtime: Runtime {
                entrypoint: r.entrypoint,
                cmd: r.cmd,
                env,
                user,
                workdir,
                labels,
                expose,
                volumes,
            },
            test,
            layering,
            accounts,
            paths,
            keep_headers: r.keep_headers,
            keep_static_libs: r.keep_static_libs,
            keep_service_files: r.keep_service_files,
            keep_package_db: r.keep_package_db,
        };
        Ok((image, from_at))
    }

    fn parent(&self, name: &str, raw: &S<String>, names: &BTreeSet<String>) -> Checked<Parent> {
        let value = raw.value.trim();
        if value.is_empty() {
            return Err(self.source.error_with_hint(
                raw.referenced,
                "`from` is empty",
                "use `scratch`, an image of this file, or a registry reference",
            ));
        }
        if value == "scratch" {
            return Ok(Parent::Scratch);
        }
        if value.contains(['/', ':', '@']) {
            if value.chars().any(char::is_whitespace) {
                return Err(self.source.error(
                    raw.referenced,
                    format!("`{value}` is not an image reference"),
                ));
            }
            return Ok(Parent::Registry(value.to_string()));
        }
        if value == name {
            return Err(self.source.error(
                raw.referenced,
                format!("the images form a cycle: {name} -> {name}"),
            ));
        }
        if !names.contains(value) {
            let message = format!("`from: {value}` names no image of this file");
            return Err(match did_you_mean(value, names.iter().map(String::as_str)) {
                Some(best) => self.source.error_with_hint(
                    raw.referenced,
                    message,
                    format!("did you mean `{best}`?"),
                ),
                None => self.source.error_with_hint(
                    raw.referenced,
                    message,
                    "use `scratch`, an image of this file, or a registry reference such as docker.io/library/alpine:3",
                ),
            });
        }
        Ok(Parent::Image(value.to_string()))
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

    fn layering(&self, r: RawLayering) -> Checked<Layering> {
        let strategy = match r.strategy.as_ref() {
            None => LayeringStrategy::Single,
            Some(s) => match s.value.trim() {
                "single" => LayeringStrategy::Single,
                "per-package" => LayeringStrategy::PerPackage,
                other => {
                    return Err(self.choice_error(
                        s.referenced,
                        "strategy",
                        other,
                        &["single", "per-package"],
                    ));
                }
            },
        };
        let budget = match (&r.budget, strategy) {
            (Some(b), _) if b.value == 0 => {
                return Err(self
                    .source
                    .error(b.referenced, "`budget` must be at least 1"));
            }
            (Some(b), LayeringStrategy::Single) if b.value != 1 => {
                return Err(self.source.error_with_hint(
                    b.referenced,
                    "`budget` only applies to `strategy: per-package`",
                    "a single-layer image has one layer",
                ));
            }
            (Some(b), _) => b.value,
            (None, LayeringStrategy::Single) => 1,
            (None, LayeringStrategy::PerPackage) => DEFAULT_PER_PACKAGE_BUDGET,
        };
        Ok(Layering { strategy, budget })
    }

    fn accounts(&self, raw: S<RawAccounts>) -> Checked<Accounts> {
        let r = raw.value;
        let mut groups = Vec::new();
        let mut group_names = BTreeSet::new();
        for g in r.groups.unwrap_or_default() {
            let g = g.value;
            self.new_account_name(&mut group_names, &g.name, "group")?;
            groups.push(Group {
                name: g.name.value,
                gid: g.gid,
            });
        }
        let mut users = Vec::new();
        let mut user_names = BTreeSet::new();
        for u in r.users.unwrap_or_default() {
            let u = u.value;
            self.new_account_name(&mut user_names, &u.name, "user")?;
            let home = u
                .home
                .as_ref()
                .map(|h| self.absolute(h, "home"))
                .transpose()?;
            let shell = u
                .shell
                .as_ref()
                .map(|s| self.absolute(s, "shell"))
                .transpose()?;
            users.push(User {
                name: u.name.value,
                uid: u.uid,
                // One group per user, with the user's id, is the usual convention.
                gid: u.gid.unwrap_or(u.uid),
                home,
                shell,
            });
        }
        let run_as = match r.run_as {
            None => None,
            Some(run_as) => {
                let value = run_as.value.trim();
                let numeric =
                    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit() || b == b':');
                if !numeric && !user_names.contains(value) {
                    let message = format!("`run_as: {value}` names no user of `accounts.users`");
                    return Err(
                        match did_you_mean(value, user_names.iter().map(String::as_str)) {
                            Some(best) => self.source.error_with_hint(
                                run_as.referenced,
                                message,
                                format!("did you mean `{best}`?"),
                            ),
                            None => self.source.error(run_as.referenced, message),
                        },
                    );
                }
                Some(value.to_string())
            }
        };
        Ok(Accounts {
            users,
            groups,
            run_as,
        })
    }

    /// A valid user or group name not seen before in its list.
    fn new_account_name(
        &self,
        seen: &mut BTreeSet<String>,
        name: &S<String>,
        what: &str,
    ) -> Checked<()> {
        self.account_name(name)?;
        if !seen.insert(name.value.clone()) {
            return Err(self.source.error(
                name.referenced,
                format!("{what} `{}` is listed twice", name.value),
            ));
        }
        Ok(())
    }

    fn account_name(&self, name: &S<String>) -> Checked<()> {
        let n = name.value.as_str();
        let valid = n.len() <= 32
            && n.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if valid {
            Ok(())
        } else {
            Err(self.source.error_with_hint(
                name.referenced,
                format!("`{n}` is not a valid user or group name"),
                "names start with a lowercase letter or `_`, then lowercase letters, digits, `_` or `-`",
            ))
        }
    }

    fn path_entry(&self, raw: S<RawPath>) -> Checked<PathEntry> {
        let at = raw.referenced;
        let r = raw.value;
        let path = self.absolute(&r.path, "path")?;
        let mode = r
            .mode
            .as_ref()
            .map(|m| match &m.value.0 {
                Ok(text) => parse_mode(text).ok_or_else(|| {
                    self.source.error_with_hint(
                        m.referenced,
                        format!("`{text}` is not an octal mode"),
                        "e.g. \"0755\" or \"0644\"",
                    )
                }),
                Err(number) => Err(self.source.error_with_hint(
                    m.referenced,
                    format!("the mode {number} must be a quoted octal string"),
                    format!("write `mode: \"0{number}\"`; YAML reads an unquoted 0755 as the decimal number 755"),
                )),
            })
            .transpose()?;
        let unexpected = |value: &Option<S<String>>, key: &str, kind: &str| -> Checked<()> {
            match value {
                Some(v) => Err(self.source.error(
                    v.referenced,
                    format!("`{key}` does not apply to `type: {kind}`"),
                )),
                None => Ok(()),
            }
        };
        let kind = match r.kind.value.trim() {
            "directory" => {
                unexpected(&r.source, "source", "directory")?;
                unexpected(&r.target, "target", "directory")?;
                PathKind::Directory
            }
            "file" => {
                unexpected(&r.target, "target", "file")?;
                let source = r.source.as_ref().ok_or_else(|| {
                    self.source.error(
                        at,
                        format!("`{path}` is a file: it needs `source:`, the file to copy"),
                    )
                })?;
                let resolved = self.existing_path(source, "source")?;
                if !resolved.is_file() {
                    return Err(self.source.error(
                        source.referenced,
                        format!("source `{}` is not a file", source.value),
                    ));
                }
                PathKind::File { source: resolved }
            }
            "symlink" => {
                unexpected(&r.source, "source", "symlink")?;
                if let Some(m) = &r.mode {
                    return Err(self
                        .source
                        .error(m.referenced, "`mode` does not apply to `type: symlink`"));
                }
                let target = r.target.as_ref().ok_or_else(|| {
                    self.source
                        .error(at, format!("`{path}` is a symlink: it needs `target:`"))
                })?;
                if target.value.is_empty() {
                    return Err(self.source.error(target.referenced, "`target` is empty"));
                }
                PathKind::Symlink {
                    target: target.value.clone(),
                }
            }
            other => {
                return Err(self.choice_error(
                    r.kind.referenced,
                    "type",
                    other,
                    &["directory", "file", "symlink"],
                ));
            }
        };
        Ok(PathEntry {
            path,
            kind,
            uid: r.uid,
            gid: r.gid,
            mode,
        })
    }
}

struct ValidatedImages {
    images: BTreeMap<String, Image>,
    /// Images that run Portage (all but `rootfs:` ones), with where they are named.
    needs_stage3: Vec<(String, Location)>,
}

fn start_of_file() -> Location {
    // Location has no public constructor; an error at "the whole file" is reported at 1:1.
    Location::UNKNOWN
}

/// OCI repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn is_image_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || name.len() > 128 {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &name[start..i];
        let valid = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

/// OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(super) fn check_tag(tag: &str) -> Result<(), String> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not a valid tag (letters, digits, `_`, `.`, `-`; at most 128)"
        ))
    }
}

/// `8080/tcp`, `53/udp`, `8080` (tcp).
fn normalize_port(value: &str) -> Result<String, String> {
    let value = value.trim();
    let (port, protocol) = value.split_once('/').unwrap_or((value, "tcp"));
    let port_ok = port
        .parse::<u16>()
        .is_ok_and(|p| p > 0 && !port.starts_with('0'));
    if port_ok && matches!(protocol, "tcp" | "udp" | "sctp") {
        Ok(format!("{port}/{protocol}"))
    } else {
        Err(format!(
            "`{value}` is not a port to expose (e.g. 8080/tcp, 53/udp)"
        ))
    }
}

fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.trim();
    let digits = digits.strip_prefix("0o").unwrap_or(digits);
    if digits.len() < 3 || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

/// `20261117T170000Z`
fn is_stage3_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}

/// `2026-11-20` or `20261120`
fn is_date(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    let dashed_ok = !s.contains('-') || (s.len() == 10 && &s[4..5] == "-" && &s[7..8] == "-");
    dashed_ok && digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit())
}

pub fn default_sync_type() -> SyncType {
    // A git mirror gives an exact, cheap-to-update snapshot whose commit date is the tag
    // rule's snapshot date; `none` would need a stage3 that ships a tree, and current stage3
    // tarballs do not.
    SyncType::Git
}

pub fn default_portage() -> Portage {
    Portage {
        sync_type: default_sync_type(),
        uri: Some(DEFAULT_PORTAGE_GIT_URI.to_string()),
        pin: None,
    }
}

pub fn default_binhost() -> Binhost {
    // Building from source by default: gib's images change USE flags (minimal, no systemd…),
    // so most official binary packages would not match and be rebuilt anyway, and using them
    // adds a second source of trust. Rebuilds stay fast through gib's own PKGDIR cache.
    Binhost::None
}

pub fn default_keep_package_db() -> bool {
    // Vulnerability scanners (trivy, grype) read /var/db/pkg to list what is installed.
    true
}

pub fn default_layering() -> Layering {
    Layering {
        strategy: LayeringStrategy::Single,
        budget: 1,
    }
}

pub fn default_build() -> Build {
    Build {
        threads: None,
        max_parallel_jobs: None,
        global_use_flags: UseFlags::default(),
        package_use_flags: BTreeMap::new(),
        accept_keywords: BTreeMap::new(),
        accept_licenses: BTreeMap::new(),
        compression: Compression::default(),
        keep_headers: false,
        keep_static_libs: false,
        keep_service_files: false,
        keep_package_db: default_keep_package_db(),
        binhost: default_binhost(),
        distfile_mirrors: None,
    }
}

#[cfg(test)]
mod tests {
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
