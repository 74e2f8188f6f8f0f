//! The registry output: every tag of every image to `<registry>/<name>:<tag>`, parents before
//! children, each child mounting its parent's blobs from the parent's repository so no byte of
//! a parent is uploaded twice. The client (`registry`) pushes blobs first and moves tags last,
//! so a tag never points at an incomplete image and pushing again completes an interrupted
//! push. Each image's SBOM follows it by digest, listed under the image's referrers tag.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::oci::artifact::Artifact;
use crate::oci::spec::Digest;
use crate::printer::UserError;
use crate::registry::{Client, PushReport, Reference, Referrer, RegistryOptions};

/// A client with gib.yaml's `registries:` settings.
pub fn client(registries: &BTreeMap<String, RegistryOptions>) -> Client {
    registries
        .iter()
        .fold(Client::new(), |client, (host, options)| {
            client.with_registry(host, options.clone())
        })
}

/// Point every tag of `job`'s image, which its repository already holds (reused from the
/// registry), at its manifest; no blob is read or sent.
pub fn tag(
    client: &Client,
    blobs_dir: &std::path::Path,
    job: &super::OutputImage<'_>,
) -> Result<PushReport> {
    let (target, tags) = target_and_tags(job.name, job.push_references)?;
    crate::registry::tag_image(client, blobs_dir, &job.image.manifest, &target, &tags)
        .with_context(|| format!("cannot tag image {} in {target}", job.name))
}

/// The reference an image is pushed to (its first) and the tags of all of its references.
fn target_and_tags(name: &str, references: &[String]) -> Result<(Reference, Vec<String>)> {
    let parse = |text: &str| {
        Reference::parse(text).map_err(|e| {
            UserError::new(format!(
                "image {name}: cannot push {text}: {e} (set `registry:` in gib.yaml to a prefix \
                 such as registry.example.org/mine)"
            ))
        })
    };
    let first = references
        .first()
        .with_context(|| format!("image {name} has no reference to push"))?;
    let target = parse(first)?;
    let tags: Vec<String> = references
        .iter()
        .map(|r| parse(r).map(|r| r.tag.unwrap_or_else(|| "latest".to_string())))
        .collect::<Result<_, _>>()?;
    Ok((target, tags))
}

/// Point the tags of `index`, an image of several platforms whose manifests are all in its
/// repository now, at its index; no blob is sent.
pub fn push_index(
    client: &Client,
    blobs_dir: &std::path::Path,
    index: &super::OutputIndex<'_>,
) -> Result<PushReport> {
    let (target, tags) = target_and_tags(index.name, index.references)?;
    crate::registry::tag_image(client, blobs_dir, index.index, &target, &tags)
        .with_context(|| format!("cannot push the index of image {} to {target}", index.name))
}

/// Push `job`'s image (and its SBOM, by digest, after it) from the blob directory `blobs_dir` under all of its references.
pub fn push(
    client: &Client,
    blobs_dir: &std::path::Path,
    job: &super::OutputImage<'_>,
    progress: &dyn crate::printer::ByteProgress,
) -> Result<PushReport> {
    let (target, tags) = target_and_tags(job.name, job.push_references)?;
    // A parent that is no registry reference (no `registry:` prefix) has no blobs to mount.
    let mount_from: Vec<Reference> = job
        .parent_reference
        .and_then(|r| Reference::parse(r).ok())
        .into_iter()
        .collect();
    let manifest = &job.image.manifest;
    let mut report = crate::registry::push_image(
        client,
        blobs_dir,
        manifest,
        &target,
        &tags,
        &mount_from,
        progress,
    )
    .with_context(|| format!("cannot push image {} to {target}", job.name))?;
    for artifact in job.referrers {
        let pushed = push_artifact(
            client,
            blobs_dir,
            artifact,
            &manifest.digest,
            &target,
            &mount_from,
        )
        .with_context(|| {
            format!(
                "cannot push the {} artifact of image {} to {target}",
                artifact.artifact_type, job.name
            )
        })?;
        // The image's report keeps its own blobs; the manifests say what else was written.
        for extra in pushed {
            report.manifests_pushed.extend(extra.manifests_pushed);
            report.manifests_skipped.extend(extra.manifests_skipped);
        }
    }
    Ok(report)
}

/// Push `artifact` by digest to `target`'s repository, then list it under the referrers tag
/// of `subject` (the registry may have no referrers API; the tag works with every one).
fn push_artifact(
    client: &Client,
    blobs_dir: &std::path::Path,
    artifact: &Artifact,
    subject: &Digest,
    target: &Reference,
    mount_from: &[Reference],
) -> Result<[PushReport; 2]> {
    let descriptor = artifact.manifest.clone();
    // The parent's SBOM has the same empty config: mount it rather than upload it.
    let pushed =
        crate::registry::push_image(client, blobs_dir, &descriptor, target, &[], mount_from, &())?;
    let referrer = Referrer {
        manifest: descriptor,
        artifact_type: artifact.artifact_type.clone(),
    };
    let listed = crate::registry::push_referrers_tag(client, target, subject, &[referrer])?;
    Ok([pushed, listed])
}
