//! An image's `test:` sees what the container sees: it runs as the image's `user:`, and shell
//! syntax in the test of an image without a shell is refused as a configuration error
//! instead of reaching the program as arguments. As root and as the unprivileged user.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fixture::mini_stage3;
use crate::util::{Runner, gib_build, require_tool, run_ok, test_user, work_dir};

/// svc-whoami (no shell in the image) run as the account its package makes, in its home.
fn write_config(dir: &Path, test: &str) -> PathBuf {
    let text = format!(
        "stage3:\n  path: {}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\nimages:\n  \
         who:\n    from: scratch\n    packages: [app-misc/svc-whoami]\n    tag: one\n    \
         user: gibsvc\n    workdir: /var/lib/gibsvc\n    env: {{GIB_TEST_ENV: seen}}\n    \
         test: {test}\n",
        mini_stage3().display()
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn test_runs_as_the_images_user(runner: Runner) {
    let dir = work_dir(runner, "image-test-user");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("images.tar");
    let archive_arg = ["--archive", archive.to_str().unwrap()];

    // svc-whoami prints the ids it runs with and fails when passwd has no entry for them.
    let config = write_config(dir.path(), "/usr/bin/svc-whoami");
    let out = gib_build(runner, &config, &cache, &["-v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Testing who: /usr/bin/svc-whoami (as gibsvc)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("uid=301 gid=301 user=gibsvc home=/var/lib/gibsvc"),
        "the test did not run as the image's user:\n{stderr}"
    );

    // `&&` would reach svc-whoami as an argument and the test pass: refused, pointing at
    // the test, exit 2, nothing written.
    let config = write_config(dir.path(), "/usr/bin/svc-whoami --fail && false");
    // `gib plan` says so before anything is built.
    let plan = run_ok(crate::util::gib().arg("plan").arg("-f").arg(&config));
    assert!(
        plan.contains(
            "  test:       /usr/bin/svc-whoami --fail && false (as gibsvc)\n              \
             needs /bin/sh in the image: it uses `&&`\n"
        ),
        "{plan}"
    );
    let out = gib_build(runner, &config, &cache, &archive_arg);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {}:15:11: the test of image `who` uses `&&`, which needs a shell, and the \
             image has no /bin/sh",
            config.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(
        !archive.exists(),
        "an image with a refused test was written"
    );
}

#[test]
fn a_test_runs_as_the_images_user_and_shell_syntax_without_a_shell_is_refused_as_root() {
    test_runs_as_the_images_user(Runner::Root);
}

#[test]
fn a_test_runs_as_the_images_user_and_shell_syntax_without_a_shell_is_refused_rootless() {
    test_runs_as_the_images_user(Runner::User);
}

/// A `rootfs:` image whose /etc/passwd is a fifo: the test cannot resolve its user, and says
/// so in bounded time instead of waiting for a writer that never comes.
fn a_hostile_passwd_is_refused(runner: Runner) {
    let dir = work_dir(runner, "image-test-fifo");
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("bin")).unwrap();
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::copy(require_tool("busybox"), tree.join("bin/busybox")).unwrap();
    run_ok(Command::new("mkfifo").arg(tree.join("etc/passwd")));
    if runner == Runner::User {
        run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{0}:{0}", test_user()))
                .arg(&tree),
        );
    }
    let config = dir.path().join("gib.yaml");
    fs::write(
        &config,
        "images:\n  fifo:\n    rootfs: ./tree\n    tag: t\n    user: app\n    \
         test: /bin/busybox true\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = gib_build(runner, &config, &dir.path().join("cache"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot run the command as `app`")
            && stderr.contains("the image's /etc/passwd is not a regular file"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");
}

#[test]
fn a_fifo_as_the_images_passwd_fails_the_test_clearly_as_root() {
    a_hostile_passwd_is_refused(Runner::Root);
}

#[test]
fn a_fifo_as_the_images_passwd_fails_the_test_clearly_rootless() {
    a_hostile_passwd_is_refused(Runner::User);
}
