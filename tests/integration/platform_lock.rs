//! gib.lock of a multi-platform gib.yaml (issue 18): each platform's stage3 (and the main
//! repository that is its tree) is locked apart, so the legs of one checkout — `--platform
//! linux/arm64` under qemu-user, then `--platform linux/amd64` — keep each other's entries and
//! each passes `--locked`; a leg whose entries are missing fails `--locked` naming its
//! platform and the fix.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::{Runner, build_with, gib_by, work_dir};

/// The mini stage3s of both architectures, the main repository their own tree.
fn two_platforms(dir: &Path) -> PathBuf {
    let text = format!(
        "stage3:\n  path: {{amd64: {amd64}, arm64: {arm64}}}\nportage:\n  sync_type: none\n\
         platforms: [linux/amd64, linux/arm64]\nimages:\n  base:\n    tag: t\n    packages: [sys-libs/glibc]\n",
        amd64 = crate::fixture::mini_stage3().display(),
        arm64 = crate::fixture::mini_stage3_arm64().display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `gib plan --json`'s lock status: platform -> the inputs gib.lock does not pin for it.
fn unlocked_by_platform(runner: Runner, config: &Path) -> serde_json::Value {
    let out = gib_by(runner)
        .args(["plan", "--json", "-f"])
        .arg(config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    plan["lock"]["unlocked_by_platform"].clone()
}

/// `gib update -f config --cache-dir cache extra...` run by `runner`.
fn update(runner: Runner, config: &Path, cache: &Path, extra: &[&str]) -> Output {
    gib_by(runner)
        .args(["update", "-f"])
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .args(extra)
        .output()
        .unwrap()
}

/// The top-level part of gib.lock's text (the lock's own platform's, linux/amd64) and its
/// `platforms:` part.
fn split(lock: &str) -> (&str, &str) {
    lock.split_once("\nplatforms:\n").unwrap_or((lock, ""))
}

#[test]
fn each_platform_leg_locks_its_own_stage3_and_keeps_the_others() {
    let runner = Runner::Root;
    let dir = work_dir(runner, "platform-lock");
    let cache = dir.path().join("cache");
    let config = two_platforms(dir.path());
    let lock_path = dir.path().join("gib.lock");
    let amd64 = file_name(&crate::fixture::mini_stage3());
    let arm64 = file_name(&crate::fixture::mini_stage3_arm64());
    let leg = |platform: &str, extra: &[&str]| {
        build_with(gib_by(runner), &config, &cache)
            .args(["--platform", platform, "base"])
            .args(extra)
            .output()
            .unwrap()
    };

    // The arm64 leg first: its entries stand under `platforms: arm64:`, the top level (the
    // first platform's, amd64) is still empty.
    let out = leg("linux/arm64", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("for linux/arm64 ("),
        "the lock's new entries name their platform: {}",
        stderr(&out)
    );
    let lock = fs::read_to_string(&lock_path).unwrap();
    let (top, apart) = split(&lock);
    assert!(!top.contains("stage3:"), "{lock}");
    assert!(apart.starts_with("  arm64:\n"), "{lock}");
    assert!(apart.contains(&format!("file: {arm64}")), "{lock}");

    // Then the amd64 leg: the top level is its, arm64's entries are kept.
    let out = leg("linux/amd64", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = fs::read_to_string(&lock_path).unwrap();
    let (top, apart) = split(&lock);
    assert!(top.contains(&format!("file: {amd64}")), "{lock}");
    assert!(!top.contains(&arm64), "{lock}");
    assert!(apart.contains(&format!("file: {arm64}")), "{lock}");
    assert!(!apart.contains(&amd64), "{lock}");
    // Both main repositories are the stage3s' own trees: each platform has its entry.
    assert_eq!(top.matches("- name: gentoo").count(), 1, "{lock}");
    assert_eq!(apart.matches("- name: gentoo").count(), 1, "{lock}");
    let none = serde_json::json!([]);
    let status = unlocked_by_platform(runner, &config);
    assert_eq!(status["linux/amd64"], none, "{status}");
    assert_eq!(status["linux/arm64"], none, "{status}");

    // Each leg passes --locked, and the lock stays as it is.
    for platform in ["linux/arm64", "linux/amd64"] {
        let out = leg(platform, &["--locked"]);
        assert!(out.status.success(), "{platform}: {}", stderr(&out));
    }
    assert_eq!(fs::read_to_string(&lock_path).unwrap(), lock);

    // Without arm64's entries, its leg fails --locked, naming the platform and the fix, and
    // leaves gib.lock alone; the amd64 leg still passes.
    let without_arm64 = format!("{top}\n");
    fs::write(&lock_path, &without_arm64).unwrap();
    let status = unlocked_by_platform(runner, &config);
    assert_eq!(status["linux/amd64"], none, "{status}");
    assert_eq!(
        status["linux/arm64"],
        serde_json::json!(["stage3", "gentoo"]),
        "{status}"
    );
    let out = leg("linux/arm64", &["--locked"]);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("does not name the stage3 for linux/arm64 as gib.yaml gives it")
            && said.contains("hint: run `gib update --platform linux/arm64`"),
        "{said}"
    );
    assert_eq!(fs::read_to_string(&lock_path).unwrap(), without_arm64);
    let out = leg("linux/amd64", &["--locked"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // `gib update --platform linux/arm64` writes arm64's entries back (the same files, so
    // the same entries), leaving amd64's as they were.
    let out = update(runner, &config, &cache, &["--platform", "linux/arm64"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Told as arm64's first entries, not as a move from amd64's top-level ones.
    assert!(
        stderr(&out).contains(&format!("Locked stage3: (none) → {arm64} ")),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_to_string(&lock_path).unwrap(), lock);
}

/// `gib update` without `--platform` locks every platform's inputs, as the test user too;
/// the legs' builds then pass `--locked` without a further word of gib.lock.
#[test]
fn update_locks_every_platform_rootless() {
    let runner = Runner::User;
    let dir = work_dir(runner, "platform-lock");
    let cache = dir.path().join("cache");
    let config = two_platforms(dir.path());
    let lock_path = dir.path().join("gib.lock");
    let out = update(runner, &config, &cache, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = fs::read_to_string(&lock_path).unwrap();
    let (top, apart) = split(&lock);
    assert!(
        top.contains(&format!(
            "file: {}",
            file_name(&crate::fixture::mini_stage3())
        )),
        "{lock}"
    );
    assert!(
        apart.starts_with("  arm64:\n")
            && apart.contains(&format!(
                "file: {}",
                file_name(&crate::fixture::mini_stage3_arm64())
            )),
        "{lock}"
    );
    let status = unlocked_by_platform(runner, &config);
    let none = serde_json::json!([]);
    assert_eq!(status["linux/amd64"], none, "{status}");
    assert_eq!(status["linux/arm64"], none, "{status}");
    // Updating again moves nothing.
    let out = update(runner, &config, &cache, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Unchanged"), "{}", stderr(&out));
    assert_eq!(fs::read_to_string(&lock_path).unwrap(), lock);
}

/// A hostile gib.lock (an architecture gib does not build for, one named twice, a
/// `platforms:` of the wrong shape): every command that reads it stops at once with one line
/// naming gib.lock and the line, exit 2, and leaves it as it was; nothing is built.
#[test]
fn a_hostile_platforms_entry_in_gib_lock_stops_every_leg() {
    for runner in [Runner::Root, Runner::User] {
        let dir = work_dir(runner, "platform-lock");
        let cache = dir.path().join("cache");
        let config = two_platforms(dir.path());
        let lock_path = dir.path().join("gib.lock");
        let stage3 = "stage3: {source: s, file: f, sha512: ab}";
        for (text, expected) in [
            (
                format!("version: 1\ngib: x\nplatforms:\n  riscv:\n    {stage3}\n"),
                "architecture `riscv`, which gib does not build for (it knows amd64, arm64) at line 4",
            ),
            (
                format!("version: 1\ngib: x\nplatforms:\n  arm64:\n    {stage3}\n  arm64: {{}}\n"),
                "duplicate mapping key: arm64 at line 6",
            ),
            (
                "version: 1\ngib: x\nplatforms:\n  arm64: [stage3]\n".to_string(),
                "at line 4",
            ),
        ] {
            fs::write(&lock_path, &text).unwrap();
            if runner == Runner::User {
                crate::util::run_ok(
                    std::process::Command::new("chown")
                        .arg(crate::util::test_user())
                        .arg(&lock_path),
                );
            }
            let started = std::time::Instant::now();
            let runs = [
                build_with(gib_by(runner), &config, &cache)
                    .args(["--platform", "linux/arm64"])
                    .output()
                    .unwrap(),
                gib_by(runner)
                    .args(["plan", "-f"])
                    .arg(&config)
                    .output()
                    .unwrap(),
            ];
            assert!(started.elapsed() < std::time::Duration::from_secs(60));
            for out in runs {
                let said = stderr(&out);
                assert_eq!(out.status.code(), Some(2), "{said}");
                let error = said
                    .lines()
                    .find(|l| l.starts_with("error: "))
                    .unwrap_or_else(|| panic!("no error line: {said}"));
                assert!(
                    error.contains(&format!("{}: ", lock_path.display()))
                        && error.contains(expected),
                    "{runner:?} {text}: {said}"
                );
                assert_eq!(said.matches("error: ").count(), 1, "{said}");
            }
            assert_eq!(fs::read_to_string(&lock_path).unwrap(), text);
            // The cache opened, and nothing fetched, unpacked or built in it.
            let mut made: Vec<String> = fs::read_dir(&cache)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            made.sort();
            assert_eq!(made, ["blobs", "locks"]);
        }
    }
}
