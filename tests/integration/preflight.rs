//! Errors before work: mistakes in the outputs, a push with nowhere to go, an image of this
//! file named with a tag, and a user without subordinate ids fail in well under a second,
//! with one clear error (exit 2), before the cache is opened: nothing downloaded, unpacked or
//! built. Root and rootless.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::fixture::mini_stage3;
use crate::util::{Runner, build_with, gib, gib_by, work_dir};

fn write_chain(dir: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "{extra}stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nimages:\n\
         \x20 base:\n    from: scratch\n    tag: t\n    packages: [sys-libs/glibc]\n\
         \x20 app:\n    from: base\n    tag: t\n    packages: [app-misc/greet]\n",
        stage3 = mini_stage3().display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

/// Run `cmd`; it must fail with exit 2 within a second, saying `says` in its one error line,
/// with the cache never made.
fn refused_before_work(mut cmd: Command, cache: &Path, says: &str) -> String {
    let started = Instant::now();
    let out: Output = cmd.output().unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{cmd:?}\n{stderr}");
    assert!(took < Duration::from_secs(1), "{cmd:?} took {took:?}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(says), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    // Nothing before the error: no status line, no step.
    assert!(stderr.starts_with("error:"), "{stderr}");
    assert!(
        !cache.exists(),
        "{cmd:?} opened the cache {}",
        cache.display()
    );
    stderr
}

#[test]
fn output_and_push_mistakes_fail_before_any_work() {
    for runner in [Runner::Root, Runner::User] {
        let dir = work_dir(runner, "preflight");
        let config = write_chain(dir.path(), "");
        let cache = dir.path().join("cache");
        let a_file = dir.path().join("a-file");
        fs::write(&a_file, "x").unwrap();
        let build = |args: &[&std::ffi::OsStr]| {
            let mut cmd = build_with(gib_by(runner), &config, &cache);
            cmd.args(args);
            cmd
        };

        let err = refused_before_work(
            build(&["--oci-layout".as_ref(), a_file.as_os_str()]),
            &cache,
            "is a file, not a directory",
        );
        assert!(err.contains(&a_file.display().to_string()), "{err}");
        let under_a_file = a_file.join("layout");
        refused_before_work(
            build(&["--oci-layout".as_ref(), under_a_file.as_os_str()]),
            &cache,
            "is a file, not a directory",
        );
        let no_dir = dir.path().join("missing/images.tar");
        let err = refused_before_work(
            build(&["--archive".as_ref(), no_dir.as_os_str()]),
            &cache,
            "does not exist",
        );
        assert!(err.contains("mkdir -p"), "{err}");
        refused_before_work(
            build(&["--archive".as_ref(), dir.path().as_os_str()]),
            &cache,
            "is a directory, not a file",
        );
        let err = refused_before_work(
            build(&["--push".as_ref()]),
            &cache,
            "names no registry (`registry:`)",
        );
        assert!(err.contains("registry.example.org"), "{err}");
        let mut push = gib_by(runner);
        push.arg("push")
            .arg("-f")
            .arg(&config)
            .arg("--cache-dir")
            .arg(&cache);
        refused_before_work(push, &cache, "names no registry");

        // A registry that is no registry host (gib.yaml's own check).
        let bad_registry = dir.path().join("bad-registry");
        fs::create_dir(&bad_registry).unwrap();
        let bad = write_chain(&bad_registry, "registry: mine\n");
        let mut cmd = build_with(gib_by(runner), &bad, &cache);
        cmd.arg("--push");
        refused_before_work(cmd, &cache, "`mine` is not a registry host");

        if runner == Runner::User {
            // A directory the user cannot write in (root can write anywhere).
            let locked = dir.path().join("locked");
            fs::create_dir(&locked).unwrap();
            let layout = locked.join("layout");
            let err = refused_before_work(
                build(&["--oci-layout".as_ref(), layout.as_os_str()]),
                &cache,
                "cannot write in",
            );
            assert!(err.contains(&locked.display().to_string()), "{err}");
        }
    }
}

#[test]
fn an_image_of_this_file_with_a_tag_is_refused_with_a_hint() {
    let dir = work_dir(Runner::Root, "preflight-from-tag");
    let config = write_chain(dir.path(), "");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("from: base\n", "from: base:2025.1\n");
    fs::write(&config, text).unwrap();
    let cache = dir.path().join("cache");
    let err = refused_before_work(
        build_with(gib(), &config, &cache),
        &cache,
        "`from: base:2025.1` names the image `base` of this file with a tag",
    );
    assert!(err.contains("(`from: base`)"), "{err}");
    let out = gib().arg("plan").arg("-f").arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A registry reference with the same name is one.
    let text = fs::read_to_string(&config).unwrap().replace(
        "from: base:2025.1\n",
        "from: registry.example.org/base:2025.1\n",
    );
    fs::write(&config, text).unwrap();
    let out = gib().arg("plan").arg("-f").arg(&config).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README says: without a subordinate id range gib refuses to build, before any work,
/// and says how to add one.
#[test]
fn a_user_without_subordinate_ids_is_refused_before_any_work() {
    let user = crate::sandbox::user_without_subids();
    let dir = crate::util::scratch_dir("preflight-nosub");
    let config = write_chain(dir.path(), "");
    let cache = dir.path().join("cache");
    crate::util::run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(dir.path()),
    );
    for _ in 0..2 {
        // Every run says so, not only the first.
        let err = refused_before_work(
            build_with(crate::sandbox::as_user(user), &config, &cache),
            &cache,
            &format!("user {user} has no subordinate id range in /etc/subuid and /etc/subgid"),
        );
        assert!(
            err.contains(&format!(
                "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
            )),
            "{err}"
        );
    }
}

#[test]
fn parents_that_cannot_be_pulled_are_refused_before_any_work() {
    let dir = work_dir(Runner::Root, "preflight-parents");
    let cache = dir.path().join("cache");
    // A reference with no registry host (gib has no default registry).
    let config = write_chain(dir.path(), "");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("from: base\n", "from: alpine:3\n");
    fs::write(&config, text).unwrap();
    let err = refused_before_work(
        build_with(gib(), &config, &cache),
        &cache,
        "image app: `from: alpine:3`",
    );
    assert!(err.contains("it needs a registry host"), "{err}");
    assert!(err.contains("docker.io/library/alpine:3"), "{err}");

    // --parents-from-registry with no registry to pull base from.
    let config = write_chain(dir.path(), "");
    let mut cmd = build_with(gib(), &config, &cache);
    cmd.args(["--parents-from-registry", "app"]);
    refused_before_work(
        cmd,
        &cache,
        "image base: --parents-from-registry needs `registry:` in gib.yaml",
    );
}
