//! An image's build provenance: an in-toto Statement v1 whose subject is the image manifest,
//! with a SLSA Provenance v1 predicate naming what the image was built from (gib.yaml's
//! digest, the stage3 and its SHA-512, each repository's commit or snapshot, the binhost's
//! index, the parent image) and when. Stored as an artifact about the image
//! (`application/vnd.in-toto+json`), so the outputs write and push it beside the SBOM.
//!
//! Not for: resolving the inputs (`inputs`, gib.lock) or signing: the statement is unsigned,
//! as a DSSE envelope needs a key gib does not hold.
//!
//! The provenance is not part of the image manifest, so the image's digest never depends on
//! it; a reused image keeps the provenance of the build that made it (its cache record).

use std::time::SystemTime;

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::{BuildContext, BuiltImage};
use crate::lock::Lock;
use crate::oci::artifact::{Artifact, write_artifact};
use crate::oci::image::{Image, rfc3339};
use crate::oci::spec::MEDIA_TYPE_IN_TOTO;
use crate::plan::{BuildKind, ImagePlan};

/// in-toto Statement v1.
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA Provenance v1.
const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// What a gib image build is: the parameters and dependencies below, as README.md
/// ("Build provenance") documents them. Versioned: a change of their meaning is a new URI.
pub const BUILD_TYPE: &str = "urn:gib:build-type:image:v1";

/// When an image's build ran.
#[derive(Debug, Clone, Copy)]
struct BuildTimes {
    started: SystemTime,
    finished: SystemTime,
}

/// The times a provenance says, seconds since the epoch: the build's own, each clamped to
/// SOURCE_DATE_EPOCH when the environment sets it (reproducible-builds.org's rule for
/// timestamps), so that two builds of the same inputs write the same artifact bytes then.
fn said_times(times: BuildTimes, source_date_epoch: Option<i64>) -> (i64, i64) {
    let seconds = |at: SystemTime| {
        let since = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        source_date_epoch.map_or(since, |epoch| since.min(epoch))
    };
    (seconds(times.started), seconds(times.finished))
}

/// Write the provenance of `written` (the image `image` of the plan, on `parent`), whose
/// build started at `started` and finishes now, and attach it.
pub fn attach(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    written: &Image,
    version_tag: &str,
    started: SystemTime,
) -> Result<Artifact> {
    let times = BuildTimes {
        started,
        finished: SystemTime::now(),
    };
    let config = config_digest(&ctx.plan.file)?;
    let inputs = match &image.kind {
        BuildKind::Portage(_) => Some(&ctx.inputs()?.entries),
        BuildKind::Rootfs(_) => None,
    };
    let (started, finished) = said_times(times, ctx.source_date_epoch);
    let statement = statement(&Facts {
        image,
        reference: &image.reference(version_tag),
        digest_hex: written.manifest.digest.hex(),
        config_file: &ctx.plan.file,
        config_sha256: &config,
        inputs,
        parent: parent.map(|p| (p.references.first().map(String::as_str), &p.image)),
        epoch: ctx.epoch()?,
        started: &rfc3339(started)?,
        finished: &rfc3339(finished)?,
    });
    let mut bytes =
        serde_json::to_vec_pretty(&statement).context("cannot encode the provenance")?;
    bytes.push(b'\n');
    write_artifact(
        ctx.store,
        MEDIA_TYPE_IN_TOTO,
        &written.manifest,
        &bytes,
        &format!("{}.intoto.json", image.name),
        ctx.epoch()?,
    )
}

/// sha256 of gib.yaml as it is now (hex).
fn config_digest(file: &std::path::Path) -> Result<String> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Everything a statement says, gathered.
struct Facts<'f> {
    image: &'f ImagePlan,
    /// The image's reference under its version tag: the subject's name.
    reference: &'f str,
    digest_hex: &'f str,
    config_file: &'f std::path::Path,
    config_sha256: &'f str,
    /// The stage3, repositories and binhost a packages image was built from.
    inputs: Option<&'f Lock>,
    /// The parent's reference (when it has one) and image.
    parent: Option<(Option<&'f str>, &'f Image)>,
    /// SOURCE_DATE_EPOCH of the build.
    epoch: i64,
    started: &'f str,
    finished: &'f str,
}

fn statement(facts: &Facts<'_>) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{
            "name": facts.reference,
            "digest": { "sha256": facts.digest_hex },
        }],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external_parameters(facts),
                "internalParameters": internal_parameters(facts.image, facts.epoch),
                "resolvedDependencies": resolved_dependencies(facts),
            },
            "runDetails": {
                "builder": {
                    "id": format!("urn:gib:builder:gib@{}", env!("CARGO_PKG_VERSION")),
                    "version": { "gib": env!("CARGO_PKG_VERSION") },
                },
                "metadata": {
                    "startedOn": facts.started,
                    "finishedOn": facts.finished,
                },
            },
        },
    })
}

/// What the user asked for: gib.yaml (its digest) and what it says of this image's build.
fn external_parameters(facts: &Facts<'_>) -> Value {
    let image = facts.image;
    let file_name = facts
        .config_file
        .file_name()
        .map_or_else(|| "gib.yaml".into(), |n| n.to_string_lossy().into_owned());
    let mut parameters = Map::new();
    parameters.insert(
        "config".into(),
        json!({ "name": file_name, "digest": { "sha256": facts.config_sha256 } }),
    );
    parameters.insert("image".into(), json!(image.name));
    match &image.kind {
        BuildKind::Portage(work) => {
            parameters.insert("packages".into(), json!(work.packages));
            if !work.builder_packages.is_empty() {
                parameters.insert("builderPackages".into(), json!(work.builder_packages));
            }
            if let Some(script) = &work.script {
                parameters.insert("script".into(), json!(script.display().to_string()));
            }
            if !image.package_use_flags.is_empty() {
                parameters.insert("packageUseFlags".into(), json!(image.package_use_flags));
            }
        }
        BuildKind::Rootfs(path) => {
            parameters.insert("rootfs".into(), json!(path.display().to_string()));
        }
    }
    Value::Object(parameters)
}

/// What gib chose for the build, not the user.
fn internal_parameters(image: &ImagePlan, epoch: i64) -> Value {
    json!({
        "sourceDateEpoch": epoch,
        "keepPackageDb": image.keep_package_db,
    })
}

/// The stage3, each repository, the binhost's index and the parent, as resource
/// descriptors (`digest` keys as in-toto's digest set: `sha512`, `sha256`, `gitCommit`).
fn resolved_dependencies(facts: &Facts<'_>) -> Vec<Value> {
    let mut dependencies = Vec::new();
    if let Some(inputs) = facts.inputs {
        if let Some(stage3) = &inputs.stage3 {
            let mut annotations = Map::new();
            annotations.insert("source".into(), json!(stage3.source));
            if let Some(build) = &stage3.build {
                annotations.insert("build".into(), json!(build));
            }
            if let Some(key) = &stage3.signed_by {
                annotations.insert("signedBy".into(), json!(key));
            }
            dependencies.push(json!({
                "name": stage3.file,
                "digest": { "sha512": stage3.sha512 },
                "annotations": annotations,
            }));
        }
        for (index, repository) in inputs.repositories.iter().enumerate() {
            let mut digest = Map::new();
            if let Some(commit) = &repository.revision {
                digest.insert("gitCommit".into(), json!(commit));
            }
            let mut annotations = Map::new();
            annotations.insert("source".into(), json!(repository.source));
            // The first repository is the main one (gib.lock's order); the rest overlays.
            let role = if index == 0 { "main" } else { "overlay" };
            annotations.insert("role".into(), json!(role));
            if let Some(snapshot) = &repository.snapshot {
                annotations.insert("snapshot".into(), json!(snapshot));
            }
            if let Some(time) = repository.time {
                annotations.insert("snapshotTime".into(), json!(time));
            }
            if let Some(key) = &repository.signed_by {
                annotations.insert("signedBy".into(), json!(key));
            }
            let mut descriptor = Map::new();
            descriptor.insert(
                "name".into(),
                json!(format!("repository:{}", repository.name)),
            );
            if !digest.is_empty() {
                descriptor.insert("digest".into(), Value::Object(digest));
            }
            descriptor.insert("annotations".into(), Value::Object(annotations));
            dependencies.push(Value::Object(descriptor));
        }
        if let Some(binhost) = &inputs.binhost {
            dependencies.push(json!({
                "name": "binhost:Packages",
                "uri": binhost.source,
                "digest": { "sha256": binhost.index_sha256 },
            }));
        }
    }
    if let Some((reference, parent)) = facts.parent {
        let mut descriptor = Map::new();
        descriptor.insert(
            "name".into(),
            json!(format!("parent:{}", reference.unwrap_or("(unnamed)"))),
        );
        descriptor.insert(
            "digest".into(),
            json!({ "sha256": parent.manifest.digest.hex() }),
        );
        descriptor.insert("mediaType".into(), json!(parent.manifest.media_type));
        dependencies.push(Value::Object(descriptor));
    }
    dependencies
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_the_builds_unless_source_date_epoch_clamps_them() {
        let times = BuildTimes {
            started: SystemTime::UNIX_EPOCH + Duration::from_secs(2_000),
            finished: SystemTime::UNIX_EPOCH + Duration::from_secs(2_060),
        };
        assert_eq!(said_times(times, None), (2_000, 2_060));
        assert_eq!(said_times(times, Some(2_030)), (2_000, 2_030));
        assert_eq!(said_times(times, Some(10)), (10, 10));
    }
}
