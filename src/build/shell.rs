//! `gib shell IMAGE`: the builder root of an image as its build sees it — an overlay over
//! its parent's builder (down to the stage3), gib's Portage files installed, /staging over
//! its parent's tree — with throwaway uppers, for replaying a failing build by hand
//! (Kubler's interactive build mode). The image's ancestors are built or reused first.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{BuildContext, BuiltImage};
use crate::emerge::run::{EmergeJob, FinishOptions};
use crate::plan::{BuildKind, ImagePlan};
use crate::printer::UserError;
use crate::sandbox::{Exit, OverlayScratch, RootFs};

pub fn shell(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    built: &BTreeMap<String, BuiltImage>,
) -> Result<Exit> {
    let BuildKind::Portage { packages, .. } = &image.kind else {
        return Err(UserError::new(format!(
            "image {} is a `rootfs:` image: it has no builder root",
            image.name
        ))
        .into());
    };
    let parent = image.depends_on().and_then(|name| built.get(name));
    let stage3 = ctx.stage3()?;
    let repositories = ctx.repositories()?;
    let scratch = OverlayScratch::create(&ctx.cache.dir("shell")?)?;
    let layer = scratch.path().join("layer");
    let layer_work = scratch.path().join("layer-work");
    let input = scratch.path().join("input");
    for dir in [&layer, &layer_work, &input] {
        std::fs::create_dir(dir)?;
    }
    let parent_layers = parent.map(|p| p.layer_dirs.clone()).unwrap_or_default();
    let mut lowers = parent.map(|p| p.builder_dirs.clone()).unwrap_or_default();
    lowers.push(stage3.path.clone());
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
        staging: super::packages::staging_mount(&layer, &layer_work, &parent_layers),
        repositories: super::packages::repository_mounts(repositories),
        caches: crate::stage3::cache_mounts(ctx.cache)?,
        network: ctx.network,
        input_dir: &input,
        log_dir: &scratch.path().join("logs"),
    };
    ctx.printer.status(
        "Entering",
        &format!(
            "the builder of {} (changes are thrown away on exit)",
            image.name
        ),
    );
    let result = crate::emerge::run::shell(&job);
    let removed = scratch.remove();
    let exit = result?;
    removed?;
    Ok(exit)
}
