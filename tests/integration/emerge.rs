//! emerge into a staging root, end to end on the mini stage3 (real Portage): a C program and
//! the C library it links, compiled from source, with a USE flag from gib.yaml that changes
//! what the program prints; the image checked with podman, as root and as an unprivileged
//! user; rebuilds from the binary package cache; a package that fails to compile.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::fixture::mini_stage3;
use crate::util::{
    Podman, Runner, archive_layers, as_test_user, emerge_log, gib, gib_bin, gib_build, scratch_dir,
    work_dir,
};

/// A gib.yaml with one image per `(name, atoms)` on the mini stage3.
fn write_config(dir: &Path, greet_use: &[&str], images: &[(&str, &str)]) -> PathBuf {
    let mut text = format!(
        "stage3:\n  path: {}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n  \
         package_use_flags:\n    app-misc/greet: [{}]\nimages:\n",
        mini_stage3().display(),
        greet_use.join(", ")
    );
    for (name, atoms) in images {
        text.push_str(&format!(
            "  {name}:\n    from: scratch\n    packages: [{atoms}]\n    \
             entrypoint: [/usr/bin/greet]\n"
        ));
    }
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn build(runner: Runner, config: &Path, cache: &Path, extra: &[&str]) -> Output {
    gib_build(runner, config, cache, extra)
}

fn build_ok(runner: Runner, config: &Path, cache: &Path, extra: &[&str]) -> String {
    let out = build(runner, config, cache, extra);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "gib build failed:\n{stderr}");
    stderr
}

fn greet_end_to_end(runner: Runner) {
    let dir = work_dir(runner, "emerge-greet");
    let config = write_config(dir.path(), &["loud"], &[("greet", "app-misc/greet")]);
    let archive = dir.path().join("greet.tar");
    let stderr = build_ok(
        runner,
        &config,
        &dir.path().join("cache"),
        &["--archive", archive.to_str().unwrap()],
    );
    // Progress names each package, n of N; the libraries and the program are compiled.
    assert!(
        stderr.contains("app-misc/greet-1.0 from source into the image"),
        "{stderr}"
    );
    assert!(stderr.contains("/6 "), "{stderr}");
    assert!(stderr.contains("emerge.log"), "{stderr}");

    // The tag rule: the image is named like the package, so its version is the tag.
    let layers = archive_layers(&archive, "greet:1.0");
    assert_eq!(layers.len(), 1);
    let layer = &layers[0];
    for present in [
        "usr/bin/greet",
        "usr/lib64/libgreet.so.1",
        "usr/lib64/libc.so.6",
        "var/db/pkg/app-misc/greet-1.0/CONTENTS",
        "var/db/pkg/dev-libs/libgreet-1.0/CONTENTS",
        "etc/passwd",
        "etc/group",
        "etc/os-release",
        "tmp",
    ] {
        assert!(
            layer.contains_key(present),
            "{present} is missing from the image"
        );
    }
    // Nothing of the builder: no compiler, no Python, no Portage, no build-only package,
    // no headers or static libraries, no Portage state, no build environment in the db.
    for path in layer.keys() {
        for absent in [
            "usr/bin/gcc",
            "usr/bin/cc",
            "usr/bin/python",
            "usr/lib/python",
            "usr/lib/portage",
            "usr/share/portage",
            "etc/portage",
            "var/db/repos",
            "var/lib/portage",
            "var/cache/edb",
            "usr/include",
            "usr/bin/greet-tools",
            "usr/lib64/pkgconfig",
        ] {
            assert!(
                !path.starts_with(absent),
                "{path} should not be in the image"
            );
        }
        assert!(!path.ends_with(".a"), "{path}: static library in the image");
        assert!(
            !path.ends_with("environment.bz2") && !path.ends_with(".ebuild"),
            "{path}: the package database is not trimmed"
        );
    }
    assert_eq!(layer["tmp"].1 & 0o7777, 0o1777, "/tmp mode");
    assert_eq!((layer["usr/bin/greet"].2, layer["usr/bin/greet"].3), (0, 0));

    // podman runs it (loaded as root), printing the line the USE flag selected.
    let podman = Podman::new(dir.path());
    let loaded = podman.load(&archive);
    assert!(loaded.contains("greet:1.0"), "{loaded}");
    assert_eq!(podman.run("greet:1.0", &[]).trim(), "HELLO FROM GIB");
}

#[test]
fn a_program_compiled_from_source_runs_in_podman_as_root() {
    greet_end_to_end(Runner::Root);
}

#[test]
fn a_program_compiled_from_source_runs_in_podman_rootless() {
    greet_end_to_end(Runner::User);
}

#[test]
fn a_use_change_rebuilds_and_an_unchanged_build_uses_binary_packages() {
    let dir = scratch_dir("emerge-rebuild");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("greet.tar");
    let archive_arg = ["--archive", archive.to_str().unwrap()];
    let config = write_config(dir.path(), &["loud"], &[("greet", "app-misc/greet")]);
    build_ok(Runner::Root, &config, &cache, &archive_arg);

    // Nothing changed: the image is reused without entering the sandbox.
    let stderr = build_ok(Runner::Root, &config, &cache, &archive_arg);
    assert!(stderr.contains("Reusing greet"), "{stderr}");
    assert!(!stderr.contains("Emerging"), "{stderr}");

    // Forced: emerge runs again and takes every package from the binary package cache.
    let stderr = build_ok(Runner::Root, &config, &cache, &["--force"]);
    assert!(!stderr.contains("from source"), "{stderr}");
    assert!(
        stderr.contains("app-misc/greet-1.0 from binary package into the image"),
        "{stderr}"
    );
    let log = fs::read_to_string(emerge_log(&cache, "greet")).unwrap();
    assert!(log.contains(">>> Emerging binary"), "{log}");

    // The USE flag changed: greet is compiled again, its unchanged library is not.
    let config = write_config(dir.path(), &["-loud"], &[("greet", "app-misc/greet")]);
    let stderr = build_ok(Runner::Root, &config, &cache, &archive_arg);
    assert!(
        stderr.contains("app-misc/greet-1.0 from source into the image"),
        "{stderr}"
    );
    assert!(
        stderr.contains("dev-libs/libgreet-1.0 from binary package into the image"),
        "{stderr}"
    );
    let podman = Podman::new(dir.path());
    podman.load(&archive);
    assert_eq!(podman.run("greet:1.0", &[]).trim(), "hello from gib");
}

#[test]
fn a_package_that_fails_to_compile_names_itself_and_shows_its_log() {
    let dir = scratch_dir("emerge-broken");
    let cache = dir.path().join("cache");
    let config = write_config(dir.path(), &[], &[("broken", "app-misc/broken")]);
    let out = build(Runner::Root, &config, &cache, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("emerge failed: app-misc/broken-1.0 (compile phase)"),
        "{stderr}"
    );
    // The last lines of its build log, with the compiler's error.
    assert!(stderr.contains("gib_undeclared_symbol"), "{stderr}");
    let log_line = stderr
        .lines()
        .find(|l| l.contains("build log: "))
        .unwrap_or_else(|| panic!("no build log path in:\n{stderr}"));
    let log = log_line.split("build log: ").nth(1).unwrap();
    let log = log.split(';').next().unwrap().trim();
    assert!(Path::new(log).is_file(), "{log} does not exist");
    // Nothing half-built is left as an image entry.
    let entries: Vec<_> = fs::read_dir(cache.join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(entries.is_empty(), "left in the cache: {entries:?}");
}

/// A misspelt atom: an error naming it, that no ebuild matches, and emerge's nearest names,
/// with the configuration's exit code; not a build log.
fn a_missing_package_is_named(runner: Runner) {
    let dir = work_dir(runner, "emerge-missing");
    let cache = dir.path().join("cache");
    let config = write_config(dir.path(), &[], &[("typo", "app-misc/greeet")]);
    let out = build(runner, &config, &cache, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("error: image typo: no ebuild matches app-misc/greeet\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: did you mean app-misc/greet?"),
        "{stderr}"
    );
    assert!(!stderr.contains("emerge failed"), "{stderr}");
    assert!(!stderr.contains("build log:"), "{stderr}");
}

#[test]
fn a_missing_package_is_named_with_the_nearest_names_as_root() {
    a_missing_package_is_named(Runner::Root);
}

#[test]
fn a_missing_package_is_named_with_the_nearest_names_rootless() {
    a_missing_package_is_named(Runner::User);
}

/// `emerge --info` in the mini stage3 through gib's sandbox.
fn emerge_info(runner: Runner) {
    let dir = work_dir(runner, "emerge-info");
    let mut cmd = match runner {
        Runner::Root => gib(),
        Runner::User => as_test_user(&gib_bin()),
    };
    cmd.args(["__internal", "run", "--network", "none", "--stage3"])
        .arg(mini_stage3())
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["--", "emerge", "--info"]);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Portage 3.0.83"), "{stdout}");
    assert!(stdout.contains("glibc-2.36"), "{stdout}");
    assert!(stdout.contains("CHOST=\"x86_64-pc-linux-gnu\""), "{stdout}");
}

#[test]
fn emerge_info_runs_in_the_sandbox_as_root() {
    emerge_info(Runner::Root);
}

#[test]
fn emerge_info_runs_in_the_sandbox_rootless() {
    emerge_info(Runner::User);
}

#[test]
fn gib_shell_enters_an_images_builder_with_its_portage_files() {
    let dir = scratch_dir("emerge-shell");
    let config = write_config(dir.path(), &["loud"], &[("greet", "app-misc/greet")]);
    let mut cmd = gib();
    cmd.args(["shell", "greet", "-f"])
        .arg(&config)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"cat /etc/portage/package.use/zz-gib\n\
              emerge --root=/staging --oneshot --quiet dev-libs/libgreet >/dev/null 2>&1 && \
              ls /staging/usr/lib64\nexit 7\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("app-misc/greet loud"), "{stdout}");
    assert!(stdout.contains("libgreet.so.1"), "{stdout}");
    // The builder's changes were thrown away: nothing was published as an image.
    assert!(
        !dir.path().join("cache/images").exists()
            || fs::read_dir(dir.path().join("cache/images"))
                .unwrap()
                .all(|e| e.unwrap().file_name().to_string_lossy().starts_with('.'))
    );
}

#[test]
fn an_image_can_keep_what_the_build_trims() {
    let dir = scratch_dir("emerge-keep");
    let config = write_config(dir.path(), &["loud"], &[("greet", "app-misc/greet")]);
    // The build-wide default trims headers and static libraries; this image keeps them.
    let text = fs::read_to_string(&config).unwrap().replace(
        "    entrypoint: [/usr/bin/greet]\n",
        "    entrypoint: [/usr/bin/greet]\n    keep_headers: true\n    keep_static_libs: true\n",
    );
    fs::write(&config, text).unwrap();
    let archive = dir.path().join("greet.tar");
    build_ok(
        Runner::Root,
        &config,
        &dir.path().join("cache"),
        &["--archive", archive.to_str().unwrap()],
    );
    let layer = &archive_layers(&archive, "greet:1.0")[0];
    assert!(layer.contains_key("usr/include/greet.h"), "header trimmed");
    assert!(
        layer.contains_key("usr/lib64/libgreet.a"),
        "static library trimmed"
    );
    assert!(
        layer.contains_key("usr/lib64/pkgconfig/libgreet.pc"),
        "pkg-config file trimmed"
    );
}
