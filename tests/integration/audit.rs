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

const REASON: &str = "greet_name is never given untrusted input";

/// A project on the mini stage3 whose overlay `advisories` carries the fixture GLSAs (the
/// stage3's own tree stays as it is, so its cached build stays valid): base, lib (libgreet
/// 1.0, which GLSA-202601-01 marks vulnerable) and app (greet, on lib). `global` and
/// `lib_audit` are the `audit:` of the file and of lib, as YAML flow maps.
fn write_project(dir: &Path, global: &str, lib_audit: &str) -> PathBuf {
    let overlay = dir.join("advisories");
    fs::create_dir_all(overlay.join("profiles")).unwrap();
    fs::create_dir_all(overlay.join("metadata/glsa")).unwrap();
    fs::write(overlay.join("profiles/repo_name"), "advisories\n").unwrap();
    fs::write(
        overlay.join("metadata/layout.conf"),
        "masters = gentoo\nthin-manifests = true\n",
    )
    .unwrap();
    for file in fs::read_dir(fixture_glsas()).unwrap() {
        let file = file.unwrap().path();
        fs::copy(
            &file,
            overlay
                .join("metadata/glsa")
                .join(file.file_name().unwrap()),
        )
        .unwrap();
    }
    hostile_advisories(&overlay.join("metadata/glsa"), dir);
    let global = if global.is_empty() {
        String::new()
    } else {
        format!("audit: {global}\n")
    };
    let lib_audit = if lib_audit.is_empty() {
        String::new()
    } else {
        format!("    audit: {lib_audit}\n")
    };
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nrepositories:\n  - name: advisories\n    \
         sync_type: local\n    uri: {overlay}\nbuild:\n  threads: 2\n{global}images:\n\
         \x20 base:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout, sys-libs/glibc]\n\
         \x20 lib:\n    from: base\n    tag: t\n    packages: [dev-libs/libgreet]\n{lib_audit}\
         \x20 app:\n    from: lib\n    tag: t\n    packages: [app-misc/greet]\n",
        stage3 = mini_stage3().display(),
        overlay = overlay.display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

/// Advisory files no audit may trust: cut short, an entity-expansion bomb, one larger than
/// any real advisory, and a symlink to a file outside the repository.
fn hostile_advisories(glsa_dir: &Path, dir: &Path) {
    fs::write(
        glsa_dir.join("glsa-209901-01.xml"),
        "<glsa id=\"209901-01\"><title>",
    )
    .unwrap();
    let mut bomb = String::from("<?xml version=\"1.0\"?><!DOCTYPE glsa [<!ENTITY e0 \"lol\">");
    for level in 1..12 {
        let refs = format!("&e{};", level - 1).repeat(10);
        bomb.push_str(&format!("<!ENTITY e{level} \"{refs}\">"));
    }
    bomb.push_str("]><glsa id=\"209901-02\"><title>&e11;</title></glsa>");
    fs::write(glsa_dir.join("glsa-209901-02.xml"), bomb).unwrap();
    fs::write(glsa_dir.join("glsa-209901-03.xml"), vec![b' '; 3 << 20]).unwrap();
    let outside = dir.join("outside.xml");
    fs::write(&outside, "not to be read").unwrap();
    let link = glsa_dir.join("glsa-209901-04.xml");
    if !link.exists() {
        std::os::unix::fs::symlink(&outside, link).unwrap();
    }
}

/// gib said one warning per hostile advisory file, naming it.
fn assert_hostile_files_warned(said: &str) {
    for (file, why) in [
        ("glsa-209901-01.xml", "malformed XML"),
        ("glsa-209901-02.xml", "malformed XML"),
        ("glsa-209901-03.xml", "larger than"),
        ("glsa-209901-04.xml", "symbolic link (not followed)"),
    ] {
        let lines: Vec<&str> = said.lines().filter(|l| l.contains(file)).collect();
        assert_eq!(lines.len(), 1, "{file}: {said}");
        assert!(
            lines[0].starts_with("warning: ") && lines[0].contains(why),
            "{}",
            lines[0]
        );
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn gib_audit(runner: Runner, config: &Path, cache: &Path, args: &[&str]) -> Output {
    gib_by(runner)
        .arg("audit")
        .arg("-f")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn audit_build(runner: Runner) {
    let dir = work_dir(runner, "audit-build");
    let cache = dir.path().join("cache");
    let layout = dir.path().join("layout");
    let layout_arg = layout.to_str().unwrap();

    // The default policy (fail_on: high): lib ships a vulnerable libgreet and fails, with
    // the advisory's id, title and fixed version, leaving no entry and no output.
    let config = write_project(dir.path(), "", "");
    let out = gib_build(
        runner,
        &config,
        &cache,
        &["lib", "--oci-layout", layout_arg],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for part in [
        "GLSA-202601-01",
        "libgreet: Heap overflow in greet_name",
        "dev-libs/libgreet-1.0",
        "fixed in >=1.1",
        "the audit fails (fail_on: high)",
        "hint: ",
    ] {
        assert!(said.contains(part), "{part}: {said}");
    }
    assert!(!layout.join("index.json").exists(), "{said}");
    assert_hostile_files_warned(&said);
    let none = gib_audit(runner, &config, &cache, &["lib"]);
    assert!(
        text(&none).contains("no audited build of image lib"),
        "{}",
        text(&none)
    );

    // lib accepts the advisory with a reason (printed); app, its child, does not, and
    // reports its parent's package.
    let lib_ignores = format!("{{ignore: [{{id: GLSA-202601-01, reason: \"{REASON}\"}}]}}");
    let config = write_project(dir.path(), "", &lib_ignores);
    let out = gib_build(runner, &config, &cache, &["app"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(REASON), "{said}");
    assert!(
        said.contains("image app: the audit fails")
            && said.contains("dev-libs/libgreet-1.0 (a parent's), fixed in >=1.1"),
        "{said}"
    );

    // Accepted for the whole file: app is built, the hit listed in --json with its reason,
    // and the report is an artifact about app in the layout.
    let config = write_project(dir.path(), &lib_ignores, "");
    let out = gib_build(
        runner,
        &config,
        &cache,
        &["app", "--json", "--oci-layout", layout_arg],
    );
    assert_success(&Command::new("gib"), &out);
    let said = text(&out);
    assert!(said.contains(REASON), "{said}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let app = report
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "app")
        .unwrap_or_else(|| panic!("{report}"));
    let hits = app["audit"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{app}");
    assert_eq!(hits[0]["id"], "GLSA-202601-01");
    assert_eq!(hits[0]["severity"], "high");
    assert_eq!(hits[0]["package"], "dev-libs/libgreet");
    assert_eq!(hits[0]["installed"], "1.0");
    assert_eq!(hits[0]["fixed"], ">=1.1");
    assert_eq!(hits[0]["origin"], "parent");
    assert_eq!(hits[0]["ignored"], REASON);
    assert_eq!(app["audit"]["advisories"]["count"], 8);
    assert_eq!(app["audit"]["advisories"]["repositories"][0], "advisories");

    let index = read_json(&layout.join("index.json"));
    let audits: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == "application/vnd.gib.audit.v1+json")
        .collect();
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let about_app: Vec<Value> = audits
        .iter()
        .map(|a| read_json(&blob(a["digest"].as_str().unwrap())))
        .filter(|m| m["subject"]["digest"] == app["digest"])
        .collect();
    assert_eq!(about_app.len(), 1, "{index}");
    let stored = read_json(&blob(about_app[0]["layers"][0]["digest"].as_str().unwrap()));
    assert_eq!(stored["image"], "app");
    assert_eq!(stored["hits"], app["audit"]["hits"]);

    // `gib audit` works from the cache: with the file's ignore it passes and lists the hit;
    // with the default policy again, the stored report fails it (exit 1), and so does a
    // build that reuses lib and app.
    let out = gib_audit(runner, &config, &cache, &["app", "--json"]);
    assert_success(&Command::new("gib"), &out);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["hits"][0]["id"], "GLSA-202601-01", "{listed}");
    assert_eq!(listed[0]["hits"][0]["ignored"], REASON, "{listed}");
    // `gib inspect` shows the last build's audit, read from its stored artifact.
    let inspect = |json: bool| {
        let mut cmd = gib_by(runner);
        cmd.arg("inspect").arg("app").arg("--cache-dir").arg(&cache);
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let out = inspect(true);
    assert_success(&Command::new("gib inspect"), &out);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["audit"]["hits"], app["audit"]["hits"], "{shown}");
    let out = inspect(false);
    assert_success(&Command::new("gib inspect"), &out);
    assert!(text(&out).contains("GLSA-202601-01"), "{}", text(&out));
    let strict = write_project(dir.path(), "", "");
    let out = gib_audit(runner, &strict, &cache, &["app"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("parent  GLSA-202601-01 (high) libgreet: Heap overflow in greet_name"),
        "{said}"
    );
    let out = gib_build(runner, &strict, &cache, &["app", "--offline"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("Reusing") && said.contains("GLSA-202601-01"),
        "{said}"
    );
}

#[test]
fn a_vulnerable_package_fails_the_build_unless_ignored_with_a_reason() {
    audit_build(Runner::Root);
}

#[test]
fn a_vulnerable_package_fails_the_build_unless_ignored_with_a_reason_rootless() {
    audit_build(Runner::User);
}

#[test]
fn an_ignore_without_a_reason_is_an_error_at_its_line() {
    let dir = scratch_dir("audit-config");
    let plan = |config: &Path| {
        let out = gib_by(Runner::Root)
            .arg("plan")
            .arg("-f")
            .arg(config)
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let config = write_project(dir.path(), "{ignore: [{id: GLSA-202601-01}]}", "");
    let (code, said) = plan(&config);
    assert_eq!(code, Some(2), "{said}");
    let line = fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("audit:"))
        .unwrap()
        + 1;
    assert!(
        said.contains(&format!("gib.yaml:{line}:"))
            && said.contains("the ignore of GLSA-202601-01 has no reason"),
        "{said}"
    );
    let config = write_project(dir.path(), "{fail_on: hihg}", "");
    let (code, said) = plan(&config);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("`hihg` is not a valid `fail_on`") && said.contains("did you mean `high`"),
        "{said}"
    );
}
