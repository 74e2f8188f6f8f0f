//! The few fields of manifests and indexes that pushing and pulling need, read leniently
//! (OCI and Docker v2 media types alike) with serde_json; gib's OCI writer owns the full types.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest type gib can push or pull, for `Accept`.
pub const ACCEPTED_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// The config media types of images (an artifact's config is something else).
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// A pulled manifest must be an image or an index of images: an unknown manifest type (a
/// Docker schema 1 manifest, an artifact, anything new) is refused rather than guessed at.
pub fn check_image_media_types(
    media_type: &str,
    document: &ManifestDocument,
) -> anyhow::Result<()> {
    let printable = super::error::printable;
    if is_index(media_type) {
        return Ok(());
    }
    anyhow::ensure!(
        media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST,
        "its media type `{}` is neither an image manifest nor an index",
        printable(media_type)
    );
    if let Some(config) = &document.config {
        anyhow::ensure!(
            IMAGE_CONFIGS.contains(&config.media_type.as_str()),
            "its config has media type `{}`, not an image config: it is an artifact, not an image",
            printable(&config.media_type)
        );
    }
    Ok(())
}

/// A content descriptor: what a blob is, its digest and its size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

impl Descriptor {
    /// The descriptor of a manifest or index stored in `blobs_dir`, from its content:
    /// digest and size measured, media type from its `mediaType` field (an index when it has
    /// `manifests`, else an OCI manifest).
    pub fn of_manifest_blob(blobs_dir: &Path, digest: &Digest) -> anyhow::Result<Descriptor> {
        let path = digest.blob_path(blobs_dir);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let actual = Digest::of_bytes(&bytes);
        anyhow::ensure!(
            actual == *digest,
            "{} has digest {actual}, not the {digest} its name says",
            path.display()
        );
        let document = ManifestDocument::parse(&bytes)
            .with_context(|| format!("{} is not a manifest", path.display()))?;
        Ok(Descriptor {
            media_type: document.media_type(),
            digest: digest.clone(),
            size: bytes.len() as u64,
        })
    }
}

/// An index entry: a descriptor with its platform.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

impl IndexEntry {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
        }
    }
}

/// An image manifest or an index, whichever the JSON is.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDocument {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<IndexEntry>,
}

impl ManifestDocument {
    pub fn parse(bytes: &[u8]) -> anyhow::Result<ManifestDocument> {
        let document: ManifestDocument = serde_json::from_slice(bytes)?;
        anyhow::ensure!(
            document.config.is_some() || !document.manifests.is_empty(),
            "it has neither a `config` nor `manifests`"
        );
        Ok(document)
    }

    pub fn media_type(&self) -> String {
        match &self.media_type {
            Some(m) => m.clone(),
            None if !self.manifests.is_empty() => OCI_INDEX.to_string(),
            None => OCI_MANIFEST.to_string(),
        }
    }
}

/// An OS/architecture pair, as in an index's `platform`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform gib runs on, in OCI's names.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64",
            "powerpc64le" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: None,
        }
    }

    /// `os/arch[/variant]`, e.g. `linux/arm64/v8`.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(format!("platform `{text}` is not `os/arch[/variant]`")),
        }
    }

    /// Whether an index entry's platform fits; a variant is compared only when asked for.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_manifest() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1,
            "platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let doc = ManifestDocument::parse(index.as_bytes()).unwrap();
        assert_eq!(doc.media_type(), OCI_INDEX);
        let platform = doc.manifests[0].platform.clone().unwrap();
        assert!(Platform::parse("linux/arm64").unwrap().matches(&platform));
        assert!(
            !Platform::parse("linux/arm64/v7")
                .unwrap()
                .matches(&platform)
        );
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":0}},"layers":[]}}"#
        );
        assert_eq!(
            ManifestDocument::parse(manifest.as_bytes())
                .unwrap()
                .media_type(),
            DOCKER_MANIFEST
        );
        assert!(ManifestDocument::parse(b"{}").is_err());
    }
}
