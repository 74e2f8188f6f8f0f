//! The referrers tag schema of the OCI distribution spec (1.1, "Unavailable Referrers API"):
//! for a registry without `GET /v2/<name>/referrers/<digest>`, the artifacts about a manifest
//! are listed in an image index tagged `sha256-<hex of the manifest's digest>`. This module
//! builds that index; `push` reads and writes it.

use anyhow::Context;
use serde_json::{Value, json};

use crate::oci::spec::{Descriptor, Digest, MEDIA_TYPE_INDEX};

/// An artifact manifest about another manifest, as a referrers index lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    pub manifest: Descriptor,
    pub artifact_type: String,
}

/// The fallback tag of the referrers of `subject`: `<algorithm>-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    subject.as_str().replacen(':', "-", 1)
}

/// The index `existing` (the registry's bytes, if the tag exists) with every referrer it
/// does not list yet appended; a new index when there is none. Entries already there are
/// kept as they are, in their order, so pushing again changes nothing.
pub fn merged_index(existing: Option<&[u8]>, referrers: &[Referrer]) -> anyhow::Result<Vec<u8>> {
    let mut manifests: Vec<Value> = match existing {
        Some(bytes) => {
            let index: Value = serde_json::from_slice(bytes).context("it is not JSON")?;
            match index.get("manifests") {
                Some(Value::Array(entries)) => entries.clone(),
                None => Vec::new(),
                Some(_) => anyhow::bail!("its `manifests` is not a list"),
            }
        }
        None => Vec::new(),
    };
    for referrer in referrers {
        let digest = referrer.manifest.digest.as_str();
        if manifests.iter().any(|m| m["digest"] == digest) {
            continue;
        }
        manifests.push(json!({
            "mediaType": referrer.manifest.media_type,
            "digest": digest,
            "size": referrer.manifest.size,
            "artifactType": referrer.artifact_type,
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": manifests,
    });
    serde_json::to_vec(&index).context("cannot encode the referrers index")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::spec::MEDIA_TYPE_MANIFEST;

    fn referrer(hex: char) -> Referrer {
        Referrer {
            manifest: Descriptor::new(
                MEDIA_TYPE_MANIFEST,
                Digest::parse(&format!("sha256:{}", hex.to_string().repeat(64))).unwrap(),
                42,
            ),
            artifact_type: "application/spdx+json".to_string(),
        }
    }

    #[test]
    fn the_tag_is_the_digest_with_a_dash() {
        let digest = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        assert_eq!(fallback_tag(&digest), format!("sha256-{}", "ab".repeat(32)));
    }

    #[test]
    fn a_new_index_lists_the_referrers_with_their_artifact_type() {
        let bytes = merged_index(None, &[referrer('a')]).unwrap();
        let index: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(index["mediaType"], MEDIA_TYPE_INDEX);
        assert_eq!(index["schemaVersion"], 2);
        let entry = &index["manifests"][0];
        assert_eq!(entry["digest"], format!("sha256:{}", "a".repeat(64)));
        assert_eq!(entry["mediaType"], MEDIA_TYPE_MANIFEST);
        assert_eq!(entry["size"], 42);
        assert_eq!(entry["artifactType"], "application/spdx+json");
    }

    #[test]
    fn merging_keeps_other_entries_and_adds_nothing_twice() {
        let other = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": [{
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": format!("sha256:{}", "b".repeat(64)),
                "size": 7,
                "artifactType": "application/vnd.dev.sigstore.bundle+json",
                "annotations": {"kept": "yes"},
            }],
        });
        let once =
            merged_index(Some(&serde_json::to_vec(&other).unwrap()), &[referrer('a')]).unwrap();
        let twice = merged_index(Some(&once), &[referrer('a')]).unwrap();
        assert_eq!(once, twice, "pushing the same SBOM again changes nothing");
        let index: Value = serde_json::from_slice(&twice).unwrap();
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["annotations"]["kept"], "yes");
        assert_eq!(entries[1]["digest"], format!("sha256:{}", "a".repeat(64)));
        assert!(merged_index(Some(b"{\"manifests\": 3}"), &[]).is_err());
        assert!(merged_index(Some(b"not json"), &[]).is_err());
    }
}
