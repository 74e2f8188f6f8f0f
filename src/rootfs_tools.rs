//! The contract between gib and the shell of `rootfs-tools/`, which runs inside the builder:
//! the tools embedded once (so gib stays one file), where gib's input, the script, its
//! context and the logs appear in the builder, the files finish-root.sh leaves for gib, the
//! environment finish-root.sh reads, and what of the tools goes into an image's input key.
//!
//! Not for: deciding mounts or running the sandbox (`emerge::run`, `build::script`), Portage's
//! own files (`gentoo::portage_conf`), reading what the tools left (`build`).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where gib's input directory (Portage files in `portage/`, the tools in `tools/`) appears
/// inside the builder, read-only (`GIB_INPUT`).
pub const INPUT_DIR: &str = "/var/tmp/gib";

/// The image root inside the builder (`ROOT`): emerge's `--root`, the script's `$ROOT`.
pub const STAGING: &str = "/staging";

/// Where an image's `context:` directory appears inside the builder (`$GIB_CONTEXT`).
pub const CONTEXT_PATH: &str = "/var/tmp/gib-context";

/// Where the user's script appears inside the builder.
pub const SCRIPT_PATH: &str = "/var/tmp/gib-script/script";

/// Where Portage writes per-package build logs inside the builder: the image's log dir's
/// `portage/` (see [`host_log_dir`]), the one writable bind outside the image root.
pub const PORTAGE_LOG_DIR: &str = "/var/log/portage";

/// finish-root.sh's list of what it trimmed (`<bytes>\t<path>` lines), in the Portage log
/// dir, one per job: when an image emerges and has a script, finish-root.sh runs after each
/// and starts its report afresh.
fn trim_report_name(job: Job) -> &'static str {
    match job {
        Job::Emerge => "gib-trimmed.tsv",
        Job::Script => "gib-trimmed-script.tsv",
    }
}

/// Where finish-root.sh leaves the package database of an image that does not keep it, in
/// the same log dir (gib moves it into the image's cache entry).
const PACKAGE_DB_OUT: &str = "gib-package-db";

/// Which run in the builder a tool belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `build-packages.sh`: emerge the image's atoms, then finish the root.
    Emerge,
    /// `run-script.sh`: the image's `script:`, then finish the root.
    Script,
}

impl Job {
    /// The tool the sandbox runs for this job, as a path inside the builder.
    pub fn entry_point(self) -> String {
        let name = match self {
            Job::Emerge => "build-packages.sh",
            Job::Script => "run-script.sh",
        };
        tool_path(name)
    }
}

/// One shell file of `rootfs-tools/` and the jobs that run it.
struct Tool {
    name: &'static str,
    text: &'static str,
    jobs: &'static [Job],
}

/// Every tool, once. The order is the order of their texts in an image's input key.
const TOOLS: [Tool; 6] = [
    Tool {
        name: "configure-portage.sh",
        text: include_str!("../rootfs-tools/configure-portage.sh"),
        jobs: &[Job::Emerge],
    },
    Tool {
        name: "build-packages.sh",
        text: include_str!("../rootfs-tools/build-packages.sh"),
        jobs: &[Job::Emerge],
    },
    Tool {
        name: "lib.sh",
        text: include_str!("../rootfs-tools/lib.sh"),
        jobs: &[Job::Script],
    },
    Tool {
        name: "run-script.sh",
        text: include_str!("../rootfs-tools/run-script.sh"),
        jobs: &[Job::Script],
    },
    Tool {
        name: "base-accounts.sh",
        text: include_str!("../rootfs-tools/base-accounts.sh"),
        jobs: &[Job::Emerge, Job::Script],
    },
    Tool {
        name: "finish-root.sh",
        text: include_str!("../rootfs-tools/finish-root.sh"),
        jobs: &[Job::Emerge, Job::Script],
    },
];

fn tools_of(job: Job) -> impl Iterator<Item = &'static Tool> {
    TOOLS.iter().filter(move |tool| tool.jobs.contains(&job))
}

/// A tool's path inside the builder.
pub fn tool_path(name: &str) -> String {
    format!("{INPUT_DIR}/tools/{name}")
}

/// What `job`'s tools contribute to an image's input key: their texts, in a fixed order.
pub fn key_parts(job: Job) -> Vec<&'static str> {
    tools_of(job).map(|tool| tool.text).collect()
}

/// Write `job`'s tools into gib's input directory `input_dir` (the host side of
/// [`INPUT_DIR`]).
pub fn install(input_dir: &Path, job: Job) -> Result<()> {
    let dir = input_dir.join("tools");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for tool in tools_of(job) {
        let path = dir.join(tool.name);
        fs::write(&path, tool.text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The host side of [`PORTAGE_LOG_DIR`] for an image whose logs go to `log_dir`.
pub fn host_log_dir(log_dir: &Path) -> PathBuf {
    log_dir.join("portage")
}

/// finish-root.sh's trim reports on the host, in the order the jobs run.
pub fn trim_reports(log_dir: &Path) -> [PathBuf; 2] {
    [Job::Emerge, Job::Script].map(|job| host_log_dir(log_dir).join(trim_report_name(job)))
}

/// The package database finish-root.sh set aside, on the host.
pub fn package_db_out(log_dir: &Path) -> PathBuf {
    host_log_dir(log_dir).join(PACKAGE_DB_OUT)
}

/// What to keep when finishing the image root.
#[derive(Debug, Clone, Copy)]
pub struct FinishOptions {
    pub keep_headers: bool,
    pub keep_static_libs: bool,
    pub keep_service_files: bool,
    pub keep_package_db: bool,
    /// Times in the package database newer than this are clamped to it, like the layer's
    /// mtimes, so CONTENTS does not record when the build ran.
    pub source_date_epoch: Option<i64>,
}

/// The environment of a job that ends in finish-root.sh: where the input and the root are,
/// what to keep, and where to leave the trim report and the package database. The sandbox
/// must bind the image's [`host_log_dir`] at [`PORTAGE_LOG_DIR`], writable.
///
/// Only emerge sets the package database aside: a script runs after the image's emerge (if
/// any), whose copy it must not replace, and installs no packages of its own.
pub fn finish_env(job: Job, options: &FinishOptions) -> Vec<(OsString, OsString)> {
    let flag = |on: bool| if on { "1" } else { "0" }.to_string();
    let mut env = vec![
        ("GIB_INPUT", INPUT_DIR.to_string()),
        ("ROOT", STAGING.to_string()),
        (
            "GIB_TRIM_REPORT",
            format!("{PORTAGE_LOG_DIR}/{}", trim_report_name(job)),
        ),
        ("GIB_KEEP_HEADERS", flag(options.keep_headers)),
        ("GIB_KEEP_STATIC_LIBS", flag(options.keep_static_libs)),
        ("GIB_KEEP_SERVICE_FILES", flag(options.keep_service_files)),
        ("GIB_KEEP_PACKAGE_DB", flag(options.keep_package_db)),
    ];
    if job == Job::Emerge {
        env.push((
            "GIB_PACKAGE_DB_OUT",
            format!("{PORTAGE_LOG_DIR}/{PACKAGE_DB_OUT}"),
        ));
    }
    // Also for the script's tools that honour it (Python's bytecode compiler, for one).
    if let Some(epoch) = options.source_date_epoch {
        env.push(("SOURCE_DATE_EPOCH", epoch.to_string()));
    }
    env.into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_rootfs_tools_is_embedded_once() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-tools");
        let mut on_disk: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = TOOLS.iter().map(|t| t.name.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        for tool in &TOOLS {
            assert_eq!(fs::read_to_string(dir.join(tool.name)).unwrap(), tool.text);
            assert!(!tool.jobs.is_empty(), "{} is run by no job", tool.name);
        }
    }

    /// `gib plan` shows each Portage file at the path configure-portage.sh copies it to.
    #[test]
    fn the_portage_files_go_where_gib_plan_says() {
        use crate::gentoo::portage_conf::{
            BINREPOS_CONF_PATH, PACKAGE_ACCEPT_KEYWORDS_PATH, PACKAGE_LICENSE_PATH,
            PACKAGE_USE_PATH, REPOS_CONF_PATH,
        };
        let script = TOOLS
            .iter()
            .find(|t| t.name == "configure-portage.sh")
            .unwrap()
            .text;
        for path in [
            PACKAGE_USE_PATH,
            PACKAGE_ACCEPT_KEYWORDS_PATH,
            PACKAGE_LICENSE_PATH,
            REPOS_CONF_PATH,
            BINREPOS_CONF_PATH,
        ] {
            let (file, name) = path.rsplit_once('/').unwrap();
            let input = file.strip_prefix("/etc/").unwrap();
            let copy = format!(
                "\"$input/{input}\" \"$etc/{}/{name}\"",
                &file["/etc/portage/".len()..]
            );
            assert!(
                script.contains(&copy),
                "configure-portage.sh has no `cp {copy}`"
            );
        }
    }

    /// The order of the texts is part of every input key: changing it rebuilds every image.
    #[test]
    fn key_parts_keep_their_order() {
        let names = |job| tools_of(job).map(|t| t.name).collect::<Vec<_>>().join(" ");
        assert_eq!(
            names(Job::Emerge),
            "configure-portage.sh build-packages.sh base-accounts.sh finish-root.sh"
        );
        assert_eq!(
            names(Job::Script),
            "lib.sh run-script.sh base-accounts.sh finish-root.sh"
        );
    }

    #[test]
    fn a_job_installs_the_tools_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        install(dir.path(), Job::Script).unwrap();
        let entry = Job::Script.entry_point();
        let name = entry.strip_prefix(&format!("{INPUT_DIR}/tools/")).unwrap();
        assert!(dir.path().join("tools").join(name).is_file());
        assert!(dir.path().join("tools/finish-root.sh").is_file());
        assert!(!dir.path().join("tools/build-packages.sh").exists());
    }

    #[test]
    fn both_jobs_tell_finish_root_the_same_but_their_outputs() {
        let options = FinishOptions {
            keep_headers: true,
            keep_static_libs: false,
            keep_service_files: false,
            keep_package_db: false,
            source_date_epoch: Some(7),
        };
        let emerge = finish_env(Job::Emerge, &options);
        let script = finish_env(Job::Script, &options);
        let get = |env: &[(OsString, OsString)], key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_string_lossy().into_owned())
        };
        for key in [
            "GIB_INPUT",
            "ROOT",
            "GIB_KEEP_HEADERS",
            "GIB_KEEP_STATIC_LIBS",
            "GIB_KEEP_SERVICE_FILES",
            "GIB_KEEP_PACKAGE_DB",
            "SOURCE_DATE_EPOCH",
        ] {
            assert!(get(&emerge, key).is_some(), "{key}");
            assert_eq!(get(&emerge, key), get(&script, key), "{key}");
        }
        // Each its own report, both where the host finds them.
        let reports = trim_reports(Path::new("/logs"));
        for (env, report) in [(&emerge, &reports[0]), (&script, &reports[1])] {
            let inside = get(env, "GIB_TRIM_REPORT").unwrap();
            let rest = Path::new(&inside).strip_prefix(PORTAGE_LOG_DIR).unwrap();
            assert_eq!(host_log_dir(Path::new("/logs")).join(rest), *report);
        }
        assert_eq!(get(&emerge, "GIB_KEEP_HEADERS").unwrap(), "1");
        assert_eq!(get(&emerge, "GIB_KEEP_PACKAGE_DB").unwrap(), "0");
        assert!(get(&emerge, "GIB_PACKAGE_DB_OUT").is_some());
        assert!(get(&script, "GIB_PACKAGE_DB_OUT").is_none());
    }
}
