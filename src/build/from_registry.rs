//! Parents that come from a registry: `from: host/repo:tag` (or `@sha256:…`), and with
//! `--parents-from-registry` the ancestors of the selected images, pulled by their reference
//! instead of built.
//!
//! The pull verifies every digest and leaves the blobs in the cache's blob store; the layers
//! are applied, whiteouts included, onto one tree per manifest digest (`pulled/<hex>/`) by
//! a job (`crate::jobs`) inside the user namespace, so owners stay the image's.
//! That tree is the pulled image's only layer dir: children overlay it as they would a built
//! parent's. A pulled parent has no builder dirs: its children build on the stage3 builder.

use anyhow::{Context, Result};
use serde_json::Value;

use super::{BuildContext, BuiltImage, hash_parts};
use crate::cache::remove_any;
use crate::gentoo::vdb;
use crate::jobs::Job;
use crate::oci::image::Image;
use crate::oci::spec::{ANNOTATION_VERSION, Descriptor, Digest};
use crate::plan::ImagePlan;
use crate::printer::UserError;
use crate::registry::{Reference, pull_image};

/// Pull `reference` (a `from:` written in gib.yaml) as a parent.
pub fn pull_reference(ctx: &BuildContext<'_>, name: &str, text: &str) -> Result<BuiltImage> {
    let reference = parent_reference(name, text)?;
    let mut pulled = pull(ctx, &reference)?;
    pulled.name = text.to_string();
    pulled.references = vec![text.to_string()];
    pulled.tags = reference.tag.iter().cloned().collect();
    Ok(pulled)
}

/// An image of this file that an earlier run pushed (`--parents-from-registry`), by its
/// explicit tag, else by `latest`: its manifest and config only, its layers when a child
/// builds on it (`registry_cache::materialize`) or an output needs them. Its tags and
/// references come back as the build that pushed it made them (the version tag is read from
/// the manifest's annotation), and its key is the one it was built with when the manifest
/// says it, so its children get the same key and annotations, hence the same digest, as in a
/// full local build.
pub fn pull_plan_image(ctx: &BuildContext<'_>, image: &ImagePlan) -> Result<BuiltImage> {
    let (reference, tag) = plan_image_reference(image)?;
    ctx.printer
        .status("Pulling", &format!("{reference} (manifest and config)"));
    let fetched = super::registry_cache::fetch(ctx, &reference)
        .and_then(|f| f.with_context(|| format!("{reference}: manifest unknown to the registry")))
        .with_context(|| format!("cannot pull the parent image {reference}"))?;
    let version = fetched
        .annotations
        .get(ANNOTATION_VERSION)
        .cloned()
        .unwrap_or(tag);
    let digest = fetched.image.manifest.digest.clone();
    let key = match super::registry_cache::InputKey::from_annotations(&fetched.annotations) {
        Ok(Some(key)) => key.key,
        Ok(None) => hash_parts(&["registry", digest.as_str()]),
        Err(err) => {
            ctx.printer.warn(&format!(
                "image {}: {reference} ({digest}): {err:#}; its children are keyed by its digest",
                image.name
            ));
            hash_parts(&["registry", digest.as_str()])
        }
    };
    Ok(super::registry_cache::remote_image(
        image,
        key,
        &version,
        fetched.image,
        reference,
    ))
}

/// The reference `from: text` of image `name` names (a user error when it names none).
pub fn parent_reference(name: &str, text: &str) -> Result<Reference> {
    Reference::parse(text).map_err(|e| {
        UserError::with_hint(
            format!("image {name}: `from: {text}`: {e}"),
            "a parent by reference names its registry's host, such as \
             docker.io/library/alpine:3; an image of this file is named alone",
        )
    })
}

/// Where `--parents-from-registry` pulls `image` from, and the tag: its explicit tag, else
/// `latest`; a user error when neither is known before its build or there is no registry.
pub fn plan_image_reference(image: &ImagePlan) -> Result<(Reference, String)> {
    let tag = match image.known_tag() {
        Some(tag) => tag.to_string(),
        None if image.latest => "latest".to_string(),
        None => {
            return Err(UserError::new(format!(
                "image {}: its tag is only known after its build, so --parents-from-registry \
                 cannot name it; give it `tag:` or `latest: true`",
                image.name
            ))
            .into());
        }
    };
    let text = image.reference(&tag);
    let reference = Reference::parse(&text).map_err(|e| {
        UserError::with_hint(
            format!(
                "image {}: --parents-from-registry needs `registry:` in gib.yaml ({e})",
                image.name
            ),
            "set `registry:` to where the parents were pushed, such as \
             registry.example.org/mine",
        )
    })?;
    Ok((reference, tag))
}

/// The image `reference` (by digest) pulled and unpacked: its layer tree and packages, for
/// a child to build on (`registry_cache::materialize`).
pub fn pull_tree(ctx: &BuildContext<'_>, reference: &Reference) -> Result<BuiltImage> {
    pull(ctx, reference)
}

fn pull(ctx: &BuildContext<'_>, reference: &Reference) -> Result<BuiltImage> {
    ctx.printer.status("Pulling", &reference.to_string());
    let pulled = pull_image(
        &ctx.registries,
        reference,
        &ctx.plan.platform(),
        ctx.store.root(),
    )
    .with_context(|| format!("cannot pull the parent image {reference}"))?;
    let digest = pulled.manifest.digest.clone();
    let manifest: Value = read_json(ctx, &digest)?;
    let descriptor = |v: Option<&Value>, what: &str| -> Result<Descriptor> {
        let v = v.with_context(|| format!("{reference}: the manifest has no {what}"))?;
        serde_json::from_value(v.clone())
            .with_context(|| format!("{reference}: the manifest's {what} is not a descriptor"))
    };
    let config = descriptor(manifest.get("config"), "config")?;
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|l| descriptor(Some(l), "layer"))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let config_json: Value = read_json(ctx, &config.digest)?;
    let image = Image {
        manifest: Descriptor {
            platform: Some(ctx.plan.platform()),
            ..pulled.manifest
        },
        config,
        layers,
        config_json,
    };
    let tree = layer_tree(ctx, &image)?;
    let packages = vdb::read_installed(&tree)
        .with_context(|| format!("cannot read the package database of {reference}"))?
        .iter()
        .map(|p| p.cpv())
        .collect();
    Ok(BuiltImage {
        name: reference.to_string(),
        key: hash_parts(&["registry", digest.as_str()]),
        size: super::image_size(&image),
        tags: Vec::new(),
        references: Vec::new(),
        packages,
        layer_dirs: vec![tree],
        builder_dirs: Vec::new(),
        package_dbs: Vec::new(),
        image,
        reused: true,
        remote: None,
        // A pulled parent is not re-published, so gib attaches no SBOM of its own to it.
        referrers: Vec::new(),
        lint: None,
    })
}

pub(super) fn read_json(ctx: &BuildContext<'_>, digest: &Digest) -> Result<Value> {
    let path = ctx.store.path(digest);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

/// The image's layers applied onto one tree in the cache, made once per manifest digest.
fn layer_tree(ctx: &BuildContext<'_>, image: &Image) -> Result<std::path::PathBuf> {
    let hex = image.manifest.digest.hex().to_string();
    let entry = ctx.cache.dir("pulled")?.join(&hex);
    ctx.cache.use_entry("pulled", &hex, &entry, || {
        let scratch = ctx.cache.scratch_path("pulled")?;
        let tree = scratch.join("tree");
        if let Err(err) = unpack_in_namespace(ctx, image, &tree) {
            remove_any(&scratch).ok();
            return Err(err);
        }
        // The published entry is the tree itself; the scratch dir only held it.
        let result = ctx.cache.publish(&tree, &entry);
        remove_any(&scratch).ok();
        result
    })?;
    Ok(entry)
}

/// The layers applied onto `dest` by a job in the user namespace (no root, no mounts).
fn unpack_in_namespace(
    ctx: &BuildContext<'_>,
    image: &Image,
    dest: &std::path::Path,
) -> Result<()> {
    if image.layers.is_empty() {
        std::fs::create_dir_all(dest)
            .with_context(|| format!("cannot create {}", dest.display()))?;
        return Ok(());
    }
    // Pulled blobs are 0600; the unpacker reads them inside the sandbox, whose root is not
    // the host's root when gib runs as root.
    for layer in &image.layers {
        let blob = ctx.store.path(&layer.digest);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&blob, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot make {} readable", blob.display()))?;
    }
    let job = Job::UnpackLayers {
        blobs: ctx.store.root().to_path_buf(),
        dest: dest.to_path_buf(),
        digests: image.layers.iter().map(|l| l.digest.clone()).collect(),
    };
    let digest = &image.manifest.digest;
    let _: crate::tarball::UnpackSummary = crate::jobs::run(ctx.cache, &job, |f| {
        anyhow::anyhow!(
            "cannot unpack the layers of {digest} ({}): {}",
            f.exit,
            f.message
        )
    })?;
    Ok(())
}
