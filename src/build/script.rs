//! `script:` images: the user's script runs in the image's builder after emerge (if the
//! image emerges anything), with `ROOT=/staging` and the helpers of `rootfs-tools/lib.sh`
//! sourced; then `finish-root.sh` finishes the root as after emerge.
//!
//! The script sees the same builder and staging mounts as emerge (the builder overlay's upper
//! dir is mounted again, so what emerge put into the builder is there). The script file and,
//! when the image has one, its `context:` directory are bound into the builder read-only
//! (the context at `$GIB_CONTEXT`); their contents are inputs of the image's key.
//!
//! Not for: deciding mounts (`packages` builds the `EmergeJob` both use), running emerge.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::BuildContext;
use crate::emerge::run::{EmergeJob, log_tail};
use crate::plan::ImagePlan;
use crate::rootfs_tools::{self, CONTEXT_PATH, Job, PORTAGE_LOG_DIR, SCRIPT_PATH, STAGING};
use crate::sandbox::{self, ExtraMount, SandboxSpec, SandboxStdio};

/// The script failed: its exit and where its whole output is.
#[derive(Debug, thiserror::Error)]
#[error("the script of image {image} failed ({exit}): {script}; its output: {log}")]
pub struct ScriptFailed {
    pub image: String,
    pub script: PathBuf,
    pub exit: sandbox::Exit,
    pub log: PathBuf,
}

/// What a script contributes to its image's input key: its path, contents, the tools, and
/// the digest of its context directory.
pub fn key_parts(image: &ImagePlan, script: &Path, context: Option<&Path>) -> Result<Vec<String>> {
    let text = fs::read(script).map_err(|e| {
        crate::printer::UserError::new(format!(
            "image {}: cannot read its script {}: {e}",
            image.name,
            script.display()
        ))
    })?;
    let mut parts = vec![
        super::key::file_name(script).display().to_string(),
        String::from_utf8_lossy(&text).into_owned(),
    ];
    parts.extend(
        rootfs_tools::key_parts(Job::Script)
            .into_iter()
            .map(str::to_string),
    );
    if let Some(context) = context {
        parts.push(tree_digest(context).map_err(|e| {
            crate::printer::UserError::new(format!("image {}: context: {e:#}", image.name))
        })?);
    }
    Ok(parts)
}

/// A digest of a directory tree as the script sees it: every entry's relative path, type,
/// permission bits, and contents (files) or target (symlinks), in name order. Owners and
/// times are left out, so a fresh checkout of the same sources has the same digest.
pub fn tree_digest(root: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    let mut hasher = Sha256::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.with_context(|| format!("cannot read {}", root.display()))?;
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(path);
        let meta = entry
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?;
        hasher.update(relative.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        hasher.update((meta.permissions().mode() & 0o7777).to_le_bytes());
        let kind = entry.file_type();
        if kind.is_symlink() {
            let target =
                fs::read_link(path).with_context(|| format!("cannot read {}", path.display()))?;
            hasher.update(b"l");
            hasher.update(target.as_os_str().as_encoded_bytes());
        } else if kind.is_file() {
            let mut file =
                File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
            hasher.update(b"f");
            hasher.update(meta.len().to_le_bytes());
            std::io::copy(&mut file, &mut hasher)
                .with_context(|| format!("cannot read {}", path.display()))?;
        } else if kind.is_dir() {
            hasher.update(b"d");
        } else {
            hasher.update(b"o");
        }
        hasher.update([0]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Run `script` for `image` in the builder and staging root `job` describes.
pub fn run(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    script: &Path,
    context: Option<&Path>,
    job: &EmergeJob<'_>,
) -> Result<()> {
    ctx.printer.status(
        "Running",
        &format!("{}: {} with ROOT={STAGING}", image.name, script.display()),
    );
    rootfs_tools::install(job.input_dir, Job::Script)?;
    let portage_logs = rootfs_tools::host_log_dir(job.log_dir);
    fs::create_dir_all(&portage_logs)
        .with_context(|| format!("cannot create {}", portage_logs.display()))?;
    let log_path = job.log_dir.join("script.log");
    let mut log =
        File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;

    let (stdio, output) = SandboxStdio::one_pipe()?;
    let child = sandbox::spawn(&spec_for(image, script, context, job), stdio)
        .with_context(|| format!("cannot start the builder of image {}", image.name))?;
    for line in BufReader::new(output).split(b'\n') {
        let line = line.context("cannot read the builder's output")?;
        let line = String::from_utf8_lossy(&line);
        writeln!(log, "{line}").with_context(|| format!("cannot write {}", log_path.display()))?;
        ctx.printer.builder_output(&line);
    }
    let exit = child.wait()?;
    if !exit.success() {
        ctx.printer.excerpt(&log_tail(&log_path, 30));
        return Err(ScriptFailed {
            image: image.name.clone(),
            script: script.to_path_buf(),
            exit,
            log: log_path,
        }
        .into());
    }
    Ok(())
}

fn spec_for(
    image: &ImagePlan,
    script: &Path,
    context: Option<&Path>,
    job: &EmergeJob<'_>,
) -> SandboxSpec {
    let mut env = sandbox::default_env();
    env.extend(rootfs_tools::finish_env(Job::Script, &job.finish));
    env.push(("GIB_IMAGE".into(), OsString::from(&image.name)));
    let mut mounts = vec![
        job.staging.clone(),
        ExtraMount::Bind {
            source: job.input_dir.to_path_buf(),
            target: rootfs_tools::INPUT_DIR.into(),
            readonly: true,
        },
        // Where finish-root.sh leaves its trim report, as after emerge.
        ExtraMount::Bind {
            source: rootfs_tools::host_log_dir(job.log_dir),
            target: PORTAGE_LOG_DIR.into(),
            readonly: false,
        },
        ExtraMount::Bind {
            source: script.to_path_buf(),
            target: SCRIPT_PATH.into(),
            readonly: true,
        },
    ];
    if let Some(context) = context {
        mounts.push(ExtraMount::Bind {
            source: context.to_path_buf(),
            target: CONTEXT_PATH.into(),
            readonly: true,
        });
        env.push(("GIB_CONTEXT".into(), CONTEXT_PATH.into()));
    }
    mounts.extend(job.caches.iter().cloned());
    mounts.extend(job.repositories.iter().cloned());
    SandboxSpec {
        root: Some(job.builder.clone()),
        mounts,
        network: job.network,
        hostname: format!("gib-{}", image.name),
        command: vec![
            "/bin/sh".into(),
            Job::Script.entry_point().into(),
            SCRIPT_PATH.into(),
        ],
        env,
        cwd: PathBuf::from("/"),
        interactive: false,
        user: None,
    }
}
