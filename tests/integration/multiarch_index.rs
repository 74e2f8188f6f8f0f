//! Multi-platform images as OCI indexes (issue 18): the greet chain built for linux/amd64 and
//! linux/arm64 (under qemu-user) in one `gib build`, written to a layout, an archive and a
//! real registry, read back by skopeo and run by podman on either platform; and the native
//! legs' way: each platform pushed by a runner of its own (`gib push --platform`), joined
//! by `gib push --index` on a runner that builds nothing, into the very index the one run
//! wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::{mini_stage3, mini_stage3_arm64};
use crate::registry_server::{PASSWORD, Registry, USER, tail};
use crate::util::{
    Podman, archive_layer_files, as_test_user, require_tool, run_ok, scratch_dir, test_user,
};

/// The greet chain for both platforms, pushed under `<registry>/gib`.
fn write_project(dir: &Path, registry: &Registry) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = format!(
        "stage3:\n  path: {{amd64: {amd64}, arm64: {arm64}}}\nportage:\n  sync_type: none\n\
         platforms: [linux/amd64, linux/arm64]\n\
         registry: {host}/gib\nregistries:\n  \"{host}\":\n    ca_certificate: {ca}\nimages:\n\
         \x20 base:\n    tag: t\n    packages: [sys-libs/glibc]\n\
         \x20 app:\n    from: base\n    tag: t\n    packages: [app-misc/greet]\n    cmd: [greet]\n",
        amd64 = mini_stage3().display(),
        arm64 = mini_stage3_arm64().display(),
        host = registry.host(),
        ca = registry.ca().display(),
    );
    let file = dir.join("gib.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

/// `gib <args> -f FILE --cache-dir CACHE` as root (as the test user when `user`), with the
/// registry's credentials; its output, whether or not it succeeded.
fn gib_run(
    registry: &Registry,
    user: bool,
    file: &Path,
    cache: &Path,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = if user {
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
        let mut cmd = as_test_user(&crate::util::gib_bin());
        cmd.env("REGISTRY_AUTH_FILE", registry.dir.join("auth.json"))
            .env("NO_COLOR", "1");
        cmd
    } else {
        registry.gib("auth.json")
    };
    cmd.args(args)
        .arg("-f")
        .arg(file)
        .arg("--cache-dir")
        .arg(cache);
    cmd.output().unwrap()
}

fn gib_ok(registry: &Registry, user: bool, file: &Path, cache: &Path, args: &[&str]) -> String {
    let out = gib_run(registry, user, file, cache, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "gib {args:?} failed:\n{stderr}\nregistry log:\n{}",
        tail(&registry.log())
    );
    stderr
}

/// `skopeo inspect --raw` of a reference (`oci:DIR:ref` or `docker://…`), parsed.
fn skopeo_raw(reference: &str, registry: &Registry) -> serde_json::Value {
    let text = run_ok(
        Command::new(require_tool("skopeo"))
            .args([
                "inspect",
                "--raw",
                "--creds",
                &format!("{USER}:{PASSWORD}"),
                "--cert-dir",
            ])
            .arg(registry.dir.join("certs"))
            .arg(reference),
    );
    serde_json::from_str(&text).unwrap()
}

/// The architectures of an index's manifests, in order, and their digests.
fn index_platforms(index: &serde_json::Value) -> Vec<(String, String)> {
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "not an index: {index}"
    );
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["platform"]["os"], "linux", "{m}");
            (
                m["platform"]["architecture"].as_str().unwrap().to_string(),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The sha256 of an index as the registry serves it.
fn registry_digest(registry: &Registry, reference: &str) -> Result<String, String> {
    registry.skopeo_digest(reference)
}

/// The whole path the issue asks for. The native legs first: the arm64 leg pushed by this
/// runner (under qemu), a join before the amd64 leg is there fails naming it and tags
/// nothing, the amd64 leg pushed by another user with an empty cache, and `gib push --index`
/// on a runner with an empty cache and no qemu registration joins them without pulling a
/// layer. Then one `gib build` of both platforms (amd64 built afresh in this cache) into a
/// layout, an archive and the registry: the layout's `app:t` is an index of an amd64 and an
/// arm64 manifest (skopeo) of the join's very digest, each platform's image has its own SBOM,
/// the arm64 greet is an AArch64 ELF; podman pulls and runs the arm64 image under qemu and
/// picks the amd64 one by default; the archive loads one image per platform.
#[test]
fn one_run_and_native_legs_give_the_same_index_of_the_greet_chain() {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the test expects an amd64 host"
    );
    let dir = scratch_dir("multiarch-index");
    let registry = Registry::start(&dir.path().join("registry"));
    let cache = dir.path().join("cache");
    let layout = dir.path().join("layout");
    let archive = dir.path().join("greet.tar");
    let named = |tag: &str| registry.reference(&format!("gib/{tag}"));

    // The arm64 runner.
    let legs_file = write_project(&dir.path().join("legs"), &registry);
    gib_ok(
        &registry,
        false,
        &legs_file,
        &cache,
        &["push", "--platform", "linux/arm64"],
    );
    assert!(registry_digest(&registry, "gib/app:t-arm64").is_ok());
    assert!(
        registry_digest(&registry, "gib/app:t").is_err(),
        "a leg pushed the index tag"
    );
    // A leg's archive (what `docker load` takes: one platform) has it under the plain tags.
    let leg_archive = dir.path().join("leg-arm64.tar");
    gib_ok(
        &registry,
        false,
        &legs_file,
        &cache,
        &[
            "build",
            "--platform",
            "linux/arm64",
            "--archive",
            leg_archive.to_str().unwrap(),
        ],
    );
    let podman = Podman::new(&dir.path().join("podman-leg"));
    podman.load(&leg_archive);
    let got = run_ok(
        podman
            .command(&["image", "inspect", "--format", "{{.Architecture}}"])
            .arg(named("app:t")),
    );
    assert_eq!(got.trim(), "arm64");

    // A join before the amd64 leg is there: one clear error, nothing tagged.
    let no_qemu = dir.path().join("no-binfmt");
    std::fs::create_dir_all(&no_qemu).unwrap();
    let join_cache = dir.path().join("join-cache");
    let join = |json: bool| {
        let mut cmd = registry.gib("auth.json");
        cmd.env("GIB_TEST_BINFMT_DIR", &no_qemu)
            .args(["push", "--index"])
            .args(json.then_some("--json"))
            .arg("-f")
            .arg(&legs_file)
            .arg("--cache-dir")
            .arg(&join_cache);
        cmd.output().unwrap()
    };
    let out = join(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "image base for linux/amd64: the registry has no image of its current inputs under "
        ) && stderr.contains("/gib/base:t-amd64")
            && stderr
                .contains("hint: push that platform's leg first (gib push --platform linux/amd64"),
        "{stderr}"
    );
    assert!(registry_digest(&registry, "gib/app:t").is_err());
    assert!(registry_digest(&registry, "gib/base:t").is_err());

    // The amd64 runner: another user, an empty cache.
    let user_cache = dir.path().join("user-cache");
    gib_ok(
        &registry,
        true,
        &legs_file,
        &user_cache,
        &["push", "--platform", "linux/amd64"],
    );

    // The join: an empty cache, no qemu registration, no layer read.
    let mark = registry.log().len();
    let out = join(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", tail(&registry.log()));
    let joined = registry_digest(&registry, "gib/app:t").unwrap();
    let leg_layers: Vec<String> = ["amd64", "arm64"]
        .iter()
        .flat_map(|arch| {
            let manifest = registry.skopeo_raw(&format!("gib/app:t-{arch}"));
            manifest["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let log = registry.log();
    let layer_gets: Vec<&str> = log[mark..]
        .lines()
        .filter(|l| {
            l.contains("\"GET /v2/")
                && leg_layers
                    .iter()
                    .any(|d| l.contains(&format!("/blobs/{d}")))
        })
        .collect();
    assert!(
        layer_gets.is_empty(),
        "the join pulled layers: {layer_gets:?}"
    );
    let report: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.len(), 4, "base and app, two platforms each");
    for entry in &report {
        assert_eq!(entry["how"], "registry", "{entry}");
        assert!(entry["platform"].is_string(), "{entry}");
        assert!(entry["index"].is_string(), "{entry}");
    }

    // One run, both platforms, the files (the same gib.yaml in another directory; amd64
    // built afresh in this cache, arm64 reused from its leg).
    let file = write_project(&dir.path().join("one-run"), &registry);
    let stderr = gib_ok(
        &registry,
        false,
        &file,
        &cache,
        &[
            "build",
            "--oci-layout",
            layout.to_str().unwrap(),
            "--archive",
            archive.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("Platform linux/arm64 (under qemu-aarch64)"),
        "{stderr}"
    );
    let index = skopeo_raw(
        &format!("oci:{}:{}", layout.display(), named("app:t")),
        &registry,
    );
    let platforms = index_platforms(&index);
    let arches: Vec<&str> = platforms.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(arches, ["amd64", "arm64"], "{index}");
    for (arch, digest) in &platforms {
        // Each platform's own tag names that manifest, whose config says the platform.
        let reference = format!(
            "oci:{}:{}",
            layout.display(),
            named(&format!("app:t-{arch}"))
        );
        let manifest = run_ok(
            Command::new(require_tool("skopeo"))
                .args(["inspect", "--raw"])
                .arg(&reference),
        );
        assert_eq!(
            format!("sha256:{}", sha256_hex(manifest.as_bytes())),
            *digest
        );
        let config: serde_json::Value = serde_json::from_str(&run_ok(
            Command::new(require_tool("skopeo"))
                .args(["inspect", "--config"])
                .arg(&reference),
        ))
        .unwrap();
        assert_eq!(config["architecture"], *arch);
        assert_eq!(
            registry_digest(&registry, &format!("gib/app:t-{arch}")).unwrap(),
            *digest
        );
    }
    let layout_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let layout_digest = layout_index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == named("app:t"))
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        layout_digest, joined,
        "the one run's index differs from the legs'"
    );
    // The cache keeps a build per platform: `gib inspect --platform` and `gib audit` read each.
    for (arch, digest) in &platforms {
        let out = gib_run(
            &registry,
            false,
            &file,
            &cache,
            &[
                "inspect",
                "app",
                "--platform",
                &format!("linux/{arch}"),
                "--json",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["digest"], *digest, "inspect --platform linux/{arch}");
    }
    let out = gib_run(&registry, false, &file, &cache, &["audit", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audits: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut audited: Vec<String> = audits
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["image"].as_str().unwrap(),
                a["arch"].as_str().unwrap()
            )
        })
        .collect();
    audited.sort();
    assert_eq!(
        audited,
        ["app amd64", "app arm64", "base amd64", "base arm64"]
    );
    // Its push: the manifests are there, the index tag is moved to the same index.
    let stderr = gib_ok(&registry, false, &file, &cache, &["push"]);
    assert!(stderr.contains("(index)"), "{stderr}");
    assert_eq!(registry_digest(&registry, "gib/app:t").unwrap(), joined);
    // An SBOM per platform manifest, its subject that manifest.
    let subjects: Vec<String> = layout_index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == "application/spdx+json")
        .map(|m| {
            let hex = m["digest"].as_str().unwrap().trim_start_matches("sha256:");
            let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
            let artifact: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            artifact["subject"]["digest"].as_str().unwrap().to_string()
        })
        .collect();
    for (arch, digest) in &platforms {
        assert!(
            subjects.contains(digest),
            "no SBOM for app's {arch} manifest"
        );
    }
    assert_eq!(subjects.len(), 4, "base and app, two platforms each");

    let files = archive_layer_files(&archive, &named("app:t-arm64"));
    let greet = files
        .iter()
        .rev()
        .find_map(|layer| layer.get("usr/bin/greet"))
        .expect("no usr/bin/greet in the arm64 image");
    assert_eq!(
        u16::from_le_bytes([greet[18], greet[19]]),
        183,
        "not AArch64"
    );

    // podman: the arm64 image under qemu, and the host's by default.
    let remote = named("app:t");
    for (platform, arch) in [(Some("linux/arm64"), "arm64"), (None, "amd64")] {
        let podman = Podman::new(&dir.path().join(format!("podman-{arch}")));
        let mut pull = podman.command(&["pull", "--creds", &format!("{USER}:{PASSWORD}")]);
        pull.arg("--cert-dir").arg(registry.dir.join("certs"));
        if let Some(platform) = platform {
            pull.args(["--platform", platform]);
        }
        run_ok(pull.arg(format!("docker://{remote}")));
        let got = run_ok(
            podman
                .command(&["image", "inspect", "--format", "{{.Architecture}}"])
                .arg(&remote),
        );
        assert_eq!(got.trim(), arch);
        let mut run = podman.command(&["run", "--rm", "--network", "none"]);
        if let Some(platform) = platform {
            run.args(["--platform", platform]);
        }
        run.args([
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .arg(&remote);
        assert_eq!(run_ok(&mut run).trim(), "hello from gib", "{arch}");
    }
    // The archive: one image per platform, the host's also under the image's own tag.
    let podman = Podman::new(&dir.path().join("podman-load"));
    let loaded = podman.load(&archive);
    for tag in ["app:t-amd64", "app:t-arm64", "app:t", "base:t-arm64"] {
        assert!(
            loaded.contains(&format!("{}\n", named(tag))),
            "{tag} not loaded:\n{loaded}"
        );
    }
    assert_eq!(podman.run(&named("app:t"), &[]).trim(), "hello from gib");

    // A registry that lies: app's arm64 tag now holds the amd64 image. The join refuses it
    // (its config is not arm64), tags nothing, and the index stays the one it was.
    run_ok(
        Command::new(require_tool("skopeo"))
            .args([
                "copy",
                "--quiet",
                "--dest-creds",
                &format!("{USER}:{PASSWORD}"),
            ])
            .args(["--src-creds", &format!("{USER}:{PASSWORD}")])
            .arg("--src-cert-dir")
            .arg(registry.dir.join("certs"))
            .arg("--dest-cert-dir")
            .arg(registry.dir.join("certs"))
            .arg(format!("docker://{}", named("app:t-amd64")))
            .arg(format!("docker://{}", named("app:t-arm64"))),
    );
    let out = join(false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr
            .contains("image app for linux/arm64: the registry has no image of its current inputs")
            && stderr.contains("linux/amd64"),
        "{stderr}"
    );
    assert_eq!(registry_digest(&registry, "gib/app:t").unwrap(), joined);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The index logic without qemu's cost: `rootfs:` images (nothing runs in them) for two
/// platforms, one of them (`tool`) for arm64 alone. One run writes an index per image of
/// both platforms (its manifests in `platforms:`'s order, each also under its platform's
/// tag), a plain arm64 manifest for `tool`; the archive loads each platform's image and the
/// host's under the plain tag; a second run writes the same index.json; a `--platform` leg
/// writes the very arm64 manifest under the plain tag; `--json` says each entry's platform
/// and index. Root and rootless.
#[test]
fn rootfs_images_of_several_platforms_are_indexes_in_every_file() {
    for runner in [crate::util::Runner::Root, crate::util::Runner::User] {
        let dir = crate::util::work_dir(runner, "multiarch-rootfs");
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("tree/etc/hello.txt", "hello\n");
        write("tool/usr/share/tool.txt", "tool\n");
        write(
            "gib.yaml",
            "platforms: [linux/amd64, linux/arm64]\nimages:\n  base:\n    rootfs: ./tree\n    tag: t\n\
             \x20 tool:\n    from: base\n    rootfs: ./tool\n    tag: t\n    platforms: [linux/arm64]\n",
        );
        if runner == crate::util::Runner::User {
            let user = test_user();
            run_ok(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{user}:{user}"))
                    .arg(root),
            );
        }
        let config = root.join("gib.yaml");
        let cache = root.join("cache");
        let build = |args: &[&str]| {
            // The epoch fixed: a `rootfs:` directory is read (and its provenance made) anew
            // each run, with the build's times otherwise.
            let out = crate::util::build_with(crate::util::gib_by(runner), &config, &cache)
                .args(args)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(out.status.success(), "{runner:?} {args:?}:\n{stderr}");
            (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
        };
        let layout = root.join("layout");
        let archive = root.join("all.tar");
        let (stdout, _) = build(&[
            "--oci-layout",
            layout.to_str().unwrap(),
            "--archive",
            archive.to_str().unwrap(),
            "--json",
        ]);
        let skopeo = require_tool("skopeo");
        let inspect = |what: &str, reference: &str| -> serde_json::Value {
            let text = run_ok(
                Command::new(&skopeo)
                    .args(["inspect", what])
                    .arg(format!("oci:{}:{reference}", layout.display())),
            );
            serde_json::from_str(&text).unwrap()
        };
        let index = inspect("--raw", "base:t");
        let platforms = index_platforms(&index);
        let arches: Vec<&str> = platforms.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(arches, ["amd64", "arm64"], "{runner:?} {index}");
        for (arch, _) in &platforms {
            assert_eq!(
                inspect("--config", &format!("base:t-{arch}"))["architecture"],
                *arch
            );
        }
        let tool = inspect("--raw", "tool:t");
        assert_eq!(
            tool["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(inspect("--config", "tool:t")["architecture"], "arm64");
        let index_json = std::fs::read(layout.join("index.json")).unwrap();
        assert!(
            !String::from_utf8_lossy(&index_json).contains("tool:t-arm64"),
            "an image of one platform has no platform tag"
        );

        let report: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
        let entries: Vec<(String, String, bool)> = report
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["platform"].as_str().unwrap_or("-").to_string(),
                    e["index"].is_string(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("base".into(), "linux/amd64".into(), true),
                ("base".into(), "linux/arm64".into(), true),
                ("tool".into(), "-".into(), false),
            ],
            "{runner:?}"
        );

        let podman = Podman::new(root);
        let loaded = podman.load(&archive);
        for tag in ["base:t-amd64", "base:t-arm64", "base:t", "tool:t"] {
            assert!(
                loaded.contains(&format!("localhost/{tag}\n")),
                "{tag}:\n{loaded}"
            );
        }
        let arch = run_ok(
            podman
                .command(&["image", "inspect", "--format", "{{.Architecture}}"])
                .arg("base:t"),
        );
        assert_eq!(
            arch.trim(),
            "amd64",
            "the host's platform under the plain tag"
        );

        // The same inputs, the same layout; a leg writes that platform's very manifest.
        build(&["--oci-layout", layout.to_str().unwrap()]);
        // (as a set: a rewrite keeps other entries in place and adds its own after them)
        let entries = |bytes: &[u8]| {
            let index: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            let mut entries: Vec<String> = index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.to_string())
                .collect();
            entries.sort();
            entries
        };
        assert!(
            entries(&std::fs::read(layout.join("index.json")).unwrap()) == entries(&index_json),
            "{runner:?}: another layout the second time"
        );
        let leg = root.join("leg");
        build(&[
            "--platform",
            "linux/arm64",
            "--oci-layout",
            leg.to_str().unwrap(),
        ]);
        let leg_manifest = run_ok(
            Command::new(&skopeo)
                .args(["inspect", "--raw"])
                .arg(format!("oci:{}:base:t", leg.display())),
        );
        assert_eq!(
            format!("sha256:{}", sha256_hex(leg_manifest.as_bytes())),
            platforms[1].1
        );
    }
}
