//! Artifacts attached to an image (OCI image-spec 1.1): a manifest with an `artifactType`,
//! the empty config, one blob as its layer, and the image as its `subject`, so registries
//! list it under the image's referrers and layouts keep it next to the image.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::blob::BlobStore;
use super::image::{ANNOTATION_CREATED, Descriptor, MEDIA_TYPE_MANIFEST, rfc3339};

/// The empty descriptor's media type: an artifact has no image config.
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The empty descriptor's content, `{}`.
const EMPTY_CONTENT: &[u8] = b"{}";
/// The conventional file name annotation of a layer (oras and registries show it).
const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// A stored artifact manifest and the blobs it references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The artifact manifest's descriptor (media type: image manifest).
    pub manifest: Descriptor,
    pub artifact_type: String,
    /// The image it is about.
    pub subject: Descriptor,
    /// The empty config, then the content blob.
    pub blobs: Vec<Descriptor>,
}

/// Store `content` (of `media_type`, named `title`) as an artifact of `artifact_type`
/// about `subject`, created at `created` (seconds since the epoch).
pub fn write_artifact(
    store: &BlobStore,
    artifact_type: &str,
    subject: &Descriptor,
    content: &[u8],
    title: &str,
    created: i64,
) -> Result<Artifact> {
    let empty = store.put(EMPTY_CONTENT)?;
    let config = Descriptor {
        media_type: MEDIA_TYPE_EMPTY.to_string(),
        digest: empty.digest,
        size: empty.size,
        annotations: BTreeMap::new(),
        platform: None,
    };
    let blob = store.put(content)?;
    let layer = Descriptor {
        media_type: artifact_type.to_string(),
        digest: blob.digest,
        size: blob.size,
        annotations: BTreeMap::from([(ANNOTATION_TITLE.to_string(), title.to_string())]),
        platform: None,
    };
    let subject = Descriptor {
        media_type: subject.media_type.clone(),
        digest: subject.digest.clone(),
        size: subject.size,
        annotations: BTreeMap::new(),
        platform: None,
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": artifact_type,
        // The empty config carries its content inline (image-spec: guidance for an empty
        // descriptor), so a client needs no second request for `{}`.
        "config": with_data(&config, EMPTY_CONTENT)?,
        "layers": [layer],
        "subject": subject,
        "annotations": { ANNOTATION_CREATED: rfc3339(created)? },
    });
    let bytes = serde_json::to_vec(&manifest).context("cannot encode the artifact manifest")?;
    let stored = store.put(&bytes)?;
    Ok(Artifact {
        manifest: Descriptor {
            media_type: MEDIA_TYPE_MANIFEST.to_string(),
            digest: stored.digest,
            size: stored.size,
            annotations: BTreeMap::new(),
            platform: None,
        },
        artifact_type: artifact_type.to_string(),
        subject,
        blobs: vec![config, layer],
    })
}

fn with_data(desc: &Descriptor, data: &[u8]) -> Result<Value> {
    use base64::Engine;
    let mut value = serde_json::to_value(desc).context("cannot encode a descriptor")?;
    if let Value::Object(map) = &mut value {
        map.insert(
            "data".to_string(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(data)),
        );
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_manifest_has_the_empty_config_and_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let subject = Descriptor {
            media_type: MEDIA_TYPE_MANIFEST.to_string(),
            digest: format!("sha256:{}", "a".repeat(64)),
            size: 10,
            annotations: BTreeMap::new(),
            platform: None,
        };
        let artifact = write_artifact(
            &store,
            "application/spdx+json",
            &subject,
            b"{}",
            "x.json",
            0,
        )
        .unwrap();
        let bytes = std::fs::read(store.path(&artifact.manifest.digest).unwrap()).unwrap();
        let manifest: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(manifest["artifactType"], "application/spdx+json");
        assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_EMPTY);
        assert_eq!(
            manifest["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(manifest["config"]["data"], "e30=");
        assert_eq!(manifest["subject"]["digest"], subject.digest);
        assert_eq!(manifest["layers"][0]["mediaType"], "application/spdx+json");
    }
}
