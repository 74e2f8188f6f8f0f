//! What gib leaves on disk for other people: the OCI layout, the archive and its SBOM file
//! get the modes the umask allows (0644 files, 0755 directories under umask 022), so a
//! layout root wrote is readable by another user, and a stricter umask is kept.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::util::{as_test_user, gib_bin, require_tool, run_ok, scratch_dir};

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
        Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(gib_bin())
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
