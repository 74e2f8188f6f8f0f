//! `gib shell [IMAGE]`: an interactive shell in a builder root, with the mounts `gib build`
//! uses (the cache's distfiles and binpkgs read-write). The root is an overlay whose upper is
//! thrown away afterwards, so the cached root is never modified.
//!
//! Without IMAGE the root is the stage3 of gib.yaml. With IMAGE it is that image's builder
//! root as its build sees it (see `build::shell`): its ancestors are built or reused first.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::ShellArgs;
use crate::cache::Cache;
use crate::printer::{Printer, UserError};
use crate::sandbox::{
    self, Exit, ExtraMount, Network, OverlayScratch, RootFs, SandboxSpec, SandboxStdio,
};
use crate::stage3::{self, Stage3Root};

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
    let exit = run_in_stage3(&root, &cache, network, None, Vec::new(), &printer)?;
    Ok(super::internal::exit_code(exit))
}

/// A shell in `image`'s builder, after building (or reusing) its ancestors.
fn shell_in_image(
    args: &ShellArgs,
    config: &crate::config::Config,
    image: &str,
    network: Network,
    printer: &Printer,
) -> Result<ExitCode> {
    use crate::build::{BuildContext, build_image};
    let plan = crate::plan::Plan::resolve(config, std::slice::from_ref(&image.to_string()))?;
    let cache = Cache::open(args.cache_dir.as_deref())?;
    let store = crate::oci::blob::BlobStore::open(&cache.dir("blobs")?)?;
    // The layer writer adds blobs from inside the sandbox.
    crate::sandbox::hand_over(&store.root().join("sha256"))?;
    // The same epoch as `gib build`, so the ancestors' input keys match and they are reused.
    let epoch = super::build::source_date_epoch()?;
    let ctx = BuildContext::new(&plan, &cache, &store, printer, network, epoch, false, false)
        .with_registries(crate::output::registry::client(&config.registries));
    let mut built = std::collections::BTreeMap::new();
    for ancestor in plan.images.iter().filter(|i| i.name != image) {
        let result = build_image(&ctx, ancestor, &built)?;
        built.insert(ancestor.name.clone(), result);
    }
    let target = plan
        .images
        .iter()
        .find(|i| i.name == image)
        .ok_or_else(|| UserError::new(format!("no image named {image}")))?;
    let exit = crate::build::shell(&ctx, target, &built)?;
    Ok(super::internal::exit_code(exit))
}

pub fn parse_network(text: &str) -> Result<Network> {
    match text {
        "host" => Ok(Network::Host),
        "none" => Ok(Network::None),
        other => Err(UserError::new(format!(
            "unknown network mode `{other}`: expected `host` or `none`"
        ))
        .into()),
    }
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
    let mut mounts = stage3::cache_mounts(cache)?;
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
