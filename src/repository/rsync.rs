//! `sync_type: rsync`: `rsync` from the server into a new snapshot directory, hard-linking
//! the files that did not change from the current snapshot (`--link-dest`), so each sync
//! costs only what changed and never touches a tree a build may be reading.
//!
//! The options follow Portage's own rsync sync (`portage/sync/modules/rsync`).

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{Fetched, Store};
use crate::printer::UserError;

pub(super) fn fetch(uri: &str, store: &Store) -> Result<Fetched> {
    let scratch = store.scratch()?;
    let source = format!("{}/", uri.trim_end_matches('/'));
    let mut cmd = Command::new("rsync");
    cmd.args([
        "--recursive",
        "--links",
        "--safe-links",
        "--perms",
        "--times",
        "--omit-dir-times",
        "--delete",
        "--force",
        "--exclude=/distfiles",
        "--exclude=/local",
        "--exclude=/packages",
        "--exclude=/.git",
    ]);
    // The same bounds as every other transfer (`crate::http`): a silent server is given up
    // after a stall period, a daemon that never accepts after the connect timeout.
    let limits = crate::http::Limits::from_env().unwrap_or_default();
    cmd.arg(format!("--timeout={}", limits.stall.as_secs().max(1)))
        .arg(format!("--contimeout={}", limits.connect.as_secs().max(1)));
    if let Some((current, _)) = store.current() {
        cmd.arg(format!("--link-dest={}", current.display()));
    }
    cmd.arg(&source)
        .arg(format!("{}/", scratch.display()))
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    let out = cmd.output().map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            UserError::with_hint(
                "sync_type rsync needs `rsync`, which is not installed",
                "install rsync, or use sync_type git or webrsync",
            )
        } else {
            anyhow::Error::new(err).context(format!("cannot run {cmd:?}"))
        }
    })?;
    if !out.status.success() {
        crate::cache::remove_any(&scratch).ok();
        bail!(
            "cannot sync {uri}: {cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::metadata(&scratch).with_context(|| format!("rsync left no {}", scratch.display()))?;
    Ok(Fetched {
        tree: scratch.clone(),
        scratch,
        id: None,
        revision: None,
        fallback_time: None,
    })
}
