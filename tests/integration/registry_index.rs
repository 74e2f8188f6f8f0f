//! Parents pulled from a registry whose reference names an image index or a Docker manifest
//! list (issue 18, item 4): each platform's child builds on that platform's manifest, and an
//! index without the platform, or lying about it, is refused before any layer is pulled.
//!
//! The per-platform parents are gib's; the indexes joining them are podman's (`podman
//! manifest`), so gib's reading of an index is checked against a tool nobody here wrote.
//! The cheap cases use `rootfs:` images (no Portage); the greet chain under qemu is the
//! real thing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::registry_server::{PASSWORD, Registry, USER, tail};
use crate::util::{Podman, Runner, gib_bin, require_tool, run_ok, scratch_dir, work_dir};

const SDE: &str = "1700000000";

/// `gib <args…> -f file --cache-dir cache` as `runner`, with only the registry's credentials.
fn gib(runner: Runner, registry: &Registry, file: &Path, cache: &Path, args: &[&str]) -> Output {
    let mut cmd = match runner {
        Runner::Root => registry.gib("auth.json"),
        Runner::User => {
            let mut cmd = crate::util::as_test_user(&gib_bin());
            let home = registry.dir.join("home");
            std::fs::create_dir_all(&home).unwrap();
            cmd.env("NO_COLOR", "1")
                .env("HOME", &home)
                .env("DOCKER_CONFIG", home.join(".docker"))
                .env("REGISTRY_AUTH_FILE", registry.dir.join("auth.json"))
                .env_remove("XDG_RUNTIME_DIR")
                .env_remove("XDG_CONFIG_HOME");
            cmd
        }
    };
    cmd.args(args)
        .arg("-f")
        .arg(file)
        .arg("--cache-dir")
        .arg(cache)
        .env("SOURCE_DATE_EPOCH", SDE)
        .output()
        .unwrap()
}

fn gib_ok(registry: &Registry, file: &Path, cache: &Path, args: &[&str]) {
    let out = gib(Runner::Root, registry, file, cache, args);
    assert!(
        out.status.success(),
        "gib {args:?} failed:\n{}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&registry.log())
    );
}

fn skopeo(registry: &Registry) -> Command {
    let mut cmd = Command::new(require_tool("skopeo"));
    cmd.env("REGISTRY_AUTH_FILE", registry.dir.join("auth.json"));
    cmd
}

/// `skopeo copy` of image `name` of an OCI layout to `<registry>/<repo_tag>`.
fn copy_to_registry(registry: &Registry, layout: &Path, name: &str, repo_tag: &str) {
    run_ok(
        skopeo(registry)
            .args(["copy", "--dest-cert-dir"])
            .arg(registry.dir.join("certs"))
            .arg(format!("oci:{}:{name}", layout.display()))
            .arg(format!("docker://{}", registry.reference(repo_tag))),
    );
}

/// podman's manifest list of `entries` (a reference in the registry and extra `podman
/// manifest add` flags), pushed to `<registry>/<repo_tag>` as `format` (`oci` or `v2s2`).
fn push_index(
    podman: &Podman,
    registry: &Registry,
    entries: &[(&str, &[&str])],
    repo_tag: &str,
    format: &str,
) {
    let list = format!("localhost/list-{}", repo_tag.replace([':', '/'], "-"));
    run_ok(&mut podman.command(&["manifest", "create", &list]));
    let creds = format!("{USER}:{PASSWORD}");
    let certs = registry.dir.join("certs");
    for (reference, flags) in entries {
        run_ok(
            podman
                .command(&["manifest", "add", "--creds", &creds, "--cert-dir"])
                .arg(&certs)
                .args(*flags)
                .arg(&list)
                .arg(format!("docker://{}", registry.reference(reference))),
        );
    }
    run_ok(
        podman
            .command(&["manifest", "push", "--all", "--format", format])
            .args(["--creds", &creds, "--cert-dir"])
            .arg(&certs)
            .arg(&list)
            .arg(format!("docker://{}", registry.reference(repo_tag))),
    );
}

/// The `(architecture, manifest digest)` entries of the index under `repo_tag`, which must
/// have `media_type`.
fn index_entries(registry: &Registry, repo_tag: &str, media_type: &str) -> Vec<(String, String)> {
    let index = registry.skopeo_raw(repo_tag);
    assert_eq!(index["mediaType"], media_type, "{index}");
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The layer digests of a manifest.
fn layer_digests(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Image `name` of an OCI layout: its manifest and its config.
fn layout_image(layout: &Path, name: &str) -> (serde_json::Value, serde_json::Value) {
    let read = |flag: &str| -> serde_json::Value {
        let text = run_ok(
            Command::new(require_tool("skopeo"))
                .args(["inspect", flag])
                .arg(format!("oci:{}:{name}", layout.display())),
        );
        serde_json::from_str(&text).unwrap()
    };
    (read("--raw"), read("--config"))
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A `rootfs:` base per platform (one file saying which), each built by gib with
/// `--platform`, copied to `<registry>/gib/base:<arch>`, and joined by podman into
/// `gib/base:multi` (an OCI index) and `gib/base:list` (a Docker manifest list).
fn rootfs_parents(dir: &Path, registry: &Registry, podman: &Podman) {
    for arch in ["amd64", "arm64"] {
        let rootfs = dir.join(format!("base-{arch}/etc"));
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::write(rootfs.join("arch"), format!("{arch}\n")).unwrap();
        let file = dir.join(format!("base-{arch}.yaml"));
        std::fs::write(
            &file,
            format!(
                "platforms: [linux/{arch}]\nimages:\n  base:\n    rootfs: ./base-{arch}\n    tag: t\n"
            ),
        )
        .unwrap();
        let layout = dir.join(format!("layout-base-{arch}"));
        let layout_arg = layout.display().to_string();
        gib_ok(
            registry,
            &file,
            &dir.join("cache-parents"),
            &["build", "--oci-layout", &layout_arg],
        );
        copy_to_registry(registry, &layout, "base:t", &format!("gib/base:{arch}"));
    }
    let both: [(&str, &[&str]); 2] = [("gib/base:amd64", &[]), ("gib/base:arm64", &[])];
    push_index(podman, registry, &both, "gib/base:multi", "oci");
    push_index(podman, registry, &both, "gib/base:list", "v2s2");
}

/// A scratch dir with a registry holding `rootfs_parents`, and the podman that made them.
fn with_rootfs_parents(name: &str) -> (tempfile::TempDir, Registry, Podman) {
    let dir = scratch_dir(name);
    let registry = Registry::start(dir.path());
    let podman = Podman::new(dir.path());
    rootfs_parents(dir.path(), &registry, &podman);
    (dir, registry, podman)
}

/// A child (`rootfs:` adding a file) of `from`, with `platforms` and `registries:` for the
/// test registry.
fn child_file(dir: &Path, registry: &Registry, name: &str, from: &str, platforms: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("app/etc")).unwrap();
    std::fs::write(dir.join("app/etc/message"), "hello from the child\n").unwrap();
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!(
            "registries:\n  \"{host}\":\n    ca_certificate: {ca}\nplatforms: [{platforms}]\n\
             images:\n  app:\n    from: {from}\n    rootfs: ./app\n    tag: t\n",
            host = registry.host(),
            ca = registry.ca().display(),
            from = registry.reference(from),
        ),
    )
    .unwrap();
    file
}

/// `from:` an OCI index and a Docker manifest list, each made by podman of gib's amd64 and
/// arm64 parents: the child of each `--platform` leg is that platform's parent plus its own
/// layer, with that platform in its config; `linux/arm64/v8` and `linux/arm64` are one
/// platform whichever side names the variant.
#[test]
fn a_child_of_a_registry_index_builds_on_its_platforms_manifest() {
    let (dir, registry, podman) = with_rootfs_parents("registry-index");
    // An arm64 entry that says `v8`, as Docker's and many published indexes do.
    push_index(
        &podman,
        &registry,
        &[
            ("gib/base:amd64", &[]),
            ("gib/base:arm64", &["--variant", "v8"]),
        ],
        "gib/base:v8",
        "oci",
    );

    for (tag, media_type) in [
        ("multi", OCI_INDEX),
        ("list", DOCKER_LIST),
        ("v8", OCI_INDEX),
    ] {
        let entries = index_entries(&registry, &format!("gib/base:{tag}"), media_type);
        let archs: Vec<&str> = entries.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(archs, ["amd64", "arm64"], "gib/base:{tag}");
        let file = child_file(
            dir.path(),
            &registry,
            &format!("app-{tag}.yaml"),
            &format!("gib/base:{tag}"),
            "linux/amd64, linux/arm64",
        );
        for (arch, parent_digest) in &entries {
            let parent = registry.skopeo_raw(&format!("gib/base@{parent_digest}"));
            let parent_layers = layer_digests(&parent);
            let layout = dir.path().join(format!("layout-app-{tag}-{arch}"));
            let platform = format!("linux/{arch}");
            gib_ok(
                &registry,
                &file,
                &dir.path().join("cache"),
                &[
                    "build",
                    "--platform",
                    &platform,
                    "--oci-layout",
                    &layout.display().to_string(),
                ],
            );
            let (manifest, config) = layout_image(&layout, "app:t");
            let layers = layer_digests(&manifest);
            assert_eq!(layers.len(), parent_layers.len() + 1, "{tag} {arch}");
            assert_eq!(
                layers[..parent_layers.len()],
                parent_layers[..],
                "the {arch} child of gib/base:{tag} is not on its {arch} parent"
            );
            assert_eq!(
                manifest["annotations"]["org.opencontainers.image.base.digest"],
                parent_digest.as_str(),
                "{tag} {arch}"
            );
            assert_eq!(config["architecture"], arch.as_str(), "{tag} {arch}");
            assert_eq!(config["os"], "linux");
        }
    }

    // The file says linux/arm64/v8; podman's entry has no variant.
    let file = child_file(
        dir.path(),
        &registry,
        "app-v8-asked.yaml",
        "gib/base:multi",
        "linux/arm64/v8",
    );
    let layout = dir.path().join("layout-app-v8-asked");
    gib_ok(
        &registry,
        &file,
        &dir.path().join("cache"),
        &["build", "--oci-layout", &layout.display().to_string()],
    );
    let (manifest, config) = layout_image(&layout, "app:t");
    assert_eq!(config["architecture"], "arm64");
    let arm64 = index_entries(&registry, "gib/base:multi", OCI_INDEX)
        .into_iter()
        .find(|(a, _)| a == "arm64")
        .unwrap()
        .1;
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.base.digest"],
        arm64.as_str()
    );
}

/// The ELF machine of `usr/bin/greet` in the layers of image `reference` of an archive.
fn greet_machine(archive: &Path, reference: &str) -> u16 {
    let files = crate::util::archive_layer_files(archive, reference);
    let greet = files
        .iter()
        .rev()
        .find_map(|layer| layer.get("usr/bin/greet"))
        .expect("no usr/bin/greet in the image");
    assert_eq!(&greet[..4], b"\x7fELF");
    u16::from_le_bytes([greet[18], greet[19]])
}

/// The greet chain across a registry index: gib builds the glibc base of the mini stage3
/// for amd64 and (under qemu) arm64, podman joins them into one index, and `app` (greet)
/// `from:` that index is built for each platform on its own: its base layers are that
/// platform's, its greet is that platform's ELF (AArch64 is 183, x86-64 62), and `podman run
/// --platform` of each prints the greeting.
#[test]
fn the_greet_chain_builds_on_each_platform_of_a_registry_index() {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the test expects an amd64 host"
    );
    let dir = scratch_dir("registry-index-greet");
    let registry = Registry::start(dir.path());
    let podman = Podman::new(dir.path());
    let cache = dir.path().join("cache");
    let stage3 = format!(
        "stage3:\n  path: {{amd64: {}, arm64: {}}}\nportage:\n  sync_type: none\n\
         registries:\n  \"{}\":\n    ca_certificate: {}\n\
         platforms: [linux/amd64, linux/arm64]\n",
        crate::fixture::mini_stage3().display(),
        crate::fixture::mini_stage3_arm64().display(),
        registry.host(),
        registry.ca().display(),
    );
    let base = dir.path().join("base.yaml");
    std::fs::write(
        &base,
        format!("{stage3}images:\n  base:\n    tag: t\n    packages: [sys-libs/glibc]\n"),
    )
    .unwrap();
    for arch in ["amd64", "arm64"] {
        let layout = dir.path().join(format!("layout-base-{arch}"));
        gib_ok(
            &registry,
            &base,
            &cache,
            &[
                "build",
                "--platform",
                &format!("linux/{arch}"),
                "--oci-layout",
                &layout.display().to_string(),
            ],
        );
        copy_to_registry(&registry, &layout, "base:t", &format!("gib/libc:{arch}"));
    }
    push_index(
        &podman,
        &registry,
        &[("gib/libc:amd64", &[]), ("gib/libc:arm64", &[])],
        "gib/libc:multi",
        "oci",
    );

    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        format!(
            "{stage3}images:\n  app:\n    from: {}\n    tag: t\n    packages: [app-misc/greet]\n    cmd: [greet]\n",
            registry.reference("gib/libc:multi")
        ),
    )
    .unwrap();
    for (arch, parent_digest) in index_entries(&registry, "gib/libc:multi", OCI_INDEX) {
        let parent_layers =
            layer_digests(&registry.skopeo_raw(&format!("gib/libc@{parent_digest}")));
        let layout = dir.path().join(format!("layout-app-{arch}"));
        let archive = dir.path().join(format!("app-{arch}.tar"));
        let platform = format!("linux/{arch}");
        let started = std::time::Instant::now();
        gib_ok(
            &registry,
            &app,
            &cache,
            &[
                "build",
                "--platform",
                &platform,
                "--oci-layout",
                &layout.display().to_string(),
                "--archive",
                &archive.display().to_string(),
            ],
        );
        eprintln!("the {arch} child took {:?}", started.elapsed());
        let (manifest, config) = layout_image(&layout, "app:t");
        let layers = layer_digests(&manifest);
        assert_eq!(
            layers[..parent_layers.len()],
            parent_layers[..],
            "the {arch} child is not on the {arch} glibc"
        );
        assert!(
            layers.len() > parent_layers.len(),
            "{arch}: no layer of its own"
        );
        assert_eq!(config["architecture"], arch.as_str());
        let machine = greet_machine(&archive, "app:t");
        assert_eq!(machine, if arch == "arm64" { 183 } else { 62 }, "{arch}");

        let podman = Podman::new(&dir.path().join(format!("podman-{arch}")));
        podman.load(&archive);
        let mut run =
            podman.command(&["run", "--rm", "--network", "none", "--platform", &platform]);
        run.args([
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=1024:1024",
            "app:t",
        ]);
        assert_eq!(run_ok(&mut run).trim(), "hello from gib", "{arch}");
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// `PUT` a manifest of the test's making under `<registry>/<repository>:<tag>` (curl: no
/// tool pushes an index of indexes).
fn put_manifest(registry: &Registry, repository: &str, tag: &str, media_type: &str, body: &str) {
    run_ok(
        Command::new(require_tool("curl"))
            .args(["--fail", "--silent", "--show-error", "--cacert"])
            .arg(registry.ca())
            .args(["--user", &format!("{USER}:{PASSWORD}")])
            .args(["-X", "PUT", "-H", &format!("Content-Type: {media_type}")])
            .args(["--data-binary", body])
            .arg(format!(
                "https://{}/v2/{repository}/manifests/{tag}",
                registry.host()
            )),
    );
}

/// The bytes of the manifest or index under `repo_tag`, as the registry serves them.
fn raw_manifest(registry: &Registry, repo_tag: &str) -> Vec<u8> {
    let out = skopeo(registry)
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(registry.dir.join("certs"))
        .arg(format!("docker://{}", registry.reference(repo_tag)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The files directly under `dir` (none when it does not exist).
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A child built for linux/arm64 `from:` an index podman made without arm64, one podman
/// made claiming arm64 for the amd64 image (`manifest add --arch arm64`), and an index
/// whose arm64 entry is itself an index: each fails within seconds with an error naming the
/// reference and what is wrong (the platforms the index has, the platform the config says),
/// no layout written, no index, manifest or layer in the cache's blob store and no pulled
/// tree. Root and the test user.
#[test]
fn an_index_without_the_platform_or_lying_about_it_is_refused_before_any_layer() {
    let (dir, registry, podman) = with_rootfs_parents("registry-index-hostile");
    push_index(
        &podman,
        &registry,
        &[("gib/base:amd64", &[])],
        "gib/base:amd64only",
        "oci",
    );
    push_index(
        &podman,
        &registry,
        &[("gib/base:amd64", &["--arch", "arm64"])],
        "gib/base:liar",
        "oci",
    );
    let multi = raw_manifest(&registry, "gib/base:multi");
    put_manifest(
        &registry,
        "gib/base",
        "nested",
        OCI_INDEX,
        &format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_INDEX}","digest":"{}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
            sha256(&multi),
            multi.len()
        ),
    );
    // Every manifest and layer of the parents: none may be left in a refused build's cache.
    let mut parent_blobs: Vec<String> = Vec::new();
    for tag in ["amd64only", "liar", "nested", "multi"] {
        parent_blobs.push(sha256(&raw_manifest(&registry, &format!("gib/base:{tag}"))));
    }
    for arch in ["amd64", "arm64"] {
        let manifest = raw_manifest(&registry, &format!("gib/base:{arch}"));
        parent_blobs.push(sha256(&manifest));
        let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        parent_blobs.extend(layer_digests(&manifest));
    }

    let host = registry.host();
    let cases = [
        (
            "amd64only",
            format!("{host}/gib/base:amd64only has no image for linux/arm64 (it has: linux/amd64)"),
        ),
        ("liar", format!("{host}/gib/base:liar: manifest sha256:")),
        (
            "nested",
            format!("{host}/gib/base:nested: the linux/arm64 entry of its index sha256:"),
        ),
    ];
    for runner in [Runner::Root, Runner::User] {
        let work = work_dir(runner, "registry-index-hostile");
        for (tag, says) in &cases {
            let file = child_file(
                dir.path(),
                &registry,
                &format!("app-{tag}.yaml"),
                &format!("gib/base:{tag}"),
                "linux/amd64, linux/arm64",
            );
            let cache = work.path().join(format!("cache-{tag}"));
            let layout = work.path().join(format!("layout-{tag}"));
            let started = std::time::Instant::now();
            let out = gib(
                runner,
                &registry,
                &file,
                &cache,
                &[
                    "build",
                    "--platform",
                    "linux/arm64",
                    "--oci-layout",
                    &layout.display().to_string(),
                ],
            );
            let took = started.elapsed();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{runner:?} {tag}: {stderr}");
            assert!(
                took < std::time::Duration::from_secs(30),
                "{runner:?} {tag}: {took:?}"
            );
            assert!(stderr.contains(says.as_str()), "{runner:?} {tag}: {stderr}");
            let errors = stderr.lines().filter(|l| l.starts_with("error:")).count();
            assert_eq!(errors, 1, "{runner:?} {tag}: {stderr}");
            if *tag == "liar" {
                assert!(
                    stderr.contains(
                        "was asked for as linux/arm64, but its config says it is linux/amd64"
                    ),
                    "{stderr}"
                );
            }
            if *tag == "nested" {
                assert!(stderr.contains("is itself an index"), "{stderr}");
            }
            assert!(!layout.exists(), "{runner:?} {tag}: the layout was written");
            let stored = files_in(&cache.join("blobs/sha256"));
            for blob in &parent_blobs {
                let hex = blob.trim_start_matches("sha256:");
                assert!(
                    !stored.iter().any(|s| s == hex),
                    "{runner:?} {tag}: {blob} was left in the cache"
                );
            }
            assert!(
                files_in(&cache.join("pulled")).is_empty(),
                "{runner:?} {tag}: a pulled tree was left"
            );
        }
    }
}

/// An index whose arm64 entry names a digest the registry (a fake: a real registry serves
/// a manifest by its own digest) answers with other bytes: the pull fails with the digest
/// mismatch, naming the URL and both digests, and leaves no file. Root and the test user.
#[test]
fn an_index_entry_whose_manifest_has_another_digest_is_refused() {
    use crate::hostile_network::{Fake, Reply, run_bounded};
    let config =
        br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[]}}"#,
        sha256(config),
        config.len()
    );
    let claimed = sha256(manifest.as_bytes());
    // The same manifest with a space more: valid, but not the bytes the index named.
    let served = format!("{manifest} ");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{claimed}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
        manifest.len()
    );
    let fake = {
        let (claimed, index, served) = (claimed.clone(), index.clone(), served.clone());
        Fake::start(move |req| {
            if req.target == "/v2/" {
                Reply::status(200)
            } else if req.target.ends_with("/manifests/t") {
                Reply::with(200, &[("Content-Type", OCI_INDEX)], index.as_bytes())
            } else if req.target.ends_with(&format!("/manifests/{claimed}")) {
                Reply::with(
                    200,
                    &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
                    served.as_bytes(),
                )
            } else {
                Reply::status(404)
            }
        })
    };
    for runner in [Runner::Root, Runner::User] {
        let work = work_dir(runner, "registry-index-mismatch");
        let into = work.path().join("blobs");
        let mut cmd = match runner {
            Runner::Root => crate::util::gib(),
            Runner::User => crate::util::as_test_user(&gib_bin()),
        };
        cmd.args([
            "__registry",
            "pull",
            "--plain-http",
            "--platform",
            "linux/arm64",
        ])
        .arg(format!("{}/base:t", fake.origin()))
        .arg(&into);
        let (out, took) = run_bounded(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{runner:?}: {stderr}");
        assert!(
            took < std::time::Duration::from_secs(30),
            "{runner:?}: {took:?}"
        );
        assert!(
            stderr.contains(&format!(
                "digest mismatch: http://{}/v2/base/manifests/{claimed} sent content with digest {}",
                fake.origin(),
                sha256(served.as_bytes())
            )) && stderr.contains(&format!("expected {claimed}")),
            "{runner:?}: {stderr}"
        );
        assert!(
            files_in(&into.join("sha256")).is_empty(),
            "{runner:?}: a file was left"
        );
    }
    // gib never asked for the config: it stopped at the manifest.
    assert!(
        !fake.seen().iter().any(|r| r.target.contains("/blobs/")),
        "{:?}",
        fake.seen()
    );
}

/// `--parents-from-registry` where the parent's pushed tag is an index (as a multi-platform
/// push leaves it): each `--platform` leg pulls that platform's manifest and builds on it.
#[test]
fn parents_from_registry_take_the_legs_platform_from_an_index() {
    let (dir, registry, podman) = with_rootfs_parents("registry-index-parents");
    push_index(
        &podman,
        &registry,
        &[("gib/base:amd64", &[]), ("gib/base:arm64", &[])],
        "gib/base:t",
        "oci",
    );
    std::fs::create_dir_all(dir.path().join("app/etc")).unwrap();
    std::fs::write(dir.path().join("app/etc/message"), "hello\n").unwrap();
    let file = dir.path().join("gib.yaml");
    std::fs::write(
        &file,
        format!(
            "registry: {}/gib\nregistries:\n  \"{}\":\n    ca_certificate: {}\n\
             platforms: [linux/amd64, linux/arm64]\nimages:\n  \
             base:\n    rootfs: ./base-amd64\n    tag: t\n  \
             app:\n    from: base\n    rootfs: ./app\n    tag: t\n",
            registry.host(),
            registry.host(),
            registry.ca().display()
        ),
    )
    .unwrap();
    for (arch, parent_digest) in index_entries(&registry, "gib/base:t", OCI_INDEX) {
        let parent_layers =
            layer_digests(&registry.skopeo_raw(&format!("gib/base@{parent_digest}")));
        let layout = dir.path().join(format!("layout-{arch}"));
        gib_ok(
            &registry,
            &file,
            &dir.path().join(format!("cache-{arch}")),
            &[
                "build",
                "app",
                "--parents-from-registry",
                "--platform",
                &format!("linux/{arch}"),
                "--oci-layout",
                &layout.display().to_string(),
            ],
        );
        // With `registry:`, the layout names the image by its whole reference.
        let (manifest, config) = layout_image(&layout, &registry.reference("gib/app:t"));
        let layers = layer_digests(&manifest);
        assert_eq!(layers.len(), parent_layers.len() + 1, "{arch}");
        assert_eq!(layers[..parent_layers.len()], parent_layers[..], "{arch}");
        assert_eq!(config["architecture"], arch.as_str());
    }
}
