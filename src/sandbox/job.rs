//! One way to run a piece of gib's own work inside its user namespace (no root change, no
//! mounts), so the work sees a tree with the owners the sandbox gave it: the job goes in as
//! JSON on stdin, the reply comes back as JSON on stdout, and the helper's error lines on
//! stderr come back as one line. What the job is, this module does not know: gib's side is
//! `crate::jobs`, which names every job and runs it as `gib __internal job`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Exit, SandboxSpec, SandboxStdio};

/// The arguments after gib's own executable that start the helper side of a job.
pub const JOB_ARGS: [&str; 2] = ["__internal", "job"];

/// The helper ran and failed: its exit and its error chain as one line.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({exit})")]
pub struct JobFailed {
    pub exit: Exit,
    pub message: String,
}

/// How running a job went wrong: the helper failed, or gib could not run it at all.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Failed(#[from] JobFailed),
    #[error(transparent)]
    Setup(#[from] anyhow::Error),
}

/// The start of the stderr lines that carry a job's progress (`gib-progress <bytes>`): read
/// while the job runs, left out of its error.
const PROGRESS_PREFIX: &str = "gib-progress ";

/// The helper's side of progress: byte counts as `gib-progress` lines on stderr, at most
/// ten a second.
#[derive(Clone, Copy)]
pub struct ReportProgress;

impl crate::printer::ByteProgress for ReportProgress {
    fn bytes(&self, done: u64, _total: Option<u64>) {
        use std::sync::atomic::{AtomicU64, Ordering};
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let last = LAST.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 100 && LAST.swap(now, Ordering::Relaxed) == last {
            eprintln!("{PROGRESS_PREFIX}{done}");
        }
    }
}

/// The last byte count in a helper's stderr so far.
fn last_progress(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(PROGRESS_PREFIX)?.trim().parse().ok())
}

/// Run `job` in the user namespace; its reply. `scratch` is a directory of the caller's for
/// the job's stdio files (the job can be far larger than a command line or a pipe buffer).
/// `progress` hears the byte counts the helper reports while it runs.
pub fn run_job<R: DeserializeOwned>(
    scratch: &Path,
    job: &impl Serialize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<R, JobError> {
    let job_path = scratch.join("job.json");
    let out_path = scratch.join("out.json");
    let err_path = scratch.join("stderr");
    let mut job_file =
        File::create(&job_path).with_context(|| format!("cannot write {}", job_path.display()))?;
    serde_json::to_writer(&mut job_file, job).context("cannot encode the job")?;
    job_file
        .flush()
        .with_context(|| format!("cannot write {}", job_path.display()))?;
    drop(job_file);

    let mut command = vec![std::path::PathBuf::from(super::GIB_EXE).into_os_string()];
    command.extend(JOB_ARGS.iter().map(Into::into));
    let spec = SandboxSpec::in_namespace("gib-job", command);
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
    let running = std::sync::atomic::AtomicBool::new(true);
    let exit = std::thread::scope(|scope| {
        scope.spawn(|| watch_progress(&err_path, &running, progress));
        let exit = super::run(&spec, stdio);
        running.store(false, std::sync::atomic::Ordering::Relaxed);
        exit
    })?;
    if !exit.success() {
        let mut stderr = String::new();
        if let Ok(mut file) = File::open(&err_path) {
            file.read_to_string(&mut stderr).ok();
        }
        return Err(JobFailed {
            exit,
            message: one_line(&stderr),
        }
        .into());
    }
    let text = std::fs::read_to_string(&out_path)
        .with_context(|| format!("cannot read {}", out_path.display()))?;
    Ok(serde_json::from_str(text.trim())
        .with_context(|| format!("the helper replied {:?}", text.trim()))?)
}

/// Hand `progress` each new byte count the helper writes into `stderr`, until `running`
/// turns false.
fn watch_progress(
    stderr: &Path,
    running: &std::sync::atomic::AtomicBool,
    progress: &(dyn Fn(u64) + Sync),
) {
    use std::io::{Seek, SeekFrom};
    let Ok(mut file) = File::open(stderr) else {
        return;
    };
    let mut read = 0u64;
    let mut text = String::new();
    while running.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        text.clear();
        if file.seek(SeekFrom::Start(read)).is_err() || file.read_to_string(&mut text).is_err() {
            continue;
        }
        // Only whole lines: a count may be half written.
        let Some(end) = text.rfind('\n') else {
            continue;
        };
        read += end as u64 + 1;
        if let Some(done) = last_progress(&text[..end]) {
            progress(done);
        }
    }
}

/// The helper's side: one job from `input`, `work`'s reply as JSON on `output`.
pub fn serve<J, R>(
    input: impl Read,
    mut output: impl Write,
    work: impl FnOnce(J) -> Result<R>,
) -> Result<()>
where
    J: DeserializeOwned,
    R: Serialize,
{
    let job: J = serde_json::from_reader(input).context("cannot read the job (JSON on stdin)")?;
    let reply = work(job)?;
    serde_json::to_writer(&mut output, &reply).context("cannot write the job's reply")?;
    output
        .write_all(b"\n")
        .and_then(|()| output.flush())
        .context("cannot write the job's reply")
}

/// A helper's `error:` / `caused by:` lines on stderr, as one line.
pub fn one_line(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with(PROGRESS_PREFIX))
        .map(|l| l.trim().trim_start_matches("error: "))
        .map(|l| l.trim_start_matches("caused by: "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helpers_error_chain_reads_as_one_line() {
        let stderr = "error: cannot unpack x\n  caused by: bad header\n\n";
        assert_eq!(one_line(stderr), "cannot unpack x: bad header");
        let with_progress = "gib-progress 10\ngib-progress 20\nerror: full\n";
        assert_eq!(one_line(with_progress), "full");
        assert_eq!(last_progress(with_progress), Some(20));
        assert_eq!(last_progress("error: x\n"), None);
    }

    #[test]
    fn serve_replies_one_json_line() {
        let mut out = Vec::new();
        serve(&b"[1,2]"[..], &mut out, |v: Vec<u32>| {
            Ok(v.iter().sum::<u32>())
        })
        .unwrap();
        assert_eq!(out, b"3\n");
        let err = serve(&b"nope"[..], &mut Vec::new(), |v: u32| Ok(v)).unwrap_err();
        assert!(err.to_string().contains("JSON on stdin"), "{err}");
    }
}
