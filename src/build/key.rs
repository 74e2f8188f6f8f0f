//! The input key of a packages image, in two parts, so a USE flag for one package rebuilds
//! only the images whose build merged that package.
//!
//! `package.use`, `package.accept_keywords` and `package.license` are global in gib.yaml, so every image's plan
//! carries all of their lines. The entry's name comes from the rest of the inputs (the
//! *base key*); the key children build on (the record's `key`) adds the lines that name a
//! package the build merged, into the image or into its builder, plus the lines whose atom
//! names no single package. The merged packages are kept in the entry (`merged`), so a later
//! run recomputes the key from the current file and reuses the entry only when it matches.
//!
//! A line for a package the build did not merge cannot change what it merged: emerge runs
//! without `--update`, so installed dependencies are not rebuilt for a changed flag.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};

use super::hash_parts;
use crate::gentoo::atom::Atom;
use crate::plan::ImagePlan;

/// The image's plan without the per-package Portage lines (they enter [`full_key`]),
/// without where distfiles come from (Portage checks every distfile against its Manifest,
/// so another mirror cannot change what is built) and without how many jobs build them
/// (`MAKEOPTS`, `EMERGE_DEFAULT_OPTS`: the machine's, shared among the images built at
/// once; they change how fast, not what).
pub fn plan_without_package_lines(image: &ImagePlan) -> String {
    let mut image = placeless(image);
    image.portage.make_conf = without_mirrors(&image.portage.make_conf);
    image.portage.package_use.clear();
    // The same flags as package.use's lines, kept for gib's own checks: they enter the key
    // through [`full_key`] only, with the lines of the packages the build merged.
    image.package_use_flags.clear();
    image.portage.package_accept_keywords.clear();
    image.portage.package_license.clear();
    format!("{image:?}")
}

/// The plan as every runner sees it: keys (and the digests that carry them) must not depend
/// on where the project is checked out or how many cores the runner has. Host paths go (what
/// they hold enters the key by content: `paths:` sources, the script and its context, a
/// rootfs tarball, the binhost's index in gib.lock), and so do make.conf's parallelism
/// lines, which change how fast a build runs, not what it makes.
pub fn placeless(image: &ImagePlan) -> ImagePlan {
    use crate::plan::BuildKind;
    use crate::rootfs::accounts::PathKind;
    let mut image = image.clone();
    match &mut image.kind {
        BuildKind::Portage(work) => {
            work.script = work.script.as_deref().map(file_name);
            work.context = work.context.as_ref().map(|_| Default::default());
        }
        BuildKind::Rootfs(path) => *path = Default::default(),
    }
    for entry in &mut image.paths {
        if let PathKind::File { source } = &mut entry.kind {
            *source = Default::default();
        }
    }
    image.portage.binhost_dir = image
        .portage
        .binhost_dir
        .as_ref()
        .map(|_| Default::default());
    image.portage.make_conf = image
        .portage
        .make_conf
        .lines()
        .filter(|line| !line.starts_with("MAKEOPTS=") && !line.starts_with("EMERGE_DEFAULT_OPTS="))
        .map(|line| format!("{line}\n"))
        .collect();
    image
}

/// A path's last component alone (a script's name tells the build, not its directory).
pub fn file_name(path: &Path) -> std::path::PathBuf {
    path.file_name().map(Into::into).unwrap_or_default()
}

fn without_mirrors(make_conf: &str) -> String {
    make_conf
        .lines()
        .filter(|line| !line.starts_with("GENTOO_MIRRORS="))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The record's key: the base key with the Portage lines that concern `merged`.
pub fn full_key(base_key: &str, image: &ImagePlan, merged: &[String]) -> String {
    let lines = relevant_lines(&image.portage.package_use, merged)
        + "\n"
        + &relevant_lines(&image.portage.package_accept_keywords, merged)
        + "\n"
        + &relevant_lines(&image.portage.package_license, merged);
    let merged = merged.join(" ");
    hash_parts(&[base_key, &merged, &lines])
}

/// The lines of a `package.*` file whose atom is one of `merged` (`category/name`) or names
/// no single package (a wildcard or something gib cannot parse: kept, to be safe).
fn relevant_lines(file: &str, merged: &[String]) -> String {
    let merged: BTreeSet<&str> = merged.iter().map(String::as_str).collect();
    let mut out = String::new();
    for line in file.lines() {
        let Some(atom) = line.split_whitespace().next() else {
            continue;
        };
        if atom.starts_with('#') {
            continue;
        }
        let relevant = match Atom::parse(atom) {
            Ok(atom) if !atom.category.contains('*') && !atom.package.contains('*') => {
                merged.contains(atom.cp().as_str())
            }
            _ => true,
        };
        if relevant {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// `category/name` of every package directory in these roots' package databases, sorted.
/// Only the names are read: a builder's upper dir may hold a package directory partly
/// (the files a merge rewrote), which is no whole database entry.
pub fn merged_packages(roots: &[&Path]) -> Result<Vec<String>> {
    let mut names = BTreeSet::new();
    for root in roots {
        let vdb = root.join("var/db/pkg");
        for category in subdirs(&vdb)? {
            for package in subdirs(&vdb.join(&category))? {
                if let Ok(atom) = Atom::parse(&format!("={category}/{package}")) {
                    names.insert(atom.cp());
                }
            }
        }
    }
    Ok(names.into_iter().collect())
}

/// The names of the directories in `dir` (none when it does not exist).
fn subdirs(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

/// The file in an entry that lists what its build merged.
const MERGED_FILE: &str = "merged";

pub fn write_merged(dir: &Path, merged: &[String]) -> Result<()> {
    let path = dir.join(MERGED_FILE);
    std::fs::write(&path, merged.join("\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// What the entry's build merged; `None` for an entry without the list (then it is rebuilt).
pub fn read_merged(entry: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(entry.join(MERGED_FILE)).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_for_merged_packages_or_no_single_package_count() {
        let file = "# gib\napp-misc/greet loud\n>=dev-libs/libgreet-1.0 static\n*/* -doc\n";
        let merged = vec!["dev-libs/libgreet".to_string()];
        assert_eq!(
            relevant_lines(file, &merged),
            ">=dev-libs/libgreet-1.0 static\n*/* -doc\n"
        );
        assert_eq!(relevant_lines(file, &[]), "*/* -doc\n");
    }

    #[test]
    fn the_key_does_not_depend_on_the_runner() {
        use crate::plan::BuildKind;
        let dir = tempfile::tempdir().unwrap();
        let plan = |at: &str, threads: u32| {
            let project = dir.path().join(at);
            std::fs::create_dir_all(project.join("ctx")).unwrap();
            std::fs::write(project.join("build.sh"), "true\n").unwrap();
            std::fs::write(project.join("motd"), "hi\n").unwrap();
            std::fs::write(project.join("stage3.tar.xz"), "").unwrap();
            let file = project.join("gib.yaml");
            std::fs::write(
                &file,
                format!(
                    "stage3:\n  path: stage3.tar.xz\nportage:\n  sync_type: none\n\
                     build:\n  threads: {threads}\nimages:\n  app:\n    from: scratch\n    \
                     script: build.sh\n    context: ctx\n    \
                     paths:\n      - {{path: /etc/motd, type: file, source: motd}}\n"
                ),
            )
            .unwrap();
            let config = crate::config::load(&file).unwrap();
            let plan = crate::plan::Plan::resolve(&config, &[]).unwrap();
            plan.images.into_iter().next().unwrap()
        };
        let (one, other) = (plan("one", 2), plan("two", 8));
        assert!(
            matches!(&one.kind, BuildKind::Portage(w) if w.script.as_ref().unwrap().is_absolute())
        );
        assert_ne!(format!("{one:?}"), format!("{other:?}"));
        assert_eq!(
            plan_without_package_lines(&one),
            plan_without_package_lines(&other)
        );
    }

    #[test]
    fn the_distfile_mirrors_do_not_enter_the_key() {
        let make_conf = |mirrors: &str| {
            format!("\n# --- added by gib ---\nMAKEOPTS=\"-j2\"\n{mirrors}DISTDIR=\"/d\"\n")
        };
        let plain = without_mirrors(&make_conf(""));
        assert_eq!(plain, make_conf(""));
        assert_eq!(
            without_mirrors(&make_conf("GENTOO_MIRRORS=\"http://127.0.0.1:1\"\n")),
            plain
        );
    }
}
