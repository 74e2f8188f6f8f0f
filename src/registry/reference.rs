//! Image references: `host[:port]/repo/path[:tag][@sha256:…]`.
//!
//! The registry host is always explicit (gib has no default registry): the first component
//! must contain a `.` or a `:`, or be `localhost`.

use std::fmt;
use std::str::FromStr;

use crate::oci::spec::Digest;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    /// `host` or `host:port`, as written.
    pub registry: String,
    /// The repository path inside the registry, e.g. `gib/base`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, String> {
        let bad = |why: &str| format!("invalid image reference `{text}`: {why}");
        let (name_and_tag, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(Digest::parse(digest).map_err(|e| bad(&e))?)),
            None => (text, None),
        };
        let (registry, path) = name_and_tag
            .split_once('/')
            .ok_or_else(|| bad("it needs a registry host, e.g. `registry.example.org/name:tag`"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad(&format!(
                "`{registry}` is not a registry host (gib has no default registry; write \
                 e.g. `registry.example.org/{path}`)"
            )));
        }
        if !registry
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            return Err(bad(&format!("`{registry}` is not a host name")));
        }
        // The tag is after a `:` in the last path component (a `:` earlier is a port).
        let last_slash = path.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match path[last_slash..].find(':') {
            Some(i) => (
                &path[..last_slash + i],
                Some(path[last_slash + i + 1..].to_string()),
            ),
            None => (path, None),
        };
        if repository.is_empty()
            || repository.split('/').any(|c| {
                c.is_empty()
                    || !c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
                    || !c.as_bytes()[0].is_ascii_alphanumeric()
            })
        {
            return Err(bad(&format!(
                "repository `{repository}` must be lowercase letters, digits and `._-`, \
                 components separated by `/`"
            )));
        }
        if let Some(tag) = &tag {
            validate_tag(tag).map_err(|e| bad(&e))?;
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// What to ask the registry for: the digest when there is one, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

/// A tag as the distribution spec allows it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tag `{tag}` must be 1-128 of `A-Za-z0-9_.-` and not start with `.` or `-`"
        ))
    }
}

impl FromStr for Reference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn host_port_path_tag() {
        let r = Reference::parse("localhost:5000/gib/base:1.0").unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "gib/base");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.to_string(), "localhost:5000/gib/base:1.0");
        assert_eq!(r.manifest_reference(), "1.0");
    }

    #[test]
    fn digest_and_no_tag() {
        let r = Reference::parse(&format!("127.0.0.1:5000/app@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.manifest_reference(), D);
        let r = Reference::parse("registry.example.org/base").unwrap();
        assert_eq!(r.manifest_reference(), "latest");
        let r = Reference::parse(&format!("registry.example.org/base:1@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.to_string(), format!("registry.example.org/base:1@{D}"));
    }

    #[test]
    fn rejects() {
        for bad in [
            "base:1.0",
            "library/base",
            "localhost:5000/Base",
            "localhost:5000/a//b",
            "localhost:5000/a:-x",
            "localhost:5000/a@sha256:12",
            "localhost:5000/",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
