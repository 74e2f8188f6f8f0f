//! One emerge session: gib's input directory (Portage files and rootfs-tools) bound
//! read-only into the builder, the shared caches bound read-write, `build-packages.sh` run
//! in the sandbox, its output kept in a log file and read for progress and failures.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::distfiles::discard_failed_downloads;
use super::progress::{DistfileMismatch, EmergeEvent, parse_line};
use crate::gentoo::portage_conf::{BINHOST_DIR, DISTDIR, PortageFiles};
use crate::printer::{Hint, Printer, UserError};
use crate::rootfs_tools::{self, CONTEXT_PATH, FinishOptions, Job, PORTAGE_LOG_DIR, STAGING};
use crate::sandbox::{self, ExtraMount, Network, RootFs, SandboxSpec, SandboxStdio};

/// An emerge of one image's atoms.
pub struct EmergeJob<'a> {
    pub image: &'a str,
    /// Atoms to emerge into /staging, the image root.
    pub packages: &'a [String],
    /// Atoms to emerge into the builder root first (`builder_packages:`).
    pub builder_packages: &'a [String],
    pub portage: &'a PortageFiles,
    pub finish: FinishOptions,
    /// The builder root (an overlay over the stage3 or the parent's builder).
    pub builder: RootFs,
    /// The image root at /staging (a bind of a fresh directory, or an overlay).
    pub staging: ExtraMount,
    /// Extra read-only binds (ebuild repositories).
    pub repositories: Vec<ExtraMount>,
    /// The shared caches (distfiles, binary packages), bound read-write.
    pub caches: Vec<ExtraMount>,
    /// Further mounts (`gib shell` binds a script's context).
    pub extra_mounts: Vec<ExtraMount>,
    pub network: Network,
    /// A scratch directory for gib's input files.
    pub input_dir: &'a Path,
    /// Where this image's logs go: `emerge.log` and Portage's per-package logs.
    pub log_dir: &'a Path,
    /// This emerge's part of the machine when other images build beside it; `None`: the
    /// whole of it, as make.conf says.
    pub cpu: Option<CpuShare>,
}

/// The part of the machine one emerge gets while `images` build at once: `threads` (make.conf's
/// `MAKEOPTS=-jN`) and `jobs` (`emerge --jobs`) divided among them, each at least 1, and
/// `--load-average` at the whole machine's `threads`, so that every emerge holds back new
/// package jobs while the machine as a whole is busy. Set for the run, outside make.conf: it
/// is not an input of the image (the same packages come out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuShare {
    pub make_jobs: u32,
    pub emerge_jobs: u32,
    pub load_average: u32,
}

impl CpuShare {
    /// One emerge's share of `threads` and `jobs` while `images` build at once.
    pub fn of(threads: u32, jobs: u32, images: usize) -> CpuShare {
        let images = u32::try_from(images.max(1)).unwrap_or(u32::MAX);
        CpuShare {
            make_jobs: (threads / images).max(1),
            emerge_jobs: (jobs / images).max(1),
            load_average: threads.max(1),
        }
    }

    /// The environment that carries it: MAKEOPTS (the environment wins over make.conf) and
    /// build-packages.sh's GIB_EMERGE_OPTS (emerge's last `--jobs` wins).
    fn env(&self) -> [(OsString, OsString); 2] {
        [
            ("MAKEOPTS".into(), format!("-j{}", self.make_jobs).into()),
            (
                "GIB_EMERGE_OPTS".into(),
                format!(
                    "--jobs={} --load-average={}",
                    self.emerge_jobs, self.load_average
                )
                .into(),
            ),
        ]
    }
}

/// Why an emerge failed: the failing package, its phase and its build log.
#[derive(Debug, thiserror::Error)]
#[error("emerge failed{}{}", failed_what(.package, .phase), mismatch_text(.distfile))]
pub struct EmergeFailed {
    pub package: Option<String>,
    pub phase: Option<String>,
    /// A distfile that did not match its Manifest, when that is why.
    pub distfile: Option<DistfileMismatch>,
    /// The failing package's build log on the host, when emerge named one.
    pub build_log: Option<PathBuf>,
    /// The whole session's log on the host.
    pub session_log: PathBuf,
}

fn failed_what(package: &Option<String>, phase: &Option<String>) -> String {
    match (package, phase) {
        (Some(p), Some(ph)) => format!(": {p} ({ph} phase)"),
        (Some(p), None) => format!(": {p}"),
        _ => String::new(),
    }
}

fn mismatch_text(distfile: &Option<DistfileMismatch>) -> String {
    distfile
        .as_ref()
        .map_or_else(String::new, |m| format!(": {m}"))
}

/// An atom emerge found nothing for: a package the configuration names that the
/// repositories do not have (a typo, a missing overlay), or such a dependency of one.
struct NoMatch {
    atom: String,
    /// The package whose dependency it is; `None` for an atom of gib.yaml.
    required_by: Option<String>,
    /// emerge's nearest names.
    similar: Vec<String>,
}

impl NoMatch {
    fn error(self, image: &str, session_log: &Path) -> anyhow::Error {
        let message = match &self.required_by {
            None => format!("image {image}: no ebuild matches {}", self.atom),
            Some(package) => format!(
                "image {image}: no ebuild matches {}, a dependency of {package}",
                self.atom
            ),
        };
        let hint = match self.similar.split_first() {
            Some((nearest, [])) => format!("did you mean {nearest}?"),
            Some((nearest, others)) => {
                format!("did you mean {nearest}? (or {})", others.join(", "))
            }
            None => "no similar name either: is the repository that has it in `repositories:`?"
                .to_string(),
        };
        // Hints print outermost first: the nearest names, then where emerge's words are.
        UserError::with_hint(
            message,
            format!("emerge's output: {}", session_log.display()),
        )
        .hint(hint)
    }
}

/// What a successful emerge did.
#[derive(Debug, Clone, Default)]
pub struct EmergeOutcome {
    /// Packages merged into the image root, `category/name-version`, and whether each came
    /// from a binary package.
    pub merged: Vec<(String, bool)>,
    /// How many packages went into the builder (`builder_packages` and build dependencies).
    pub merged_into_builder: usize,
    pub session_log: PathBuf,
}

pub fn run(job: &EmergeJob<'_>, printer: &Printer) -> Result<EmergeOutcome> {
    write_input(job.input_dir, job.portage)?;
    let portage_logs = rootfs_tools::host_log_dir(job.log_dir);
    fs::create_dir_all(&portage_logs)
        .with_context(|| format!("cannot create {}", portage_logs.display()))?;
    let session_log = job.log_dir.join("emerge.log");
    let mut log = File::create(&session_log)
        .with_context(|| format!("cannot create {}", session_log.display()))?;

    let mut command: Vec<OsString> = vec!["/bin/sh".into(), Job::Emerge.entry_point().into()];
    command.extend(job.packages.iter().map(OsString::from));
    let spec = spec_for(job, command)?;
    let (stdio, output) = SandboxStdio::one_pipe()?;
    let child = sandbox::spawn(&spec, stdio)
        .with_context(|| format!("cannot start the builder of image {}", job.image))?;

    let mut outcome = EmergeOutcome {
        session_log: session_log.clone(),
        ..EmergeOutcome::default()
    };
    let step = printer.step("Emerging", &format!("image {}", job.image));
    let mut failed_package = None;
    let mut failed_phase = None;
    let mut build_log = None;
    let mut distfile = None;
    let mut unreachable: Vec<String> = Vec::new();
    let mut no_match: Option<NoMatch> = None;
    for line in BufReader::new(output).split(b'\n') {
        let line = line.context("cannot read the builder's output")?;
        let line = String::from_utf8_lossy(&line);
        writeln!(log, "{line}")
            .with_context(|| format!("cannot write {}", session_log.display()))?;
        printer.builder_output(&line);
        let event = parse_line(&line);
        if let Some(event) = &event {
            DistfileMismatch::note(&mut distfile, event);
        }
        match event {
            Some(EmergeEvent::Started {
                index,
                total,
                package,
                binary,
                into_image,
            }) => {
                let from = if binary { "binary package" } else { "source" };
                let dest = if into_image { "image" } else { "builder" };
                step.message(&format!(
                    "{}: {index}/{total} {package} from {from} into the {dest}",
                    job.image
                ));
                if into_image {
                    outcome.merged.push((package, binary));
                } else {
                    outcome.merged_into_builder += 1;
                }
            }
            Some(EmergeEvent::Failed { package, phase }) => {
                // emerge names the package before its log says which phase failed.
                if failed_package.as_ref() != Some(&package) {
                    failed_phase = None;
                }
                if phase.is_some() {
                    failed_phase = phase;
                }
                failed_package = Some(package);
            }
            Some(EmergeEvent::NoMatch { atom }) => {
                // The first is the one to fix; emerge stops resolving there.
                no_match.get_or_insert(NoMatch {
                    atom,
                    required_by: None,
                    similar: Vec::new(),
                });
            }
            Some(EmergeEvent::RequiredBy { package }) => {
                if let Some(m) = &mut no_match
                    && m.required_by.is_none()
                {
                    m.required_by = Some(package);
                }
            }
            Some(EmergeEvent::SimilarNames { names }) => {
                if let Some(m) = &mut no_match
                    && m.similar.is_empty()
                {
                    m.similar = names;
                }
            }
            Some(EmergeEvent::BuildLog { path }) => {
                build_log = Some(host_log_path(job.log_dir, &path));
            }
            // A binhost that is down is a cache miss, not a failure: the build goes on and
            // compiles instead, which the user must hear about (it may take hours).
            // Portage reads the index more than once per run; say it once.
            Some(EmergeEvent::BinhostUnreachable { url }) if !unreachable.contains(&url) => {
                unreachable.push(url.clone());
                printer.warn(&format!(
                    "the binhost {url} cannot be read; packages are compiled instead (details in {})",
                    session_log.display()
                ));
            }
            _ => {}
        }
    }
    let exit = child.wait()?;
    if !exit.success()
        && let Some(no_match) = no_match
    {
        return Err(no_match.error(job.image, &session_log));
    }
    if !exit.success() {
        // With parallel jobs emerge runs fetches in the background: their messages are
        // only in the package's own log.
        if distfile.is_none()
            && let Some(log) = &build_log
        {
            distfile = mismatch_in_log(log);
        }
        discard_failed_fetches(job, distfile.as_ref(), printer);
        return Err(EmergeFailed {
            package: failed_package,
            phase: failed_phase,
            distfile,
            build_log,
            session_log,
        }
        .into());
    }
    // A mirror's bad copy may have been set aside before a good one was found.
    discard_failed_fetches(job, None, printer);
    step.finish(
        "Emerged",
        &format!(
            "{}: {} packages into the image, {} into the builder, log {}",
            job.image,
            outcome.merged.len(),
            outcome.merged_into_builder,
            outcome.session_log.display()
        ),
    );
    Ok(outcome)
}

/// An interactive shell in `job`'s builder, set up as its emerge would be: gib's Portage
/// files installed, the caches, repositories and /staging mounted. For debugging a build.
pub fn shell(job: &EmergeJob<'_>) -> Result<sandbox::Exit> {
    write_input(job.input_dir, job.portage)?;
    let portage_logs = rootfs_tools::host_log_dir(job.log_dir);
    fs::create_dir_all(&portage_logs)
        .with_context(|| format!("cannot create {}", portage_logs.display()))?;
    let (configure, lib) = (
        rootfs_tools::tool_path("configure-portage.sh"),
        rootfs_tools::tool_path("lib.sh"),
    );
    let command = format!(
        "sh {configure} && \
         echo 'gib: emerge --root={STAGING} {} is what the build runs{}' && \
         if [ -f {lib} ]; then \
           echo 'gib: the script helpers: . {lib}'; fi && \
         if [ -d {CONTEXT_PATH} ]; then export GIB_CONTEXT={CONTEXT_PATH}; \
           echo 'gib: the script context: '$GIB_CONTEXT; fi && \
         if command -v bash >/dev/null; then exec bash; else exec sh; fi",
        job.packages.join(" "),
        if job.builder_packages.is_empty() {
            String::new()
        } else {
            format!(", after emerge {}", job.builder_packages.join(" "))
        }
    );
    let mut spec = spec_for(job, vec!["/bin/sh".into(), "-c".into(), command.into()])?;
    spec.interactive = true;
    sandbox::run(&spec, SandboxStdio::inherit())
}

/// The sandbox that runs `command` (build-packages.sh for a build) for `job`.
fn spec_for(job: &EmergeJob<'_>, command: Vec<OsString>) -> Result<SandboxSpec> {
    let mut env = sandbox::default_env();
    env.extend(rootfs_tools::finish_env(Job::Emerge, &job.finish));
    env.extend(
        [
            ("NOCOLOR", "true".to_string()),
            ("EMERGE_WARNING_DELAY", "0".to_string()),
            ("CLEAN_DELAY", "0".to_string()),
            ("PORTAGE_LOGDIR", PORTAGE_LOG_DIR.to_string()),
            ("GIB_BUILDER_ATOMS", job.builder_packages.join(" ")),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    if let Some(cpu) = &job.cpu {
        env.extend(cpu.env());
    }
    if sandbox::id_mode()?.is_single() {
        // One mapped id: Portage cannot switch to its own user (gentoo.md §4, fix A).
        env.push(("PORTAGE_USERNAME".into(), "root".into()));
        env.push(("PORTAGE_GRPNAME".into(), "root".into()));
    }
    let mut mounts = vec![
        job.staging.clone(),
        bind(job.input_dir, rootfs_tools::INPUT_DIR, true),
        bind(
            &rootfs_tools::host_log_dir(job.log_dir),
            PORTAGE_LOG_DIR,
            false,
        ),
    ];
    mounts.extend(job.caches.iter().cloned());
    mounts.extend(job.repositories.iter().cloned());
    mounts.extend(job.extra_mounts.iter().cloned());
    // A directory binhost is read, never written: the build's own packages go to PKGDIR.
    if let Some(dir) = &job.portage.binhost_dir {
        // Without its index Portage would ignore the directory and compile everything.
        if !dir.join("Packages").is_file() {
            return Err(UserError::new(format!(
                "the binhost {} has no Packages index",
                dir.display()
            ))
            .hint(
                "a binhost directory is a PKGDIR as Portage writes it, e.g. the binpkgs/ \
                 directory of another gib cache",
            ));
        }
        mounts.push(bind(dir, BINHOST_DIR, true));
    }
    Ok(SandboxSpec {
        root: Some(job.builder.clone()),
        mounts,
        network: job.network,
        hostname: format!("gib-{}", job.image),
        command,
        env,
        cwd: PathBuf::from("/"),
        interactive: false,
        user: None,
    })
}

fn bind(source: &Path, target: &str, readonly: bool) -> ExtraMount {
    ExtraMount::Bind {
        source: source.to_path_buf(),
        target: PathBuf::from(target),
        readonly,
    }
}

/// gib's input directory: the Portage files and the rootfs-tools.
fn write_input(dir: &Path, portage: &PortageFiles) -> Result<()> {
    let files = [
        ("portage/make.conf", portage.make_conf.as_str()),
        ("portage/package.use", portage.package_use.as_str()),
        (
            "portage/package.accept_keywords",
            portage.package_accept_keywords.as_str(),
        ),
        ("portage/package.license", portage.package_license.as_str()),
        ("portage/repos.conf", portage.repos_conf.as_str()),
        ("portage/binrepos.conf", portage.binrepos_conf.as_str()),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    rootfs_tools::install(dir, Job::Emerge)
}

/// The last distfile mismatch Portage wrote to a build log, if the log can be read.
fn mismatch_in_log(log: &Path) -> Option<DistfileMismatch> {
    let text = fs::read(log).ok()?;
    let mut mismatch = None;
    for line in String::from_utf8_lossy(&text).lines() {
        if let Some(event) = parse_line(line) {
            DistfileMismatch::note(&mut mismatch, &event);
        }
    }
    mismatch
}

/// Take what a failed fetch left out of the shared distfile cache (see `distfiles`). A
/// failure to do so is worth a warning, not the build's error.
fn discard_failed_fetches(
    job: &EmergeJob<'_>,
    distfile: Option<&DistfileMismatch>,
    printer: &Printer,
) {
    let distdir = job.caches.iter().find_map(|mount| match mount {
        ExtraMount::Bind { source, target, .. } if target == Path::new(DISTDIR) => Some(source),
        _ => None,
    });
    let Some(distdir) = distdir else {
        return;
    };
    if let Err(err) = discard_failed_downloads(distdir, distfile.map(|m| m.file.as_str())) {
        printer.warn(&format!("{err:#}"));
    }
}

/// A build-log path as emerge printed it (inside the builder) mapped to the host.
fn host_log_path(log_dir: &Path, inside: &str) -> PathBuf {
    match Path::new(inside).strip_prefix(PORTAGE_LOG_DIR) {
        Ok(rest) => rootfs_tools::host_log_dir(log_dir).join(rest),
        Err(_) => PathBuf::from(inside),
    }
}

/// The last `n` lines of a log file, for the error report.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_built_at_once_share_the_cpus() {
        assert_eq!(
            super::CpuShare::of(8, 8, 3),
            super::CpuShare {
                make_jobs: 2,
                emerge_jobs: 2,
                load_average: 8
            }
        );
        // Never below one job each, whatever the count.
        let alone = super::CpuShare::of(2, 1, 4);
        assert_eq!(
            (alone.make_jobs, alone.emerge_jobs, alone.load_average),
            (1, 1, 2)
        );
        assert_eq!(super::CpuShare::of(4, 4, 0).make_jobs, 4);
    }

    #[test]
    fn build_logs_map_to_the_host() {
        assert_eq!(
            host_log_path(
                Path::new("/c/logs/app"),
                "/var/log/portage/app-misc:broken-1.0:x.log"
            ),
            PathBuf::from("/c/logs/app/portage/app-misc:broken-1.0:x.log")
        );
        assert_eq!(
            host_log_path(Path::new("/c"), "/var/tmp/portage/x/temp/build.log"),
            PathBuf::from("/var/tmp/portage/x/temp/build.log")
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(log_tail(&path, 2), "c\nd");
        assert_eq!(log_tail(&path, 10), "a\nb\nc\nd");
    }
}
