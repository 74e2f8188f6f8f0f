//! `gib shell [IMAGE]`: an interactive shell in a builder root, with the mounts `gib build`
//! uses (the cache's distfiles and binpkgs read-write). The root is an overlay whose upper is
//! thrown away afterwards, so the cached root is never modified.
//!
//! Without IMAGE the root is the stage3 of gib.yaml. With IMAGE it is that image's builder
//! root as its build sees it (see `build::shell`): its ancestors are built or reused first.

use std::process::ExitCode;

use anyhow::Result;

use super::{ShellArgs, exit_code, parse_network, source_date_epoch};
use crate::build::{self, BuildOptions, PlanScope, Session, build_plan, run_in_stage3};
use crate::cache::Cache;
use crate::printer::{Printer, UserError};
use crate::sandbox::Network;
use crate::stage3;

pub fn run(args: ShellArgs) -> Result<ExitCode> {
    let printer = Printer::new(false);
    let network = parse_network(&args.network)?;
    let config = crate::config::load(&args.config.file)?;
    if let Some(image) = &args.image {
        return shell_in_image(&args, &config, image, network, &printer);
    }
    let source = config.stage3.as_ref().ok_or_else(|| {
        UserError::new(format!(
            "{} has no `stage3`, so there is no builder root to enter",
            args.config.file.display()
        ))
    })?;
    let cache = Cache::open(args.cache_dir.as_deref())?;
    let root = stage3::prepare(source, &cache, &printer)?;
    stage3::check_runs_here(&root)?;
    let exit = run_in_stage3(&root, &cache, network, None, Vec::new(), &printer)?;
    Ok(exit_code(exit))
}

/// A shell in `image`'s builder, after building (or reusing) its ancestors.
fn shell_in_image(
    args: &ShellArgs,
    config: &crate::config::Config,
    image: &str,
    network: Network,
    printer: &Printer,
) -> Result<ExitCode> {
    let plan = crate::plan::Plan::resolve(config, std::slice::from_ref(&image.to_string()))?;
    let session = Session::open(args.cache_dir.as_deref())?;
    let options = BuildOptions {
        network,
        // The same epoch as `gib build`, so the ancestors' input keys match and they are reused.
        source_date_epoch: source_date_epoch()?,
        force: false,
        offline: false,
        lock: crate::build::LockMode::Follow,
        // The ancestors of one image form a chain: one at a time.
        parallelism: crate::build::Parallelism::default(),
    };
    let ctx = session.context(&plan, config, options, printer)?;
    let scope = PlanScope {
        leave_out: Some(image),
        ..PlanScope::default()
    };
    let built = build_plan(&ctx, scope, |_, _| {})?.complete()?.images;
    let target = plan
        .images
        .iter()
        .find(|i| i.name == image)
        .ok_or_else(|| UserError::new(format!("no image named {image}")))?;
    let exit = build::shell(&ctx, target, &built)?;
    Ok(exit_code(exit))
}
