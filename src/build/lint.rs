//! The lint step at the end of an image's build: `rootfs::lint` on the finished image, the
//! image's `lint:` policy applied to what it found, the findings printed, and the build
//! failed when an error remains, so an image whose programs cannot start never leaves gib.
//!
//! Not for: the checks themselves (`rootfs::lint`), the policy's defaults (`plan`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Result;

use super::BuildContext;
use crate::gentoo::vdb::ContentsEntry;
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
    package_trees: &[PathBuf],
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
            owned: owned_paths(package_trees)?,
            library_path,
        },
    };
    let found: Report = crate::jobs::run(
        ctx.cache,
        &job,
        crate::jobs::cannot(format!("lint image {}", image.name)),
    )?;
    let report = apply(&image.lint, found);
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
fn owned_paths(package_trees: &[PathBuf]) -> Result<BTreeSet<String>> {
    let mut owned = BTreeSet::new();
    for package in super::sbom::merged_packages(package_trees)? {
        for entry in package.contents {
            match entry {
                ContentsEntry::Obj { path, .. } | ContentsEntry::Sym { path, .. } => {
                    owned.insert(path);
                }
                ContentsEntry::Dir { .. }
                | ContentsEntry::Dev { .. }
                | ContentsEntry::Fif { .. } => {}
            }
        }
    }
    Ok(owned)
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
