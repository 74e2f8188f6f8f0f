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
use crate::util::{Podman, Runner, gib_bin, require_tool, run_ok, scratch_dir};

const SDE: &str = "1700000000";

/// `gib <args…> -f file --cache-dir cache` as `runner`, with only the registry's credentials.
fn gib(runner: Runner, registry: &Registry, file: &Path, cache: &Path, args: &[&str]) -> Output {
    let mut cmd = match runner {
        Runner::Root => registry.gib("auth.json"),
        Runner::User => {
            let mut cmd = crate::util::as_test_user(&gib_bin());
            cmd.env("NO_COLOR", "1")
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
    let dir = scratch_dir("registry-index");
    let registry = Registry::start(dir.path());
    let podman = Podman::new(dir.path());
    rootfs_parents(dir.path(), &registry, &podman);
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
