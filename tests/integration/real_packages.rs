//! What real ::gentoo packages need from gib, on the mini stage3's GLEP 81 account packages
//! (acct-group/gibsvc, acct-user/gibsvc: groupadd/useradd --prefix "${ROOT}" in pkg_preinst)
//! and app-misc/svc-whoami, a service that prints the account it runs as and ships a header,
//! an OpenRC script with its conf.d and a systemd unit: the accounts reach the image with
//! their home directories, a child image runs as its parent's account in podman, trimmed
//! files leave the package database, no Portage warning of gib's making, and the failures a
//! real user hits say what is wrong. As root and as the unprivileged user.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fixture::mini_stage3;
use crate::util::{
    Podman, Runner, archive_layer_files, archive_layers, as_test_user, emerge_log, gib_build,
    run_ok, scratch_dir, work_dir,
};

/// What svc-whoami prints as the account of acct-user/gibsvc (ACCT_USER_ID=301, group 301).
const GIBSVC_LINE: &str = "uid=301 gid=301 user=gibsvc home=/var/lib/gibsvc";

/// gib.yaml on `stage3` with `sync_type: none`; `images` is the YAML of the `images:` map.
fn write_config(dir: &Path, stage3: &Path, build_extra: &str, images: &str) -> PathBuf {
    let text = format!(
        "stage3:\n  path: {}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n{build_extra}\
         images:\n{images}",
        stage3.display()
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn build(runner: Runner, config: &Path, cache: &Path, extra: &[&str]) -> Output {
    gib_build(runner, config, cache, extra)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The path a CONTENTS line names: `obj PATH MD5 MTIME`, `sym PATH -> TARGET MTIME`,
/// `dir PATH` (paths may hold spaces).
fn contents_path(line: &str) -> Option<&str> {
    let (kind, rest) = line.split_once(' ')?;
    match kind {
        "obj" => rest.rsplitn(3, ' ').nth(2),
        "sym" => rest.split_once(" -> ").map(|(path, _)| path),
        _ => Some(rest),
    }
}

/// Every layer of `reference`: no shadow backup file; every CONTENTS entry names a path the
/// image holds. Returns the text of each CONTENTS, by package directory.
fn check_layers(archive: &Path, reference: &str) -> BTreeMap<String, String> {
    let layers = archive_layers(archive, reference);
    let files = archive_layer_files(archive, reference);
    let mut held: Vec<String> = Vec::new();
    for layer in &layers {
        for path in layer.keys() {
            for backup in ["etc/passwd-", "etc/group-", "etc/shadow-", "etc/gshadow-"] {
                assert_ne!(path, backup, "{reference} ships {backup}");
            }
            held.push(format!("/{path}"));
        }
    }
    let mut contents = BTreeMap::new();
    for layer in &files {
        for (path, bytes) in layer {
            if let Some(package) = path.strip_suffix("/CONTENTS") {
                let text = String::from_utf8_lossy(bytes).into_owned();
                for line in text.lines() {
                    let listed = contents_path(line)
                        .unwrap_or_else(|| panic!("{path}: unreadable line `{line}`"));
                    assert!(
                        held.iter().any(|h| h == listed),
                        "{path} lists {listed}, which {reference} does not hold"
                    );
                }
                contents.insert(package.to_string(), text);
            }
        }
    }
    contents
}

/// No emerge log of the build carries a Portage warning: gib's configuration causes none
/// (the fixture's packages cause none either).
fn assert_no_portage_warnings(cache: &Path, image: &str) {
    let log = fs::read_to_string(emerge_log(cache, image)).unwrap();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("WARNING")
                || l.trim_start().starts_with("!!!")
                || l.contains("sync-uri")
                || l.contains("sync-type")
        })
        .collect();
    assert!(
        warnings.is_empty(),
        "the emerge log of {image} warns:\n{}",
        warnings.join("\n")
    );
}

/// From scratch: `svc` (svc-whoami pulls acct-user/gibsvc and acct-group/gibsvc into an
/// empty root; one more account from gib.yaml). A chain: `base` (libc and the account) and
/// `app` on it (svc-whoami, `user:` the account).
fn accounts_end_to_end(runner: Runner) {
    let dir = work_dir(runner, "real-accounts");
    let cache = dir.path().join("cache");
    let config = write_config(
        dir.path(),
        &mini_stage3(),
        "  package_use_flags:\n    app-misc/svc-whoami: [nosuchflag]\n    app-misc/svc-whoam: [x]\n",
        "  svc:\n    from: scratch\n    packages: [app-misc/svc-whoami]\n    tag: one\n    \
         entrypoint: [/usr/bin/svc-whoami]\n    user: gibsvc\n    \
         accounts: {users: [{name: web, uid: 1001, gid: 1001}]}\n\
         \x20 base:\n    from: scratch\n    packages: [sys-libs/glibc, acct-user/gibsvc]\n    \
         tag: one\n\
         \x20 app:\n    from: base\n    packages: [app-misc/svc-whoami]\n    tag: one\n    \
         entrypoint: [/usr/bin/svc-whoami]\n    user: gibsvc\n",
    );
    let archive = dir.path().join("images.tar");
    let out = build(
        runner,
        &config,
        &cache,
        &["--archive", archive.to_str().unwrap()],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "gib build failed:\n{err}");
    assert!(
        err.contains("acct-group/gibsvc-0 from source into the image")
            && err.contains("acct-user/gibsvc-0 from source into the image"),
        "{err}"
    );
    // The USE flag svc-whoami does not declare: a warning naming flag and package.
    assert!(
        err.contains(
            "warning: image svc: package_use_flags sets `nosuchflag` for \
                      app-misc/svc-whoami-1.0, which has no USE flag `nosuchflag`"
        ),
        "{err}"
    );

    // A package no repository has: one warning for the run, with the nearest name.
    let unknown = "warning: package_use_flags names app-misc/svc-whoam, which no repository \
                   has (did you mean app-misc/svc-whoami?); its flags do nothing";
    assert_eq!(err.matches(unknown).count(), 1, "{err}");

    // From scratch: the account package's user, group and home directory, owned by it.
    let layers = archive_layers(&archive, "svc:one");
    let files = archive_layer_files(&archive, "svc:one");
    assert_eq!(layers.len(), 1);
    let passwd = String::from_utf8_lossy(&files[0]["etc/passwd"]).into_owned();
    // The base accounts, the package's, and gib.yaml's merged with them.
    for account in [
        "root:x:0:0:",
        "nonroot:x:65532:65532:",
        "gibsvc:x:301:301:User for svc-whoami:/var/lib/gibsvc:/sbin/nologin",
        "web:x:1001:1001:",
    ] {
        assert!(
            passwd.lines().any(|l| l.starts_with(account)),
            "no {account} in /etc/passwd:\n{passwd}"
        );
    }
    let group = String::from_utf8_lossy(&files[0]["etc/group"]).into_owned();
    assert!(group.lines().any(|l| l == "gibsvc:x:301:"), "{group}");
    let home = layers[0]["var/lib/gibsvc"];
    assert_eq!(
        (home.0, home.1 & 0o7777, home.2, home.3),
        ('5', 0o750, 301, 301)
    );
    // Service-manager files and the header are trimmed, from the layer and from CONTENTS.
    for path in layers[0].keys() {
        for trimmed in [
            "etc/init.d",
            "etc/conf.d",
            "usr/lib/systemd/system",
            "usr/include",
        ] {
            assert!(!path.starts_with(trimmed), "svc:one holds {path}");
        }
    }
    let contents = check_layers(&archive, "svc:one");
    let svc_contents = &contents["var/db/pkg/app-misc/svc-whoami-1.0"];
    assert!(
        svc_contents.contains("obj /usr/bin/svc-whoami "),
        "{svc_contents}"
    );
    for trimmed in [
        "/etc/init.d",
        "/etc/conf.d",
        "/systemd/system",
        "/usr/include",
    ] {
        assert!(!svc_contents.contains(trimmed), "{svc_contents}");
    }
    assert_no_portage_warnings(&cache, "svc");

    // The chain: the child's layer does not touch the account files its parent has.
    let app_layers = archive_layers(&archive, "app:one");
    assert_eq!(app_layers.len(), 2);
    let base_layer = &app_layers[0];
    assert!(base_layer.contains_key("var/lib/gibsvc"));
    for file in [
        "etc/passwd",
        "etc/group",
        "etc/shadow",
        "home/nonroot",
        "root",
    ] {
        assert!(
            !app_layers[1].contains_key(file),
            "app's layer rewrote its parent's {file}"
        );
    }
    check_layers(&archive, "base:one");
    check_layers(&archive, "app:one");
    for image in ["base", "app"] {
        assert_no_portage_warnings(&cache, image);
    }

    // podman runs both as the package's account.
    let podman = Podman::new(dir.path());
    podman.load(&archive);
    assert_eq!(podman.run("svc:one", &[]).trim(), GIBSVC_LINE);
    assert_eq!(podman.run("app:one", &[]).trim(), GIBSVC_LINE);
}

#[test]
fn account_packages_reach_the_image_and_a_child_runs_as_them_as_root() {
    accounts_end_to_end(Runner::Root);
}

#[test]
fn account_packages_reach_the_image_and_a_child_runs_as_them_rootless() {
    accounts_end_to_end(Runner::User);
}

#[test]
fn an_image_may_keep_its_service_files() {
    let dir = scratch_dir("real-keep-service");
    let config = write_config(
        dir.path(),
        &mini_stage3(),
        "",
        "  svc:\n    from: scratch\n    packages: [app-misc/svc-whoami]\n    tag: one\n    \
         keep_service_files: true\n",
    );
    let archive = dir.path().join("svc.tar");
    let out = build(
        Runner::Root,
        &config,
        &dir.path().join("cache"),
        &["--archive", archive.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let layer = &archive_layers(&archive, "svc:one")[0];
    for kept in [
        "etc/init.d/svc-whoami",
        "etc/conf.d/svc-whoami",
        "usr/lib/systemd/system/svc-whoami.service",
    ] {
        assert!(layer.contains_key(kept), "{kept} was trimmed");
    }
    let contents = check_layers(&archive, "svc:one");
    assert!(contents["var/db/pkg/app-misc/svc-whoami-1.0"].contains("/etc/init.d/svc-whoami"));

    // The key is validated like the others.
    let bad = write_config(
        dir.path(),
        &mini_stage3(),
        "",
        "  svc:\n    from: scratch\n    packages: [app-misc/svc-whoami]\n    \
         keep_service_files: sometimes\n",
    );
    let out = build(Runner::Root, &bad, &dir.path().join("cache"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("gib.yaml:11:25: expected true or false"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_account_of_gib_yaml_that_clashes_with_a_package_account_names_both() {
    let dir = scratch_dir("real-clash");
    let config = write_config(
        dir.path(),
        &mini_stage3(),
        "",
        "  svc:\n    from: scratch\n    packages: [acct-user/gibsvc]\n    tag: one\n    \
         accounts: {users: [{name: gibsvc, uid: 1000, gid: 1000}]}\n",
    );
    let out = build(Runner::Root, &config, &dir.path().join("cache"), &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    // useradd without an /etc/shadow in the root locks the account in /etc/passwd itself.
    assert!(
        err.contains(
            "accounts: the user `gibsvc` with id 1000 clashes with \
             `gibsvc:!:301:301:User for svc-whoami:/var/lib/gibsvc:/sbin/nologin` in the \
             image's /etc/passwd"
        ),
        "{err}"
    );
}

/// The mini stage3 without its ebuild repository, like an official stage3.
fn stage3_without_repository(dir: &Path) -> PathBuf {
    let out = dir.join("stage3-no-repo.tar");
    let script = format!(
        "zstd -dc --long=27 '{}' | tar --delete -f - ./var/db/repos/gentoo > '{}'",
        mini_stage3().display(),
        out.display()
    );
    run_ok(Command::new("sh").args(["-c", &script]));
    out
}

fn missing_repository(runner: Runner) {
    let dir = work_dir(runner, "real-no-repo");
    let stage3 = stage3_without_repository(dir.path());
    let config = write_config(
        dir.path(),
        &stage3,
        "",
        "  svc:\n    from: scratch\n    packages: [app-misc/svc-whoami]\n",
    );
    let out = build(runner, &config, &dir.path().join("cache"), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "error: the stage3 has no ebuild repository at /var/db/repos/gentoo and \
             `portage: sync_type: none` provides none"
        ),
        "{err}"
    );
    assert!(
        err.contains("hint: ") && err.contains("sync_type: git"),
        "{err}"
    );
    assert!(!err.contains("Emerging"), "{err}");
}

#[test]
fn a_stage3_without_a_repository_and_no_sync_says_so_as_root() {
    missing_repository(Runner::Root);
}

#[test]
fn a_stage3_without_a_repository_and_no_sync_says_so_rootless() {
    missing_repository(Runner::User);
}

/// Rootless, Portage writes the failing package's log as its build user (a subordinate id,
/// mode 0660); gib names that log and its user can read it.
#[test]
fn the_failing_packages_own_log_is_named_and_readable_rootless() {
    let dir = work_dir(Runner::User, "real-broken-log");
    let config = write_config(
        dir.path(),
        &mini_stage3(),
        "",
        "  broken:\n    from: scratch\n    packages: [app-misc/broken]\n",
    );
    let out = build(Runner::User, &config, &dir.path().join("cache"), &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let log_line = err
        .lines()
        .find(|l| l.contains("build log: "))
        .unwrap_or_else(|| panic!("no build log in:\n{err}"));
    let log = log_line
        .split("build log: ")
        .nth(1)
        .and_then(|l| l.split(';').next())
        .unwrap()
        .trim();
    assert!(
        log.contains("/portage/app-misc:broken-1.0:") && log.ends_with(".log"),
        "gib named {log}, not the package's own log:\n{err}"
    );
    let text = run_ok(as_test_user(Path::new("/bin/cat")).arg(log));
    assert!(text.contains("gib_undeclared_symbol"), "{text}");
    assert!(err.contains("gib_undeclared_symbol"), "{err}");
}
