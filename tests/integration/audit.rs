//! Security advisories (GLSAs): gib's matching against Portage's own (`portage.glsa`, the
//! PyPI release the mini stage3 installs) on gib's fixture advisories (tests/fixtures/glsa)
//! and one package database; and the audit step of a build: a vulnerable package fails it
//! with the advisory's id, title and fixed version, an ignore with a reason lets it pass, a
//! child reports its parent's package, and the report is an artifact beside the SBOM.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::fixture::mini_stage3;
use crate::util::{
    Runner, assert_success, gib_build, gib_by, pypi_venv, run_ok, scratch_dir, work_dir,
};

/// The Portage release the mini stage3 installs (tests/fixtures/mini-stage3/build.sh).
const PORTAGE: &str = "portage==3.0.83";

fn fixture_glsas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glsa")
}

/// The installed packages of the oracle's database (cpv, SLOT), one or more per fixture
/// advisory: affected and unaffected versions of each case.
const INSTALLED: &[(&str, &str)] = &[
    ("dev-libs/libgreet-1.0", "0/1"),
    ("app-misc/rev-a-2.0-r1", "0"),
    ("app-misc/rev-b-2.0-r3", "0"),
    ("app-misc/rev-c-3.0-r1", "0"),
    ("app-misc/rev-d-3.0", "0"),
    ("app-misc/rev-e-3.0-r5", "0"),
    ("app-misc/rev-f-3.1-r5", "0"),
    ("dev-lang/slotted-3.12.1", "3.12/3.12"),
    ("dev-lang/slotted-3.11.9", "3.11/3.11"),
    ("dev-lang/slotted-3.10.1", "3.10"),
    ("sys-apps/multi-2.0", "0"),
    ("sys-apps/multi-b-2.1", "0"),
    ("app-misc/wins-4.2-r1", "0"),
    ("app-misc/wins2-4.2", "0"),
    ("app-misc/archy-1", "0"),
    ("app-misc/archy2-1", "0"),
    ("app-misc/ops-le-1.0", "0"),
    ("app-misc/ops-gt-1.2", "0"),
    ("app-misc/ops-edge-1.0", "0"),
];

/// Portage's verdicts: for each advisory file, Portage's `Glsa` parses it and, per affected
/// package whose arch matches (as `Glsa.isVulnerable` checks it), `getMinUpgrade` lists the
/// installed versions in a vulnerable range and in no unaffected one. `isVulnerable` must
/// agree. Prints `GLSA-ID cpv` lines.
const ORACLE: &str = r#"
import os, sys
import portage
from portage import glsa

root, glsa_dir, arch = sys.argv[1], sys.argv[2], sys.argv[3]
trees = portage.create_trees(config_root=root, target_root=root, eprefix="")
vardb = trees[root.rstrip("/") + "/"]["vartree"].dbapi
config = {"ARCH": arch, "GLSA_DIR": glsa_dir, "PORTDIR": root}
for name in sorted(os.listdir(glsa_dir)):
    if not (name.startswith("glsa-") and name.endswith(".xml")):
        continue
    advisory = glsa.Glsa(os.path.join(glsa_dir, name), config, vardb, vardb)
    affected = set()
    for package, paths in advisory.packages.items():
        for path in paths:
            if path["arch"] != "*" and arch not in path["arch"].split():
                continue
            table = glsa.getMinUpgrade(path["vul_atoms"], path["unaff_atoms"], vardb, vardb)
            for vulnerable, _update in table or []:
                affected.add(str(vulnerable))
    if bool(affected) != bool(advisory.isVulnerable()):
        sys.exit(f"{name}: isVulnerable() disagrees with the affected list {affected}")
    for cpv in sorted(affected):
        print("GLSA-" + name[len("glsa-"):-len(".xml")], cpv)
"#;

/// A root holding only a package database of `INSTALLED`, and a repos.conf whose main
/// repository (an empty one) Portage's config insists on.
fn oracle_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for (cpv, slot) in INSTALLED {
        let pkg = root.join("var/db/pkg").join(cpv);
        fs::create_dir_all(&pkg).unwrap();
        fs::write(pkg.join("SLOT"), format!("{slot}\n")).unwrap();
        fs::write(pkg.join("EAPI"), "8\n").unwrap();
    }
    let repo = dir.join("repo");
    fs::create_dir_all(repo.join("profiles")).unwrap();
    fs::create_dir_all(repo.join("metadata")).unwrap();
    fs::write(repo.join("profiles/repo_name"), "gentoo\n").unwrap();
    fs::create_dir_all(root.join("etc/portage")).unwrap();
    fs::write(
        root.join("etc/portage/repos.conf"),
        format!(
            "[DEFAULT]\nmain-repo = gentoo\n[gentoo]\nlocation = {}\n",
            repo.display()
        ),
    )
    .unwrap();
    root
}

#[test]
fn portage_glsa_code_agrees_with_gib_on_every_fixture_case() {
    let venv = pypi_venv(&PORTAGE.replace("==", "-"), &[PORTAGE]);
    let dir = scratch_dir("glsa-oracle");
    let root = oracle_root(dir.path());
    let driver = dir.path().join("oracle.py");
    fs::write(&driver, ORACLE).unwrap();
    let glsas = fixture_glsas();
    let portage: BTreeSet<String> = run_ok(
        Command::new(venv.join("bin/python"))
            .arg(&driver)
            .arg(&root)
            .arg(&glsas)
            .arg("amd64"),
    )
    .lines()
    .map(str::to_string)
    .collect();

    let advisories = gib::gentoo::glsa::read_dir(&glsas).unwrap();
    assert!(advisories.warnings.is_empty(), "{:?}", advisories.warnings);
    assert_eq!(advisories.glsas.len(), 8);
    let packages = gib::gentoo::vdb::read_installed(&root).unwrap();
    assert_eq!(packages.len(), INSTALLED.len());
    let gib: BTreeSet<String> = gib::build::audit::hits("amd64", &packages, &[], &advisories.glsas)
        .into_iter()
        .map(|h| format!("{} {}-{}", h.id, h.package, h.installed))
        .collect();
    assert_eq!(gib, portage, "gib (left) and Portage (right) disagree");
    // Not an agreement on nothing: each kind of case is there, both ways.
    for expected in [
        "GLSA-202601-01 dev-libs/libgreet-1.0",
        "GLSA-202601-02 app-misc/rev-a-2.0-r1",
        "GLSA-202601-03 app-misc/rev-c-3.0-r1",
        "GLSA-202601-03 app-misc/rev-d-3.0",
        "GLSA-202601-03 app-misc/rev-e-3.0-r5",
        "GLSA-202601-04 dev-lang/slotted-3.12.1",
        "GLSA-202601-05 sys-apps/multi-2.0",
        "GLSA-202601-06 app-misc/wins2-4.2",
        "GLSA-202601-07 app-misc/archy2-1",
        "GLSA-202601-08 app-misc/ops-gt-1.2",
        "GLSA-202601-08 app-misc/ops-le-1.0",
    ] {
        assert!(portage.contains(expected), "{expected}: {portage:?}");
    }
    for unaffected in [
        "rev-b-2.0-r3",
        "rev-f-3.1-r5",
        "slotted-3.11.9",
        "slotted-3.10.1",
        "multi-b-2.1",
        "wins-4.2-r1",
        "archy-1",
        "ops-edge-1.0",
    ] {
        assert!(
            !portage
                .iter()
                .any(|l| l.ends_with(&format!("/{unaffected}"))),
            "{unaffected}: {portage:?}"
        );
    }
    // On another arch, the arch-limited advisory changes sides, for both.
    let on_x86: BTreeSet<String> = run_ok(
        Command::new(venv.join("bin/python"))
            .arg(&driver)
            .arg(&root)
            .arg(&glsas)
            .arg("x86"),
    )
    .lines()
    .map(str::to_string)
    .collect();
    let gib_x86: BTreeSet<String> =
        gib::build::audit::hits("x86", &packages, &[], &advisories.glsas)
            .into_iter()
            .map(|h| format!("{} {}-{}", h.id, h.package, h.installed))
            .collect();
    assert_eq!(gib_x86, on_x86);
    assert!(
        on_x86.contains("GLSA-202601-07 app-misc/archy-1"),
        "{on_x86:?}"
    );
}
