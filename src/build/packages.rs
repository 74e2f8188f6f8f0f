//! Images that emerge packages: the builder root is an overlay over the parent's builder
//! (down to the stage3), the staging root an overlay over the parent's layers (a fresh
//! directory for an image from scratch), emerge runs in the sandbox, and the staging
//! overlay's upper dir becomes the image's layer.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{BuildContext, BuiltImage, entry_dir, hash_parts, image_size, read_record};
use crate::emerge::run::{EmergeFailed, EmergeJob, FinishOptions, log_tail};
use crate::gentoo::vdb;
use crate::oci::image::write_image;
use crate::plan::ImagePlan;
use crate::sandbox::{ExtraMount, OverlayScratch, RootFs, remove_tree};

/// The rootfs-tools gib embeds; part of every packages image's input key.
const TOOLS: [&str; 3] = [
    include_str!("../../rootfs-tools/configure-portage.sh"),
    include_str!("../../rootfs-tools/build-packages.sh"),
    include_str!("../../rootfs-tools/finish-root.sh"),
];

pub fn build(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    packages: &[String],
    script: Option<&Path>,
) -> Result<BuiltImage> {
    if script.is_some() {
        return Err(crate::printer::UserError::new(format!(
            "image {}: `script:` images are not available yet",
            image.name
        ))
        .into());
    }
    let key = input_key(ctx, image, parent)?;
    let entry = entry_dir(ctx.cache, &image.name, &key)?;
    let _lock = ctx
        .cache
        .lock("image", &format!("{}-{}", image.name, &key[..16]))?;
    if !ctx.force
        && let Some(mut record) = read_record(&entry, ctx.store)
    {
        ctx.printer.status(
            "Reusing",
            &format!(
                "{} {} (unchanged)",
                image.name, record.image.manifest.digest
            ),
        );
        record.reused = true;
        return Ok(record);
    }

    let stage3 = ctx.stage3()?;
    let repositories = ctx.repositories()?;
    ctx.printer.status(
        "Building",
        &format!("{} ({})", image.name, packages.join(" ")),
    );
    let scratch = OverlayScratch::create(&ctx.cache.dir("images")?)?;
    let result = build_in(
        ctx,
        image,
        parent,
        packages,
        &scratch,
        stage3,
        repositories,
        &entry,
        &key,
    );
    match result {
        Ok(record) => {
            publish(ctx, scratch, &entry)?;
            Ok(record)
        }
        Err(err) => {
            scratch.remove().ok();
            Err(err)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_in(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    packages: &[String],
    scratch: &OverlayScratch,
    stage3: &crate::stage3::Stage3Root,
    repositories: &[crate::repository::SyncedRepo],
    entry: &Path,
    key: &str,
) -> Result<BuiltImage> {
    let dir = scratch.path();
    let layer = dir.join("layer");
    let layer_work = dir.join("layer-work");
    let input = dir.join("input");
    for d in [&layer, &layer_work, &input] {
        std::fs::create_dir(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let parent_layers = parent.map(|p| p.layer_dirs.clone()).unwrap_or_default();
    let parent_builders = parent.map(|p| p.builder_dirs.clone()).unwrap_or_default();

    let mut lowers = parent_builders.clone();
    lowers.push(stage3.path.clone());
    let staging = if parent_layers.is_empty() {
        ExtraMount::Bind {
            source: layer.clone(),
            target: "/staging".into(),
            readonly: false,
        }
    } else {
        ExtraMount::Overlay {
            target: "/staging".into(),
            lowers: parent_layers.clone(),
            upper: layer.clone(),
            work: layer_work.clone(),
        }
    };
    let repository_mounts = repositories
        .iter()
        .filter_map(|repo| {
            repo.path.as_ref().map(|path| ExtraMount::Bind {
                source: path.clone(),
                target: repo.location.clone().into(),
                readonly: true,
            })
        })
        .collect();
    let log_dir = ctx.cache.dir("logs")?.join(&image.name);
    let job = EmergeJob {
        image: &image.name,
        packages,
        portage: &image.portage,
        finish: FinishOptions {
            keep_headers: image.keep_headers,
            keep_static_libs: image.keep_static_libs,
            keep_package_db: image.keep_package_db,
            source_date_epoch: ctx.epoch(),
        },
        builder: RootFs::Overlay {
            lowers,
            upper: scratch.upper(),
            work: scratch.work(),
        },
        staging,
        repositories: repository_mounts,
        caches: crate::stage3::cache_mounts(ctx.cache)?,
        network: ctx.network,
        input_dir: &input,
        log_dir: &log_dir,
    };
    let outcome = match crate::emerge::run::run(&job, ctx.printer) {
        Ok(outcome) => outcome,
        Err(err) => return Err(explain_failure(ctx, err)),
    };
    ctx.printer.status(
        "Emerged",
        &format!(
            "{}: {} packages into the image, log {}",
            image.name,
            outcome.merged.len(),
            outcome.session_log.display()
        ),
    );

    super::report::keep_trimmed(&log_dir, dir)?;
    super::finish::apply(ctx, image, &layer, &parent_layers, &input)?;
    let own_packages = vdb::read_installed(&layer)?;
    let written_layers = super::layering::write_layers(
        ctx,
        image,
        &layer,
        !parent_layers.is_empty(),
        &own_packages,
    )?;
    let mut all_packages: Vec<String> = parent.map(|p| p.packages.clone()).unwrap_or_default();
    all_packages.extend(own_packages.iter().map(|p| p.cpv()));
    all_packages.sort();
    all_packages.dedup();
    let version_tag = super::version_tag(ctx, image, &own_packages);
    let written = write_image(
        ctx.store,
        &super::image_request(ctx, image, parent, written_layers, &version_tag, "emerge"),
    )?;

    let mut image_layers = vec![layer.clone()];
    image_layers.extend(parent_layers.iter().cloned());
    let sbom = super::sbom::attach(
        ctx.store,
        &image.name,
        &written,
        &image_layers,
        ctx.epoch().unwrap_or(0),
    )?;

    let mut test_layers = vec![layer.clone()];
    test_layers.extend(parent_layers.iter().cloned());
    super::test::run(ctx, image, &test_layers)?;

    // The record names the entry's final paths: it is renamed into place after this.
    let mut layer_dirs = vec![entry.join("layer")];
    layer_dirs.extend(parent_layers);
    let mut builder_dirs = vec![entry.join("upper")];
    builder_dirs.extend(parent_builders);
    let record = BuiltImage {
        name: image.name.clone(),
        key: key.to_string(),
        size: image_size(&written),
        tags: image.tags(&version_tag),
        references: image.references(&version_tag),
        packages: all_packages,
        layer_dirs,
        builder_dirs,
        image: written,
        sbom: Some(sbom),
        reused: false,
    };
    let record_path = dir.join("record.json");
    std::fs::write(&record_path, serde_json::to_vec_pretty(&record)?)
        .with_context(|| format!("cannot write {}", record_path.display()))?;
    Ok(record)
}

/// Move a finished scratch dir to its entry (replacing an older build of the same inputs,
/// from `--force`), without the overlay work dirs.
fn publish(ctx: &BuildContext<'_>, scratch: OverlayScratch, entry: &Path) -> Result<()> {
    for work in [scratch.work(), scratch.path().join("layer-work")] {
        remove_tree(&work)?;
    }
    if entry.exists() {
        let old = ctx.cache.scratch_path("images")?;
        std::fs::remove_dir(&old).ok();
        std::fs::rename(entry, &old)
            .with_context(|| format!("cannot move {} aside", entry.display()))?;
        remove_tree(&old)?;
    }
    std::fs::rename(scratch.path(), entry).with_context(|| {
        format!(
            "cannot move {} to {}",
            scratch.path().display(),
            entry.display()
        )
    })?;
    Ok(())
}

/// Every input of a packages image: its plan (atoms, USE, Portage files, settings), the
/// stage3 and repositories, the rootfs-tools, and its parent's key.
fn input_key(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
) -> Result<String> {
    let sources = ctx.source_identity()?;
    let plan = format!("{image:?}");
    let files = super::finish::sources_identity(image)?;
    // An explicit SOURCE_DATE_EPOCH changes every mtime; the default one is the snapshot's,
    // which `sources` already covers.
    let epoch = format!("{:?}", ctx.source_date_epoch);
    let mut parts: Vec<&str> = vec!["packages", &plan, &sources, &files, &epoch];
    parts.extend(TOOLS);
    parts.push(parent.map_or("", |p| p.key.as_str()));
    Ok(hash_parts(&parts))
}

/// Turn an emerge failure into what the user needs: the failing package, the last lines of
/// its build log (printed now), and where the logs are.
fn explain_failure(ctx: &BuildContext<'_>, err: anyhow::Error) -> anyhow::Error {
    let Some(failed) = err.downcast_ref::<EmergeFailed>() else {
        return err;
    };
    let log: PathBuf = failed
        .build_log
        .clone()
        .filter(|p| std::fs::File::open(p).is_ok())
        .unwrap_or_else(|| failed.session_log.clone());
    ctx.printer.excerpt(&log_tail(&log, 30));
    let mut logs = format!("build log: {}", log.display());
    if log != failed.session_log {
        logs.push_str(&format!(
            "; emerge's output: {}",
            failed.session_log.display()
        ));
    }
    err.context(logs)
}
