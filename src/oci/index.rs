//! An image index: one image for several platforms, a manifest each, written as the index
//! blob every output names under the image's tags.
//!
//! The index is a function of its manifests alone (their descriptors, platform set, in the
//! order gib.yaml lists the platforms, nothing else), so the index of one run that builds
//! every platform and the one `gib push --index` joins from legs built apart have one digest.

use anyhow::{Context, Result};
use serde_json::json;

use super::blob::BlobStore;
use super::spec::{Descriptor, MEDIA_TYPE_INDEX, Platform};

/// One platform's image of an index.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub platform: Platform,
    /// The image's manifest.
    pub manifest: Descriptor,
}

/// Write the index of `entries` (in their order) into `store`; its descriptor.
pub fn write_index(store: &BlobStore, entries: &[IndexEntry]) -> Result<Descriptor> {
    let bytes = index_bytes(entries)?;
    let stored = store.put(&bytes)?;
    Ok(Descriptor::new(
        MEDIA_TYPE_INDEX,
        stored.digest,
        stored.size,
    ))
}

/// The index document: each manifest's media type, digest, size and platform.
fn index_bytes(entries: &[IndexEntry]) -> Result<Vec<u8>> {
    let manifests: Vec<Descriptor> = entries
        .iter()
        .map(|entry| Descriptor {
            platform: Some(entry.platform.clone()),
            ..Descriptor::new(
                &entry.manifest.media_type,
                entry.manifest.digest.clone(),
                entry.manifest.size,
            )
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": manifests,
    }))
    .context("cannot encode an image index")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::spec::{Digest, MEDIA_TYPE_MANIFEST};

    fn entry(platform: &str, byte: u8) -> IndexEntry {
        let mut manifest = Descriptor::new(
            MEDIA_TYPE_MANIFEST,
            Digest::of_bytes(&[byte]),
            100 + u64::from(byte),
        );
        // What a written image's descriptor carries beyond the three fields is not the
        // index's: the same manifest pulled back from a registry has none of it.
        manifest
            .annotations
            .insert("org.example".into(), "x".into());
        manifest.platform = Some(Platform::parse("linux/riscv64").unwrap());
        IndexEntry {
            platform: Platform::parse(platform).unwrap(),
            manifest,
        }
    }

    #[test]
    fn an_index_lists_each_manifest_with_its_platform_in_order() {
        let bytes = index_bytes(&[entry("linux/amd64", 1), entry("linux/arm64/v8", 2)]).unwrap();
        let index: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(index["mediaType"], MEDIA_TYPE_INDEX);
        assert_eq!(index["schemaVersion"], 2);
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 2);
        assert_eq!(
            manifests[0]["platform"],
            json!({"architecture": "amd64", "os": "linux"})
        );
        assert_eq!(
            manifests[1]["platform"],
            json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
        );
        assert_eq!(manifests[1]["size"], 102);
        assert!(manifests[0].get("annotations").is_none());
    }

    #[test]
    fn the_index_depends_on_its_manifests_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let a = write_index(&store, &[entry("linux/amd64", 1), entry("linux/arm64", 2)]).unwrap();
        let mut bare = entry("linux/amd64", 1);
        bare.manifest.annotations.clear();
        bare.manifest.platform = None;
        let b = write_index(&store, &[bare, entry("linux/arm64", 2)]).unwrap();
        assert_eq!(a, b);
        let swapped =
            write_index(&store, &[entry("linux/arm64", 2), entry("linux/amd64", 1)]).unwrap();
        assert_ne!(a.digest, swapped.digest);
        assert!(store.path(&a.digest).exists());
    }
}
