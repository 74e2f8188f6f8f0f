//! Multi-platform images (issue 18): `platforms:` through the real binary, and the check of
//! the qemu-user registration a foreign platform needs before anything is built.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::util::{Runner, build_with, gib, gib_by, scratch_dir, work_dir};

fn run(dir: &Path, args: &[&str]) -> Output {
    gib()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("cannot run gib")
}

const TWO_PLATFORMS: &str = "stage3:\n  flavor: amd64-openrc\nplatforms: [linux/amd64, linux/arm64]\nimages:\n  base:\n    packages: sys-libs/glibc\n  tool:\n    from: base\n    packages: app-misc/hello\n    platforms: [linux/arm64]\n";

#[test]
fn plan_json_lists_the_platforms_for_a_ci_matrix() {
    let dir = scratch_dir("multiarch");
    std::fs::write(dir.path().join("gib.yaml"), TWO_PLATFORMS).unwrap();
    let out = run(dir.path(), &["plan", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(
        plan["images"][0]["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    assert_eq!(
        plan["images"][1]["platforms"],
        serde_json::json!(["linux/arm64"])
    );

    let out = run(dir.path(), &["plan"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("platforms: linux/amd64, linux/arm64\n"),
        "{text}"
    );
    assert!(text.contains("  platforms:  linux/arm64\n"), "{text}");
}

#[test]
fn plan_without_platforms_is_the_hosts_alone() {
    let dir = scratch_dir("multiarch");
    std::fs::write(
        dir.path().join("gib.yaml"),
        "stage3:\n  flavor: amd64-openrc\nimages:\n  base:\n    packages: sys-libs/glibc\n",
    )
    .unwrap();
    let out = run(dir.path(), &["plan", "--json"]);
    assert!(out.status.success());
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let host = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => panic!("no test expectation for {other}"),
    };
    assert_eq!(plan["platforms"], serde_json::json!([host]));
}

/// Debian's registration of qemu-aarch64 as the kernel shows it, with `flags` and `state`.
fn registration(state: &str, flags: &str) -> String {
    format!(
        "{state}\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: {flags}\noffset 0\n\
         magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
    )
}

/// A build for linux/amd64 and linux/arm64 on an amd64 host, shown a binfmt_misc directory
/// of the test's making (the `GIB_TEST_BINFMT_DIR` hook: the machine's own registration is
/// shared with the tests running beside this one, so it is not touched): each way the
/// registration can be unusable fails before any work with the exact fix, exit 2, the cache
/// never made. Root and rootless.
#[test]
fn a_foreign_platform_without_a_usable_qemu_registration_fails_before_work() {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the test expects an amd64 host"
    );
    // (what the fake binfmt_misc holds, what the error says, what the hint says)
    let cases: [(Option<String>, &str, &str); 4] = [
        (
            None,
            "binfmt_misc is not mounted at /proc/sys/fs/binfmt_misc",
            "hint: as root: mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; then apt install qemu-user-static binfmt-support",
        ),
        (
            Some(String::new()),
            "qemu-aarch64 is not registered",
            "hint: as root: apt install qemu-user-static binfmt-support (it registers qemu-aarch64 with F)",
        ),
        (
            Some(registration("disabled", "PF")),
            "qemu-aarch64 is registered but disabled",
            "hint: as root: update-binfmts --enable qemu-aarch64",
        ),
        (
            Some(registration("enabled", "P")),
            "qemu-aarch64 is registered without F (flags: `P`): its interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P cannot be found inside gib's sandbox",
            "hint: as root: echo -1 > /proc/sys/fs/binfmt_misc/qemu-aarch64 && echo ':qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PF' > /proc/sys/fs/binfmt_misc/register",
        ),
    ];
    for runner in [Runner::Root, Runner::User] {
        let dir = work_dir(runner, "multiarch");
        let config = dir.path().join("gib.yaml");
        fs::write(
            &config,
            // A flavor: the refusal comes before anything is downloaded.
            "stage3:\n  flavor: amd64-openrc\nportage:\n  sync_type: none\n\
             platforms: [linux/amd64, linux/arm64]\n\
             images:\n  base:\n    tag: t\n    packages: [sys-libs/glibc]\n",
        )
        .unwrap();
        for (entry, says, hint) in &cases {
            let binfmt = dir.path().join("binfmt_misc");
            let _ = fs::remove_dir_all(&binfmt);
            fs::create_dir(&binfmt).unwrap();
            if let Some(entry) = entry {
                fs::write(binfmt.join("status"), "enabled\n").unwrap();
                if !entry.is_empty() {
                    fs::write(binfmt.join("qemu-aarch64"), entry).unwrap();
                }
            }
            let cache = dir.path().join("cache");
            let out_dir = dir.path().join("layout");
            let mut cmd = build_with(gib_by(runner), &config, &cache);
            cmd.arg("--oci-layout").arg(&out_dir);
            // runuser passes the environment on.
            cmd.env("GIB_TEST_BINFMT_DIR", &binfmt);
            let started = Instant::now();
            let out = cmd.output().unwrap();
            let took = started.elapsed();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{runner:?} {says}\n{stderr}");
            assert!(took < Duration::from_secs(2), "{runner:?} took {took:?}");
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
            assert_eq!(errors.len(), 1, "{stderr}");
            assert!(errors[0].contains(says), "{runner:?}: {stderr}");
            assert!(stderr.contains(hint), "{runner:?}: {stderr}");
            assert!(!cache.exists(), "{runner:?} opened the cache: {stderr}");
            assert!(!out_dir.exists(), "{runner:?} wrote the layout: {stderr}");
        }
    }
}

#[test]
fn each_platform_has_its_stage3() {
    let dir = scratch_dir("multiarch");
    std::fs::write(dir.path().join("gib.yaml"), TWO_PLATFORMS).unwrap();
    let out = run(dir.path(), &["plan", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        plan["stage3_by_platform"]["linux/arm64"]["flavor"],
        "arm64-openrc"
    );
    assert_eq!(
        plan["stage3_by_platform"]["linux/amd64"]["flavor"],
        "amd64-openrc"
    );

    // A tarball per architecture, each with its checksum.
    for name in ["amd64.tar.xz", "arm64.tar.xz"] {
        std::fs::write(dir.path().join(name), name).unwrap();
    }
    let sum = "a".repeat(128);
    std::fs::write(
        dir.path().join("gib.yaml"),
        TWO_PLATFORMS.replace(
            "  flavor: amd64-openrc\n",
            &format!(
                "  path: {{amd64: amd64.tar.xz, arm64: arm64.tar.xz}}\n  sha512: {{arm64: {sum}}}\n"
            ),
        ),
    )
    .unwrap();
    let out = run(dir.path(), &["plan", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arm = &plan["stage3_by_platform"]["linux/arm64"];
    assert_eq!(
        arm["path"],
        dir.path().join("arm64.tar.xz").display().to_string()
    );
    assert_eq!(arm["sha512"], sum);
    let amd = &plan["stage3_by_platform"]["linux/amd64"];
    assert_eq!(
        amd["path"],
        dir.path().join("amd64.tar.xz").display().to_string()
    );
    assert_eq!(amd["sha512"], serde_json::Value::Null);

    // One tarball cannot serve two architectures.
    std::fs::write(
        dir.path().join("gib.yaml"),
        TWO_PLATFORMS.replace("  flavor: amd64-openrc\n", "  path: amd64.tar.xz\n"),
    )
    .unwrap();
    let out = run(dir.path(), &["plan"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "image `base` is built for linux/arm64, and `stage3:` names no stage3 for it"
        ),
        "{stderr}"
    );
}

/// The greet chain of the mini stage3, with `platforms` (an extra gib.yaml line) if given.
fn greet_chain(dir: &Path, platforms: &str) -> std::path::PathBuf {
    // The arm64 tarball is never read: only the amd64 leg is built from this file.
    let arm64 = dir.join("stage3-arm64.tar.zst");
    fs::write(&arm64, "not read").unwrap();
    let text = format!(
        "stage3:\n  path: {{amd64: {amd64}, arm64: {arm64}}}\nportage:\n  sync_type: none\n{platforms}\
         images:\n  base:\n    tag: t\n    packages: [sys-libs/glibc]\n\
         \x20 app:\n    from: base\n    tag: t\n    packages: [app-misc/greet]\n    cmd: [greet]\n",
        amd64 = crate::fixture::mini_stage3().display(),
        arm64 = arm64.display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

/// `--platform linux/amd64` builds one leg of a two-platform file: the amd64 images alone,
/// the very images (same input keys, so the second build reuses the first's cache entries;
/// same digests) a file without `platforms:` gives. `--platform` of a platform no image has
/// is refused with the ones there are.
#[test]
fn platform_builds_one_leg_the_same_as_a_single_platform_file() {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the test expects an amd64 host"
    );
    let dir = scratch_dir("multiarch");
    let cache = dir.path().join("cache");
    let single = dir.path().join("single");
    let leg = dir.path().join("leg");
    fs::create_dir_all(&single).unwrap();
    fs::create_dir_all(&leg).unwrap();

    let config = greet_chain(&single, "");
    let out = build_with(gib(), &config, &cache)
        .args(["--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let one: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let config = greet_chain(&leg, "platforms: [linux/amd64, linux/arm64]\n");
    let out = build_with(gib(), &config, &cache)
        .args(["--platform", "linux/amd64", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Reusing app "), "{stderr}");
    let other: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for i in 0..2 {
        assert_eq!(one[i]["name"], other[i]["name"]);
        assert_eq!(one[i]["digest"], other[i]["digest"], "{}", one[i]["name"]);
    }

    let out = build_with(gib(), &config, &cache)
        .args(["--platform", "linux/riscv64"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--platform linux/riscv64: no image of ")
            && stderr.contains("hint: the platforms are: linux/amd64, linux/arm64"),
        "{stderr}"
    );
}
