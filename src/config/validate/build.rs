//! `build:`: Portage settings, compression, what to keep, binary packages, layering.

use super::*;

impl Validator<'_> {
    pub(in crate::config) fn build(&self, r: RawBuild) -> Checked<Build> {
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
        let parallel_images = positive(&r.parallel_images, "parallel_images")?;

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
                        &COMPRESSIONS,
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
            parallel_images,
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
            lint: r
                .lint
                .map(|l| self.lint(l))
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// `lint:`, of `build:` or of an image: its `ignore` entries are absolute paths in the
    /// image, kept without a trailing `/`.
    pub(super) fn lint(&self, raw: S<RawLint>) -> Checked<Lint> {
        let ignore = raw
            .value
            .ignore
            .unwrap_or_default()
            .iter()
            .map(|path| {
                let path = self.absolute(path, "the lint's ignore path")?;
                let trimmed = path.trim_end_matches('/');
                Ok(if trimmed.is_empty() { "/" } else { trimmed }.to_string())
            })
            .collect::<Checked<Vec<_>>>()?;
        Ok(Lint {
            fail: raw.value.fail,
            ignore,
        })
    }

    /// One of `distfile_mirrors:`: a URL Portage's FETCHCOMMAND can fetch `distfiles/<file>`
    /// under, one word (GENTOO_MIRRORS is a space-separated list in make.conf).
    pub(super) fn distfile_mirror(&self, raw: &S<String>) -> Checked<String> {
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
    pub(super) fn binhost(
        &self,
        raw: Option<&S<String>>,
        verify: Option<&S<bool>>,
    ) -> Checked<Binhost> {
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

    pub(super) fn layering(&self, r: RawLayering) -> Checked<Layering> {
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
                        &LAYERING_STRATEGIES,
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
}
