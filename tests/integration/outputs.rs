//! What gib leaves on disk for other people: the OCI layout, the archive and its SBOM file
//! get the modes the umask allows (0644 files, 0755 directories under umask 022), so a
//! layout root wrote is readable by another user, and a stricter umask is kept.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::{as_test_user, gib_bin, require_tool, run_ok, scratch_dir};

/// gib, by root, under `umask` (its arguments to follow).
fn gib_under_umask(umask: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(gib_bin());
    cmd
}

/// `gib build` by root under `umask`, writing `layout` and `archive` of a `rootfs:` image.
fn build_under_umask(dir: &Path, umask: &str, layout: &Path, archive: &Path) {
    let tree = dir.join("tree/etc");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("message"), "hello\n").unwrap();
    fs::write(
        dir.join("gib.yaml"),
        "images:\n  files:\n    rootfs: ./tree\n    tag: t\n",
    )
    .unwrap();
    run_ok(
        gib_under_umask(umask)
            .arg("build")
            .arg("-f")
            .arg(dir.join("gib.yaml"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--oci-layout")
            .arg(layout)
            .arg("--archive")
            .arg(archive)
            .env("NO_COLOR", "1"),
    );
}

/// Every file and directory under `root` (itself included) with its permission bits.
fn modes(root: &Path) -> Vec<(String, u32, bool)> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            (
                entry.path().display().to_string(),
                meta.permissions().mode() & 0o7777,
                meta.is_dir(),
            )
        })
        .collect()
}

#[test]
fn outputs_of_root_under_umask_022_are_readable_by_another_user() {
    let dir = scratch_dir("outputs-umask");
    let layout = dir.path().join("layout");
    let archive = dir.path().join("images.tar");
    build_under_umask(dir.path(), "022", &layout, &archive);
    let sbom = dir.path().join("images.tar.spdx.json");

    for (path, mode, is_dir) in modes(&layout) {
        let expected = if is_dir { 0o755 } else { 0o644 };
        assert_eq!(mode, expected, "{path} is {mode:o}");
    }
    for file in [&archive, &sbom] {
        let mode = fs::metadata(file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "{} is {mode:o}", file.display());
    }

    // Another user reads all of it with tools of their own.
    let skopeo = require_tool("skopeo");
    let inspect = run_ok(
        as_test_user(&skopeo)
            .arg("inspect")
            .arg(format!("oci:{}:files:t", layout.display())),
    );
    assert!(inspect.contains("\"Digest\": \"sha256:"), "{inspect}");
    let listing = run_ok(
        as_test_user(Path::new("/usr/bin/tar"))
            .arg("tf")
            .arg(&archive),
    );
    assert!(listing.contains("index.json"), "{listing}");
    let sbom_text = run_ok(as_test_user(Path::new("/usr/bin/cat")).arg(&sbom));
    assert!(sbom_text.contains("\"spdxVersion\""), "{sbom_text}");
}

#[test]
fn outputs_keep_a_stricter_umask() {
    let dir = scratch_dir("outputs-umask-strict");
    let layout = dir.path().join("layout");
    let archive = dir.path().join("images.tar");
    build_under_umask(dir.path(), "027", &layout, &archive);
    for (path, mode, is_dir) in modes(&layout) {
        let expected = if is_dir { 0o750 } else { 0o640 };
        assert_eq!(mode, expected, "{path} is {mode:o}");
    }
    let mode = fs::metadata(&archive).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
}

/// gib run as root under umask 027 builds a packages image (its sandbox runs as other host
/// ids, which must enter what gib makes in the cache), with the digest of a build under 022;
/// a cache below a directory that keeps others out is refused up front, naming it.
#[test]
fn root_under_umask_027_builds_packages_and_a_shut_parent_is_named() {
    let dir = scratch_dir("outputs-umask-packages");
    let config = dir.path().join("gib.yaml");
    fs::write(
        &config,
        format!(
            "stage3:\n  path: {}\nportage:\n  sync_type: none\nimages:\n  \
             base:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout]\n",
            crate::fixture::mini_stage3().display()
        ),
    )
    .unwrap();
    let build = |umask: &str, cache: &Path| {
        gib_under_umask(umask)
            .arg("build")
            .arg("-f")
            .arg(&config)
            .arg("--cache-dir")
            .arg(cache)
            .arg("--json")
            .env("NO_COLOR", "1")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap()
    };
    let digest = |out: &std::process::Output| -> String {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report[0]["digest"].as_str().unwrap().to_string()
    };
    let strict = build("027", &dir.path().join("cache-027"));
    assert!(
        strict.status.success(),
        "{}",
        String::from_utf8_lossy(&strict.stderr)
    );
    let plain = build("022", &dir.path().join("cache-022"));
    assert!(plain.status.success());
    assert_eq!(digest(&strict), digest(&plain));

    let shut = dir.path().join("shut");
    fs::create_dir(&shut).unwrap();
    fs::set_permissions(&shut, fs::Permissions::from_mode(0o700)).unwrap();
    let started = std::time::Instant::now();
    let out = build("022", &shut.join("cache"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "gib's sandbox cannot reach the cache directory {}: {} (mode 0700) keeps others out",
            shut.join("cache").display(),
            shut.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("chmod o+x"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Nothing was unpacked there.
    assert!(!shut.join("cache/stage3").exists());
}
