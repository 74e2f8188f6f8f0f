//! Multi-platform images (issue 18): `platforms:` through the real binary, and the check of
//! the qemu-user registration a foreign platform needs before anything is built.

use std::path::Path;
use std::process::Output;

use crate::util::{gib, scratch_dir};

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
