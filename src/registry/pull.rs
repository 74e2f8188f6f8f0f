//! Pulling a parent image: the manifest (through an index, picking the platform), then its
//! config and layers into `<blobs_dir>/sha256/<hex>`, four at a time. Every byte is hashed as
//! it streams to a temporary file, which is renamed into place only when its digest and size
//! are right, so the blob directory holds verified blobs only and doubles as a cache.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use serde::Serialize;
use ureq::http::Method;

use super::auth::repository_scope;
use super::client::{Client, Payload, header, read_document, status_error};
use super::error::{RegistryError, body_error};
use super::for_each_parallel;
use super::manifest::{ACCEPTED_MANIFESTS, ManifestDocument, check_image_media_types, is_index};
use super::push::PARALLEL_BLOBS;
use super::reference::Reference;
use crate::http::Limits;
use crate::oci::spec::{Descriptor, Digest, HashingWriter, Platform};

/// Manifests larger than this are refused (the spec asks registries to accept 4 MiB).
const MAX_MANIFEST_SIZE: u64 = 8 << 20;

/// What a pull left in the blob directory.
#[derive(Clone, Debug, Serialize)]
pub struct PulledImage {
    pub reference: String,
    /// The index the reference named, when it named one.
    pub index_digest: Option<Digest>,
    /// The image manifest for the platform.
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    /// Blobs fetched now, and blobs that were already in the directory.
    pub downloaded: Vec<Digest>,
    pub cached: Vec<Digest>,
}

/// Download `reference` for `platform` into `blobs_dir`.
pub fn pull_image(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    blobs_dir: &Path,
) -> anyhow::Result<PulledImage> {
    pull_blobs(client, reference, platform, blobs_dir, true)
}

/// Download only the manifest and config of `reference` for `platform` into `blobs_dir`,
/// never a layer: enough to read its annotations and to write its descriptor. `Ok(None)`
/// when the registry has no such manifest (404).
pub fn pull_manifest_and_config(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    blobs_dir: &Path,
) -> anyhow::Result<Option<PulledImage>> {
    match pull_blobs(client, reference, platform, blobs_dir, false) {
        Ok(pulled) => Ok(Some(pulled)),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether the registry answered 404 (manifest unknown).
fn is_not_found(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<RegistryError>())
        .any(|e| matches!(e, RegistryError::Status { status: 404, .. }))
}

fn pull_blobs(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    blobs_dir: &Path,
    with_layers: bool,
) -> anyhow::Result<PulledImage> {
    let pull = Pull {
        limits: Limits::from_env()?,
        client,
        reference,
        blobs_dir,
        base_url: client.base_url(&reference.registry),
        scopes: vec![repository_scope(&reference.repository, false)],
        downloaded: Mutex::new(Vec::new()),
        cached: Mutex::new(Vec::new()),
    };
    std::fs::create_dir_all(blobs_dir.join("sha256"))
        .with_context(|| format!("cannot create {}", blobs_dir.display()))?;

    client
        .check_registry(&reference.registry, &pull.scopes)
        .with_context(|| format!("cannot pull {reference}"))?;
    let (mut descriptor, mut document, bytes) =
        pull.fetch_manifest(&reference.manifest_reference(), reference.digest.as_ref())?;
    // Manifests are stored only once the pull is known good: a reference refused for its
    // platform leaves nothing behind.
    let mut manifests = vec![(descriptor.digest.clone(), bytes)];
    let mut index_digest = None;
    if is_index(&descriptor.media_type) || !document.manifests.is_empty() {
        let entry = pick_platform(reference, &document, platform)?;
        let (child, child_document, child_bytes) =
            pull.fetch_manifest(entry.digest.as_str(), Some(&entry.digest))?;
        anyhow::ensure!(
            !is_index(&child.media_type) && child_document.manifests.is_empty(),
            "{reference}: the {platform} entry of its index {} is itself an index ({}); \
             gib follows one index to an image manifest, not an index of indexes",
            descriptor.digest,
            child.digest
        );
        index_digest = Some(descriptor.digest.clone());
        manifests.push((child.digest.clone(), child_bytes));
        (descriptor, document) = (child, child_document);
    }
    let config = document.config.clone().with_context(|| {
        format!(
            "manifest {} of {reference} has no config",
            descriptor.digest
        )
    })?;
    // The config first, to see that the image is the platform's before any layer comes.
    pull.fetch_blob(&config)?;
    pull.check_config_platform(&config, &descriptor.digest, platform)?;
    if with_layers {
        let layers: Vec<&Descriptor> = document.layers.iter().collect();
        for_each_parallel(&layers, PARALLEL_BLOBS, |blob| pull.fetch_blob(blob))?;
    }
    for (digest, bytes) in &manifests {
        pull.store_manifest(digest, bytes)?;
    }

    Ok(PulledImage {
        reference: reference.to_string(),
        index_digest,
        manifest: descriptor,
        config,
        layers: document.layers.clone(),
        downloaded: pull
            .downloaded
            .into_inner()
            .unwrap_or_else(|e| e.into_inner()),
        cached: pull.cached.into_inner().unwrap_or_else(|e| e.into_inner()),
    })
}

/// The entry of `index` for `platform`: an error naming the reference, the platform and the
/// platforms the index has when it has none for it.
fn pick_platform<'i>(
    reference: &Reference,
    index: &'i ManifestDocument,
    platform: &Platform,
) -> anyhow::Result<&'i Descriptor> {
    index
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .with_context(|| {
            let available: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(|p| p.to_string()))
                .collect();
            format!(
                "{reference} has no image for {platform} (it has: {})",
                if available.is_empty() {
                    "no platform at all".to_string()
                } else {
                    available.join(", ")
                }
            )
        })
}

/// The `os`, `architecture` and `variant` of an image config.
fn config_platform(bytes: &[u8]) -> anyhow::Result<Platform> {
    let platform: Platform = serde_json::from_slice(bytes)?;
    anyhow::ensure!(
        !platform.os.is_empty() && !platform.architecture.is_empty(),
        "its `os` or `architecture` is empty"
    );
    Ok(platform)
}

struct Pull<'a> {
    limits: Limits,
    client: &'a Client,
    reference: &'a Reference,
    blobs_dir: &'a Path,
    base_url: String,
    scopes: Vec<String>,
    downloaded: Mutex<Vec<Digest>>,
    cached: Mutex<Vec<Digest>>,
}

impl Pull<'_> {
    fn repo_url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base_url, self.reference.repository)
    }

    /// `GET manifests/<reference>`, verified against `expected` (the digest the reference or
    /// the parent index named) or else the registry's `Docker-Content-Digest`; its bytes
    /// for `store_manifest`.
    fn fetch_manifest(
        &self,
        name: &str,
        expected: Option<&Digest>,
    ) -> anyhow::Result<(Descriptor, ManifestDocument, Vec<u8>)> {
        let url = self.repo_url(&format!("manifests/{name}"));
        let (bytes, media_type, announced) = self.client.retrying(|| {
            let response = self.client.send(
                &self.reference.registry,
                &self.scopes,
                Method::GET,
                &url,
                &[("accept", ACCEPTED_MANIFESTS)],
                Payload::None,
            )?;
            if response.status() != 200 {
                return Err(status_error(&Method::GET, &url, response).into());
            }
            let media_type = header(&response, "content-type");
            let announced = header(&response, "docker-content-digest");
            let bytes = read_document(response, &url, "a manifest", MAX_MANIFEST_SIZE)?;
            Ok((bytes, media_type, announced))
        })?;
        let actual = Digest::of_bytes(&bytes);
        let expected = match expected {
            Some(d) => Some(d.to_string()),
            None => announced,
        };
        if let Some(expected) = expected
            && expected != actual.as_str()
        {
            return Err(RegistryError::DigestMismatch {
                url,
                expected,
                actual: actual.to_string(),
                size: bytes.len() as u64,
            }
            .into());
        }
        let document = ManifestDocument::parse(&bytes)
            .with_context(|| format!("{url} did not send a manifest"))?;
        let media_type = document
            .media_type
            .clone()
            .or(media_type.filter(|m| m.contains("manifest") || m.contains("index")))
            .unwrap_or_else(|| document.media_type());
        check_image_media_types(&media_type, &document)
            .with_context(|| format!("{url} is no image gib can build on"))?;
        let descriptor = Descriptor::new(&media_type, actual, bytes.len() as u64);
        Ok((descriptor, document, bytes))
    }

    /// A verified manifest into the blob directory under its digest.
    fn store_manifest(&self, digest: &Digest, bytes: &[u8]) -> anyhow::Result<()> {
        let path = digest.blob_path(self.blobs_dir);
        let mut temp = tempfile::NamedTempFile::new_in(self.blobs_dir.join("sha256"))
            .with_context(|| format!("cannot create a file in {}", self.blobs_dir.display()))?;
        temp.write_all(bytes)
            .and_then(|()| temp.persist(&path).map(|_| ()).map_err(|e| e.error))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// An index entry's `platform` is the index's word; the config's `os`/`architecture`
    /// are the image's own. A child built on an image of another architecture would be a
    /// broken image, so a config that is not `platform`'s is refused.
    fn check_config_platform(
        &self,
        config: &Descriptor,
        manifest: &Digest,
        platform: &Platform,
    ) -> anyhow::Result<()> {
        let path = config.digest.blob_path(self.blobs_dir);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let found = config_platform(&bytes).with_context(|| {
            format!(
                "{}: the config {} of manifest {manifest} names no platform",
                self.reference, config.digest
            )
        })?;
        anyhow::ensure!(
            platform.matches(&found),
            "{}: manifest {manifest} was asked for as {platform}, but its config says it is \
             {found}",
            self.reference
        );
        Ok(())
    }

    /// One blob, unless a file of the right size is already there (files only get their
    /// digest name after verification).
    fn fetch_blob(&self, blob: &Descriptor) -> anyhow::Result<()> {
        let path = blob.digest.blob_path(self.blobs_dir);
        // Refused before a byte is asked for: a manifest may claim terabytes.
        anyhow::ensure!(
            blob.size <= self.limits.max_blob_size,
            "cannot pull blob {} of {}: its manifest declares {} bytes, more than the {} bytes \
             gib accepts for a blob ($GIB_MAX_BLOB_SIZE)",
            blob.digest,
            self.reference,
            blob.size,
            self.limits.max_blob_size
        );
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == blob.size) {
            self.cached
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(blob.digest.clone());
            return Ok(());
        }
        let url = self.repo_url(&format!("blobs/{}", blob.digest));
        self.client
            .retrying(|| self.fetch_blob_once(blob, &url, &path))
            .with_context(|| format!("cannot pull blob {} of {}", blob.digest, self.reference))?;
        self.downloaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(blob.digest.clone());
        Ok(())
    }

    fn fetch_blob_once(&self, blob: &Descriptor, url: &str, path: &Path) -> anyhow::Result<()> {
        let response = self.client.send(
            &self.reference.registry,
            &self.scopes,
            Method::GET,
            url,
            &[],
            Payload::None,
        )?;
        if response.status() != 200 {
            return Err(status_error(&Method::GET, url, response).into());
        }
        let temp = tempfile::NamedTempFile::new_in(self.blobs_dir.join("sha256"))
            .with_context(|| format!("cannot create a file in {}", self.blobs_dir.display()))?;
        let mut writer = HashingWriter::new(io::BufWriter::with_capacity(1 << 16, temp));
        // One byte more than announced is enough to see that a blob is too long.
        let body = response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader();
        let mut reader = self.limits.rate_floor(body).take(blob.size + 1);
        io::copy(&mut reader, &mut writer).map_err(|e| body_error("GET", url, e))?;
        let (digest, size, buffered) = writer.finish();
        if digest != blob.digest || size != blob.size {
            // The temporary file is removed when `buffered` drops.
            return Err(RegistryError::DigestMismatch {
                url: url.to_string(),
                expected: blob.digest.to_string(),
                actual: digest.to_string(),
                size,
            }
            .into());
        }
        let temp = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", path.display()))?;
        temp.persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn index(platforms: &[&str]) -> ManifestDocument {
        let entries: Vec<String> = platforms
            .iter()
            .map(|p| {
                let p = Platform::parse(p).unwrap();
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{DIGEST}","size":1,"platform":{}}}"#,
                    serde_json::to_string(&p).unwrap()
                )
            })
            .collect();
        let text = format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            entries.join(",")
        );
        ManifestDocument::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn an_index_entry_is_picked_by_platform_variant_or_not() {
        let reference = Reference::parse("127.0.0.1:5000/base:t").unwrap();
        let both = index(&["linux/amd64", "linux/arm64/v8"]);
        for wanted in ["linux/amd64", "linux/arm64", "linux/arm64/v8"] {
            let wanted = Platform::parse(wanted).unwrap();
            let entry = pick_platform(&reference, &both, &wanted).unwrap();
            assert!(wanted.matches(entry.platform.as_ref().unwrap()), "{wanted}");
            assert_eq!(
                entry.platform.as_ref().unwrap().architecture,
                wanted.architecture
            );
        }
        let plain = index(&["linux/arm64"]);
        let asked = Platform::parse("linux/arm64/v8").unwrap();
        assert!(pick_platform(&reference, &plain, &asked).is_ok());

        let err = pick_platform(&reference, &plain, &Platform::parse("linux/amd64").unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "127.0.0.1:5000/base:t has no image for linux/amd64 (it has: linux/arm64)"
        );
    }

    #[test]
    fn a_config_names_its_platform() {
        let found = config_platform(
            br#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        assert!(Platform::parse("linux/arm64").unwrap().matches(&found));
        assert!(!Platform::parse("linux/amd64").unwrap().matches(&found));
        assert!(config_platform(br#"{"os":"linux"}"#).is_err());
        assert!(config_platform(br#"{"os":"","architecture":"amd64"}"#).is_err());
        assert!(config_platform(b"[]").is_err());
    }
}
