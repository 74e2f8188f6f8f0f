//! Artifacts attached to an image (OCI image-spec 1.1): a manifest with an `artifactType`,
//! the empty config, one blob as its layer, and the image as its `subject`, so registries
//! list it under the image's referrers and layouts keep it next to the image.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::blob::BlobStore;
use super::image::rfc3339;
use super::spec::{
    ANNOTATION_CREATED, ANNOTATION_TITLE, Descriptor, MEDIA_TYPE_EMPTY, MEDIA_TYPE_MANIFEST,
};

/// The empty descriptor's content, `{}`.
const EMPTY_CONTENT: &[u8] = b"{}";

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
    let config = Descriptor::new(MEDIA_TYPE_EMPTY, empty.digest, empty.size);
    let blob = store.put(content)?;
    let layer = Descriptor {
        annotations: BTreeMap::from([(ANNOTATION_TITLE.to_string(), title.to_string())]),
        ..Descriptor::new(artifact_type, blob.digest, blob.size)
    };
    let subject = Descriptor::new(&subject.media_type, subject.digest.clone(), subject.size);
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
        manifest: Descriptor::new(MEDIA_TYPE_MANIFEST, stored.digest, stored.size),
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
    use crate::oci::spec::Digest;

    #[test]
    fn artifact_manifest_has_the_empty_config_and_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let subject = Descriptor::new(MEDIA_TYPE_MANIFEST, Digest::of_bytes(b"subject"), 10);
        let artifact = write_artifact(
            &store,
            "application/spdx+json",
            &subject,
            b"{}",
            "x.json",
            0,
        )
        .unwrap();
        let bytes = std::fs::read(store.path(&artifact.manifest.digest)).unwrap();
        let manifest: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(manifest["artifactType"], "application/spdx+json");
        assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_EMPTY);
        assert_eq!(
            manifest["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(manifest["config"]["data"], "e30=");
        assert_eq!(manifest["subject"]["digest"], subject.digest.as_str());
        assert_eq!(manifest["layers"][0]["mediaType"], "application/spdx+json");
    }
}
