//! Writing a layer from a tree the sandbox filled: the writer runs as gib's hidden
//! `write-layer` helper inside a user namespace (no root, no mounts), so it reads the tree
//! with the owners the build gave it (portage's 250 stays 250, not a subordinate id) and
//! file capabilities in the namespace's form. Pruning a staging upper dir of unchanged
//! copy-ups runs the same way, before the layer is written.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use super::BuildContext;
use crate::oci::layer::{Layer, LayerJob, LayerOptions, LayerSource};
use crate::rootfs::changes::PruneSummary;
use crate::sandbox::{self, SandboxSpec, SandboxStdio};

/// How an image's layers are written in this run.
pub fn layer_options(ctx: &BuildContext<'_>, image: &crate::plan::ImagePlan) -> LayerOptions {
    LayerOptions {
        compression: image.compression,
        source_date_epoch: ctx.epoch(),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        owners: None,
    }
}

pub fn write_in_namespace(
    ctx: &BuildContext<'_>,
    source: LayerSource,
    options: LayerOptions,
) -> Result<Layer> {
    let root = source.root.clone();
    let job = LayerJob { source, options };
    let blobs = ctx.store.root().as_os_str().to_owned();
    let text = run_helper(
        ctx.cache,
        &["write-layer".into(), "--blobs".into(), blobs],
        &job,
        &format!("write the layer of {}", root.display()),
    )?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("the layer writer printed {:?}", text.trim()))
}

/// Remove from `upper` (a staging overlay's upper dir) the copy-ups that changed nothing
/// over `lowers`, inside the user namespace where the build's owners are ours.
pub fn prune_in_namespace(
    ctx: &BuildContext<'_>,
    upper: &Path,
    lowers: &[PathBuf],
) -> Result<PruneSummary> {
    let mut args: Vec<OsString> = vec!["prune-layer".into(), upper.into()];
    args.extend(lowers.iter().map(OsString::from));
    let text = run_helper(ctx.cache, &args, &(), &format!("prune {}", upper.display()))?;
    serde_json::from_str(text.trim())
        .with_context(|| format!("the layer pruner printed {:?}", text.trim()))
}

/// Run `gib __internal <args>` in a user namespace (no root change, no mounts) with `job` as
/// JSON on stdin; its stdout. `what` names the task in errors ("write the layer of …").
pub fn run_helper(
    cache: &crate::cache::Cache,
    args: &[std::ffi::OsString],
    job: &impl serde::Serialize,
    what: &str,
) -> Result<String> {
    let scratch = tempfile::tempdir_in(cache.dir("tmp")?)
        .context("cannot create a scratch directory in the cache")?;
    let job_path = scratch.path().join("job.json");
    let out_path = scratch.path().join("out.json");
    let err_path = scratch.path().join("stderr");
    let mut job_file =
        File::create(&job_path).with_context(|| format!("cannot write {}", job_path.display()))?;
    serde_json::to_writer(&mut job_file, job)?;
    job_file.flush()?;

    let exe = std::path::PathBuf::from(sandbox::GIB_EXE);
    let mut command = vec![exe.into(), "__internal".into()];
    command.extend(args.iter().cloned());
    let spec = SandboxSpec::in_namespace("gib-layer", command);
    let open =
        |path: &Path| File::open(path).with_context(|| format!("cannot open {}", path.display()));
    let create = |path: &Path| {
        File::create(path).with_context(|| format!("cannot create {}", path.display()))
    };
    let stdio = SandboxStdio {
        stdin: Stdio::from(open(&job_path)?),
        stdout: Stdio::from(create(&out_path)?),
        stderr: Stdio::from(create(&err_path)?),
    };
    let exit = sandbox::run(&spec, stdio)?;
    if !exit.success() {
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        bail!(
            "cannot {what} ({exit}): {}",
            stderr.trim().trim_start_matches("error: ")
        );
    }
    std::fs::read_to_string(&out_path)
        .with_context(|| format!("cannot read {}", out_path.display()))
}
