//! `registry:` and `registries:`: where images are pushed and how each registry is reached.

use super::*;

impl Validator<'_> {
    /// `registry:` must make valid references with any image name, so a typo fails here
    /// rather than at `--push`.
    pub(super) fn registry(&self, raw: &S<String>) -> Checked<String> {
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
    pub(super) fn registries(
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
}
