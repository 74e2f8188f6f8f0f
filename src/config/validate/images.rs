//! `images:`: names, parents (no cycles), packages, runtime keys and outputs of each image.

use super::*;

impl Validator<'_> {
    pub(in crate::config) fn image_name(&self, name: &str, at: Location) -> Checked<()> {
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

    pub(super) fn images(
        &self,
        at: Location,
        raw: Entries<S<RawImage>>,
    ) -> Checked<ValidatedImages> {
        if raw.0.is_empty() {
            return Err(self.source.error(at, "`images:` is empty"));
        }
        let names: BTreeSet<String> = raw.0.iter().map(|(k, _)| k.value.clone()).collect();
        let mut images = BTreeMap::new();
        let mut from_at = BTreeMap::new();
        let mut needs_stage3 = Vec::new();
        let mut named_at = BTreeMap::new();
        for (key, raw_image) in raw.0 {
            self.image_name(&key.value, key.referenced)?;
            let image_at = raw_image.referenced;
            let (image, parent_at) = self.image(&key.value, raw_image.value, image_at, &names)?;
            if image.rootfs.is_none() {
                needs_stage3.push((image.name.clone(), key.referenced));
            }
            from_at.insert(image.name.clone(), parent_at);
            named_at.insert(image.name.clone(), key.referenced);
            images.insert(image.name.clone(), image);
        }
        self.check_cycles(&images, &from_at)?;
        Ok(ValidatedImages {
            images,
            needs_stage3,
            named_at,
        })
    }

    pub(super) fn check_cycles(
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

    pub(super) fn image(
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
        let test = r.test.as_ref().map(|t| self.image_test(t)).transpose()?;
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
            audit: self.audit_override(r.audit)?,
            platforms: r.platforms.map(|p| self.platforms(p)).transpose()?,
            lint: r
                .lint
                .map(|l| self.lint(l))
                .transpose()?
                .unwrap_or_default(),
        };
        Ok((image, from_at))
    }

    pub(super) fn parent(
        &self,
        name: &str,
        raw: &S<String>,
        names: &BTreeSet<String>,
    ) -> Checked<Parent> {
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
            // `app:2025.1` where `app` is an image of this file: a tag on an image of this
            // file means nothing (its tags are its own `tag:`), and pulling `app` from
            // Docker Hub is surely not meant. A registry reference names its host or
            // namespace (`registry.example.org/app:2025.1`).
            let short = value.split(['@', ':']).next().unwrap_or(value);
            if !value.contains('/') && names.contains(short) {
                return Err(self.source.error_with_hint(
                    raw.referenced,
                    format!("`from: {value}` names the image `{short}` of this file with a tag"),
                    format!(
                        "an image of this file is named alone (`from: {short}`); to build on a \
                         published image, write its full reference (registry.example.org/{value})"
                    ),
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
}

pub(in crate::config) struct ValidatedImages {
    pub(super) images: BTreeMap<String, Image>,
    /// Images that run Portage (all but `rootfs:` ones), with where they are named.
    pub(super) needs_stage3: Vec<(String, Location)>,
    /// Where each image is named, for the checks across images.
    pub(super) named_at: BTreeMap<String, Location>,
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
pub(in crate::config) fn check_tag(tag: &str) -> Result<(), String> {
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
pub(super) fn normalize_port(value: &str) -> Result<String, String> {
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
