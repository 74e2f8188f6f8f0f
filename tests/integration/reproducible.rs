//! Digests that depend on nothing but the inputs: the same `rootfs:` tarball gives the same
//! image whenever it is unpacked, whatever its file time, whether it is built before or after
//! an image that prepares the stage3, and whoever builds it (root or the test user).

use std::fs;
use std::path::Path;
use std::process::Output;

use crate::fixture::mini_stage3;
use crate::util::{Runner, build_without_sandboxes, gib_build, run_ok, test_user, work_dir};

/// gib.yaml with the rootfs image `root` and a packages image named `other`, which sorts
/// before or after `root` and so is built before or after it.
fn write_config(dir: &Path, other: &str, tarball: &str) -> std::path::PathBuf {
    let path = dir.join(format!("gib-{other}-{}.yaml", tarball.replace('/', "-")));
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nimages:\n\
         \x20 root:\n    from: scratch\n    tag: t\n    rootfs: ./{tarball}\n\
         \x20 {other}:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout]\n",
        stage3 = mini_stage3().display(),
    );
    fs::write(&path, text).unwrap();
    path
}

/// The manifest digest of `root` from `gib build --json`, and gib's stderr.
fn root_digest(out: &Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = report
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "root")
        .unwrap_or_else(|| panic!("no image root in {report}"));
    (root["digest"].as_str().unwrap().to_string(), stderr)
}

/// A tarball of files and directories with fresh times (newer than the snapshot), some
/// directories only implied by their files' paths (an unpack gives those the wall clock).
fn write_tarball(dir: &Path) {
    let tree = dir.join("tree");
    for sub in ["etc/app", "usr/share/doc/app"] {
        fs::create_dir_all(tree.join(sub)).unwrap();
    }
    fs::write(tree.join("etc/app/app.conf"), "listen 8080\n").unwrap();
    fs::write(tree.join("usr/share/doc/app/README"), "hello\n").unwrap();
    run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .args(["--numeric-owner", "--owner=0", "--group=0", "-czf"])
            .arg(dir.join("root.tar.gz"))
            // `etc/app` is implied, not listed; `usr/share` and below are entries.
            .args(["--no-recursion", "etc/app/app.conf", "usr", "usr/share"])
            .args([
                "usr/share/doc",
                "usr/share/doc/app",
                "usr/share/doc/app/README",
            ]),
    );
}

#[test]
fn a_rootfs_tarball_gives_one_digest_whenever_in_whatever_order_and_by_whomever() {
    let mut digests = Vec::new();
    for runner in [Runner::Root, Runner::User] {
        let tmp = work_dir(runner, &format!("repro-rootfs-{runner:?}"));
        let dir = tmp.path();
        write_tarball(dir);
        let tarball = dir.join("root.tar.gz");
        let first = write_config(dir, "zz-after", "root.tar.gz");
        let after = write_config(dir, "aa-before", "root.tar.gz");
        fs::create_dir(dir.join("moved")).unwrap();
        fs::copy(&tarball, dir.join("moved/root.tar.gz")).unwrap();
        let moved = write_config(dir, "zz-after", "moved/root.tar.gz");
        if runner == Runner::User {
            let user = test_user();
            run_ok(
                std::process::Command::new("chown")
                    .args(["-R", &format!("{user}:{user}")])
                    .arg(dir),
            );
        }
        let cache = dir.join("cache");

        // Built first, before anything prepared the stage3 or the repository.
        let (digest, stderr) = root_digest(&gib_build(runner, &first, &cache, &["--json"]));
        assert!(stderr.contains("Unpacking"), "{stderr}");
        digests.push((format!("{runner:?} first"), digest));

        // Nothing changed: reused, not unpacked or layered again.
        let (digest, stderr) = root_digest(&gib_build(runner, &first, &cache, &["--json"]));
        assert!(stderr.contains("Reusing root"), "{stderr}");
        assert!(!stderr.contains("Unpacking"), "{stderr}");
        assert!(!stderr.contains("Layering root"), "{stderr}");
        digests.push((format!("{runner:?} again"), digest));

        // Touched (a new mtime, the same bytes): still reused.
        run_ok(
            std::process::Command::new("touch")
                .args(["-d", "2027-01-02 03:04:05"])
                .arg(&tarball),
        );
        let (digest, stderr) = root_digest(&gib_build(runner, &first, &cache, &["--json"]));
        assert!(stderr.contains("Reusing root"), "{stderr}");
        assert!(!stderr.contains("Unpacking"), "{stderr}");
        digests.push((format!("{runner:?} touched"), digest.clone()));

        // Elsewhere (another name, another time): still reused.
        let (digest, stderr) = root_digest(&gib_build(runner, &moved, &cache, &["--json"]));
        assert!(stderr.contains("Reusing root"), "{stderr}");
        digests.push((format!("{runner:?} moved"), digest.clone()));

        // Reused without entering a sandbox: it works where no user namespace can be made.
        if runner == Runner::Root {
            let out = build_without_sandboxes(&first, &cache, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert!(
                stderr.contains(&format!("Reusing root {digest}")),
                "{stderr}"
            );
        }

        // Touched and rebuilt, in a fresh cache, first and after a packages image.
        let fresh = dir.join("cache-fresh");
        let (digest, stderr) = root_digest(&gib_build(runner, &first, &fresh, &["--json"]));
        assert!(stderr.contains("Unpacking"), "{stderr}");
        digests.push((format!("{runner:?} touched, fresh cache"), digest));
        let (digest, stderr) =
            root_digest(&gib_build(runner, &after, &fresh, &["--json", "--force"]));
        assert!(stderr.contains("Layering root"), "{stderr}");
        digests.push((format!("{runner:?} after a packages image, forced"), digest));
        let other = dir.join("cache-other");
        let (digest, _) = root_digest(&gib_build(runner, &after, &other, &["--json"]));
        digests.push((format!("{runner:?} after a packages image"), digest));
    }
    let (_, expected) = &digests[0];
    for (how, digest) in &digests {
        assert_eq!(digest, expected, "{how}: {digests:?}");
    }
}
