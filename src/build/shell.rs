//! `gib shell IMAGE`: the builder root of an image as its build sees it — an overlay over
//! its parent's builder (down to the stage3), gib's Portage files installed, /staging over
//! its parent's tree — with throwaway uppers, for replaying a failing build by hand
//! (Kubler's interactive build mode). The image's ancestors are built or reused first.
//!
//! Also the plain stage3 root (`gib shell` without IMAGE, `gib __run --stage3`): an overlay
//! over it with the cache mounts, its upper thrown away afterwards.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::Result;

use super::{BuildContext, BuiltImage};
use crate::cache::Cache;
use crate::plan::{BuildKind, ImagePlan};
use crate::printer::{Printer, UserError};
use crate::rootfs_tools::{self, Job};
use crate::sandbox::{
    self, Exit, ExtraMount, Network, OverlayScratch, RootFs, SandboxSpec, SandboxStdio,
};
use crate::stage3::{self, Stage3Root};

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
    // Prepared before the scratch dir, as a build does.
    ctx.stage3()?;
    ctx.repositories()?;
    let scratch = OverlayScratch::create(&ctx.cache.dir("shell")?)?;
    let dirs = super::packages::JobDirs::create(&scratch, scratch.path().join("logs"))?;
    let mut job = super::packages::emerge_job(ctx, image, work, parent, &scratch, &dirs)?;
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

/// Run `command` (an interactive shell when `None`) in an overlay over the stage3 root with
/// the cache mounts and `extra` mounts; the overlay's upper is removed afterwards.
pub fn run_in_stage3(
    root: &Stage3Root,
    cache: &Cache,
    network: Network,
    command: Option<Vec<OsString>>,
    extra: Vec<ExtraMount>,
    printer: &Printer,
) -> Result<Exit> {
    let id_mode = sandbox::id_mode_warned(printer)?;
    let interactive = command.is_none();
    let command = command.unwrap_or_else(|| vec![shell_of(&root.path)]);
    let scratch = OverlayScratch::create(&cache.dir("shell")?)?;
    let mut mounts = stage3::cache_mounts(cache, &crate::oci::spec::Platform::host())?;
    mounts.extend(extra);
    let mut env = sandbox::default_env();
    if id_mode.is_single() {
        // Nothing can be owned by portage (250) with a single mapped id.
        env.push(("PORTAGE_USERNAME".into(), "root".into()));
        env.push(("PORTAGE_GRPNAME".into(), "root".into()));
    }
    let spec = SandboxSpec {
        root: Some(RootFs::Overlay {
            lowers: vec![root.path.clone()],
            upper: scratch.upper(),
            work: scratch.work(),
        }),
        mounts,
        network,
        hostname: "gib-shell".into(),
        command,
        env,
        cwd: if root.path.join("root").is_dir() {
            "/root".into()
        } else {
            "/".into()
        },
        interactive,
        user: None,
    };
    if interactive {
        printer.status(
            "Entering",
            "the stage3 root (changes are thrown away on exit)",
        );
    }
    let result = sandbox::run(&spec, SandboxStdio::inherit());
    let removed = scratch.remove();
    let exit = result?;
    removed?;
    Ok(exit)
}

/// `/bin/bash` when the root has it, else `/bin/sh`.
fn shell_of(root: &Path) -> OsString {
    let has_bash = ["bin/bash", "usr/bin/bash"]
        .iter()
        .any(|p| std::fs::symlink_metadata(root.join(p)).is_ok());
    if has_bash { "/bin/bash" } else { "/bin/sh" }.into()
}
