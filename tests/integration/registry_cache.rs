//! The registry as the cache of record (issue 17): every pushed image carries its input key in
//! its manifest's annotations, and `gib build --push` reuses an image of the same inputs from
//! the registry instead of building it. Two runners with empty caches and one test registry
//! (`registry_server`): the first builds and pushes a chain on the mini stage3 (real
//! Portage), the second — the same gib.yaml in another directory, another cache, another
//! user — builds nothing and downloads no layer blob (counted in the registry's access log);
//! a USE flag of the chain's last package rebuilds that image and its descendant only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fixture::mini_stage3;
use crate::registry_server::{PASSWORD, Registry, USER, tail};
use crate::util::{Runner, as_test_user, gib_bin, run_ok, scratch_dir, test_user};

/// The chain: base (glibc, baselayout) -> lib (libgreet) -> app (greet, whose USE flag is
/// `greet_use`) -> top (a group account), all tagged `t` under `<registry>/gib`.
fn write_project(dir: &Path, registry: &Registry, greet_use: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n  \
         package_use_flags:\n    app-misc/greet: [{uses}]\n\
         registry: {host}/gib\nregistries:\n  \"{host}\":\n    ca_certificate: {ca}\nimages:\n\
         \x20 base:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout, sys-libs/glibc]\n\
         \x20 lib:\n    from: base\n    tag: t\n    packages: [dev-libs/libgreet]\n\
         \x20 app:\n    from: lib\n    tag: t\n    packages: [app-misc/greet]\n    \
         entrypoint: [/usr/bin/greet]\n\
         \x20 top:\n    from: app\n    tag: t\n    packages: [acct-group/gibsvc]\n",
        stage3 = mini_stage3().display(),
        uses = greet_use.join(", "),
        host = registry.host(),
        ca = registry.ca().display(),
    );
    let file = dir.join("gib.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

const IMAGES: [&str; 4] = ["base", "lib", "app", "top"];

/// `gib build <args> -f FILE --cache-dir CACHE --json` as `runner` with the registry's
/// credentials; (name -> report entry, stderr, wall time). Panics on failure.
fn build(
    runner: Runner,
    registry: &Registry,
    file: &Path,
    cache: &Path,
    args: &[&str],
) -> (serde_json::Map<String, serde_json::Value>, String, Duration) {
    let mut cmd = match runner {
        Runner::Root => registry.gib("auth.json"),
        Runner::User => {
            for dir in [file.parent().unwrap(), cache] {
                std::fs::create_dir_all(dir).unwrap();
                let user = test_user();
                run_ok(
                    Command::new("chown")
                        .arg("-R")
                        .arg(format!("{user}:{user}"))
                        .arg(dir),
                );
            }
            let mut cmd = as_test_user(&gib_bin());
            cmd.env("REGISTRY_AUTH_FILE", registry.dir.join("auth.json"))
                .env("NO_COLOR", "1");
            cmd
        }
    };
    cmd.arg("build")
        .args(args)
        .arg("--json")
        .arg("-f")
        .arg(file)
        .arg("--cache-dir")
        .arg(cache);
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stderr}\nregistry log:\n{}",
        tail(&registry.log())
    );
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("the report is JSON");
    let images = list
        .into_iter()
        .map(|image| (image["name"].as_str().unwrap().to_string(), image))
        .collect();
    (images, stderr, elapsed)
}

/// How the run got each image of the chain (`built`, `registry`, …).
fn hows(report: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    IMAGES
        .iter()
        .map(|name| {
            let how = report[*name]["how"].as_str().unwrap_or("absent");
            (name.to_string(), how.to_string())
        })
        .collect()
}

fn all(how: &str) -> Vec<(String, String)> {
    IMAGES
        .iter()
        .map(|name| (name.to_string(), how.to_string()))
        .collect()
}

/// The digests of every layer blob of the chain's images in the registry.
fn layer_digests(registry: &Registry) -> Vec<String> {
    IMAGES
        .iter()
        .flat_map(|name| {
            let manifest = registry.skopeo_raw(&format!("gib/{name}:t"));
            manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The access-log lines since `mark` (a length of the log) that GET one of `blobs`.
fn blob_gets(registry: &Registry, mark: usize, blobs: &[String]) -> Vec<String> {
    registry.log()[mark..]
        .lines()
        .filter(|line| {
            line.contains("\"GET /v2/")
                && blobs.iter().any(|d| line.contains(&format!("/blobs/{d}")))
        })
        .map(str::to_string)
        .collect()
}

fn input_key(registry: &Registry, name: &str) -> String {
    let manifest = registry.skopeo_raw(&format!("gib/{name}:t"));
    manifest["annotations"]["dev.gib.input-key"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no input key: {manifest}"))
        .to_string()
}

#[test]
fn a_second_runner_with_an_empty_cache_reuses_every_unchanged_image_from_the_registry() {
    let dir = scratch_dir("registry-cache");
    let registry = Registry::start(dir.path());

    // Runner 1 (root): builds and pushes the chain, and writes it to a layout too.
    let one = write_project(&dir.path().join("one"), &registry, &["loud"]);
    let layout = dir.path().join("one/layout");
    let (first, stderr, _) = build(
        Runner::Root,
        &registry,
        &one,
        &dir.path().join("one/cache"),
        &["--push", "--oci-layout", layout.to_str().unwrap()],
    );
    assert_eq!(hows(&first), all("built"), "{stderr}");
    let digest = |report: &serde_json::Map<String, serde_json::Value>, name: &str| {
        report[name]["digest"].as_str().unwrap().to_string()
    };
    let keys: Vec<String> = IMAGES.iter().map(|n| input_key(&registry, n)).collect();
    for name in IMAGES {
        // The key is in the manifest, so the layout and the registry hold the same digest.
        assert_eq!(
            registry.skopeo_digest(&format!("gib/{name}:t")),
            Ok(digest(&first, name)),
            "{name}"
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    for name in IMAGES {
        let reference = format!("{}/gib/{name}:t", registry.host());
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference.as_str())
            .unwrap_or_else(|| panic!("{reference} is not in the layout: {index}"));
        assert_eq!(entry["digest"], digest(&first, name).as_str());
    }

    // Runner 2 (the test user): the same gib.yaml and gib.lock (committed, as CI has them)
    // in another dir, an empty cache. Nothing is built, no layer blob is downloaded, every
    // image is reported reused from the registry.
    let layers = layer_digests(&registry);
    let mark = registry.log().len();
    let two = write_project(&dir.path().join("two"), &registry, &["loud"]);
    std::fs::copy(
        dir.path().join("one/gib.lock"),
        dir.path().join("two/gib.lock"),
    )
    .unwrap();
    let two_cache = dir.path().join("two/cache");
    let (second, stderr, elapsed) = build(
        Runner::User,
        &registry,
        &two,
        &two_cache,
        &["--push", "--locked"],
    );
    eprintln!("runner 2, unchanged chain, empty cache: {elapsed:.1?}");
    assert_eq!(hows(&second), all("registry"), "{stderr}");
    for name in IMAGES {
        assert_eq!(digest(&second, name), digest(&first, name), "{name}");
        assert!(
            stderr.contains(&format!(
                "{name} {} (reused from registry)",
                digest(&first, name)
            )),
            "{stderr}"
        );
        assert!(
            second[name]["push"]["uploaded"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    assert!(!stderr.contains("Building"), "{stderr}");
    assert_eq!(blob_gets(&registry, mark, &layers), Vec::<String>::new());
    let entries = |kind: &str| {
        std::fs::read_dir(two_cache.join(kind))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(
        (entries("images"), entries("pulled")),
        (0, 0),
        "nothing built or unpacked"
    );
    assert!(
        elapsed < Duration::from_secs(10),
        "an unchanged chain took {elapsed:?}"
    );

    // A CI job of one image (`--parents-from-registry --push`) on another empty cache: the
    // ancestors come as manifests and configs, the image is reused; still no layer blob.
    let mark = registry.log().len();
    let (job, stderr, elapsed) = build(
        Runner::Root,
        &registry,
        &two,
        &dir.path().join("two/cache-job"),
        &["top", "--parents-from-registry", "--push"],
    );
    eprintln!("one CI job, unchanged image, empty cache: {elapsed:.1?}");
    assert_eq!(
        hows(&job),
        vec![
            ("base".into(), "pulled".into()),
            ("lib".into(), "pulled".into()),
            ("app".into(), "pulled".into()),
            ("top".into(), "registry".into()),
        ],
        "{stderr}"
    );
    assert_eq!(digest(&job, "top"), digest(&first, "top"));
    assert_eq!(blob_gets(&registry, mark, &layers), Vec::<String>::new());

    // A layout needs the layers: they are pulled (verified), and the layout holds the
    // registry's digests.
    let mark = registry.log().len();
    let layout = dir.path().join("two/layout");
    let (files, stderr, _) = build(
        Runner::Root,
        &registry,
        &two,
        &dir.path().join("two/cache-layout"),
        &["--push", "--oci-layout", layout.to_str().unwrap()],
    );
    assert_eq!(hows(&files), all("registry"), "{stderr}");
    assert!(!blob_gets(&registry, mark, &layers).is_empty());
    for name in IMAGES {
        let manifest = layout
            .join("blobs/sha256")
            .join(digest(&first, name).trim_start_matches("sha256:"));
        assert!(
            manifest.exists(),
            "{name}: {} is missing",
            manifest.display()
        );
    }
    for layer in &layers {
        let blob = layout
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"));
        assert!(blob.exists(), "layer {layer} is missing from the layout");
    }

    // Runner 2 changes greet's USE flag: only app (which merges greet) and top (its child)
    // build, on lib pulled from the registry; base and lib stay the registry's.
    let two = write_project(&dir.path().join("two"), &registry, &[]);
    let (third, stderr, _) = build(Runner::User, &registry, &two, &two_cache, &["--push"]);
    assert_eq!(
        hows(&third),
        vec![
            ("base".into(), "registry".into()),
            ("lib".into(), "registry".into()),
            ("app".into(), "built".into()),
            ("top".into(), "built".into()),
        ],
        "{stderr}"
    );
    for (index, name) in IMAGES.iter().enumerate() {
        let changed = index >= 2;
        assert_eq!(
            digest(&third, name) != digest(&first, name),
            changed,
            "{name}"
        );
        assert_eq!(input_key(&registry, name) != keys[index], changed, "{name}");
        assert_eq!(
            registry.skopeo_digest(&format!("gib/{name}:t")),
            Ok(digest(&third, name)),
            "{name}"
        );
    }
}

#[test]
fn the_same_file_in_two_dirs_with_two_caches_gives_the_same_keys_and_digests() {
    let dir = scratch_dir("registry-cache-keys");
    let registry = Registry::start(dir.path());
    let mut runs = Vec::new();
    for at in ["one", "elsewhere/two"] {
        let file = write_project(&dir.path().join(at), &registry, &["loud"]);
        let layout = dir.path().join(at).join("layout");
        let (report, stderr, _) = build(
            Runner::Root,
            &registry,
            &file,
            &dir.path().join(at).join("cache"),
            &["--oci-layout", layout.to_str().unwrap()],
        );
        assert_eq!(hows(&report), all("built"), "{stderr}");
        let keys: Vec<serde_json::Value> = IMAGES
            .iter()
            .map(|name| {
                let digest = report[*name]["digest"].as_str().unwrap();
                let blob = layout
                    .join("blobs/sha256")
                    .join(digest.trim_start_matches("sha256:"));
                let manifest: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
                serde_json::json!([digest, manifest["annotations"]["dev.gib.input-key"]])
            })
            .collect();
        assert!(keys.iter().all(|k| k[1].is_string()), "{keys:?}");
        runs.push(keys);
    }
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn a_malformed_key_annotation_in_the_registry_is_not_trusted() {
    let dir = scratch_dir("registry-cache-hostile");
    let registry = Registry::start(dir.path());
    let one = write_project(&dir.path().join("one"), &registry, &["loud"]);
    let (first, stderr, _) = build(
        Runner::Root,
        &registry,
        &one,
        &dir.path().join("one/cache"),
        &["--push", "base"],
    );
    assert_eq!(first["base"]["how"], "built", "{stderr}");

    // base's tag now names a manifest of the same blobs whose key annotation is no key.
    let mut manifest = registry.skopeo_raw("gib/base:t");
    manifest["annotations"]["dev.gib.input-key"] = "../../not-a-key\u{1b}[2J".into();
    let body = dir.path().join("hostile-manifest.json");
    std::fs::write(&body, serde_json::to_vec(&manifest).unwrap()).unwrap();
    run_ok(
        Command::new("curl")
            .args(["--fail", "--silent", "--show-error", "--cacert"])
            .arg(registry.ca())
            .args(["--user", &format!("{USER}:{PASSWORD}"), "-X", "PUT"])
            .args([
                "-H",
                "content-type: application/vnd.oci.image.manifest.v1+json",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg(format!(
                "https://{}/v2/gib/base/manifests/t",
                registry.host()
            )),
    );

    // An empty cache: base is built again (with a one-line warning that names the tag and
    // says why), and its tag is put right; nothing is left of the bad key.
    let two = write_project(&dir.path().join("two"), &registry, &["loud"]);
    let (second, stderr, elapsed) = build(
        Runner::Root,
        &registry,
        &two,
        &dir.path().join("two/cache"),
        &["--push", "base"],
    );
    assert_eq!(second["base"]["how"], "built", "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("malformed input key"))
        .unwrap_or_else(|| panic!("no warning:\n{stderr}"));
    assert!(
        warning.contains("gib/base:t") && warning.contains("dev.gib.input-key"),
        "{warning}"
    );
    assert!(!warning.contains('\u{1b}'), "{warning}");
    assert_eq!(second["base"]["digest"], first["base"]["digest"]);
    assert_eq!(
        registry.skopeo_digest("gib/base:t"),
        Ok(first["base"]["digest"].as_str().unwrap().to_string())
    );
    assert!(elapsed < Duration::from_secs(600), "{elapsed:?}");
}

/// A registry that lies about its manifest (its `Docker-Content-Digest` is not the digest of
/// what it sends) is never trusted: asked whether it has the image to be built, it gets a
/// warning and the image is built; asked for a parent, gib fails with one clear error. Both
/// within bounded time, as root and as the test user, and nothing it sent is kept. A fake
/// registry (`hostile_network::Fake`): no real registry lies on purpose.
#[test]
fn a_registry_lying_about_its_manifest_is_not_trusted() {
    use crate::hostile_network::{BOUND, Fake, Reply, run_bounded};
    use crate::sandbox::{EVERYONE, gib_as, give_to};

    let dir = scratch_dir("registry-cache-lying");
    // Any manifest will do: it is refused before it is read.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}"#;
    let lie = format!("sha256:{}", "1".repeat(64));
    let fake = Fake::start(move |req| {
        if req.target == "/v2/" {
            return Reply::status(200);
        }
        if req.method == "GET" && req.target.contains("/manifests/") {
            return Reply::with(
                200,
                &[
                    ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                    ("Docker-Content-Digest", &lie),
                ],
                manifest,
            );
        }
        Reply::status(404)
    });
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let file = project.join("gib.yaml");
    std::fs::write(
        &file,
        format!(
            "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\n\
             registry: {host}/gib\nregistries:\n  \"{host}\":\n    plain_http: true\nimages:\n  \
             top:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout]\n  \
             app:\n    from: top\n    tag: t\n    packages: [acct-group/gibsvc]\n",
            stage3 = mini_stage3().display(),
            host = fake.origin()
        ),
    )
    .unwrap();
    for who in EVERYONE {
        give_to(who, &project);
        let cache = dir.path().join(format!("cache-{who:?}"));
        std::fs::create_dir_all(&cache).unwrap();
        give_to(who, &cache);
        let command = |image: &str| {
            let mut cmd = gib_as(who);
            cmd.env("GIB_HTTP_CONNECT_TIMEOUT", "2")
                .env("GIB_HTTP_STALL_TIMEOUT", "1")
                .env("NO_COLOR", "1")
                .args(["build", image, "--parents-from-registry", "--json", "-f"])
                .arg(&file)
                .arg("--cache-dir")
                .arg(&cache);
            cmd
        };

        // top itself: looked up, refused with a warning, built (an emerge: longer than the
        // network bound).
        let started = Instant::now();
        let out = command("top").output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{who:?}: {stderr}");
        assert!(took < Duration::from_secs(600), "{who:?}: {took:?}");
        let warning = stderr
            .lines()
            .find(|l| l.contains("cannot reuse"))
            .unwrap_or_else(|| panic!("{who:?}: no warning:\n{stderr}"));
        assert!(
            warning.contains("digest mismatch") && warning.contains(&fake.origin()),
            "{who:?}: {warning}"
        );
        let report: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report[0]["how"], "built", "{who:?}");

        // app's parent top is pulled from it: one clear error, no parent taken.
        let (out, took) = run_bounded(&mut command("app"));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{who:?}: {stderr}");
        assert!(took < BOUND, "{who:?}: {took:?}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{who:?}: {stderr}");
        assert!(
            errors[0].contains("gib/top:t") && stderr.contains("digest mismatch"),
            "{who:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{who:?}: {stderr}");

        // What the liar sent was never stored: every blob in the cache is what its name says.
        let blobs = cache.join("blobs/sha256");
        for entry in std::fs::read_dir(&blobs).unwrap().flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            assert_eq!(
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
                name,
                "{who:?}"
            );
        }
    }
    assert!(
        fake.seen()
            .iter()
            .any(|r| r.target.ends_with("/gib/top/manifests/t")),
        "gib never asked the registry"
    );
}
