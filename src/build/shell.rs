//! `gib shell IMAGE`: the builder root of an image as its build sees it — an overlay over
//! its parent's builder (down to the stage3), gib's Portage files installed, /staging over
//! its parent's tree — with throwaway uppers, for replaying a failing build by hand
//! (Kubler's interactive build mode). The image's ancestors are built or reused first.

use std::collections::BTreeMap;

use anyhow::Result;

use super::{BuildContext, BuiltImage};
use crate::plan::{BuildKind, ImagePlan};
use crate::printer::UserError;
use crate::rootfs_tools::{self, Job};
use crate::sandbox::{Exit, OverlayScratch};

pub fn shell(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    built: &BTreeMap<String, BuiltImage>,
) -> Result<Exit> {
    let BuildKind::Portage(work) = &image.kind else {
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
    let dirs = super::packages::JobDirs::create(&scratch, scratch.path().join("logs"))?;
    let mut job = super::packages::emerge_job(
        ctx,
        image,
        work,
        parent,
        &scratch,
        stage3,
        repositories,
        &dirs,
    )?;
    if work.script.is_some() {
        // The script's helpers and sources, where its build has them.
        rootfs_tools::install(&dirs.input, Job::Script)?;
    }
    if let Some(context) = &work.context {
        job.extra_mounts.push(crate::sandbox::ExtraMount::Bind {
            source: context.clone(),
            target: rootfs_tools::CONTEXT_PATH.into(),
            readonly: true,
        });
    }
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
