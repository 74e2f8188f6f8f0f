//! `gib build --push`, `gib push`, parents pulled from a registry (`from: host/repo:tag`) and
//! `--parents-from-registry`, end to end against the test registry of `registry_server`
//! (docker-registry with htpasswd and TLS from a test CA), checked with skopeo and podman.
//!
//! The images are `rootfs:` images (a busybox-static parent, children that add a file), so
//! no Portage is needed and every digest is reproducible under SOURCE_DATE_EPOCH.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::registry_server::{PASSWORD, Registry, USER, tail};
use crate::util::{
    Podman, as_test_user, gib_bin, make_pki, require_tool, run_ok, scratch_dir, test_user,
};

const SDE: &str = "1700000000";

/// A gib.yaml with `base` (busybox, tags 1 and latest) and `app` (base plus a file, tag 2),
/// pushed to `<registry>/gib`, with the registry's CA in `registries:` unless `ca` is false.
fn project(dir: &Path, registry: &Registry, ca: bool, extra: &str) -> PathBuf {
    let busybox = require_tool("busybox");
    std::fs::create_dir_all(dir.join("base/bin")).unwrap();
    std::fs::copy(&busybox, dir.join("base/bin/busybox")).unwrap();
    if !dir.join("base/bin/sh").exists() {
        std::os::unix::fs::symlink("busybox", dir.join("base/bin/sh")).unwrap();
    }
    // A file of another owner, which a rootless pull must keep (in its user namespace).
    std::fs::write(dir.join("base/owned"), "").unwrap();
    std::os::unix::fs::chown(dir.join("base/owned"), Some(1234), Some(1234)).unwrap();
    std::fs::create_dir_all(dir.join("app/etc")).unwrap();
    std::fs::write(dir.join("app/etc/message"), "hello from the child\n").unwrap();
    let registries = if ca {
        format!(
            "registries:\n  \"{}\":\n    ca_certificate: {}\n",
            registry.host(),
            registry.ca().display()
        )
    } else {
        String::new()
    };
    let file = dir.join("gib.yaml");
    std::fs::write(
        &file,
        format!(
            "registry: {}/gib\n{registries}images:\n  \
             base:\n    rootfs: ./base\n    tag: \"1\"\n    \
             cmd: [/bin/busybox, echo, hello from gib]\n  \
             app:\n    from: base\n    rootfs: ./app\n    tag: \"2\"\n    \
             entrypoint: [/bin/busybox]\n    cmd: [cat, /etc/message]\n{extra}",
            registry.host()
        ),
    )
    .unwrap();
    file
}

/// `gib <args…> -f FILE --cache-dir CACHE` with the registry's credentials file.
fn gib(registry: &Registry, auth: &str, file: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = registry.gib(auth);
    cmd.args(args)
        .arg("-f")
        .arg(file)
        .arg("--cache-dir")
        .arg(cache)
        .env("SOURCE_DATE_EPOCH", SDE);
    cmd
}

/// Run it, expect success, and parse the `--json` report into name -> image.
fn report(registry: &Registry, cmd: &mut Command) -> serde_json::Map<String, serde_json::Value> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&registry.log())
    );
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("the report is JSON");
    list.into_iter()
        .map(|image| (image["name"].as_str().unwrap().to_string(), image))
        .collect()
}

/// `podman pull` of `reference` with the test credentials and CA, then `podman run`; its
/// stdout.
fn pull_and_run(podman: &Podman, registry: &Registry, reference: &str) -> String {
    let remote = registry.reference(reference);
    run_ok(
        podman
            .command(&[
                "pull",
                "--creds",
                &format!("{USER}:{PASSWORD}"),
                "--cert-dir",
            ])
            .arg(registry.dir.join("certs"))
            .arg(format!("docker://{remote}")),
    );
    podman.run(&remote, &[])
}

fn digests(values: &serde_json::Value) -> Vec<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn build_push_and_push_reach_skopeo_and_podman_and_a_child_reuses_its_parents_blobs() {
    let dir = scratch_dir("push-build");
    let registry = Registry::start(dir.path());
    let file = project(
        dir.path(),
        &registry,
        true,
        &format!(
            "  pulled:\n    from: {}/gib/base:1\n    rootfs: ./app\n    tag: \"3\"\n    \
             test: /bin/busybox grep -q child /etc/message\n",
            registry.host()
        ),
    );
    let cache = dir.path().join("cache");

    // `gib build base --push`: both tags of base.
    let built = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &file,
            &cache,
            &["build", "base", "--push", "--json"],
        ),
    );
    let base = built["base"]["digest"].as_str().unwrap().to_string();
    assert_eq!(built["base"]["push"]["manifest_digest"], base.as_str());
    for tag in ["gib/base:1", "gib/base:latest"] {
        assert_eq!(registry.skopeo_digest(tag), Ok(base.clone()), "{tag}");
    }
    let base_blobs = digests(&built["base"]["push"]["uploaded"]);
    assert_eq!(base_blobs.len(), 2, "base's layer and config");

    // `gib push app`: base comes out the same (rootfs images are rewritten, deterministically)
    // and is already there; app's layer and config are the only uploads, base's layer is
    // mounted.
    let before = registry.upload_requests("gib/app").len();
    let pushed = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &file,
            &cache,
            &["push", "app", "--json"],
        ),
    );
    assert_eq!(pushed["base"]["digest"], base.as_str());
    assert!(digests(&pushed["base"]["push"]["uploaded"]).is_empty());
    let app = pushed["app"]["digest"].as_str().unwrap().to_string();
    let app_push = &pushed["app"]["push"];
    assert_eq!(digests(&app_push["uploaded"]).len(), 2, "{app_push}");
    let parent_layer = base_blobs
        .iter()
        .find(|d| !digests(&app_push["uploaded"]).contains(d))
        .unwrap();
    assert!(
        digests(&app_push["mounted"]).contains(parent_layer),
        "{app_push}"
    );
    // Plus app's SBOM, provenance and audit report (their empty config is mounted from
    // base's artifacts, like base's layer).
    let uploads = registry.upload_requests("gib/app");
    assert_eq!(uploads.len() - before, 2 + 3, "{uploads:#?}");
    for blob in &base_blobs {
        let hex = blob.trim_start_matches("sha256:");
        assert!(
            !uploads.iter().any(|l| l.contains(hex)),
            "a blob of base was uploaded to gib/app: {uploads:#?}"
        );
    }
    assert_eq!(registry.skopeo_digest("gib/app:2"), Ok(app.clone()));

    // podman pulls both with the same credentials and CA, and runs them.
    let podman = Podman::new(dir.path());
    for (reference, expected) in [
        ("gib/base:latest", "hello from gib"),
        ("gib/app:2", "hello from the child"),
    ] {
        let out = pull_and_run(&podman, &registry, reference);
        assert_eq!(out.trim(), expected, "{reference}");
    }

    // `from: <registry>/gib/base:1`: pulled, its layers unpacked for the test, and built on.
    let on_pulled = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &file,
            &dir.path().join("cache-pulled"),
            &["build", "pulled", "--json"],
        ),
    );
    assert_eq!(on_pulled.len(), 1);
    assert_eq!(on_pulled["pulled"]["reused"], false);
    let pulled_manifest = |cache: &str, digest: &serde_json::Value| -> serde_json::Value {
        let hex = digest.as_str().unwrap().trim_start_matches("sha256:");
        let path = dir.path().join(cache).join("blobs/sha256").join(hex);
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let by_tag = pulled_manifest("cache-pulled", &on_pulled["pulled"]["digest"]);
    assert_eq!(
        by_tag["annotations"]["org.opencontainers.image.base.digest"],
        base.as_str()
    );

    // The same parent pinned by digest: the same image but for the base name.
    let pinned = dir.path().join("pinned.yaml");
    std::fs::write(
        &pinned,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("gib/base:1\n", &format!("gib/base@{base}\n")),
    )
    .unwrap();
    let on_pinned = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &pinned,
            &dir.path().join("cache-pinned"),
            &["build", "pulled", "--json"],
        ),
    );
    let by_digest = pulled_manifest("cache-pinned", &on_pinned["pulled"]["digest"]);
    assert_eq!(by_digest["layers"], by_tag["layers"]);
    assert_eq!(
        by_digest["annotations"]["org.opencontainers.image.base.name"],
        registry.reference(&format!("gib/base@{base}"))
    );

    // `--parents-from-registry` on a clean cache: base is pulled, not built, and app comes out
    // with the digest of the full local build.
    let clean = dir.path().join("cache-clean");
    let out = gib(
        &registry,
        "auth.json",
        &file,
        &clean,
        &["build", "app", "--parents-from-registry", "--json"],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("Pulling {}", registry.reference("gib/base:1"))),
        "{stderr}"
    );
    let fleet: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let fleet_app = fleet.iter().find(|i| i["name"] == "app").unwrap();
    assert_eq!(fleet_app["digest"], app.as_str());
    assert!(
        !stderr.contains("Layering base"),
        "base was built: {stderr}"
    );
    assert_eq!(
        clean.join("pulled").read_dir().unwrap().count(),
        1,
        "base's layers are unpacked once, in the cache"
    );

    // The same as an unprivileged user: the layers are applied in its user namespace, so the
    // file of uid 1234 belongs to the 1234th id of the user's namespace (1233 past the start
    // of its /etc/subuid range, as id 0 is the user), and app comes out the same.
    let user = test_user();
    let user_cache = dir.path().join("cache-user");
    std::fs::create_dir(&user_cache).unwrap();
    run_ok(
        Command::new("chown")
            .arg(format!("{user}:{user}"))
            .arg(&user_cache),
    );
    let out = as_test_user(&gib_bin())
        .env("REGISTRY_AUTH_FILE", registry.dir.join("auth.json"))
        .env("SOURCE_DATE_EPOCH", SDE)
        .env("NO_COLOR", "1")
        .args(["build", "app", "--parents-from-registry", "--json", "-f"])
        .arg(&file)
        .arg("--cache-dir")
        .arg(&user_cache)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rootless: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let rootless_app = rootless.iter().find(|i| i["name"] == "app").unwrap();
    assert_eq!(rootless_app["digest"], app.as_str());
    let tree = user_cache
        .join("pulled")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let subuid_start: u32 = std::fs::read_to_string("/etc/subuid")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .and_then(|rest| rest.split(':').next())
        .and_then(|start| start.parse().ok())
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    let owned = std::fs::metadata(tree.join("owned")).unwrap();
    assert_eq!(owned.uid(), subuid_start + 1233);
    assert_eq!(
        std::fs::metadata(tree.join("bin/busybox")).unwrap().uid(),
        std::fs::metadata(&user_cache).unwrap().uid(),
        "root of the image is the user"
    );
}

/// Distribution 2.8 has no referrers API: the SBOM and the provenance are pushed by digest
/// and listed in the referrers tag schema's index (`sha256-<hex of the image digest>`),
/// which a second push leaves as it is.
#[test]
fn the_sbom_is_pushed_with_the_image_and_listed_under_its_referrers_tag() {
    let dir = scratch_dir("push-sbom");
    let registry = Registry::start(dir.path());
    let file = project(dir.path(), &registry, true, "");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("base.tar");
    let archive = archive.to_str().unwrap();
    let built = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &file,
            &cache,
            &["build", "base", "--push", "--json", "--archive", archive],
        ),
    );
    let image = built["base"]["digest"].as_str().unwrap().to_string();
    let sbom = built["base"]["sbom"].as_str().unwrap().to_string();
    let tag = format!("gib/base:{}", image.replacen(':', "-", 1));

    let index = registry.skopeo_raw(&tag);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    let listed = |artifact_type: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e["artifactType"] == artifact_type)
            .map(|e| e["digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        listed("application/spdx+json"),
        std::slice::from_ref(&sbom),
        "{index}"
    );

    // The provenance too: its statement, as the registry serves it, validates.
    let provenance = listed("application/vnd.in-toto+json");
    assert_eq!(provenance.len(), 1, "{index}");
    let artifact = registry.skopeo_raw(&format!("gib/base@{}", provenance[0]));
    assert_eq!(artifact["subject"]["digest"], image.as_str());
    let statement = dir.path().join("base.intoto.json");
    std::fs::write(
        &statement,
        registry.blob(
            "gib/base",
            artifact["layers"][0]["digest"].as_str().unwrap(),
        ),
    )
    .unwrap();
    let out = crate::provenance::validate_statements(std::slice::from_ref(&statement));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statement: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&statement).unwrap()).unwrap();
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        image.trim_start_matches("sha256:")
    );

    // The audit report beside it, pushed with the image as well.
    let audits = listed("application/vnd.gib.audit.v1+json");
    assert_eq!(audits.len(), 1, "{index}");
    let audit = registry.skopeo_raw(&format!("gib/base@{}", audits[0]));
    assert_eq!(audit["subject"]["digest"], image.as_str());

    let artifact = registry.skopeo_raw(&format!("gib/base@{sbom}"));
    assert_eq!(artifact["subject"]["digest"], image.as_str());
    assert_eq!(artifact["artifactType"], "application/spdx+json");
    let blob = artifact["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        registry.blob("gib/base", blob),
        std::fs::read(dir.path().join("base.tar.spdx.json")).unwrap(),
        "the registry's SBOM is the file next to the archive"
    );

    // `gib push` again: the same image and SBOM, so the index is not rewritten.
    let again = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &file,
            &cache,
            &["push", "base", "--json"],
        ),
    );
    assert_eq!(again["base"]["sbom"], sbom.as_str());
    assert_eq!(registry.skopeo_raw(&tag), index);
    let skipped = again["base"]["push"]["manifests_skipped"].to_string();
    assert!(skipped.contains(&tag), "{skipped}");
}

#[test]
fn push_failures_are_clear_and_never_print_the_secret() {
    let dir = scratch_dir("push-failures");
    let mut registry = Registry::start(dir.path());
    let file = project(dir.path(), &registry, true, "");
    let cache = dir.path().join("cache");
    let failure = |out: Output, code: i32| -> String {
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{text}");
        assert!(
            !text.contains(PASSWORD) && !text.contains("not-the-password"),
            "{text}"
        );
        text
    };
    let host = registry.host();

    let out = gib(&registry, "wrong-auth.json", &file, &cache, &["push"])
        .output()
        .unwrap();
    let text = failure(out, 1);
    assert!(
        text.contains(&format!("{host} rejected the credentials of `gib`")),
        "{text}"
    );

    // The CA is not in gib.yaml: the registry's certificate is not trusted.
    let untrusted = dir.path().join("untrusted");
    std::fs::create_dir_all(&untrusted).unwrap();
    let no_ca = project(&untrusted, &registry, false, "");
    let out = gib(&registry, "auth.json", &no_ca, &cache, &["push"])
        .output()
        .unwrap();
    let text = failure(out, 1);
    assert!(
        text.contains(&format!(
            "the TLS certificate of https://{host}/v2/ is not trusted"
        )),
        "{text}"
    );

    // A CA path that does not exist is the user's configuration: exit 2, with the place.
    let missing = std::fs::read_to_string(&file)
        .unwrap()
        .replace(&registry.ca().display().to_string(), "./no-such-ca.pem");
    std::fs::write(untrusted.join("gib.yaml"), missing).unwrap();
    let out = gib(
        &registry,
        "auth.json",
        &untrusted.join("gib.yaml"),
        &cache,
        &["push"],
    )
    .output()
    .unwrap();
    let text = failure(out, 2);
    assert!(text.contains("no-such-ca.pem"), "{text}");

    registry.stop();
    let out = gib(&registry, "auth.json", &file, &cache, &["build", "--push"])
        .output()
        .unwrap();
    let text = failure(out, 1);
    assert!(
        text.contains(&format!("cannot connect to https://{host}/v2/")),
        "{text}"
    );
}

#[test]
fn a_registry_killed_mid_push_moves_no_tag_and_a_second_push_completes() {
    let dir = scratch_dir("push-killed");
    let mut registry = Registry::start(dir.path());
    // A large incompressible file, so the upload is still running when the registry dies.
    let big = dir.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    run_ok(
        Command::new("head")
            .args(["-c", "134217728", "/dev/urandom"])
            .stdout(std::fs::File::create(big.join("noise")).unwrap()),
    );
    let file = project(
        dir.path(),
        &registry,
        true,
        "  big:\n    from: base\n    rootfs: ./big\n    tag: \"1\"\n",
    );
    let cache = dir.path().join("cache");
    let built = report(
        &registry,
        &mut gib(&registry, "auth.json", &file, &cache, &["build", "--json"]),
    );
    let big_digest = built["big"]["digest"].as_str().unwrap().to_string();

    let push = gib(&registry, "auth.json", &file, &cache, &["push", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    registry.wait_for_upload("gib/big");
    registry.stop();
    let out = push.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(&registry.host()), "{text}");
    assert!(text.contains("cannot push image big"), "{text}");

    registry.restart();
    // No tag points at the half-pushed image: big:1 does not exist yet.
    let seen = registry.skopeo_digest("gib/big:1");
    assert!(seen.is_err(), "big:1 exists after a failed push: {seen:?}");
    let pushed = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &file,
            &cache,
            &["push", "big", "--json"],
        ),
    );
    assert_eq!(pushed["big"]["digest"], big_digest.as_str());
    assert_eq!(registry.skopeo_digest("gib/big:1"), Ok(big_digest));
    eprintln!("killed push said: {text}");
}

/// The README's CI matrix step: `gib plan --json` piped to the same `jq` gives each level's
/// images, parents a level above their children.
#[test]
fn plan_json_levels_make_the_readme_ci_matrix() {
    let dir = scratch_dir("push-matrix");
    for tree in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join(tree)).unwrap();
    }
    let file = dir.path().join("gib.yaml");
    std::fs::write(
        &file,
        "registry: registry.example.org/mine\nimages:\n  \
         base:\n    rootfs: ./a\n    tag: \"1\"\n  \
         app:\n    from: base\n    rootfs: ./b\n    tag: \"2\"\n  \
         tool:\n    from: app\n    rootfs: ./b\n    tag: \"3\"\n  \
         other:\n    rootfs: ./b\n    tag: \"4\"\n  \
         ext:\n    from: registry.example.org/x/y:1\n    rootfs: ./b\n    tag: \"5\"\n",
    )
    .unwrap();
    let plan = run_ok(crate::util::gib().args(["plan", "--json", "-f"]).arg(&file));
    std::fs::write(dir.path().join("plan.json"), plan).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let step = readme
        .lines()
        .find(|l| l.contains("jq -c --argjson"))
        .expect("the README's matrix step");
    let filter = step.split('\'').nth(1).unwrap();
    let jq = require_tool("jq");
    let level = |n: u32| -> String {
        run_ok(
            Command::new(&jq)
                .args(["-c", "--argjson", "l", &n.to_string(), filter])
                .arg(dir.path().join("plan.json")),
        )
        .trim()
        .to_string()
    };
    assert_eq!(level(0), r#"["base","ext","other"]"#);
    assert_eq!(level(1), r#"["app"]"#);
    assert_eq!(level(2), r#"["tool"]"#);
}

/// Packages images on the mini stage3 (real Portage): a library image (no libc of its own: its
/// lint only warns) and a program on it,
/// pushed; podman runs the program from the registry; the program rebuilt alone with
/// `--parents-from-registry` on a clean cache (library pulled, its layers unpacked in the user
/// namespace) has the digest of the full build.
#[test]
fn packages_images_push_and_rebuild_on_a_pulled_parent_to_the_same_digest() {
    let dir = scratch_dir("push-packages");
    let registry = Registry::start(dir.path());
    let file = dir.path().join("gib.yaml");
    std::fs::write(
        &file,
        format!(
            "stage3:\n  path: {}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n\
             registry: {host}/gib\nregistries:\n  \"{host}\":\n    ca_certificate: {ca}\n\
             images:\n  \
             libs:\n    packages: [dev-libs/libgreet]\n    tag: \"1\"\n    \
             lint: {{fail: false}}\n  \
             greet:\n    from: libs\n    packages: [app-misc/greet]\n    tag: \"1.0\"\n    \
             entrypoint: [/usr/bin/greet]\n",
            crate::fixture::mini_stage3().display(),
            host = registry.host(),
            ca = registry.ca().display(),
        ),
    )
    .unwrap();
    let full = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &file,
            &dir.path().join("cache"),
            &["build", "--push", "--json"],
        ),
    );
    let greet = full["greet"]["digest"].as_str().unwrap().to_string();
    assert_eq!(registry.skopeo_digest("gib/greet:1.0"), Ok(greet.clone()));
    assert_eq!(
        registry.skopeo_digest("gib/libs:1"),
        Ok(full["libs"]["digest"].as_str().unwrap().to_string())
    );
    let podman = Podman::new(dir.path());
    let said = pull_and_run(&podman, &registry, "gib/greet:1.0");
    assert!(said.to_lowercase().contains("hello"), "{said}");

    let fleet = report(
        &registry,
        &mut gib(
            &registry,
            "auth.json",
            &file,
            &dir.path().join("cache-clean"),
            &["build", "greet", "--parents-from-registry", "--json"],
        ),
    );
    assert_eq!(fleet["libs"]["digest"], full["libs"]["digest"]);
    let rebuilt = fleet["greet"]["digest"].as_str().unwrap();
    if rebuilt != greet {
        // Portage records merge times in CONTENTS; until they are clamped to
        // SOURCE_DATE_EPOCH (the reproducible-builds work), that is the one difference
        // allowed. Everything else of the layer must be the same, byte for byte.
        let own_layer = |cache: &str, digest: &str| {
            let blobs = dir.path().join(cache).join("blobs/sha256");
            let manifest: serde_json::Value = serde_json::from_slice(
                &std::fs::read(blobs.join(digest.trim_start_matches("sha256:"))).unwrap(),
            )
            .unwrap();
            let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
                .to_string();
            layer_entries(&blobs.join(layer))
        };
        assert_eq!(
            own_layer("cache", &greet),
            own_layer("cache-clean", rebuilt),
            "the layers differ in more than CONTENTS times"
        );
    }
}

/// A gzip layer's entries: path -> (type, mode, uid, gid, content), with the trailing time of
/// each line of a CONTENTS file dropped.
fn layer_entries(blob: &Path) -> std::collections::BTreeMap<String, (u8, u32, u64, u64, Vec<u8>)> {
    use std::io::Read;
    let file = std::fs::File::open(blob).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
    let mut entries = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let header = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        if path.ends_with("/CONTENTS") {
            let text = String::from_utf8(content).unwrap();
            let lines: Vec<&str> = text
                .lines()
                .map(|l| match l.rsplit_once(' ') {
                    Some((rest, time)) if time.bytes().all(|b| b.is_ascii_digit()) => rest,
                    _ => l,
                })
                .collect();
            content = lines.join("\n").into_bytes();
        }
        entries.insert(
            path,
            (
                header.entry_type().as_byte(),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                content,
            ),
        );
    }
    entries
}

/// A registry's `ca_certificate` is trusted besides the system roots, as every
/// `ca_certificate` is: with an unrelated CA configured, a registry signed by a CA of the
/// system bundle (`SSL_CERT_FILE`) is still reached, and refused when neither trusts it.
#[test]
fn a_registrys_ca_certificate_is_trusted_besides_the_system_roots() {
    let dir = scratch_dir("push-ca-besides");
    let registry = Registry::start(dir.path());
    let unrelated = make_pki(&dir.path().join("unrelated"));
    let file = project(dir.path(), &registry, false, "");
    let text = std::fs::read_to_string(&file).unwrap().replacen(
        "images:\n",
        &format!(
            "registries:\n  \"{}\":\n    ca_certificate: {}\nimages:\n",
            registry.host(),
            unrelated.ca.display()
        ),
        1,
    );
    std::fs::write(&file, text).unwrap();
    let cache = dir.path().join("cache");
    let push = |system: &Path| {
        let mut cmd = gib(
            &registry,
            "auth.json",
            &file,
            &cache,
            &["build", "base", "--push", "--json"],
        );
        cmd.env("SSL_CERT_FILE", system);
        cmd
    };

    let out = push(&unrelated.ca).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");

    let built = report(&registry, &mut push(&registry.ca()));
    let digest = built["base"]["digest"].as_str().unwrap();
    assert_eq!(registry.skopeo_digest("gib/base:1").unwrap(), digest);
}
