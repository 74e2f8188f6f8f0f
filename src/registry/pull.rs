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
    let (mut descriptor, mut document) =
        pull.fetch_manifest(&reference.manifest_reference(), reference.digest.as_ref())?;
    let mut index_digest = None;
    if is_index(&descriptor.media_type) || !document.manifests.is_empty() {
        let entry = document
            .manifests
            .iter()
            .find(|m| m.platform.as_ref().is_some_and(|p| platform.matches(p)))
            .with_context(|| {
                let available: Vec<String> = document
                    .manifests
                    .iter()
                    .filter_map(|m| m.platform.as_ref().map(|p| p.to_string()))
                    .collect();
                format!(
                    "{reference} has no image for {platform} (it has: {})",
                    available.join(", ")
                )
            })?;
        index_digest = Some(descriptor.digest.clone());
        let child = entry.digest.clone();
        (descriptor, document) = pull.fetch_manifest(child.as_str(), Some(&child))?;
    }
    let config = document.config.clone().with_context(|| {
        format!(
            "manifest {} of {reference} has no config",
            descriptor.digest
        )
    })?;
    let mut blobs: Vec<&Descriptor> = Vec::new();
    if with_layers {
        blobs.extend(&document.layers);
    }
    blobs.push(&config);
    for_each_parallel(&blobs, PARALLEL_BLOBS, |blob| pull.fetch_blob(blob))?;

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
    /// the parent index named) or else the registry's `Docker-Content-Digest`, then stored.
    fn fetch_manifest(
        &self,
        name: &str,
        expected: Option<&Digest>,
    ) -> anyhow::Result<(Descriptor, ManifestDocument)> {
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
        let path = actual.blob_path(self.blobs_dir);
        let mut temp = tempfile::NamedTempFile::new_in(self.blobs_dir.join("sha256"))
            .with_context(|| format!("cannot create a file in {}", self.blobs_dir.display()))?;
        temp.write_all(&bytes)
            .and_then(|()| temp.persist(&path).map(|_| ()).map_err(|e| e.error))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let descriptor = Descriptor::new(&media_type, actual, bytes.len() as u64);
        Ok((descriptor, document))
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
