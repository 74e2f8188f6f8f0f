//! `stage3:`: a flavor, a URL or a path, with its pin or checksum.

use super::*;

impl Validator<'_> {
    pub(super) fn stage3(&self, raw: S<RawStage3>) -> Checked<Stage3> {
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
