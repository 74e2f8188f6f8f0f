use super::*;
use crate::config;

fn load(text: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gib.yaml");
    std::fs::write(&path, text).unwrap();
    config::load(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

const DAG: &str = "\
stage3: {flavor: amd64-openrc}
registry: registry.example.org/mine/
build: {threads: 3}
images:
  zed:
    from: base
    packages: [www-servers/nginx]
  python:
    from: base
    packages: dev-lang/python
    tag: \"3.12\"
  base:
    from: scratch
    packages: [sys-libs/glibc]
  app:
    from: python
    packages: [dev-python/flask]
    latest: true
  alpine:
    from: docker.io/library/alpine:3
    packages: [app-misc/jq]
";

fn names(plan: &Plan) -> Vec<&str> {
    plan.order()
}

#[test]
fn parents_first_ties_by_name() {
    let plan = Plan::resolve(&load(DAG), &[]).unwrap();
    assert_eq!(names(&plan), ["alpine", "base", "python", "app", "zed"]);
}

#[test]
fn selection_brings_ancestors_only() {
    let config = load(DAG);
    let plan = Plan::resolve(&config, &["app".to_string()]).unwrap();
    assert_eq!(names(&plan), ["base", "python", "app"]);
    let plan = Plan::resolve(&config, &["zed".to_string(), "alpine".to_string()]).unwrap();
    assert_eq!(names(&plan), ["alpine", "base", "zed"]);
}

#[test]
fn unknown_selection_is_a_user_error_with_a_hint() {
    let err = Plan::resolve(&load(DAG), &["pyton".to_string()]).unwrap_err();
    let user = crate::printer::user_error(&err).expect("a UserError");
    assert_eq!(user.message, "no image `pyton` in gib.yaml");
    assert_eq!(
        crate::printer::hints(&err),
        ["did you mean `python`?".to_string()]
    );
}

#[test]
fn tags_and_references() {
    let plan = Plan::resolve(&load(DAG), &[]).unwrap();
    let image = |name: &str| plan.images.iter().find(|i| i.name == name).unwrap();

    let base = image("base");
    assert_eq!(
        base.tag_rule,
        TagRule::PackageVersion {
            package: "base".into()
        }
    );
    assert!(base.latest, "scratch images get latest by default");
    assert_eq!(
        base.references("20261120"),
        [
            "registry.example.org/mine/base:20261120",
            "registry.example.org/mine/base:latest"
        ]
    );

    let python = image("python");
    assert_eq!(python.tag_rule, TagRule::Explicit("3.12".into()));
    assert_eq!(python.known_tag(), Some("3.12"));
    assert!(!python.latest);
    assert_eq!(
        python.references("3.12"),
        ["registry.example.org/mine/python:3.12"]
    );
    assert_eq!(python.depends_on(), Some("base"));

    assert!(image("app").latest);
    assert_eq!(
        image("alpine").parent,
        Parent::Registry("docker.io/library/alpine:3".into())
    );
    assert_eq!(image("alpine").depends_on(), None);
}

#[test]
fn reference_without_registry() {
    let config =
        load("stage3: {flavor: amd64-openrc}\nimages:\n  base:\n    packages: sys-libs/glibc\n");
    let plan = Plan::resolve(&config, &[]).unwrap();
    assert_eq!(plan.images[0].reference("1.0"), "base:1.0");
}

#[test]
fn portage_files_follow_the_build_settings() {
    let plan = Plan::resolve(&load(DAG), &[]).unwrap();
    let make_conf = &plan.images[0].portage.make_conf;
    assert!(make_conf.contains("MAKEOPTS=\"-j3\"\n"), "{make_conf}");
    assert!(
        make_conf.contains("EMERGE_DEFAULT_OPTS=\"--jobs=3 --load-average=3\"\n"),
        "{make_conf}"
    );
}

#[test]
fn rootfs_images_tag_by_snapshot_date() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tree")).unwrap();
    let path = dir.path().join("gib.yaml");
    std::fs::write(&path, "images:\n  imported:\n    rootfs: ./tree\n").unwrap();
    let config = config::load(&path).unwrap();
    assert_eq!(config.stage3, None, "rootfs-only files need no stage3");
    let plan = Plan::resolve(&config, &[]).unwrap();
    assert_eq!(plan.images[0].tag_rule, TagRule::SnapshotDate);
    assert_eq!(
        plan.images[0].kind,
        BuildKind::Rootfs(dir.path().canonicalize().unwrap().join("tree"))
    );
    assert_eq!(plan.images[0].kind.label(), "rootfs");
}

#[test]
fn trimming_switches_are_the_images_else_the_builds() {
    let config = load(
        "stage3: {flavor: amd64-openrc}
build: {keep_headers: true, keep_package_db: false}
images:
  base:
    packages: [sys-libs/glibc]
  dev:
    from: base
    packages: [sys-devel/gcc]
    keep_headers: false
    keep_static_libs: true
    keep_package_db: true
",
    );
    let plan = Plan::resolve(&config, &[]).unwrap();
    let switches = |name: &str| {
        let image = plan.images.iter().find(|i| i.name == name).unwrap();
        (
            image.keep_headers,
            image.keep_static_libs,
            image.keep_package_db,
        )
    };
    assert_eq!(switches("base"), (true, false, false), "build's");
    assert_eq!(switches("dev"), (false, true, true), "the image's own");
}

#[test]
fn an_images_audit_replaces_fail_on_and_adds_its_ignores() {
    let config = load(
        "stage3: {flavor: amd64-openrc}\n\
         audit: {ignore: [{id: GLSA-202401-01, reason: everywhere}]}\n\
         images:\n  base:\n    packages: [sys-libs/glibc]\n  app:\n    from: base\n    \
         packages: [app-misc/jq]\n    audit: {fail_on: never, ignore: [{id: 202402-02, reason: here}]}\n",
    );
    let plan = Plan::resolve(&config, &[]).unwrap();
    let audit = |name: &str| {
        plan.images
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.audit.clone())
            .unwrap()
    };
    let base = audit("base");
    assert_eq!(base.fail_on, Some(config::Severity::High));
    assert_eq!(base.ignored("GLSA-202401-01"), Some("everywhere"));
    let app = audit("app");
    assert_eq!(app.fail_on, None);
    assert_eq!(app.ignored("GLSA-202401-01"), Some("everywhere"));
    assert_eq!(app.ignored("GLSA-202402-02"), Some("here"));
    assert_eq!(base.ignored("GLSA-202402-02"), None);
}

#[test]
fn lint_policy_is_the_images_over_the_builds() {
    let config = load(
        "stage3: {flavor: amd64-openrc}
build: {lint: {fail: false, ignore: [/opt/vendor/]}}
images:
  base:
    packages: [sys-libs/glibc]
  strict:
    from: base
    packages: [app-misc/hello]
    lint: {fail: true, ignore: [/usr/bin/ldd]}
  plain:
    packages: [app-misc/hello]
    lint: {}
",
    );
    let plan = Plan::resolve(&config, &[]).unwrap();
    let policy = |name: &str| {
        plan.images
            .iter()
            .find(|i| i.name == name)
            .unwrap()
            .lint
            .clone()
    };
    assert_eq!(
        policy("base"),
        LintPolicy {
            fail: false,
            ignore: vec!["/opt/vendor".into()]
        }
    );
    let strict = policy("strict");
    assert_eq!(
        strict,
        LintPolicy {
            fail: true,
            ignore: vec!["/opt/vendor".into(), "/usr/bin/ldd".into()]
        }
    );
    assert!(strict.ignores("/opt/vendor/bin/x") && strict.ignores("/usr/bin/ldd"));
    assert!(!strict.ignores("/opt/vendorx") && !strict.ignores("/usr/bin/ldd2"));
    assert!(!policy("plain").fail);
    // Without any `lint:`, missing libraries fail the build.
    let config = load("stage3: {flavor: amd64-openrc}\nimages:\n  a:\n    packages: [x/y]\n");
    let plan = Plan::resolve(&config, &[]).unwrap();
    assert_eq!(
        plan.images[0].lint,
        LintPolicy {
            fail: true,
            ignore: Vec::new()
        }
    );
}

#[test]
fn a_run_of_one_platform_builds_in_its_stage3() {
    let text = "stage3: {flavor: amd64-openrc}\nplatforms: [linux/amd64, linux/arm64]\n\
                build: {binhost: official}\nimages:\n  base:\n    packages: [sys-libs/glibc]\n";
    let flavor = |plan: &Plan| match &plan.stage3 {
        Some(Stage3::Flavor { flavor, .. }) => flavor.clone(),
        other => panic!("{other:?}"),
    };
    // Both platforms: the file's stage3, the host's (the run is refused before building).
    let both = Plan::resolve(&load(text), &[]).unwrap();
    assert_eq!(flavor(&both), "amd64-openrc");
    assert_eq!(both.platform(), Platform::host());

    let mut config = load(text);
    config.keep_only_platform("linux/arm64").unwrap();
    let leg = Plan::resolve(&config, &[]).unwrap();
    assert_eq!(flavor(&leg), "arm64-openrc");
    assert_eq!(leg.platform().to_string(), "linux/arm64");
    // The official binhost of the leg's architecture.
    let binrepos = &leg.images[0].portage.binrepos_conf;
    assert!(binrepos.contains("/arm64/"), "{binrepos}");

    let arm_only = load(&text.replace("[linux/amd64, linux/arm64]", "[linux/arm64]"));
    assert_eq!(
        flavor(&Plan::resolve(&arm_only, &[]).unwrap()),
        "arm64-openrc"
    );
}
