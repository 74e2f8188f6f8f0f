//! gib.yaml handling through the real binary: every bad file exits 2 with
//! `FILE:LINE:COLUMN: message` on stderr; good files give a plan and a graph.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::{gib, scratch_dir};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(dir: &Path, args: &[&str]) -> Output {
    gib()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("cannot run gib")
}

/// Write `text` as gib.yaml, run `gib plan`, and check the exit code and the error line.
fn assert_rejected(text: &str, expected_error: &str) -> String {
    let dir = scratch_dir("config");
    write(dir.path(), "gib.yaml", text);
    let out = run(dir.path(), &["plan"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("error: {expected_error}")),
        "expected `error: {expected_error}` in stderr:\n{stderr}"
    );
    stderr
}

const STAGE3: &str = "stage3:\n  flavor: amd64-openrc\n";

#[test]
fn malformed_yaml() {
    assert_rejected(
        &format!("{STAGE3}images:\n  base: [sys-libs/glibc\n"),
        "gib.yaml:4:9: ",
    );
}

#[test]
fn wrong_type() {
    assert_rejected(
        &format!("{STAGE3}images:\n  base:\n    latest: [yes]\n"),
        "gib.yaml:5:13: expected a single value (not a list or mapping)",
    );
}

#[test]
fn unknown_key_with_did_you_mean() {
    let stderr = assert_rejected(
        &format!("{STAGE3}imges:\n  base: {{}}\n"),
        "gib.yaml:3:1: unknown key `imges`",
    );
    assert!(stderr.contains("hint: did you mean `images`?"), "{stderr}");
}

#[test]
fn from_naming_no_image() {
    let stderr = assert_rejected(
        &format!("{STAGE3}images:\n  base: {{}}\n  app:\n    from: bsae\n"),
        "gib.yaml:6:11: `from: bsae` names no image of this file",
    );
    assert!(stderr.contains("hint: did you mean `base`?"), "{stderr}");
}

#[test]
fn cycle() {
    assert_rejected(
        &format!("{STAGE3}images:\n  a:\n    from: c\n  b:\n    from: a\n  c:\n    from: b\n"),
        "gib.yaml:5:11: the images form a cycle: a -> c -> b -> a",
    );
}

#[test]
fn empty_atom() {
    assert_rejected(
        &format!("{STAGE3}images:\n  base:\n    packages: [sys-libs/glibc, \"\"]\n"),
        "gib.yaml:5:32: empty package atom",
    );
}

#[test]
fn invalid_atom() {
    assert_rejected(
        &format!("{STAGE3}images:\n  base:\n    packages: \">=sys-libs/glibc\"\n"),
        "gib.yaml:5:15: invalid package atom `>=sys-libs/glibc`: the operator `>=` needs a version",
    );
}

#[test]
fn missing_rootfs_path() {
    assert_rejected(
        "images:\n  imported:\n    rootfs: ./no-such-tree\n",
        "gib.yaml:3:13: rootfs `./no-such-tree` does not exist",
    );
}

#[test]
fn two_stage3_sources() {
    assert_rejected(
        "stage3:\n  flavor: amd64-openrc\n  path: ./stage3.tar.xz\nimages:\n  base: {}\n",
        "gib.yaml:3:9: `stage3` has both `flavor` and `path`; it needs exactly one source",
    );
}

#[test]
fn graph_reports_config_errors_too() {
    let dir = scratch_dir("config");
    write(dir.path(), "gib.yaml", "imges: {}\n");
    let out = run(dir.path(), &["graph"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gib.yaml:1:1: unknown key `imges`"));
}

#[test]
fn missing_file_is_a_usage_error() {
    let dir = scratch_dir("config");
    let out = run(dir.path(), &["plan", "-f", "nope.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read nope.yaml"));
}

fn plan_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "gib {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan --json prints JSON")
}

#[test]
fn predecessor_config_is_accepted_unchanged() {
    let dir = scratch_dir("config");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/predecessor/config.yaml");
    std::fs::copy(&example, dir.path().join("config.yaml")).unwrap();
    let plan = plan_json(dir.path(), &["plan", "-f", "config.yaml", "--json"]);
    assert_eq!(plan["order"], serde_json::json!(["python"]));
    let image = &plan["images"][0];
    assert_eq!(image["name"], "python");
    assert_eq!(image["from"], "scratch");
    assert_eq!(image["packages"], serde_json::json!(["dev-lang/python"]));
    assert_eq!(plan["stage3"]["flavor"], "amd64-openrc");
    let make_conf = image["portage"]["/etc/portage/make.conf"].as_str().unwrap();
    assert!(make_conf.contains("MAKEOPTS=\"-j12\""), "{make_conf}");
    assert!(
        make_conf.contains("USE=\"${USE} -systemd -openrc -man -bluetooth -X -wayland\""),
        "{make_conf}"
    );
}

const DAG: &str = "\
stage3: {flavor: amd64-openrc}
registry: registry.example.org/mine
images:
  web:
    from: base
    packages: www-servers/nginx
  app:
    from: python
    packages: [dev-python/flask]
  python:
    from: base
    packages: dev-lang/python
    tag: \"3.12\"
  base:
    packages: [sys-libs/glibc]
  tools:
    from: docker.io/library/alpine:3
    packages: app-misc/jq
";

#[test]
fn plan_json_orders_a_dag() {
    let dir = scratch_dir("config");
    write(dir.path(), "gib.yaml", DAG);
    let plan = plan_json(dir.path(), &["plan", "--json"]);
    assert_eq!(
        plan["order"],
        serde_json::json!(["base", "python", "app", "tools", "web"])
    );
    let python = &plan["images"][1];
    assert_eq!(python["depends_on"], serde_json::json!(["base"]));
    assert_eq!(python["tags"], serde_json::json!(["3.12"]));
    assert_eq!(
        python["references"],
        serde_json::json!(["registry.example.org/mine/python:3.12"])
    );
    assert_eq!(
        python["tag_rule"],
        serde_json::json!({"rule": "explicit", "tag": "3.12"})
    );
    let base = &plan["images"][0];
    assert_eq!(
        base["tag_rule"],
        serde_json::json!({"rule": "package-version", "package": "base"})
    );
    assert_eq!(
        base["references"],
        serde_json::json!(["registry.example.org/mine/base:latest"])
    );
    assert_eq!(plan["images"][3]["from_kind"], "registry");

    let selected = plan_json(dir.path(), &["plan", "app", "--json"]);
    assert_eq!(
        selected["order"],
        serde_json::json!(["base", "python", "app"])
    );

    let out = run(dir.path(), &["plan", "ap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: did you mean `app`?"));
}

#[test]
fn plan_text_shows_the_portage_files() {
    let dir = scratch_dir("config");
    write(dir.path(), "gib.yaml", DAG);
    let out = run(dir.path(), &["plan"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("order: base -> python -> app -> tools -> web"),
        "{text}"
    );
    assert!(
        text.contains("==> /etc/portage/repos.conf/zz-gib.conf <=="),
        "{text}"
    );
    assert!(
        text.contains("FEATURES=\"${FEATURES} -sandbox -usersandbox"),
        "{text}"
    );
}

#[test]
fn graph_mermaid_and_dot() {
    let dir = scratch_dir("config");
    write(dir.path(), "gib.yaml", DAG);
    let out = run(dir.path(), &["graph"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "graph TD\n  scratch([\"scratch\"])\n  image0[\"base\"]\n  image1[\"python\"]\n  \
         image2[\"app\"]\n  registry0[/\"docker.io/library/alpine:3\"/]\n  image3[\"tools\"]\n  \
         image4[\"web\"]\n  scratch --> image0\n  image0 --> image1\n  image1 --> image2\n  \
         registry0 --> image3\n  image0 --> image4\n"
    );
    let out = run(dir.path(), &["graph", "--format", "dot"]);
    assert!(out.status.success());
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.starts_with("digraph gib {\n"), "{dot}");
    assert!(dot.contains("  \"scratch\" -> \"base\";\n"), "{dot}");
    assert!(
        dot.contains("  \"docker.io/library/alpine:3\" -> \"tools\";\n"),
        "{dot}"
    );
    assert!(dot.contains("  \"python\" -> \"app\";\n"), "{dot}");
    assert!(dot.ends_with("}\n"), "{dot}");
}
