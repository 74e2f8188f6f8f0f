//! The shell gib ships (rootfs-tools, embedded in the binary and run inside every builder)
//! and the scripts around it, checked by shellcheck.

use std::path::Path;
use std::process::Command;

use crate::util::{require_tool, run_ok};

#[test]
fn every_shipped_shell_script_passes_shellcheck() {
    let shellcheck = require_tool("shellcheck");
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scripts = Vec::new();
    for dir in [
        "rootfs-tools",
        "examples",
        "benches",
        "tests/fixtures/mini-stage3",
        ".ci",
    ] {
        for entry in std::fs::read_dir(top.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let is_script = path.extension().is_some_and(|e| e == "sh")
                || path.file_name().is_some_and(|n| n == "run");
            if is_script {
                scripts.push(path);
            }
        }
    }
    assert!(scripts.len() >= 8, "found only {scripts:?}");
    run_ok(
        Command::new(shellcheck)
            .arg("--severity=warning")
            .args(&scripts),
    );
}
