//! Distroless quality on the mini stage3 (real Portage, real emerge): the SBOM of a built
//! image checked by the SPDX validators and against the image's package database; two builds
//! from empty caches giving the same digests; per-package layers shared between images;
//! `accounts:` and `paths:` in a child image, checked with `umoci unpack`; `gib inspect`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::fixture::mini_stage3;
use crate::sbom::{validate, validator_venv};
use crate::util::{as_test_user, gib, gib_bin, require_tool, run_ok, scratch_dir, test_user};

/// A gib.yaml on the mini stage3 with `images` (YAML, indented under `images:`).
fn write_config(dir: &Path, images: &str) -> PathBuf {
    let text = format!(
        "stage3:\n  path: {}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\nimages:\n{images}",
        mini_stage3().display()
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

/// `gib build -f CONFIG --cache-dir CACHE ARGS…`; its stdout.
fn build(config: &Path, cache: &Path, args: &[&str]) -> String {
    run_ok(
        gib()
            .arg("build")
            .arg("-f")
            .arg(config)
            .arg("--cache-dir")
            .arg(cache)
            .args(args),
    )
}

pub(crate) fn read_json(path: &Path) -> Value {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// A blob of the OCI layout `layout`.
pub(crate) fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The index entry of `reference` in the layout's index.json.
fn index_entry(layout: &Path, reference: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap_or_else(|| panic!("no {reference} in {index}"))
        .clone()
}

/// The layer digests of `reference` in the layout.
fn layer_digests(layout: &Path, reference: &str) -> Vec<String> {
    let entry = index_entry(layout, reference);
    let manifest = read_json(&blob(layout, entry["digest"].as_str().unwrap()));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// `umoci unpack` of `reference` into `dir/bundle`; the rootfs.
fn unpack(layout: &Path, reference: &str, dir: &Path) -> PathBuf {
    require_tool("umoci");
    let bundle = dir.join(format!("bundle-{}", reference.replace(':', "-")));
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{reference}", layout.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

#[test]
fn sbom_validates_lists_the_package_database_and_is_attached() {
    let dir = scratch_dir("quality-sbom");
    let config = write_config(
        dir.path(),
        "  greet:\n    from: scratch\n    packages: [app-misc/greet]\n",
    );
    let layout = dir.path().join("oci");
    let archive = dir.path().join("greet.tar");
    build(
        &config,
        &dir.path().join("cache"),
        &[
            "--oci-layout",
            layout.to_str().unwrap(),
            "--archive",
            archive.to_str().unwrap(),
        ],
    );

    // Next to the archive, and valid for both validators.
    let sbom_file = dir.path().join("greet.tar.spdx.json");
    let venv = validator_venv();
    assert_eq!(validate(&venv, &sbom_file), (true, true));

    // Every package of the image's database, with its version.
    let sbom = read_json(&sbom_file);
    let listed: BTreeSet<String> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            Some(format!(
                "{}-{}",
                p["name"].as_str()?,
                p["versionInfo"].as_str()?
            ))
        })
        .collect();
    let rootfs = unpack(&layout, "greet:1.0", dir.path());
    let mut in_database = BTreeSet::new();
    for category in fs::read_dir(rootfs.join("var/db/pkg")).unwrap() {
        let category = category.unwrap();
        for package in fs::read_dir(category.path()).unwrap() {
            in_database.insert(format!(
                "{}/{}",
                category.file_name().to_string_lossy(),
                package.unwrap().file_name().to_string_lossy()
            ));
        }
    }
    assert!(
        in_database.contains("app-misc/greet-1.0"),
        "{in_database:?}"
    );
    assert!(
        in_database.contains("sys-libs/glibc-2.36"),
        "{in_database:?}"
    );
    let missing: Vec<_> = in_database.difference(&listed).collect();
    assert!(missing.is_empty(), "not in the SBOM: {missing:?}");

    // Attached in the layout: an artifact manifest about the image, with the empty config.
    let image = index_entry(&layout, "greet:1.0");
    let index = read_json(&layout.join("index.json"));
    let artifacts: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["artifactType"] == "application/spdx+json")
        .collect();
    assert_eq!(artifacts.len(), 1, "{index}");
    let artifact = read_json(&blob(&layout, artifacts[0]["digest"].as_str().unwrap()));
    assert_eq!(artifact["subject"]["digest"], image["digest"]);
    assert_eq!(
        artifact["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let layer = &artifact["layers"][0];
    assert_eq!(layer["mediaType"], "application/spdx+json");
    assert_eq!(
        fs::read(blob(&layout, layer["digest"].as_str().unwrap())).unwrap(),
        fs::read(&sbom_file).unwrap()
    );
    // Tools that read layouts still take it.
    require_tool("skopeo");
    let inspect = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:greet:1.0", layout.display())),
    );
    assert!(
        inspect.contains(image["digest"].as_str().unwrap()),
        "{inspect}"
    );
}

#[test]
fn two_clean_builds_give_the_same_digests() {
    let dir = scratch_dir("quality-repro");
    let config = write_config(
        dir.path(),
        concat!(
            "  base:\n    from: scratch\n    packages: [sys-libs/glibc]\n",
            "  greet:\n    from: base\n    packages: [app-misc/greet]\n",
            "    layering: {strategy: per-package, budget: 3}\n",
            "    accounts: {users: [{name: app, uid: 1000, gid: 1000}], run_as: app}\n",
        ),
    );
    let mut digests = Vec::new();
    for run in ["one", "two"] {
        let layout = dir.path().join(format!("oci-{run}"));
        // SOURCE_DATE_EPOCH unset: the default (the stage3 tree's snapshot time) must do.
        let out = gib()
            .env_remove("SOURCE_DATE_EPOCH")
            .arg("build")
            .arg("-f")
            .arg(&config)
            .arg("--cache-dir")
            .arg(dir.path().join(format!("cache-{run}")))
            .arg("--oci-layout")
            .arg(&layout)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let index = read_json(&layout.join("index.json"));
        // The provenances say when each build ran (SOURCE_DATE_EPOCH is unset): the same
        // statements but for those times.
        let mut all: Vec<String> = Vec::new();
        for entry in index["manifests"].as_array().unwrap() {
            let digest = entry["digest"].as_str().unwrap().to_string();
            if entry["artifactType"] != "application/vnd.in-toto+json" {
                all.push(digest);
                continue;
            }
            let manifest = read_json(&blob(&layout, &digest));
            let mut statement = read_json(&blob(
                &layout,
                manifest["layers"][0]["digest"].as_str().unwrap(),
            ));
            let metadata = &mut statement["predicate"]["runDetails"]["metadata"];
            assert!(metadata["startedOn"].is_string(), "{statement}");
            *metadata = Value::Null;
            all.push(statement.to_string());
        }
        all.sort();
        all.dedup();
        digests.push(all);
    }
    // Two images and their SBOM and audit artifacts, alike, and their provenances but for
    // times.
    assert_eq!(digests[0].len(), 8, "{digests:?}");
    assert_eq!(digests[0], digests[1]);
}

#[test]
fn images_sharing_a_package_share_its_layer_blob() {
    let dir = scratch_dir("quality-layers");
    let config = write_config(
        dir.path(),
        concat!(
            "  a:\n    from: scratch\n    packages: [app-misc/greet]\n",
            "    layering: {strategy: per-package, budget: 4}\n",
            "  b:\n    from: scratch\n    packages: [dev-libs/libgreet, sys-libs/glibc]\n",
            "    layering: {strategy: per-package, budget: 4}\n",
            "  single:\n    from: scratch\n    packages: [dev-libs/libgreet, sys-libs/glibc]\n",
            "    tag: one\n",
        ),
    );
    let layout = dir.path().join("oci");
    build(
        &config,
        &dir.path().join("cache"),
        &["--oci-layout", layout.to_str().unwrap()],
    );
    let a = layer_digests(&layout, "a:latest");
    let b = layer_digests(&layout, "b:latest");
    // The rest below, then a layer per big package (budget 4: three packages each).
    assert_eq!(a.len(), 4, "{a:?}");
    assert_eq!(b.len(), 4, "{b:?}");
    assert_eq!(layer_digests(&layout, "single:one").len(), 1);
    let shared: BTreeSet<&String> = a.iter().filter(|d| b.contains(d)).collect();
    assert_eq!(
        shared.len(),
        2,
        "glibc's and libgreet's layers: {a:?} {b:?}"
    );
    // Which packages they are: the shared blobs hold libc and libgreet.
    let mut names = Vec::new();
    for digest in &shared {
        let list = run_ok(Command::new("tar").arg("-tzf").arg(blob(&layout, digest)));
        names.push(list);
    }
    assert!(
        names.iter().any(|l| l.contains("usr/lib64/libc.so.6")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|l| l.contains("usr/lib64/libgreet.so.1.0.0") && !l.contains("libc.so.6")),
        "{names:?}"
    );
    // The image works as a whole: every file is somewhere in its layers.
    let rootfs = unpack(&layout, "a:latest", dir.path());
    for path in [
        "usr/bin/greet",
        "usr/lib64/libc.so.6",
        "etc/passwd",
        "var/db/pkg/sys-libs/glibc-2.36/CONTENTS",
    ] {
        assert!(rootfs.join(path).exists(), "{path} is missing");
    }
}

/// The accounts test's gib.yaml (a base image and a child with accounts and paths) in `dir`.
fn write_accounts_config(dir: &Path) -> PathBuf {
    let conf = dir.join("app.conf");
    fs::write(&conf, "listen 8080\n").unwrap();
    write_config(
        dir,
        concat!(
            "  base:\n    from: scratch\n    packages: [sys-libs/glibc]\n",
            "  app:\n    from: base\n    packages: [app-misc/greet]\n    tag: \"1\"\n",
            "    accounts:\n",
            "      users: [{name: www, uid: 1000, gid: 1000, home: /var/www}]\n",
            "      groups: [{name: www, gid: 1000}]\n",
            "      run_as: www\n",
            "    paths:\n",
            "      - {path: /srv/data, type: directory, uid: 1000, gid: 1000, mode: \"0750\"}\n",
            "      - {path: /etc/app.conf, type: file, source: ./app.conf, uid: 0, gid: 1000, mode: \"0640\"}\n",
            "      - {path: /usr/bin/hello, type: symlink, target: greet}\n",
            // Paths alone on a packages parent: no emerge or script wrote the layer first.
            "  conf:\n    from: base\n    tag: \"1\"\n    paths:\n",
            "      - {path: /etc/motd, type: file, source: ./app.conf, mode: \"0644\"}\n",
        ),
    )
}

/// The owner, group and permission bits of `path` under `rootfs`.
fn owner_mode(rootfs: &Path, path: &str) -> (u32, u32, u32) {
    let meta = fs::symlink_metadata(rootfs.join(path)).unwrap();
    (meta.uid(), meta.gid(), meta.mode() & 0o7777)
}

#[test]
fn accounts_and_paths_in_a_child_image_and_gib_inspect() {
    let dir = scratch_dir("quality-accounts");
    let config = write_accounts_config(dir.path());
    let layout = dir.path().join("oci");
    let cache = dir.path().join("cache");
    build(&config, &cache, &["--oci-layout", layout.to_str().unwrap()]);

    let rootfs = unpack(&layout, "app:1", dir.path());
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains("www:x:1000:1000:www:/var/www:/sbin/nologin"),
        "{passwd}"
    );
    // The parent's entries are still there: the child edited a copy of its passwd.
    assert!(passwd.starts_with("root:"), "{passwd}");
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap();
    assert!(group.contains("www:x:1000:"), "{group}");
    assert_eq!(owner_mode(&rootfs, "srv/data"), (1000, 1000, 0o750));
    assert_eq!(owner_mode(&rootfs, "var/www"), (1000, 1000, 0o700));
    assert_eq!(owner_mode(&rootfs, "etc/app.conf"), (0, 1000, 0o640));
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/app.conf")).unwrap(),
        "listen 8080\n"
    );
    assert_eq!(
        fs::read_link(rootfs.join("usr/bin/hello")).unwrap(),
        Path::new("greet")
    );
    // The image runs as the user; the parent image is as it was.
    let entry = index_entry(&layout, "app:1");
    let manifest = read_json(&blob(&layout, entry["digest"].as_str().unwrap()));
    let image_config = read_json(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(image_config["config"]["User"], "1000:1000");
    let conf = unpack(&layout, "conf:1", dir.path());
    assert_eq!(owner_mode(&conf, "etc/motd"), (0, 0, 0o644));
    assert!(conf.join("usr/lib64/libc.so.6").exists());
    let base = unpack(&layout, "base:latest", dir.path());
    let base_passwd = fs::read_to_string(base.join("etc/passwd")).unwrap();
    assert!(!base_passwd.contains("www"), "{base_passwd}");

    // gib inspect: package shares, the biggest files and what trimming removed.
    let text = run_ok(
        gib()
            .arg("inspect")
            .arg("app")
            .arg("--cache-dir")
            .arg(&cache),
    );
    for expected in [
        "app-misc/greet-1.0",
        "sys-libs/glibc-2.36",
        "/usr/lib64/libc.so.6",
        "/usr/include",
        "trimmed",
    ] {
        assert!(text.contains(expected), "{expected} not in:\n{text}");
    }
    // A file the child rewrote over its parent's (ld.so.cache) is one file of the image.
    let no_package = text
        .split_once("files of no package (largest):\n")
        .and_then(|(_, rest)| rest.split_once("\n\n"))
        .map(|(section, _)| section)
        .unwrap_or_else(|| panic!("no files of no package in:\n{text}"));
    let mut listed = BTreeSet::new();
    for line in no_package.lines() {
        assert!(
            listed.insert(line.split_whitespace().last()),
            "twice:\n{text}"
        );
    }
    assert!(!text.contains(" 1 files"), "{text}");
    let json: Value = serde_json::from_str(&run_ok(
        gib()
            .arg("inspect")
            .arg("app")
            .arg("--json")
            .arg("--cache-dir")
            .arg(&cache),
    ))
    .unwrap();
    assert!(json["trimmed_bytes"].as_u64().unwrap() > 0, "{json}");
    let glibc = json["usage"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["package"] == "sys-libs/glibc-2.36")
        .unwrap_or_else(|| panic!("{json}"));
    assert!(glibc["bytes"].as_u64().unwrap() > 1_000_000, "{json}");
}

/// The same built by an unprivileged user (through its subordinate ids): the image's owners
/// are the same, and `gib inspect` reads the layer dirs that user cannot read directly.
#[test]
fn accounts_and_paths_rootless() {
    let dir = scratch_dir("quality-accounts-rootless");
    let user = test_user();
    run_ok(
        Command::new("chown")
            .arg(format!("{user}:{user}"))
            .arg(dir.path()),
    );
    let config = write_accounts_config(dir.path());
    let layout = dir.path().join("oci");
    let cache = dir.path().join("cache");
    run_ok(
        as_test_user(&gib_bin())
            .arg("build")
            .arg("-f")
            .arg(&config)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--oci-layout")
            .arg(&layout),
    );
    let rootfs = unpack(&layout, "app:1", dir.path());
    assert_eq!(owner_mode(&rootfs, "srv/data"), (1000, 1000, 0o750));
    assert_eq!(owner_mode(&rootfs, "var/www"), (1000, 1000, 0o700));
    assert_eq!(owner_mode(&rootfs, "etc/app.conf"), (0, 1000, 0o640));
    assert_eq!(owner_mode(&rootfs, "home/nonroot"), (65532, 65532, 0o700));
    let conf = unpack(&layout, "conf:1", dir.path());
    assert_eq!(owner_mode(&conf, "etc/motd"), (0, 0, 0o644));
    let text = run_ok(
        as_test_user(&gib_bin())
            .arg("inspect")
            .arg("app")
            .arg("--cache-dir")
            .arg(&cache),
    );
    assert!(text.contains("sys-libs/glibc-2.36"), "{text}");
}
