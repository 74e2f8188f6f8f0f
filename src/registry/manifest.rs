//! The few fields of manifests and indexes that pushing and pulling need, read leniently
//! (OCI and Docker v2 media types alike) with serde_json; the words (digest, descriptor,
//! platform, media types) are `oci::spec`'s.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::oci::spec::{
    Descriptor, Digest, MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};

/// Every manifest type gib can push or pull, for `Accept`.
pub const ACCEPTED_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX || media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST
}

/// The config media types of images (an artifact's config is something else).
const IMAGE_CONFIGS: [&str; 2] = [MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_CONFIG];

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
        media_type == MEDIA_TYPE_MANIFEST || media_type == MEDIA_TYPE_DOCKER_MANIFEST,
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
        Ok(Descriptor::new(
            &document.media_type(),
            digest.clone(),
            bytes.len() as u64,
        ))
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
    pub manifests: Vec<Descriptor>,
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
            None if !self.manifests.is_empty() => MEDIA_TYPE_INDEX.to_string(),
            None => MEDIA_TYPE_MANIFEST.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::spec::Platform;

    #[test]
    fn accept_names_every_manifest_type() {
        for media_type in [
            MEDIA_TYPE_MANIFEST,
            MEDIA_TYPE_INDEX,
            MEDIA_TYPE_DOCKER_MANIFEST,
            MEDIA_TYPE_DOCKER_MANIFEST_LIST,
        ] {
            assert!(ACCEPTED_MANIFESTS.split(", ").any(|m| m == media_type));
        }
        assert_eq!(ACCEPTED_MANIFESTS.split(", ").count(), 4);
    }

    #[test]
    fn index_and_manifest() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MEDIA_TYPE_MANIFEST}","digest":"{d}","size":1,
            "platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let doc = ManifestDocument::parse(index.as_bytes()).unwrap();
        assert_eq!(doc.media_type(), MEDIA_TYPE_INDEX);
        let platform = doc.manifests[0].platform.clone().unwrap();
        assert!(Platform::parse("linux/arm64").unwrap().matches(&platform));
        assert!(
            !Platform::parse("linux/arm64/v7")
                .unwrap()
                .matches(&platform)
        );
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{d}","size":0}},"layers":[]}}"#
        );
        assert_eq!(
            ManifestDocument::parse(manifest.as_bytes())
                .unwrap()
                .media_type(),
            MEDIA_TYPE_DOCKER_MANIFEST
        );
        assert!(ManifestDocument::parse(b"{}").is_err());
    }
}
