//! The lint after every build, on the mini stage3's greet chain (real Portage, real ELF files
//! gcc made): the chain passes; a child whose script deleted the parent's libgreet.so.1 (an
//! overlay whiteout over the parent's layer) fails with /usr/bin/greet and the soname, leaves
//! no cache entry and no output; `ignore` leaves the binary out, `fail: false` makes the error
//! a warning, and a dangling symlink warns. As root and as the unprivileged test user.

use std::fs;
use std::path::Path;

use crate::fixture::mini_stage3;
use crate::util::{Runner, gib_build, work_dir};

/// Deletes the library greet links (in a parent's layer) and leaves a link to nothing.
const NOLIB_SCRIPT: &str = "rm -f \"$ROOT\"/usr/lib64/libgreet.so.1*\n\
                            ln -s /usr/share/nowhere \"$ROOT/usr/bin/dangling\"\n";

fn write_config(dir: &Path, nolib_lint: &str) -> std::path::PathBuf {
    fs::write(dir.join("nolib.sh"), NOLIB_SCRIPT).unwrap();
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n\
         images:\n\
         \x20 base:\n    tag: t\n    packages: [sys-apps/baselayout, sys-libs/glibc]\n\
         \x20 lib:\n    from: base\n    tag: t\n    packages: [dev-libs/libgreet]\n\
         \x20 app:\n    from: lib\n    tag: t\n    packages: [app-misc/greet]\n    \
         entrypoint: [/usr/bin/greet]\n    test: /usr/bin/greet\n\
         \x20 nolib:\n    from: app\n    tag: t\n    script: ./nolib.sh\n{nolib_lint}",
        stage3 = mini_stage3().display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

/// The `--json` report's entry for `name`.
fn image_report<'r>(report: &'r serde_json::Value, name: &str) -> &'r serde_json::Value {
    report
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// `(kind, severity, path, detail)` of a report's findings of `kind`.
fn findings(lint: &serde_json::Value, kind: &str) -> Vec<(String, String, String)> {
    lint["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings in {lint}"))
        .iter()
        .filter(|f| f["kind"] == kind)
        .map(|f| {
            (
                f["severity"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
                f["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn has_entry(cache: &Path, image: &str) -> bool {
    fs::read_dir(cache.join("images")).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{image}-"))
        })
    })
}

#[test]
fn a_missing_library_fails_the_build_and_the_policy_can_relax_it() {
    for runner in [Runner::Root, Runner::User] {
        lint_chain(runner);
    }
}

fn lint_chain(runner: Runner) {
    let dir = work_dir(runner, "lint");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("out.tar");
    let archive_arg = archive.to_str().unwrap();

    // The greet chain passes: every ELF file finds its loader and libraries.
    let config = write_config(dir.path(), "");
    let out = gib_build(runner, &config, &cache, &["--json", "app"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{runner:?}: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["base", "lib", "app"] {
        let lint = &image_report(&report, name)["lint"];
        // Every file is a package's, or one the build writes (ld.so.cache, passwd…).
        for kind in [
            "missing_library",
            "missing_interpreter",
            "unreadable",
            "unowned",
        ] {
            assert_eq!(findings(lint, kind), [], "{runner:?} {name} {kind}: {lint}");
        }
        // The fixture's packages install nothing in /usr/bin (but greet) or /usr/sbin, so
        // baselayout's /bin and /sbin links do lead nowhere (a warning).
        for (_, path, _) in findings(lint, "dangling_symlink") {
            assert!(["/bin", "/sbin"].contains(&path.as_str()), "{name}: {lint}");
        }
        assert!(lint["checked"]["elf_files"].as_u64().unwrap() > 0, "{lint}");
    }
    assert!(stderr.contains("Linted app"), "{stderr}");

    // Without libgreet.so.1 the build fails, naming the binary and the soname.
    let started = std::time::Instant::now();
    let out = gib_build(runner, &config, &cache, &["--archive", archive_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{runner:?}: {stderr}");
    assert!(
        stderr.contains("the lint of image nolib failed: 1 problem")
            && stderr.contains(
                "/usr/bin/greet: needs libgreet.so.1, which no file of the image provides"
            ),
        "{runner:?}: {stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(600));
    assert!(!archive.exists(), "a failing lint wrote the archive");
    assert!(
        !has_entry(&cache, "nolib"),
        "a failing lint left a cache entry"
    );
    assert!(has_entry(&cache, "app"));

    // `ignore` leaves greet out; the dangling link still warns, and the image builds.
    let config = write_config(dir.path(), "    lint: {ignore: [/usr/bin/greet]}\n");
    let out = gib_build(
        runner,
        &config,
        &cache,
        &["--json", "--archive", archive_arg],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{runner:?}: {stderr}");
    assert!(
        stderr.lines().any(
            |line| line.starts_with("warning: image nolib: dangling symlinks (")
                && line.contains("; /usr/bin/dangling -> /usr/share/nowhere;")
        ),
        "{runner:?}: {stderr}"
    );
    assert!(!stderr.contains("needs libgreet.so.1"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lint = &image_report(&report, "nolib")["lint"];
    assert_eq!(findings(lint, "missing_library"), []);
    assert_eq!(
        findings(lint, "unowned"),
        [(
            "warning".to_string(),
            "/usr/bin/dangling".to_string(),
            String::new()
        )]
    );
    assert!(lint["ignored"].as_u64().unwrap() >= 1, "{lint}");
    assert!(
        findings(lint, "dangling_symlink").contains(&(
            "warning".to_string(),
            "/usr/bin/dangling".to_string(),
            "-> /usr/share/nowhere".to_string()
        )),
        "{lint}"
    );
    assert!(archive.exists());

    // `fail: false`: the missing library is a warning, kept in the report.
    let config = write_config(dir.path(), "    lint: {fail: false}\n");
    let out = gib_build(runner, &config, &cache, &["--json", "nolib"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{runner:?}: {stderr}");
    assert!(
        stderr.contains("warning: image nolib: missing libraries (1): /usr/bin/greet: needs libgreet.so.1, which no file of the image provides"),
        "{runner:?}: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        findings(&image_report(&report, "nolib")["lint"], "missing_library"),
        [(
            "warning".to_string(),
            "/usr/bin/greet".to_string(),
            "libgreet.so.1".to_string()
        )]
    );
}

/// A `rootfs:` tree made to trip the lint: a cut ELF file, links to the host's files and in
/// a loop, a script of a missing shell, and the host's /bin/true without its libraries.
fn hostile_tree(tree: &Path) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    fs::create_dir_all(tree.join("bin")).unwrap();
    fs::create_dir_all(tree.join("etc")).unwrap();
    let program = fs::read("/bin/true").unwrap();
    fs::write(tree.join("bin/true"), &program).unwrap();
    fs::write(tree.join("bin/cut"), &program[..100]).unwrap();
    fs::write(tree.join("bin/script"), "#!/bin/bash\necho\n").unwrap();
    for file in ["bin/true", "bin/cut", "bin/script"] {
        fs::set_permissions(tree.join(file), fs::Permissions::from_mode(0o755)).unwrap();
    }
    // The host has these; the image does not, and the lint must look in the image only.
    symlink("/etc/hostname", tree.join("etc/evil")).unwrap();
    symlink("../../../../../../../etc/passwd", tree.join("etc/up")).unwrap();
    symlink("loop-b", tree.join("etc/loop-a")).unwrap();
    symlink("loop-a", tree.join("etc/loop-b")).unwrap();
}

#[test]
fn a_hostile_rootfs_gives_findings_not_a_crash() {
    for runner in [Runner::Root, Runner::User] {
        let dir = work_dir(runner, "lint-hostile");
        hostile_tree(&dir.path().join("tree"));
        let config = dir.path().join("gib.yaml");
        let write = |lint: &str| {
            fs::write(
                &config,
                format!("images:\n  odd:\n    rootfs: ./tree\n    tag: t\n{lint}"),
            )
            .unwrap()
        };
        let cache = dir.path().join("cache");

        write("");
        let started = std::time::Instant::now();
        let out = gib_build(runner, &config, &cache, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{runner:?}: {stderr}");
        assert!(started.elapsed() < std::time::Duration::from_secs(120));
        for expected in [
            "the lint of image odd failed: 2 problems",
            "  /bin/true: needs libc.so.6, which no file of the image provides",
            "  /bin/true: its program interpreter /lib64/ld-linux-x86-64.so.2 is missing",
        ] {
            assert!(stderr.contains(expected), "{runner:?}: {stderr}");
        }
        assert!(!has_entry(&cache, "odd"));

        write("    lint: {ignore: [/bin/true]}\n");
        let out = gib_build(runner, &config, &cache, &["--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{runner:?}: {stderr}");
        for expected in [
            "warning: image odd: files not read as ELF (1): /bin/cut: malformed ELF",
            "warning: image odd: scripts whose interpreter is missing (1): /bin/script: its \
             interpreter /bin/bash is missing",
            "warning: image odd: dangling symlinks (4): /etc/evil -> /etc/hostname; \
             /etc/loop-a -> loop-b (too many levels of symbolic links); \
             /etc/loop-b -> loop-a (too many levels of symbolic links); \
             /etc/up -> ../../../../../../../etc/passwd",
        ] {
            assert!(
                stderr.contains(expected),
                "{runner:?}: {expected}\n{stderr}"
            );
        }
        // No packages, so no owners to check.
        assert!(!stderr.contains("files of no package"), "{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(image_report(&report, "odd")["lint"]["ignored"], 2);

        // The script the image starts (a bare name in the default PATH) cannot run: an error.
        write("    entrypoint: [script]\n    lint: {ignore: [/bin/true]}\n");
        let out = gib_build(runner, &config, &cache, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{runner:?}: {stderr}");
        assert!(
            stderr.contains("the lint of image odd failed: 1 problem\n  /bin/script: its interpreter /bin/bash is missing"),
            "{runner:?}: {stderr}"
        );
    }
}
