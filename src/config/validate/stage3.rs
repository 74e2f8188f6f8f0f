//! `stage3:`: a flavor, a URL or a path (the last two once, or one per architecture), with its
//! pin or checksum.

use super::super::raw::PerArch;
use super::*;
use crate::stage3::arch;

/// `stage3:` validated: the stage3 of the host (or of the only architecture named), and
/// the ones a per-architecture `url:`/`path:` names, by Gentoo architecture.
pub(super) struct Stage3Sources {
    pub(super) main: Stage3,
    pub(super) per_arch: BTreeMap<String, Stage3>,
}

impl Validator<'_> {
    pub(super) fn stage3(&self, raw: S<RawStage3>) -> Checked<Stage3Sources> {
        let at = raw.referenced;
        let r = raw.value;
        let flavor_key = r.flavor.as_ref().map(|f| ("flavor", f.referenced));
        let sources: Vec<(&str, Location)> = [
            flavor_key,
            r.url.as_ref().map(|v| ("url", v.referenced)),
            r.path.as_ref().map(|v| ("path", v.referenced)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let key = match sources.as_slice() {
            [] => {
                return Err(self.source.error_with_hint(
                    at,
                    "`stage3` needs a source: one of `flavor`, `url` or `path`",
                    "e.g. `flavor: amd64-openrc`",
                ));
            }
            [one] => one.0,
            [first, second, ..] => {
                return Err(self.source.error_with_hint(
                    second.1,
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
        let sha512 = |s: &S<String>| -> Checked<String> {
            let hex = s.value.trim().to_ascii_lowercase();
            if hex.len() == 128 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(hex)
            } else {
                Err(self.source.error(
                    s.referenced,
                    "`sha512` must be 128 hexadecimal digits (the output of sha512sum)",
                ))
            }
        };
        if let Some(value) = &r.flavor {
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
            return Ok(Stage3Sources {
                main: Stage3::Flavor {
                    flavor: flavor.to_string(),
                    mirror,
                    pin,
                },
                per_arch: BTreeMap::new(),
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
        let Some(value) = r.url.as_ref().or(r.path.as_ref()) else {
            return Err(self.source.error(at, "`stage3` needs a source"));
        };
        let one = |text: &S<String>, sha: Option<String>| -> Checked<Stage3> {
            if key == "url" {
                return Ok(Stage3::Url {
                    url: self.url(text, "url")?,
                    sha512: sha,
                });
            }
            let path = self.existing_path(text, "stage3 tarball")?;
            if !path.is_file() {
                return Err(self
                    .source
                    .error(text.referenced, format!("`{}` is not a file", text.value)));
            }
            Ok(Stage3::Path { path, sha512: sha })
        };
        match (
            &value.value,
            r.sha512.as_ref().map(|s| (&s.value, s.referenced)),
        ) {
            (PerArch::One(text), None | Some((PerArch::One(_), _))) => {
                let sha = match &r.sha512 {
                    Some(S {
                        value: PerArch::One(hex),
                        referenced,
                        defined,
                    }) => Some(sha512(&S::new(hex.clone(), *referenced, *defined))?),
                    _ => None,
                };
                let text = S::new(text.clone(), value.referenced, value.defined);
                Ok(Stage3Sources {
                    main: one(&text, sha)?,
                    per_arch: BTreeMap::new(),
                })
            }
            (PerArch::Each(entries), None | Some((PerArch::Each(_), _))) => {
                let hashes: Vec<&(S<String>, S<String>)> = match &r.sha512 {
                    Some(S {
                        value: PerArch::Each(h),
                        ..
                    }) => h.0.iter().collect(),
                    _ => Vec::new(),
                };
                for (name, _) in &hashes {
                    if !entries.0.iter().any(|(k, _)| k.value == name.value) {
                        return Err(self.source.error(
                            name.referenced,
                            format!("`sha512` names `{}`, which `{key}` does not", name.value),
                        ));
                    }
                }
                let mut per_arch = BTreeMap::new();
                for (name, text) in &entries.0 {
                    if !arch::ARCHES.iter().any(|a| a.gentoo == name.value) {
                        return Err(self.choice_error(
                            name.referenced,
                            "stage3 architecture",
                            &name.value,
                            &arch::ARCHES.map(|a| a.gentoo),
                        ));
                    }
                    let sha = hashes
                        .iter()
                        .find(|(k, _)| k.value == name.value)
                        .map(|(_, hex)| sha512(hex))
                        .transpose()?;
                    per_arch.insert(name.value.clone(), one(text, sha)?);
                }
                let host = arch::of(&Platform::host()).map(|a| a.gentoo);
                let main = host
                    .and_then(|h| per_arch.get(h))
                    .or_else(|| per_arch.values().next())
                    .cloned()
                    .ok_or_else(|| {
                        self.source
                            .error(value.referenced, format!("`{key}` is empty"))
                    })?;
                Ok(Stage3Sources { main, per_arch })
            }
            (_, Some((_, sha_at))) => Err(self.source.error(
                sha_at,
                format!(
                    "`sha512` must have the form of `{key}`: one value, or one per architecture"
                ),
            )),
        }
    }
}

pub(super) const STAGE3_KEYS: [&str; 3] = ["flavor", "url", "path"];

/// `20261117T170000Z`
pub(super) fn is_stage3_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}
