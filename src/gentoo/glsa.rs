//! Gentoo Linux Security Advisories (GLSAs): the `metadata/glsa/glsa-*.xml` files of an
//! ebuild repository, parsed, and matched against installed packages.
//!
//! The format is Gentoo's glsa.dtd: `<glsa id>` with a `<title>`, an `<impact type>` (the
//! severity), and under `<affected>` one `<package name arch>` per affected package, each with
//! `<vulnerable range slot>` and `<unaffected range slot>` version ranges. A package is
//! affected when its installed version is in a vulnerable range and in no unaffected range
//! (Portage's `glsa.py` gives the same meaning; the tests run it as an oracle). The `r*`
//! ranges (`rge 1.2-r3`) compare revisions only, among the revisions of that one version.
//!
//! Advisory files come from a synced repository, which gib did not write: each is read
//! through a directory descriptor without following symlinks, bounded in size, and parsed
//! with roxmltree (a DOM without network access, which rejects entity-expansion bombs and
//! here a node count past a bound). A bad file is a warning naming it, never the end of an
//! audit.
//!
//! Not here: which packages an image holds or what a build does with a hit (`build::audit`).

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::atom::{is_category_name, is_package_name};
use super::version::Version;
use crate::sandbox::safe_fs::TreeDir;

/// Where a repository keeps its advisories.
pub const GLSA_DIR: &str = "metadata/glsa";
/// The largest advisory file read: real ones are a few kilobytes.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most XML nodes one advisory may have.
const MAX_NODES: u32 = 50_000;

/// How bad an advisory says its issue is (`<impact type>`), least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Minimal,
    Low,
    Normal,
    High,
}

impl Severity {
    fn parse(text: &str) -> Option<Severity> {
        Some(match text {
            "minimal" => Severity::Minimal,
            "low" => Severity::Low,
            "normal" => Severity::Normal,
            "high" => Severity::High,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Minimal => "minimal",
            Severity::Low => "low",
            Severity::Normal => "normal",
            Severity::High => "high",
        }
    }
}

/// What an image's audit does with its hits (gib.yaml `audit:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPolicy {
    /// The least severity that fails the build; `None`: `never`.
    pub fail_on: Option<Severity>,
    /// Advisories accepted, each with why.
    pub ignore: Vec<IgnoredAdvisory>,
}

/// `audit.ignore[]`: an advisory that never fails the build, and the reason printed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredAdvisory {
    /// `GLSA-YYYYMM-NN`.
    pub id: String,
    pub reason: String,
}

impl AuditPolicy {
    /// The reason `id` is ignored, when it is.
    pub fn ignored(&self, id: &str) -> Option<&str> {
        self.ignore
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.reason.as_str())
    }

    /// Whether a hit of `severity` that is not ignored fails the build.
    pub fn fails(&self, severity: Severity) -> bool {
        self.fail_on.is_some_and(|least| severity >= least)
    }
}

/// `audit.fail_on` as written: a severity, or `never`.
pub fn parse_fail_on(text: &str) -> Option<Option<Severity>> {
    match text {
        "never" => Some(None),
        "minimal" => None,
        other => Severity::parse(other).map(Some),
    }
}

/// An advisory id as gib.yaml may write it (`GLSA-202401-01`, or `202401-01`), as gib
/// writes it; `None` when it is not one.
pub fn normalize_id(text: &str) -> Option<String> {
    let bare = text.trim();
    let bare = bare.strip_prefix("GLSA-").unwrap_or(bare);
    let (month, number) = bare.split_once('-')?;
    (is_number(month) && is_number(number)).then(|| format!("GLSA-{bare}"))
}

/// A range operator of `<vulnerable>`/`<unaffected>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RangeOp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// The same version with a lower revision.
    Rlt,
    Rle,
    Rge,
    Rgt,
}

impl RangeOp {
    fn parse(text: &str) -> Option<RangeOp> {
        Some(match text {
            "lt" => RangeOp::Lt,
            "le" => RangeOp::Le,
            "eq" => RangeOp::Eq,
            "ge" => RangeOp::Ge,
            "gt" => RangeOp::Gt,
            "rlt" => RangeOp::Rlt,
            "rle" => RangeOp::Rle,
            "rge" => RangeOp::Rge,
            "rgt" => RangeOp::Rgt,
            _ => return None,
        })
    }

    /// How gib prints it: the atom operator, `~` marking a revision-only range.
    fn symbol(self) -> &'static str {
        match self {
            RangeOp::Lt => "<",
            RangeOp::Le => "<=",
            RangeOp::Eq => "=",
            RangeOp::Ge => ">=",
            RangeOp::Gt => ">",
            RangeOp::Rlt => "<~",
            RangeOp::Rle => "<=~",
            RangeOp::Rge => ">=~",
            RangeOp::Rgt => ">~",
        }
    }

    /// Whether `ordering` (installed against the range's version) is inside the range.
    fn admits(self, ordering: Ordering) -> bool {
        match self {
            RangeOp::Lt | RangeOp::Rlt => ordering == Ordering::Less,
            RangeOp::Le | RangeOp::Rle => ordering != Ordering::Greater,
            RangeOp::Eq => ordering == Ordering::Equal,
            RangeOp::Ge | RangeOp::Rge => ordering != Ordering::Less,
            RangeOp::Gt | RangeOp::Rgt => ordering == Ordering::Greater,
        }
    }

    fn revision_only(self) -> bool {
        matches!(
            self,
            RangeOp::Rlt | RangeOp::Rle | RangeOp::Rge | RangeOp::Rgt
        )
    }
}

/// One `<vulnerable>` or `<unaffected>` range.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Range {
    pub op: RangeOp,
    pub version: String,
    /// `slot="…"`; `None` for none or `*` (every slot).
    pub slot: Option<String>,
}

impl Range {
    /// Whether `version` in `slot` (SLOT as recorded, maybe with a sub-slot) is in the range.
    fn contains(&self, version: &Version, slot: Option<&str>) -> bool {
        if let Some(wanted) = &self.slot {
            let installed = slot.unwrap_or("0");
            // `slot="3"` names the slot whatever the sub-slot; `3/3.1` names both.
            let installed = if wanted.contains('/') {
                installed
            } else {
                installed.split('/').next().unwrap_or(installed)
            };
            if installed != wanted {
                return false;
            }
        }
        // Parsed when the advisory was read, so this cannot fail.
        let Ok(bound) = Version::parse(&self.version) else {
            return false;
        };
        if self.op.revision_only() {
            version.same_without_revision(&bound) && self.op.admits(version.cmp_revision(&bound))
        } else {
            self.op.admits(version.cmp(&bound))
        }
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.op.symbol(), self.version)?;
        if let Some(slot) = &self.slot {
            write!(f, ":{slot}")?;
        }
        Ok(())
    }
}

/// One `<package>` of `<affected>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AffectedPackage {
    /// `category/name`.
    pub name: String,
    /// The Gentoo arches it concerns; `None` for `*` (all).
    pub arches: Option<Vec<String>>,
    pub vulnerable: Vec<Range>,
    pub unaffected: Vec<Range>,
}

impl AffectedPackage {
    /// Whether `version` in `slot` on `arch` is affected: in a vulnerable range, and in no
    /// unaffected one (an unaffected range wins).
    pub fn affects(&self, arch: &str, version: &Version, slot: Option<&str>) -> bool {
        let on_arch = self
            .arches
            .as_ref()
            .is_none_or(|arches| arches.iter().any(|a| a == arch));
        on_arch
            && self.vulnerable.iter().any(|r| r.contains(version, slot))
            && !self.unaffected.iter().any(|r| r.contains(version, slot))
    }

    /// The unaffected ranges as text (`>=1.2, >=~1.1-r3`): what fixes it.
    pub fn fixed(&self) -> String {
        if self.unaffected.is_empty() {
            return "none".to_string();
        }
        let ranges: Vec<String> = self.unaffected.iter().map(Range::to_string).collect();
        ranges.join(", ")
    }
}

/// One advisory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Glsa {
    /// `GLSA-202401-01`.
    pub id: String,
    pub title: String,
    pub severity: Severity,
    pub packages: Vec<AffectedPackage>,
}

impl Glsa {
    /// The entries of the advisory about `category/name` that affect `version` in `slot`.
    pub fn affecting<'g>(
        &'g self,
        cp: &str,
        arch: &str,
        version: &Version,
        slot: Option<&str>,
    ) -> Option<&'g AffectedPackage> {
        self.packages
            .iter()
            .find(|p| p.name == cp && p.affects(arch, version, slot))
    }
}

/// The advisories of one directory, and a warning for each file that could not be used.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Advisories {
    pub glsas: Vec<Glsa>,
    pub warnings: Vec<String>,
}

/// The advisories of the repository at `repo` (its `metadata/glsa`, which may be missing),
/// reached without following a symlink out of the repository.
pub fn read_repository(repo: &Path) -> Result<Advisories> {
    let root = TreeDir::open_root(repo)?;
    match root.dir(Path::new(GLSA_DIR), false) {
        Ok(Some(dir)) => read_tree(&dir),
        Ok(None) => Ok(Advisories::default()),
        Err(err) => Ok(Advisories {
            glsas: Vec::new(),
            warnings: vec![format!(
                "{}: skipped: {err:#}",
                repo.join(GLSA_DIR).display()
            )],
        }),
    }
}

/// Read every `glsa-*.xml` of `dir` (a directory of advisories, which may be missing).
pub fn read_dir(dir: &Path) -> Result<Advisories> {
    if !dir.is_dir() {
        return Ok(Advisories::default());
    }
    read_tree(&TreeDir::open_root(dir)?)
}

fn read_tree(tree: &TreeDir) -> Result<Advisories> {
    let mut found = Advisories::default();
    for name in tree.names()? {
        let Some(text) = name.to_str() else { continue };
        if !(text.starts_with("glsa-") && text.ends_with(".xml")) {
            continue;
        }
        let path = tree.path().join(&name);
        match read_one(tree, &name).and_then(|bytes| parse(&bytes)) {
            Ok(glsa) => found.glsas.push(glsa),
            Err(reason) => found
                .warnings
                .push(format!("{}: skipped: {reason}", path.display())),
        }
    }
    Ok(found)
}

fn read_one(tree: &TreeDir, name: &OsStr) -> Result<Vec<u8>, String> {
    match tree.read_at_most(name, MAX_FILE_BYTES) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err("it vanished".to_string()),
        Err(err) => Err(format!("{err:#}")),
    }
}

/// Parse one advisory; the error says what is wrong, in one line.
pub fn parse(bytes: &[u8]) -> Result<Glsa, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let options = roxmltree::ParsingOptions {
        // Every GLSA names glsa.dtd in a DOCTYPE; the DTD is never fetched.
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        // No resolver: an external entity is an error, never a read.
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| format!("malformed XML: {e}"))?;
    let root = doc.root_element();
    if !root.has_tag_name("glsa") {
        return Err(format!("<{}> is not a GLSA", root.tag_name().name()));
    }
    let id = root.attribute("id").ok_or("<glsa> has no id")?;
    if !id
        .split_once('-')
        .is_some_and(|(a, b)| is_number(a) && is_number(b))
    {
        return Err(format!("`{id}` is not a GLSA id (YYYYMM-NN)"));
    }
    let child = |name: &str| root.children().find(|n| n.has_tag_name(name));
    let title = child("title").map(flat_text).ok_or("no <title>")?;
    let impact = child("impact").ok_or("no <impact>")?;
    let severity = impact
        .attribute("type")
        .and_then(Severity::parse)
        .ok_or("<impact type> is not minimal, low, normal or high")?;
    let affected = child("affected").ok_or("no <affected>")?;
    let mut packages = Vec::new();
    for package in affected.children().filter(|n| n.has_tag_name("package")) {
        packages.push(affected_package(package)?);
    }
    Ok(Glsa {
        id: format!("GLSA-{id}"),
        title,
        severity,
        packages,
    })
}

fn affected_package(node: roxmltree::Node<'_, '_>) -> Result<AffectedPackage, String> {
    let name = node.attribute("name").ok_or("a <package> has no name")?;
    let valid = name
        .split_once('/')
        .is_some_and(|(c, p)| is_category_name(c) && is_package_name(p));
    if !valid {
        return Err(format!("`{name}` is not a category/package name"));
    }
    let arch = node.attribute("arch").unwrap_or("*").trim();
    let arches = if arch == "*" {
        None
    } else {
        let words: Vec<String> = arch.split_whitespace().map(str::to_string).collect();
        let keyword = |w: &String| {
            w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        };
        if words.is_empty() || !words.iter().all(keyword) {
            return Err(format!(
                "{name}: arch `{arch}` is not `*` or a list of arches"
            ));
        }
        Some(words)
    };
    let ranges = |tag: &str| -> Result<Vec<Range>, String> {
        node.children()
            .filter(|n| n.has_tag_name(tag))
            .map(|n| range(name, n))
            .collect()
    };
    Ok(AffectedPackage {
        name: name.to_string(),
        arches,
        vulnerable: ranges("vulnerable")?,
        unaffected: ranges("unaffected")?,
    })
}

fn range(package: &str, node: roxmltree::Node<'_, '_>) -> Result<Range, String> {
    let op_text = node.attribute("range").unwrap_or_default();
    let op = RangeOp::parse(op_text)
        .ok_or_else(|| format!("{package}: `{op_text}` is not a range operator"))?;
    let version = flat_text(node);
    Version::parse(&version).map_err(|e| format!("{package}: {e}"))?;
    let slot = node
        .attribute("slot")
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "*")
        .map(str::to_string);
    Ok(Range { op, version, slot })
}

/// An element's text with whitespace runs made one space.
fn flat_text(node: roxmltree::Node<'_, '_>) -> String {
    let text: String = node
        .descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The Gentoo arch (ARCH, the keyword GLSAs name) of an OCI platform architecture.
pub fn gentoo_arch(oci_architecture: &str) -> &str {
    match oci_architecture {
        "386" => "x86",
        "ppc64le" => "ppc64",
        "riscv64" => "riscv",
        "s390x" => "s390",
        "mips64le" | "mipsle" => "mips",
        "loong64" => "loong",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
        <!DOCTYPE glsa SYSTEM \"http://www.gentoo.org/dtd/glsa.dtd\">\n";

    fn glsa(packages: &str) -> Glsa {
        let text = format!(
            "{HEAD}<glsa id=\"202601-01\"><title>Test:  two\n words</title>\
             <impact type=\"high\">x</impact><affected>{packages}</affected></glsa>"
        );
        parse(text.as_bytes()).unwrap()
    }

    fn hit(g: &Glsa, arch: &str, version: &str, slot: &str) -> bool {
        g.affecting(
            "dev-libs/foo",
            arch,
            &Version::parse(version).unwrap(),
            Some(slot),
        )
        .is_some()
    }

    #[test]
    fn reads_id_title_and_severity() {
        let g = glsa("");
        assert_eq!(g.id, "GLSA-202601-01");
        assert_eq!(g.title, "Test: two words");
        assert_eq!(g.severity, Severity::High);
    }

    #[test]
    fn plain_ranges_and_the_unaffected_range_that_wins() {
        let g = glsa(
            "<package name=\"dev-libs/foo\" arch=\"*\">\
             <unaffected range=\"ge\">1.2</unaffected><unaffected range=\"eq\">1.0.5</unaffected>\
             <vulnerable range=\"lt\">1.2</vulnerable></package>",
        );
        assert!(hit(&g, "amd64", "1.1-r9", "0"));
        assert!(!hit(&g, "amd64", "1.0.5", "0"));
        assert!(!hit(&g, "amd64", "1.2", "0"));
        assert!(!hit(&g, "amd64", "1.10", "0"));
        assert_eq!(g.packages[0].fixed(), ">=1.2, =1.0.5");
    }

    #[test]
    fn revision_ranges_stay_within_one_version() {
        let g = glsa(
            "<package name=\"dev-libs/foo\" arch=\"*\">\
             <unaffected range=\"rge\">1.0-r2</unaffected><unaffected range=\"ge\">1.1</unaffected>\
             <vulnerable range=\"lt\">1.1</vulnerable></package>",
        );
        assert!(hit(&g, "amd64", "1.0-r1", "0"));
        assert!(!hit(&g, "amd64", "1.0-r2", "0"));
        assert!(!hit(&g, "amd64", "1.0-r10", "0"));
        // 0.9-r5 is not 1.0: the revision range does not cover it.
        assert!(hit(&g, "amd64", "0.9-r5", "0"));
        let g = glsa(
            "<package name=\"dev-libs/foo\" arch=\"*\">\
             <vulnerable range=\"rlt\">2.0-r3</vulnerable><vulnerable range=\"rle\">3.0</vulnerable>\
             <vulnerable range=\"rgt\">4.0-r1</vulnerable></package>",
        );
        assert!(hit(&g, "amd64", "2.0", "0"));
        assert!(hit(&g, "amd64", "2.0-r2", "0"));
        assert!(!hit(&g, "amd64", "2.0-r3", "0"));
        assert!(!hit(&g, "amd64", "1.0", "0"));
        assert!(hit(&g, "amd64", "3.0-r0", "0"));
        assert!(!hit(&g, "amd64", "3.0-r1", "0"));
        assert!(hit(&g, "amd64", "4.0-r2", "0"));
        assert!(!hit(&g, "amd64", "4.0-r1", "0"));
        assert!(!hit(&g, "amd64", "4.1", "0"));
    }

    #[test]
    fn slots_and_arches() {
        let g = glsa(
            "<package name=\"dev-libs/foo\" arch=\"amd64 arm64\">\
             <vulnerable range=\"lt\" slot=\"3\">3.2</vulnerable>\
             <vulnerable range=\"le\" slot=\"*\">1.0</vulnerable></package>",
        );
        assert!(hit(&g, "amd64", "3.1", "3/3.1"));
        assert!(!hit(&g, "amd64", "3.1", "4"));
        assert!(hit(&g, "arm64", "1.0", "7"));
        assert!(!hit(&g, "x86", "3.1", "3"));
        let g = glsa(
            "<package name=\"dev-libs/foo\" arch=\"*\">\
             <vulnerable range=\"gt\">1.0</vulnerable></package>",
        );
        assert!(hit(&g, "riscv", "1.0.1", "0"));
        assert!(!hit(&g, "riscv", "1.0", "0"));
    }

    #[test]
    fn hostile_or_broken_files_are_errors_of_one_line() {
        let bomb = format!(
            "{}<!DOCTYPE glsa [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\
             <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\
             <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">\
             <!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\"><!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">]>\
             <glsa id=\"202601-01\"><title>&h;</title></glsa>",
            "<?xml version=\"1.0\"?>"
        );
        let started = std::time::Instant::now();
        for (bytes, expect) in [
            (bomb.as_bytes(), "malformed XML"),
            (b"<glsa id=\"1-1\"><title>".as_slice(), "malformed XML"),
            (b"\xff\xfe".as_slice(), "not UTF-8"),
            (b"<html/>".as_slice(), "not a GLSA"),
            (
                b"<glsa id=\"1-1\"><title>t</title><impact type=\"dire\"/><affected/></glsa>"
                    .as_slice(),
                "impact type",
            ),
            (
                b"<glsa id=\"1-1\"><title>t</title><impact type=\"low\"/><affected>\
                  <package name=\"foo\"/></affected></glsa>"
                    .as_slice(),
                "not a category/package",
            ),
            (
                b"<glsa id=\"1-1\"><title>t</title><impact type=\"low\"/><affected>\
                  <package name=\"a/b\" arch=\"*\"><vulnerable range=\"lt\">x.y</vulnerable>\
                  </package></affected></glsa>"
                    .as_slice(),
                "not a valid Gentoo version",
            ),
        ] {
            let err = parse(bytes).unwrap_err();
            assert!(err.contains(expect), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn read_dir_warns_per_bad_file_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let good = format!(
            "{HEAD}<glsa id=\"202601-02\"><title>t</title><impact type=\"low\"/>\
             <affected/></glsa>"
        );
        std::fs::write(dir.path().join("glsa-202601-02.xml"), good).unwrap();
        std::fs::write(dir.path().join("glsa-202601-03.xml"), "<glsa").unwrap();
        std::fs::write(dir.path().join("README"), "not one").unwrap();
        let big = vec![b' '; (MAX_FILE_BYTES + 1) as usize];
        std::fs::write(dir.path().join("glsa-202601-04.xml"), big).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("glsa-202601-05.xml")).unwrap();
        let found = read_dir(dir.path()).unwrap();
        assert_eq!(found.glsas.len(), 1);
        assert_eq!(found.warnings.len(), 3, "{:?}", found.warnings);
        assert!(found.warnings[0].contains("glsa-202601-03.xml"));
        assert!(found.warnings[1].contains("larger than"));
        assert!(found.warnings[2].contains("symbolic link"));
        assert!(
            read_dir(&dir.path().join("missing"))
                .unwrap()
                .glsas
                .is_empty()
        );
    }

    #[test]
    fn a_repository_whose_glsa_dir_is_a_symlink_is_warned_about_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let good = format!(
            "{HEAD}<glsa id=\"202601-02\"><title>t</title><impact type=\"low\"/>\
             <affected/></glsa>"
        );
        std::fs::write(outside.join("glsa-202601-02.xml"), &good).unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join("metadata")).unwrap();
        std::os::unix::fs::symlink(&outside, repo.join(GLSA_DIR)).unwrap();
        let found = read_repository(&repo).unwrap();
        assert!(found.glsas.is_empty());
        assert_eq!(found.warnings.len(), 1);
        assert!(
            found.warnings[0].contains("symbolic link"),
            "{:?}",
            found.warnings
        );
        std::fs::remove_file(repo.join(GLSA_DIR)).unwrap();
        std::fs::create_dir_all(repo.join(GLSA_DIR)).unwrap();
        std::fs::write(repo.join(GLSA_DIR).join("glsa-202601-02.xml"), good).unwrap();
        assert_eq!(read_repository(&repo).unwrap().glsas.len(), 1);
        assert!(read_repository(&outside).unwrap().glsas.is_empty());
    }
}
