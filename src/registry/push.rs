//! Pushing an image from a blob directory: the flow of go-containerregistry's `remote.Write`.
//!
//! Per blob: `HEAD` (present: skip) → `POST uploads/` (with `mount=&from=` when the blob may
//! live in another repository of the registry: 201 means mounted) → one streaming `PUT
//! ?digest=` from the file (or `PATCH` chunks when the registry needs them). Layers go four at
//! a time, the config after them, manifests last: index children by digest before their
//! index, then each tag, skipped when the registry already has the same digest under it. A
//! tag is only written after every blob of its manifest arrived, so it never points at an
//! incomplete image.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use serde::Serialize;
use ureq::http::Method;

use super::auth::repository_scope;
use super::client::{
    Client, DEFAULT_CHUNK_SIZE, Payload, header, read_document, resolve_location, status_error,
    with_query,
};
use super::error::RegistryError;
use super::for_each_parallel;
use super::manifest::{ManifestDocument, is_index};
use super::reference::{Reference, validate_tag};
use super::referrers::{Referrer, fallback_tag, merged_index};
use crate::oci::spec::{Descriptor, Digest, MEDIA_TYPE_INDEX};
use crate::printer::ByteProgress;

/// How many blobs upload at once (go-containerregistry's default).
pub const PARALLEL_BLOBS: usize = 4;
/// The largest referrers index read back (as large as a manifest may be when pulling).
const MAX_REFERRERS_INDEX: u64 = 8 << 20;

/// What a push did, for the user and for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct PushReport {
    /// `registry/repository`.
    pub repository: String,
    pub manifest_digest: Digest,
    /// The tags that now point at `manifest_digest`.
    pub tags: Vec<String>,
    /// Blobs sent byte for byte.
    pub uploaded: Vec<Digest>,
    /// Blobs the registry linked from another repository (no bytes sent).
    pub mounted: Vec<Digest>,
    /// Blobs the repository already had.
    pub skipped: Vec<Digest>,
    pub bytes_uploaded: u64,
    /// Manifests written, as `repository:tag` or `repository@digest`.
    pub manifests_pushed: Vec<String>,
    /// Manifests the registry already had under that name.
    pub manifests_skipped: Vec<String>,
}

enum BlobOutcome {
    Uploaded(u64),
    Mounted,
    Skipped,
}

/// Push the image (or index) `manifest`, whose blobs are `<blobs_dir>/sha256/<hex>`, to
/// `target`'s repository under each of `tags` (by digest alone when there are none).
/// `mount_from` names repositories of the same registry that may already hold some blobs,
/// typically the parent image's.
pub fn push_image(
    client: &Client,
    blobs_dir: &Path,
    manifest: &Descriptor,
    target: &Reference,
    tags: &[String],
    mount_from: &[Reference],
    progress: &dyn ByteProgress,
) -> anyhow::Result<PushReport> {
    for tag in tags {
        validate_tag(tag).map_err(anyhow::Error::msg)?;
    }
    let mount_sources: Vec<String> = mount_from
        .iter()
        .filter(|r| r.registry == target.registry && r.repository != target.repository)
        .map(|r| r.repository.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let push = Push::new(
        client,
        blobs_dir,
        target,
        mount_sources,
        &manifest.digest,
        tags,
        progress,
    );

    let bytes = push.manifest_bytes(manifest)?;
    client
        .check_registry(&target.registry, &push.scopes)
        .with_context(|| format!("cannot push to {target}"))?;
    push.push_contents(manifest, &bytes)?;
    if tags.is_empty() {
        push.put_manifest(manifest, &bytes, manifest.digest.as_str())?;
    }
    for tag in tags {
        push.put_manifest(manifest, &bytes, tag)?;
    }
    Ok(push.report.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Point each of `tags` of `target`'s repository at `manifest`, an image the repository
/// already holds with its blobs (checked by the registry: it refuses a manifest whose blobs
/// it lacks), without reading or pushing a blob; tags already there are left alone.
pub fn tag_image(
    client: &Client,
    blobs_dir: &Path,
    manifest: &Descriptor,
    target: &Reference,
    tags: &[String],
) -> anyhow::Result<PushReport> {
    for tag in tags {
        validate_tag(tag).map_err(anyhow::Error::msg)?;
    }
    let push = Push::new(
        client,
        blobs_dir,
        target,
        Vec::new(),
        &manifest.digest,
        tags,
        &(),
    );
    let bytes = push.manifest_bytes(manifest)?;
    client
        .check_registry(&target.registry, &push.scopes)
        .with_context(|| format!("cannot push to {target}"))?;
    for tag in tags {
        push.put_manifest(manifest, &bytes, tag)?;
    }
    Ok(push.report.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Whether `target`'s registry answers and accepts the credentials for a push to its
/// repository, before there is anything to push (gib's preflight).
pub fn check_push_access(client: &Client, target: &Reference) -> anyhow::Result<()> {
    let scopes = [repository_scope(&target.repository, true)];
    client
        .check_registry(&target.registry, &scopes)
        .with_context(|| format!("cannot push to {}/{}", target.registry, target.repository))
}

struct Push<'a> {
    client: &'a Client,
    blobs_dir: &'a Path,
    target: &'a Reference,
    base_url: String,
    scopes: Vec<String>,
    mount_sources: Vec<String>,
    report: Mutex<PushReport>,
    /// Hears the bytes of the blobs sent as they go (a blob mounted or already there counts
    /// whole), of all the blobs to push.
    progress: &'a dyn ByteProgress,
    done: AtomicU64,
    total: AtomicU64,
}

/// One blob's share of a push's progress: the bytes its upload has read so far go into the
/// push's count.
struct BlobProgress<'p, 'a> {
    push: &'p Push<'a>,
    /// This blob's bytes already counted.
    counted: AtomicU64,
}

impl BlobProgress<'_, '_> {
    /// Count the blob up to `done` bytes (a retry that starts over counts nothing until it
    /// passes what was counted).
    fn reach(&self, done: u64) {
        let before = self.counted.fetch_max(done, Ordering::Relaxed);
        if done > before {
            self.push.advance(done - before);
        }
    }
}

impl ByteProgress for BlobProgress<'_, '_> {
    fn bytes(&self, done: u64, _total: Option<u64>) {
        self.reach(done);
    }
}

/// Record `referrers` (artifacts whose `subject` is `subject`, already pushed by digest) in
/// the referrers tag schema of the distribution spec: the tag `sha256-<hex>` names an index
/// of them, for registries without the referrers API (distribution 2.8). The index there is
/// read first and extended, so a push never drops what another push listed; two pushes at
/// the same moment can still race (the spec's fallback has no lock). The report's
/// `manifest_digest` is the index's.
pub fn push_referrers_tag(
    client: &Client,
    target: &Reference,
    subject: &Digest,
    referrers: &[Referrer],
) -> anyhow::Result<PushReport> {
    let tag = fallback_tag(subject);
    // No blob is read: the index is built here and the artifacts are already in the registry.
    let push = Push::new(client, Path::new(""), target, Vec::new(), subject, &[], &());
    let url = push.repo_url(&format!("manifests/{tag}"));
    let existing = client
        .retrying(|| {
            let response = push.send(
                Method::GET,
                &url,
                &[("accept", MEDIA_TYPE_INDEX)],
                Payload::None,
            )?;
            match response.status().as_u16() {
                200 => read_document(response, &url, "a referrers index", MAX_REFERRERS_INDEX)
                    .map(Some),
                404 => Ok(None),
                _ => Err(status_error(&Method::GET, &url, response).into()),
            }
        })
        .with_context(|| format!("cannot read the referrers index {target}:{tag}"))?;
    let bytes = merged_index(existing.as_deref(), referrers)
        .with_context(|| format!("{url} is not an image index"))?;
    let index = Descriptor::new(
        MEDIA_TYPE_INDEX,
        Digest::of_bytes(&bytes),
        bytes.len() as u64,
    );
    push.put_manifest(&index, &bytes, &tag)?;
    let mut report = push.report.into_inner().unwrap_or_else(|e| e.into_inner());
    report.manifest_digest = index.digest;
    report.tags = vec![tag];
    Ok(report)
}

impl<'a> Push<'a> {
    fn new(
        client: &'a Client,
        blobs_dir: &'a Path,
        target: &'a Reference,
        mount_sources: Vec<String>,
        digest: &Digest,
        tags: &[String],
        progress: &'a dyn ByteProgress,
    ) -> Push<'a> {
        let mut scopes = vec![repository_scope(&target.repository, true)];
        scopes.extend(mount_sources.iter().map(|r| repository_scope(r, false)));
        Push {
            client,
            blobs_dir,
            target,
            base_url: client.base_url(&target.registry),
            scopes,
            mount_sources,
            report: Mutex::new(PushReport {
                repository: format!("{}/{}", target.registry, target.repository),
                manifest_digest: digest.clone(),
                tags: tags.to_vec(),
                uploaded: Vec::new(),
                mounted: Vec::new(),
                skipped: Vec::new(),
                bytes_uploaded: 0,
                manifests_pushed: Vec::new(),
                manifests_skipped: Vec::new(),
            }),
            progress,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// `bytes` more of the push's blobs are done.
    fn advance(&self, bytes: u64) {
        let done = self.done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let total = self.total.load(Ordering::Relaxed);
        self.progress.bytes(done, (total > 0).then_some(total));
    }
}

impl Push<'_> {
    fn repo_url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base_url, self.target.repository)
    }

    fn record(&self, update: impl FnOnce(&mut PushReport)) {
        update(&mut self.report.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// A manifest's bytes from the blob directory, checked against its descriptor.
    fn manifest_bytes(&self, descriptor: &Descriptor) -> anyhow::Result<Vec<u8>> {
        let path = descriptor.digest.blob_path(self.blobs_dir);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let actual = Digest::of_bytes(&bytes);
        anyhow::ensure!(
            actual == descriptor.digest,
            "{} has digest {actual}, not {}",
            path.display(),
            descriptor.digest
        );
        Ok(bytes)
    }

    /// Everything a manifest refers to: an index's child manifests (pushed by digest), or an
    /// image's layers and then its config.
    fn push_contents(&self, descriptor: &Descriptor, bytes: &[u8]) -> anyhow::Result<()> {
        let path = descriptor.digest.blob_path(self.blobs_dir);
        let document = ManifestDocument::parse(bytes)
            .with_context(|| format!("{} is not a manifest", path.display()))?;
        if is_index(&descriptor.media_type) || !document.manifests.is_empty() {
            for entry in &document.manifests {
                let child = entry.clone();
                let child_bytes = self.manifest_bytes(&child)?;
                self.push_contents(&child, &child_bytes)?;
                self.put_manifest(&child, &child_bytes, child.digest.as_str())?;
            }
            return Ok(());
        }
        let mut seen = BTreeSet::new();
        let layers: Vec<&Descriptor> = document
            .layers
            .iter()
            .filter(|l| seen.insert(l.digest.clone()))
            .collect();
        let sizes = layers.iter().map(|l| l.size).sum::<u64>()
            + document.config.as_ref().map_or(0, |c| c.size);
        self.total.fetch_add(sizes, Ordering::Relaxed);
        for_each_parallel(&layers, PARALLEL_BLOBS, |layer| self.push_blob(layer))?;
        if let Some(config) = document
            .config
            .as_ref()
            .filter(|c| !seen.contains(&c.digest))
        {
            self.push_blob(config)?;
        }
        Ok(())
    }

    fn push_blob(&self, blob: &Descriptor) -> anyhow::Result<()> {
        let path = blob.digest.blob_path(self.blobs_dir);
        let size = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "blob {} is missing from {}",
                    blob.digest,
                    self.blobs_dir.display()
                )
            })?
            .len();
        anyhow::ensure!(
            size == blob.size,
            "{} is {size} bytes, but the manifest says {}",
            path.display(),
            blob.size
        );
        let progress = BlobProgress {
            push: self,
            counted: AtomicU64::new(0),
        };
        let outcome = self
            .client
            .retrying(|| self.push_blob_once(blob, &path, &progress))
            .with_context(|| format!("cannot push blob {} to {}", blob.digest, self.target))?;
        // Mounted, already there, or sent in chunks: the rest of it is done too.
        progress.reach(blob.size);
        self.record(|r| match outcome {
            BlobOutcome::Uploaded(bytes) => {
                r.uploaded.push(blob.digest.clone());
                r.bytes_uploaded += bytes;
            }
            BlobOutcome::Mounted => r.mounted.push(blob.digest.clone()),
            BlobOutcome::Skipped => r.skipped.push(blob.digest.clone()),
        });
        Ok(())
    }

    fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
        self.client.send(
            &self.target.registry,
            &self.scopes,
            method,
            url,
            headers,
            payload,
        )
    }

    fn push_blob_once(
        &self,
        blob: &Descriptor,
        path: &Path,
        progress: &dyn ByteProgress,
    ) -> anyhow::Result<BlobOutcome> {
        let digest = blob.digest.as_str();
        let url = self.repo_url(&format!("blobs/{digest}"));
        let response = self.send(Method::HEAD, &url, &[], Payload::None)?;
        match response.status().as_u16() {
            200 => return Ok(BlobOutcome::Skipped),
            404 => {}
            _ => return Err(status_error(&Method::HEAD, &url, response).into()),
        }

        let uploads = self.repo_url("blobs/uploads/");
        let mut session = None;
        for (i, source) in self.mount_sources.iter().enumerate() {
            let url = format!("{uploads}?mount={digest}&from={source}");
            let response = self.send(Method::POST, &url, &[], Payload::Bytes(&[]))?;
            match response.status().as_u16() {
                201 => return Ok(BlobOutcome::Mounted),
                202 => {
                    let location = self.location(&response, &url)?;
                    if i + 1 == self.mount_sources.len() {
                        session = Some(location);
                    } else {
                        // Not in this source; drop the session the registry opened instead.
                        let _ = self.send(Method::DELETE, &location, &[], Payload::None);
                    }
                }
                // The source is gone or not readable with our token: upload instead, as
                // go-containerregistry does.
                _ => {}
            }
        }
        let location = match session {
            Some(location) => location,
            None => self.start_upload(&uploads)?,
        };

        let chunk_size = self.client.options(&self.target.registry).chunk_size;
        if chunk_size.is_none() {
            let url = with_query(&location, "digest", digest);
            let response = self.send(
                Method::PUT,
                &url,
                &[("content-type", "application/octet-stream")],
                Payload::File(path, progress),
            )?;
            match response.status().as_u16() {
                201 | 204 => return Ok(BlobOutcome::Uploaded(blob.size)),
                // Too large for one request: the registry (or a proxy) wants chunks.
                413 => {}
                _ => return Err(status_error(&Method::PUT, &url, response).into()),
            }
        }
        let location = self.start_upload(&uploads)?;
        self.upload_chunks(
            blob,
            path,
            location,
            chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
        )?;
        Ok(BlobOutcome::Uploaded(blob.size))
    }

    /// `POST uploads/`: a new upload session's location.
    fn start_upload(&self, uploads: &str) -> anyhow::Result<String> {
        let response = self.send(Method::POST, uploads, &[], Payload::Bytes(&[]))?;
        if response.status() != 202 {
            return Err(status_error(&Method::POST, uploads, response).into());
        }
        self.location(&response, uploads)
    }

    fn location(
        &self,
        response: &ureq::http::Response<ureq::Body>,
        url: &str,
    ) -> anyhow::Result<String> {
        let location = header(response, "location")
            .with_context(|| format!("{url} opened an upload without a Location header"))?;
        Ok(resolve_location(&self.base_url, &location))
    }

    /// `PATCH` with `Content-Range` per chunk, then `PUT ?digest=` to close the upload. Only one
    /// chunk is in memory at a time.
    fn upload_chunks(
        &self,
        blob: &Descriptor,
        path: &Path,
        mut location: String,
        chunk_size: u64,
    ) -> anyhow::Result<()> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut offset = 0u64;
        let mut chunk = Vec::new();
        while offset < blob.size {
            let len = chunk_size.min(blob.size - offset);
            chunk.clear();
            file.seek(SeekFrom::Start(offset))?;
            (&mut file)
                .take(len)
                .read_to_end(&mut chunk)
                .with_context(|| format!("cannot read {}", path.display()))?;
            anyhow::ensure!(
                chunk.len() as u64 == len,
                "{} shrank while uploading",
                path.display()
            );
            let range = format!("{}-{}", offset, offset + len - 1);
            let response = self.send(
                Method::PATCH,
                &location,
                &[
                    ("content-type", "application/octet-stream"),
                    ("content-range", &range),
                ],
                Payload::Bytes(&chunk),
            )?;
            if response.status() != 202 {
                return Err(status_error(&Method::PATCH, &location, response).into());
            }
            location = self.location(&response, &location)?;
            offset += len;
        }
        let url = with_query(&location, "digest", blob.digest.as_str());
        let response = self.send(Method::PUT, &url, &[], Payload::Bytes(&[]))?;
        match response.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(status_error(&Method::PUT, &url, response).into()),
        }
    }

    /// `PUT manifests/<reference>`, unless a `HEAD` shows the registry has this very manifest
    /// there already.
    fn put_manifest(
        &self,
        descriptor: &Descriptor,
        bytes: &[u8],
        reference: &str,
    ) -> anyhow::Result<()> {
        let name = if reference.starts_with("sha256:") {
            format!(
                "{}/{}@{reference}",
                self.target.registry, self.target.repository
            )
        } else {
            format!(
                "{}/{}:{reference}",
                self.target.registry, self.target.repository
            )
        };
        let url = self.repo_url(&format!("manifests/{reference}"));
        let pushed = self
            .client
            .retrying(|| {
                let response = self.send(
                    Method::HEAD,
                    &url,
                    &[("accept", &descriptor.media_type)],
                    Payload::None,
                )?;
                match response.status().as_u16() {
                    200 if header(&response, "docker-content-digest").as_deref()
                        == Some(descriptor.digest.as_str()) =>
                    {
                        return Ok(false);
                    }
                    200 | 404 => {}
                    _ => return Err(status_error(&Method::HEAD, &url, response).into()),
                }
                let response = self.send(
                    Method::PUT,
                    &url,
                    &[("content-type", &descriptor.media_type)],
                    Payload::Bytes(bytes),
                )?;
                match response.status().as_u16() {
                    200..=299 => {}
                    _ => return Err(status_error(&Method::PUT, &url, response).into()),
                }
                if let Some(stored) = header(&response, "docker-content-digest")
                    && stored != descriptor.digest.as_str()
                {
                    return Err(RegistryError::DigestMismatch {
                        url: url.clone(),
                        expected: descriptor.digest.to_string(),
                        actual: stored,
                        size: bytes.len() as u64,
                    }
                    .into());
                }
                Ok(true)
            })
            .with_context(|| format!("cannot push manifest {name}"))?;
        self.record(|r| {
            if pushed {
                r.manifests_pushed.push(name);
            } else {
                r.manifests_skipped.push(name);
            }
        });
        Ok(())
    }
}
