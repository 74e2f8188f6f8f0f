//! An image's security audit, at the end of every build (after its SBOM): every package of
//! the image, its parents' included (from the package databases the build keeps), matched
//! against the GLSAs of the ebuild repositories the run builds from. The report is an
//! artifact about the image beside the SBOM; gib.yaml's `audit:` decides which hits fail the
//! build, and a failing audit leaves no cache entry, as a failing `test:` does. A reused image
//! has its stored report judged again by the current `audit:`, and so has `gib audit`.
//!
//! Not here: reading and matching GLSAs (`gentoo::glsa`), where the packages come from
//! (`sbom::merged_packages`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BuildContext, BuiltImage};
use crate::config::{AuditPolicy, Severity};
use crate::gentoo::glsa::{self, Glsa, gentoo_arch};
use crate::gentoo::vdb::InstalledPackage;
use crate::gentoo::version::Version;
use crate::oci::artifact::{Artifact, write_artifact};
use crate::oci::blob::BlobStore;
use crate::oci::image::Image;
use crate::oci::spec::MEDIA_TYPE_AUDIT;
use crate::plan::{BuildKind, ImagePlan};
use crate::printer::{Hint, Printer};

/// The audit of one image: what the `application/vnd.gib.audit.v1+json` artifact holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    pub image: String,
    /// The Gentoo arch the advisories' `arch` lists were matched against.
    pub arch: String,
    pub advisories: AdvisorySet,
    /// The policy the hits were judged by: the least failing severity, or `never`.
    pub fail_on: String,
    pub hits: Vec<Hit>,
}

/// An image's audit found advisories its policy does not accept (exit code 1, as a failed
/// build or test).
#[derive(Debug, thiserror::Error)]
#[error("image {image}: the audit fails (fail_on: {fail_on}): {hits}")]
pub struct AuditFailed {
    pub image: String,
    pub fail_on: String,
    pub hits: String,
}

/// The advisories an audit used.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AdvisorySet {
    /// The repositories they came from (each one's `metadata/glsa`).
    pub repositories: Vec<String>,
    pub count: usize,
    /// sha256 of the parsed advisories (gib's JSON of them): the same set, the same digest.
    pub digest: String,
}

/// One advisory that affects one package of the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// `GLSA-YYYYMM-NN`.
    pub id: String,
    pub title: String,
    pub severity: Severity,
    /// `category/name`.
    pub package: String,
    /// The installed version (PVR).
    pub installed: String,
    /// The advisory's unaffected ranges (`>=1.2, >=~1.1-r3`), `none` when it has none.
    pub fixed: String,
    /// The image's own package, or one of a parent's.
    pub origin: Origin,
    /// Why gib.yaml accepts it, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Own,
    Parent,
}

/// Audit `written` (the image of `image`, which holds `packages`), attach
/// the report, print its hits, and fail when the policy says so.
pub(super) fn check(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    written: &Image,
    packages: &[InstalledPackage],
) -> Result<Artifact> {
    let parent_packages = parent.map(|p| p.packages.as_slice()).unwrap_or_default();
    let arch = written
        .config_json
        .get("architecture")
        .and_then(|a| a.as_str())
        .map(gentoo_arch)
        .unwrap_or("unknown")
        .to_string();
    let emerges = matches!(image.kind, BuildKind::Portage(_));
    let none;
    let advisories = match run_advisories(ctx, emerges)? {
        Some(read) => read,
        None => {
            none = empty_set();
            &none
        }
    };
    let mut report = AuditReport {
        image: image.name.clone(),
        hits: hits(&arch, packages, parent_packages, &advisories.glsas),
        arch,
        advisories: advisories.set.clone(),
        fail_on: String::new(),
    };
    judge(&mut report, &image.audit);
    let mut bytes = serde_json::to_vec_pretty(&report).context("cannot encode the audit")?;
    bytes.push(b'\n');
    let artifact = write_artifact(
        ctx.store,
        MEDIA_TYPE_AUDIT,
        &written.manifest,
        &bytes,
        &format!("{}.audit.json", image.name),
        ctx.epoch()?,
    )?;
    enforce(ctx.printer, &report, &image.audit)?;
    Ok(artifact)
}

/// A reused image's stored report, judged by the current policy (which is no input of the
/// image's key: changing it rebuilds nothing).
pub(super) fn recheck(ctx: &BuildContext<'_>, image: &ImagePlan, built: &BuiltImage) -> Result<()> {
    let Some(mut report) = stored_report(ctx.store, built)? else {
        return Ok(());
    };
    judge(&mut report, &image.audit);
    enforce(ctx.printer, &report, &image.audit)
}

/// The audit report attached to `built`, read from the store; `None` when it has none
/// (pulled parents, images built before gib audited).
pub fn stored_report(store: &BlobStore, built: &BuiltImage) -> Result<Option<AuditReport>> {
    let Some(artifact) = built
        .referrers
        .iter()
        .find(|a| a.artifact_type == MEDIA_TYPE_AUDIT)
    else {
        return Ok(None);
    };
    let blob = artifact
        .blobs
        .iter()
        .find(|b| b.media_type == MEDIA_TYPE_AUDIT)
        .with_context(|| format!("the audit artifact of {} has no report", built.name))?;
    let path = store.path(&blob.digest);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let report = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not an audit report", path.display()))?;
    Ok(Some(report))
}

/// The advisories a run builds with, and the set's description.
#[derive(Debug, Default)]
pub struct RunAdvisories {
    set: AdvisorySet,
    glsas: Vec<Glsa>,
}

/// The advisories of the repositories the run builds from, each id once (the main
/// repository's first), read (and their files' problems warned about) once per run. A plan
/// without a stage3 builds from no repository. A `rootfs:` image does not make the run sync
/// or unpack anything for its audit: it uses what the run has read, if anything.
/// `None`: no advisories.
fn run_advisories<'c>(
    ctx: &'c BuildContext<'_>,
    emerges: bool,
) -> Result<Option<&'c RunAdvisories>> {
    if let Some(read) = ctx.advisories.get() {
        return Ok(Some(read));
    }
    if ctx.plan.stage3.is_none() || !emerges {
        return Ok(None);
    }
    let mut names = Vec::new();
    let mut glsas: BTreeMap<String, Glsa> = BTreeMap::new();
    for repo in ctx.repositories()? {
        let root = match &repo.path {
            Some(path) => path.clone(),
            // `sync_type: none`: the stage3's own tree.
            None => ctx
                .stage3()?
                .path
                .join(repo.location.trim_start_matches('/')),
        };
        let found = glsa::read_repository(&root)?;
        for warning in &found.warnings {
            ctx.printer.warn(warning);
        }
        if !found.glsas.is_empty() {
            names.push(repo.name.clone());
        }
        for advisory in found.glsas {
            glsas.entry(advisory.id.clone()).or_insert(advisory);
        }
    }
    let glsas: Vec<Glsa> = glsas.into_values().collect();
    let encoded = serde_json::to_vec(&glsas).context("cannot encode the advisories")?;
    let set = AdvisorySet {
        repositories: names,
        count: glsas.len(),
        digest: format!("sha256:{}", hex::encode(Sha256::digest(&encoded))),
    };
    Ok(Some(
        ctx.advisories.get_or_init(|| RunAdvisories { set, glsas }),
    ))
}

fn empty_set() -> RunAdvisories {
    RunAdvisories {
        set: AdvisorySet {
            digest: format!("sha256:{}", hex::encode(Sha256::digest(b"[]"))),
            ..AdvisorySet::default()
        },
        glsas: Vec::new(),
    }
}

/// Every (advisory, package) pair where the advisory affects the installed package on `arch`;
/// a package in `parent_packages` (cpvs) is a parent's.
pub fn hits(
    arch: &str,
    packages: &[InstalledPackage],
    parent_packages: &[String],
    glsas: &[Glsa],
) -> Vec<Hit> {
    let mut by_package: BTreeMap<&str, Vec<&Glsa>> = BTreeMap::new();
    for advisory in glsas {
        for package in &advisory.packages {
            let list = by_package.entry(package.name.as_str()).or_default();
            if !list.iter().any(|g| g.id == advisory.id) {
                list.push(advisory);
            }
        }
    }
    let mut found = Vec::new();
    for package in packages {
        let cp = package.cp();
        let Some(advisories) = by_package.get(cp.as_str()) else {
            continue;
        };
        let Ok(version) = Version::parse(&package.full_version) else {
            continue;
        };
        for advisory in advisories {
            if let Some(affected) = advisory.affecting(&cp, arch, &version, package.slot.as_deref())
            {
                found.push(Hit {
                    id: advisory.id.clone(),
                    title: advisory.title.clone(),
                    severity: advisory.severity,
                    package: cp.clone(),
                    installed: package.full_version.clone(),
                    fixed: affected.fixed(),
                    origin: if parent_packages.contains(&package.cpv()) {
                        Origin::Parent
                    } else {
                        Origin::Own
                    },
                    ignored: None,
                });
            }
        }
    }
    found.sort_by(|a, b| (&a.id, &a.package).cmp(&(&b.id, &b.package)));
    found
}

/// Mark `report`'s hits by `policy`: which are ignored, and by which `fail_on`.
pub fn judge(report: &mut AuditReport, policy: &AuditPolicy) {
    report.fail_on = policy.fail_on.map_or("never", Severity::as_str).to_string();
    for hit in &mut report.hits {
        hit.ignored = policy.ignored(&hit.id).map(str::to_string);
    }
}

/// The hits of a judged report that fail it.
pub fn failing<'r>(report: &'r AuditReport, policy: &AuditPolicy) -> Vec<&'r Hit> {
    report
        .hits
        .iter()
        .filter(|h| h.ignored.is_none() && policy.fails(h.severity))
        .collect()
}

/// One line about a hit: `GLSA-202601-01 (high) Title: dev-libs/foo-1.0 (a parent's), fixed in >=1.1`.
pub fn describe(hit: &Hit) -> String {
    let origin = match hit.origin {
        Origin::Own => "",
        Origin::Parent => " (a parent's)",
    };
    let fixed = if hit.fixed == "none" {
        "no fixed version".to_string()
    } else {
        format!("fixed in {}", hit.fixed)
    };
    format!(
        "{} ({}) {}: {}-{}{origin}, {fixed}",
        hit.id,
        hit.severity.as_str(),
        hit.title,
        hit.package,
        hit.installed
    )
}

/// Print the hits (ignored ones with their reason) and fail when one fails the policy.
fn enforce(printer: &Printer, report: &AuditReport, policy: &AuditPolicy) -> Result<()> {
    for hit in &report.hits {
        match &hit.ignored {
            Some(reason) => printer.status(
                "Ignored",
                &format!("{}: {} ({reason})", report.image, describe(hit)),
            ),
            None => printer.warn(&format!("{}: {}", report.image, describe(hit))),
        }
    }
    let failing = failing(report, policy);
    let Some(first) = failing.first() else {
        return Ok(());
    };
    let listed: Vec<String> = failing.iter().map(|h| describe(h)).collect();
    Err(AuditFailed {
        image: report.image.clone(),
        fail_on: report.fail_on.clone(),
        hits: listed.join("; "),
    }
    .hint(format!(
        "update the package to a fixed version, or accept the advisory in gib.yaml: \
         audit: {{ignore: [{{id: {}, reason: \"why it does not matter here\"}}]}}",
        first.id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gentoo::glsa::parse;

    fn package(cpv: (&str, &str, &str), slot: &str) -> InstalledPackage {
        let (category, name, full_version) = cpv;
        InstalledPackage {
            category: category.into(),
            name: name.into(),
            version: full_version.split("-r").next().unwrap_or_default().into(),
            full_version: full_version.into(),
            slot: Some(slot.into()),
            license: None,
            use_flags: Vec::new(),
            iuse: Vec::new(),
            repository: None,
            homepage: None,
            description: None,
            size: None,
            src_uri: None,
            counter: None,
            contents: Vec::new(),
        }
    }

    fn advisory(id: &str, severity: &str, body: &str) -> Glsa {
        parse(
            format!(
                "<glsa id=\"{id}\"><title>T {id}</title><impact type=\"{severity}\"/>\
                 <affected>{body}</affected></glsa>"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn hits_name_origin_and_fix_and_the_policy_decides() {
        let glsas = [
            advisory(
                "202601-01",
                "high",
                "<package name=\"dev-libs/lib\" arch=\"*\"><unaffected range=\"ge\">1.1\
                 </unaffected><vulnerable range=\"lt\">1.1</vulnerable></package>",
            ),
            advisory(
                "202601-02",
                "low",
                "<package name=\"app-misc/app\" arch=\"*\"><vulnerable range=\"le\">2\
                 </vulnerable></package>",
            ),
            advisory(
                "202601-03",
                "high",
                "<package name=\"app-misc/app\" arch=\"arm64\"><vulnerable range=\"le\">2\
                 </vulnerable></package>",
            ),
        ];
        let packages = [
            package(("dev-libs", "lib", "1.0-r1"), "0/1"),
            package(("app-misc", "app", "2"), "0"),
        ];
        let parents = vec!["dev-libs/lib-1.0-r1".to_string()];
        let hits = hits("amd64", &packages, &parents, &glsas);
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert_eq!(hits[0].id, "GLSA-202601-01");
        assert_eq!(hits[0].origin, Origin::Parent);
        assert_eq!(hits[0].fixed, ">=1.1");
        assert_eq!(hits[1].origin, Origin::Own);
        assert_eq!(
            describe(&hits[0]),
            "GLSA-202601-01 (high) T 202601-01: dev-libs/lib-1.0-r1 (a parent's), fixed in >=1.1"
        );
        let mut report = AuditReport {
            image: "app".into(),
            arch: "amd64".into(),
            advisories: AdvisorySet::default(),
            fail_on: String::new(),
            hits,
        };
        let mut policy = crate::config::AuditPolicy {
            fail_on: Some(Severity::High),
            ignore: Vec::new(),
        };
        judge(&mut report, &policy);
        assert_eq!(failing(&report, &policy).len(), 1);
        policy.ignore.push(crate::config::IgnoredAdvisory {
            id: "GLSA-202601-01".into(),
            reason: "not reachable".into(),
        });
        judge(&mut report, &policy);
        assert!(failing(&report, &policy).is_empty());
        assert_eq!(report.hits[0].ignored.as_deref(), Some("not reachable"));
        policy.fail_on = Some(Severity::Low);
        judge(&mut report, &policy);
        assert_eq!(failing(&report, &policy).len(), 1);
        policy.fail_on = None;
        assert!(failing(&report, &policy).is_empty());
    }
}
