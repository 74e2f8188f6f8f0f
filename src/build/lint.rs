//! The lint step at the end of an image's build: `rootfs::lint` on the finished image, the
//! image's `lint:` policy applied to what it found, the findings printed, and the build
//! failed when an error remains, so an image whose programs cannot start never leaves gib.
//!
//! Not for: the checks themselves (`rootfs::lint`), the policy's defaults (`plan`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;

use super::BuildContext;
use crate::gentoo::vdb::{ContentsEntry, InstalledPackage};
use crate::plan::{ImagePlan, LintPolicy};
use crate::rootfs::lint::{Finding, Kind, LintInputs, Report, Severity};

/// Findings of one kind printed by name before "and N more".
const LISTED: usize = 5;

/// The lint of an image found errors its policy does not let pass.
#[derive(Debug, thiserror::Error)]
#[error(
    "the lint of image {image} failed: {}\n{}\n  (add what provides them to the image, or set \
     `lint: {{ignore: [PATH]}}` or `lint: {{fail: false}}` for the image)",
    count(.errors.len(), "problem"),
    .errors.iter().map(|f| format!("  {}", line(f))).collect::<Vec<_>>().join("\n")
)]
pub struct LintFailed {
    pub image: String,
    pub errors: Vec<Finding>,
}

/// Lint the image made of `image_trees` (nearest first), whose packages' databases are in
/// `package_trees`; its report with the policy applied, or [`LintFailed`].
pub fn check(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    image_trees: &[PathBuf],
    packages: &[InstalledPackage],
) -> Result<Report> {
    let step = ctx.printer.step("Linting", &image.name);
    let library_path = image
        .runtime
        .env
        .iter()
        .filter(|(name, _)| name.as_str() == "LD_LIBRARY_PATH")
        .flat_map(|(_, value)| value.split(':').map(str::to_string))
        .collect();
    let job = crate::jobs::Job::LintLayers {
        layer_dirs: image_trees.to_vec(),
        inputs: LintInputs {
            owned: owned_paths(packages),
            library_path,
        },
    };
    let found: Report = crate::jobs::run(
        ctx.cache,
        &job,
        crate::jobs::cannot(format!("lint image {}", image.name)),
    )?;
    let report = apply(&image.lint, started_scripts_fail(&image.runtime, found));
    let errors: Vec<Finding> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .cloned()
        .collect();
    print(ctx, &image.name, &report);
    if !errors.is_empty() {
        return Err(LintFailed {
            image: image.name.clone(),
            errors,
        }
        .into());
    }
    step.finish(
        "Linted",
        &format!(
            "{}: {} files, {} ELF, {} scripts",
            image.name, report.checked.files, report.checked.elf_files, report.checked.scripts
        ),
    );
    Ok(report)
}

/// A script whose `#!` interpreter is missing only warns (glibc's `ldd` is a bash script in
/// every image without bash), but the one the image starts (its entrypoint's or, without
/// one, its cmd's program) cannot run at all: that finding is an error.
fn started_scripts_fail(runtime: &crate::oci::image::Runtime, mut report: Report) -> Report {
    let Some(program) = runtime
        .entrypoint
        .as_ref()
        .or(runtime.cmd.as_ref())
        .and_then(|argv| argv.first())
    else {
        return report;
    };
    let candidates: Vec<String> = if program.starts_with('/') {
        vec![program.clone()]
    } else {
        // A bare name is looked up in the image's PATH, as the runtime does.
        runtime
            .env
            .get("PATH")
            .map_or(DEFAULT_PATH, String::as_str)
            .split(':')
            .filter(|dir| dir.starts_with('/'))
            .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
            .collect()
    };
    for finding in &mut report.findings {
        if finding.kind == Kind::MissingScriptInterpreter && candidates.contains(&finding.path) {
            finding.severity = Severity::Error;
        }
    }
    report
}

/// The PATH container runtimes give an image that sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The findings `policy` keeps, its errors warnings when it does not fail.
pub fn apply(policy: &LintPolicy, mut report: Report) -> Report {
    let before = report.findings.len();
    report.findings.retain(|f| !policy.ignores(&f.path));
    report.ignored += (before - report.findings.len()) as u64;
    if !policy.fail {
        for finding in &mut report.findings {
            if finding.severity == Severity::Error {
                finding.severity = Severity::Warning;
            }
        }
    }
    report
}

/// The files and symlinks the image's packages list, as Portage merged them.
fn owned_paths(packages: &[InstalledPackage]) -> BTreeSet<String> {
    let mut owned = BTreeSet::new();
    for package in packages {
        for entry in &package.contents {
            match entry {
                ContentsEntry::Obj { path, .. } | ContentsEntry::Sym { path, .. } => {
                    owned.insert(path.clone());
                }
                ContentsEntry::Dir { .. }
                | ContentsEntry::Dev { .. }
                | ContentsEntry::Fif { .. } => {}
            }
        }
    }
    owned
}

/// Warnings one line per kind (the first few paths named; all with `-v`), setuid/setgid
/// files listed.
fn print(ctx: &BuildContext<'_>, image: &str, report: &Report) {
    let printer = ctx.printer;
    let kinds: BTreeSet<Kind> = report
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Error)
        .map(|f| f.kind)
        .collect();
    for kind in kinds {
        let of_kind: Vec<&Finding> = report.findings.iter().filter(|f| f.kind == kind).collect();
        let severity = of_kind[0].severity;
        let mut named: Vec<String> = of_kind.iter().take(LISTED).map(|f| line(f)).collect();
        if of_kind.len() > LISTED {
            named.push(format!("and {} more", of_kind.len() - LISTED));
        }
        let message = format!(
            "image {image}: {} ({}): {}",
            kind.describe(),
            of_kind.len(),
            named.join("; ")
        );
        match severity {
            Severity::Note => printer.status("Lint", &message),
            _ => printer.warn(&message),
        }
        if of_kind.len() > LISTED {
            for finding in &of_kind[LISTED..] {
                printer.detail(&line(finding));
            }
        }
    }
}

/// One finding as a line: `/usr/bin/greet: libgreet.so.1 not found`.
fn line(finding: &Finding) -> String {
    let detail = match finding.kind {
        Kind::MissingLibrary => format!(
            "needs {}, which no file of the image provides",
            finding.detail
        ),
        Kind::UnsearchedLibrary => format!("needs {}", finding.detail),
        Kind::MissingInterpreter => {
            format!("its program interpreter {} is missing", finding.detail)
        }
        Kind::MissingScriptInterpreter => format!("its interpreter {} is missing", finding.detail),
        Kind::DanglingSymlink => return format!("{} {}", finding.path, finding.detail),
        _ => finding.detail.clone(),
    };
    if detail.is_empty() {
        finding.path.clone()
    } else {
        format!("{}: {detail}", finding.path)
    }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: Kind, path: &str) -> Finding {
        Finding {
            kind,
            severity: kind.default_severity(),
            path: path.into(),
            detail: "libx.so.1".into(),
        }
    }

    #[test]
    fn the_started_script_without_its_interpreter_fails_others_warn() {
        let report = Report {
            findings: vec![
                finding(Kind::MissingScriptInterpreter, "/usr/bin/ldd"),
                finding(Kind::MissingScriptInterpreter, "/usr/bin/start"),
            ],
            ..Report::default()
        };
        let severities = |runtime: &crate::oci::image::Runtime| -> Vec<Severity> {
            started_scripts_fail(runtime, report.clone())
                .findings
                .iter()
                .map(|f| f.severity)
                .collect()
        };
        let warn = Kind::MissingScriptInterpreter.default_severity();
        assert_ne!(warn, Severity::Error);
        let by_path = crate::oci::image::Runtime {
            entrypoint: Some(vec!["/usr/bin/start".into(), "--serve".into()]),
            ..Default::default()
        };
        assert_eq!(severities(&by_path), [warn, Severity::Error]);
        let by_name = crate::oci::image::Runtime {
            cmd: Some(vec!["start".into()]),
            ..Default::default()
        };
        assert_eq!(severities(&by_name), [warn, Severity::Error]);
        let elsewhere = crate::oci::image::Runtime {
            cmd: Some(vec!["start".into()]),
            env: [("PATH".to_string(), "/opt/bin".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(severities(&elsewhere), [warn, warn]);
        assert_eq!(
            severities(&crate::oci::image::Runtime::default()),
            [warn, warn]
        );
    }

    #[test]
    fn ignore_leaves_out_paths_and_fail_false_downgrades() {
        let report = Report {
            findings: vec![
                finding(Kind::MissingLibrary, "/opt/vendor/bin/tool"),
                finding(Kind::MissingLibrary, "/opt/vendorx/bin/tool"),
                finding(Kind::MissingLibrary, "/usr/bin/app"),
                finding(Kind::DanglingSymlink, "/usr/lib/x"),
            ],
            ..Report::default()
        };
        let policy = LintPolicy {
            fail: true,
            ignore: vec!["/opt/vendor".into(), "/usr/lib/x".into()],
        };
        let kept = apply(&policy, report.clone());
        let paths: Vec<&str> = kept.findings.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/opt/vendorx/bin/tool", "/usr/bin/app"]);
        assert_eq!(kept.ignored, 2);
        assert!(kept.findings.iter().all(|f| f.severity == Severity::Error));
        let lenient = apply(
            &LintPolicy {
                fail: false,
                ignore: Vec::new(),
            },
            report,
        );
        assert!(
            lenient
                .findings
                .iter()
                .all(|f| f.severity == Severity::Warning)
        );
    }

    #[test]
    fn the_error_names_each_binary_and_soname() {
        let err = LintFailed {
            image: "app".into(),
            errors: vec![finding(Kind::MissingLibrary, "/usr/bin/app")],
        };
        let text = err.to_string();
        assert!(
            text.starts_with(
                "the lint of image app failed: 1 problem\n  /usr/bin/app: needs libx.so.1"
            ),
            "{text}"
        );
    }
}
