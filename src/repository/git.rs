//! `sync_type: git`: a shallow fetch into a bare repository in the cache, then the commit's
//! tree exported (`git archive`) as a new snapshot.
//!
//! The bare repository (`repos/<key>/git`) only keeps the fetch incremental; builders see
//! the exported tree, which has no `.git`. A `ca_certificate` is trusted besides the system
//! roots, as everywhere (`crate::http`): git's `http.sslCAInfo` replaces its roots, so it
//! is given a file holding both.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::{Fetched, Pin, SnapshotTime, Store};
use crate::printer::{Printer, UserError};

/// Fetch `uri` (its HEAD, or `pin`) and export the commit's tree into the store's scratch.
pub(super) fn fetch(
    uri: &str,
    pin: Option<&Pin>,
    ca_certificate: Option<&Path>,
    store: &Store,
    printer: &Printer,
) -> Result<Fetched> {
    if let Some(ca) = ca_certificate
        && !ca.is_file()
    {
        return Err(UserError::new(format!(
            "the ca_certificate {} of {uri} does not exist",
            ca.display()
        ))
        .into());
    }
    // git's http.sslCAInfo replaces its roots: it is given the default roots and the CA
    // together, so that `ca_certificate` means what it means everywhere (`crate::http`).
    let trusted = ca_certificate.map(trusted_roots_file).transpose()?;
    let trusted_path = trusted.as_ref().map(|file| file.path());
    let bare = store.dir.join("git");
    if !bare.join("HEAD").is_file() {
        let scratch = store.scratch()?;
        run(git(None).args(["init", "--quiet", "--bare"]).arg(&scratch))?;
        std::fs::rename(&scratch, &bare)
            .with_context(|| format!("cannot move {} to {}", scratch.display(), bare.display()))?;
    }
    let fetch = |args: &[&str]| -> Result<()> {
        run(git(trusted_path)
            .arg("-C")
            .arg(&bare)
            .args(["fetch", "--quiet", "--no-tags"])
            .args(args)
            .arg(uri)
            .arg("HEAD"))
        .map_err(|err| certificate_hint(err, uri, ca_certificate))
        .with_context(|| format!("cannot fetch {uri}"))
    };
    let revision = match pin {
        None => {
            fetch(&["--depth", "1"])?;
            rev_parse(&bare, "FETCH_HEAD")?
        }
        Some(Pin::Commit(commit)) if commit.len() == 40 || commit.len() == 64 => {
            run(git(trusted_path)
                .arg("-C")
                .arg(&bare)
                .args(["fetch", "--quiet", "--no-tags", "--depth", "1"])
                .arg(uri)
                .arg(commit))
            .with_context(|| format!("cannot fetch commit {commit} from {uri}"))?;
            rev_parse(&bare, "FETCH_HEAD")?
        }
        Some(Pin::Commit(commit)) => {
            printer.warn(&format!(
                "pin {commit} is an abbreviated commit: fetching the whole history of {uri} to find it \
                 (pin the full 40-digit commit to fetch only that one)"
            ));
            fetch_history(&bare, uri, trusted_path)?;
            rev_parse(&bare, commit).map_err(|err| {
                UserError::new(format!(
                    "{uri} has no commit {commit} on its default branch: {err:#}"
                ))
            })?
        }
        Some(date @ Pin::Date(_)) => {
            let day = date.dashed_date().unwrap_or_default();
            let before = format!("{day}T23:59:59Z");
            let since = week_before(&day);
            // Fails when nothing is that recent; the whole history is fetched below then.
            fetch(&[&format!("--shallow-since={since}")]).ok();
            let mut found = last_commit_before(&bare, &before)?;
            if found.is_none() {
                fetch_history(&bare, uri, trusted_path)?;
                found = last_commit_before(&bare, &before)?;
            }
            found.ok_or_else(|| {
                UserError::new(format!(
                    "{uri} has no commit on or before {day} (pin {date})"
                ))
            })?
        }
    };

    // A ref keeps the commit reachable: the next fetch tells the server what it has, and
    // `gc --auto` prunes only what no ref needs (older fetches).
    run(git(None)
        .arg("-C")
        .arg(&bare)
        .args(["update-ref", "refs/gib/last"])
        .arg(&revision))?;
    run(git(None)
        .arg("-C")
        .arg(&bare)
        .args(["gc", "--auto", "--quiet"]))
    .ok();

    let scratch = store.scratch()?;
    export_tree(&bare, &revision, &scratch)?;
    let commit_time = capture(
        git(None)
            .arg("-C")
            .arg(&bare)
            .args(["show", "-s", "--format=%ct"])
            .arg(&revision),
    )
    .ok()
    .and_then(|t| t.trim().parse::<i64>().ok())
    .and_then(SnapshotTime::from_epoch);
    Ok(Fetched {
        tree: scratch.clone(),
        scratch,
        id: Some(revision.clone()),
        revision: Some(revision),
        fallback_time: commit_time,
    })
}

/// A TLS verification failure without a `ca_certificate` is most likely a self-signed host:
/// say which key fixes it.
fn certificate_hint(err: anyhow::Error, uri: &str, ca_certificate: Option<&Path>) -> anyhow::Error {
    let text = format!("{err:#}");
    let tls = text.contains("certificate verif") || text.contains("SSL certificate problem");
    if tls && ca_certificate.is_none() {
        return UserError::with_hint(
            format!("{uri} presents a certificate that is not trusted: {text}"),
            "for a host with its own CA, set `ca_certificate:` (a PEM file) on the repository",
        );
    }
    err
}

/// The HEAD commit of a local checkout, if it is one.
pub(super) fn local_revision(path: &Path) -> Option<String> {
    if !path.join(".git").exists() {
        return None;
    }
    capture(
        git(None)
            .arg("-C")
            .arg(path)
            .args(["rev-parse", "--verify", "HEAD"]),
    )
    .ok()
    .map(|s| s.trim().to_string())
}

fn fetch_history(bare: &Path, uri: &str, ca_file: Option<&Path>) -> Result<()> {
    let shallow = bare.join("shallow").exists();
    let mut cmd = git(ca_file);
    cmd.arg("-C")
        .arg(bare)
        .args(["fetch", "--quiet", "--no-tags"]);
    if shallow {
        cmd.arg("--unshallow");
    }
    run(cmd.arg(uri).arg("HEAD")).with_context(|| format!("cannot fetch the history of {uri}"))
}

fn last_commit_before(bare: &Path, before: &str) -> Result<Option<String>> {
    let out = capture(
        git(None)
            .arg("-C")
            .arg(bare)
            .args(["rev-list", "-1"])
            .arg(format!("--before={before}"))
            .arg("FETCH_HEAD"),
    )?;
    let commit = out.trim();
    Ok((!commit.is_empty()).then(|| commit.to_string()))
}

fn rev_parse(bare: &Path, what: &str) -> Result<String> {
    let out = capture(
        git(None)
            .arg("-C")
            .arg(bare)
            .args(["rev-parse", "--verify", "--end-of-options"])
            .arg(format!("{what}^{{commit}}")),
    )?;
    Ok(out.trim().to_string())
}

/// `git archive <commit>` unpacked into `dest`.
fn export_tree(bare: &Path, revision: &str, dest: &Path) -> Result<()> {
    let mut cmd = git(None);
    cmd.arg("-C")
        .arg(bare)
        .args(["archive", "--format=tar"])
        .arg(revision)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let stdout = child.stdout.take().context("git archive has no stdout")?;
    let mut stderr = child.stderr.take().context("git archive has no stderr")?;
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).ok();
        text
    });
    let mut archive = tar::Archive::new(stdout);
    archive.set_preserve_permissions(true);
    let unpacked = archive.unpack(dest);
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {cmd:?}"))?;
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        bail!("{cmd:?} failed ({status}): {}", stderr.trim());
    }
    unpacked.with_context(|| format!("cannot unpack {cmd:?} into {}", dest.display()))
}

/// `YYYY-MM-DD` minus seven days (enough history for most trees; else the whole history).
fn week_before(day: &str) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(day, &format)
        .ok()
        .and_then(|d| d.checked_sub(time::Duration::days(7)))
        .and_then(|d| d.format(&format).ok())
        .unwrap_or_else(|| day.to_string())
}

/// The trusted roots with `ca_certificate` as one PEM file, for git's `http.sslCAInfo`.
fn trusted_roots_file(ca_certificate: &Path) -> Result<tempfile::NamedTempFile> {
    let pem = crate::http::trusted_pem(ca_certificate)?;
    let mut file = tempfile::NamedTempFile::new()
        .context("cannot create a temporary file for the trusted CA certificates")?;
    std::io::Write::write_all(&mut file, pem.as_bytes())
        .with_context(|| format!("cannot write {}", file.path().display()))?;
    Ok(file)
}

/// A `git` command that never prompts and, with a CA file, trusts what it holds.
///
/// What it trusts is gib.yaml's to say: git's own switches that would change it (turn
/// verification off, replace the CA bundle) are taken out of its environment, and
/// verification is turned on over any git configuration file.
fn git(ca_certificate: Option<&Path>) -> Command {
    let mut cmd = Command::new("git");
    for variable in ["GIT_SSL_NO_VERIFY", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH"] {
        cmd.env_remove(variable);
    }
    cmd.arg("-c").arg("http.sslVerify=true");
    if let Some(ca) = ca_certificate {
        cmd.arg("-c")
            .arg(format!("http.sslCAInfo={}", ca.display()));
    }
    // The same bounds as every other transfer (`crate::http`): git gives up on an HTTP peer
    // that stays below the minimum rate for a stall period, and ssh on a silent server.
    let limits = crate::http::Limits::from_env().unwrap_or_default();
    cmd.arg("-c")
        .arg(format!("http.lowSpeedLimit={}", limits.min_rate))
        .arg("-c")
        .arg(format!(
            "http.lowSpeedTime={}",
            limits.stall.as_secs().max(1)
        ));
    cmd.env(
        "GIT_SSH_COMMAND",
        format!(
            "ssh -o BatchMode=yes -o ConnectTimeout={} -o ServerAliveInterval={} -o ServerAliveCountMax=2",
            limits.connect.as_secs().max(1),
            limits.stall.as_secs().max(1)
        ),
    );
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> Result<()> {
    capture(cmd).map(drop)
}

fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            UserError::with_hint(
                "sync_type git needs `git`, which is not installed",
                "install git, or use sync_type webrsync or rsync",
            )
        } else {
            anyhow::Error::new(err).context(format!("cannot run {cmd:?}"))
        }
    })?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_before() {
        assert_eq!(week_before("2026-11-20"), "2026-11-13");
        assert_eq!(week_before("2026-03-03"), "2026-02-24");
    }
}
