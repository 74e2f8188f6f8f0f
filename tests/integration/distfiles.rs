//! Distfiles: Portage fetches a real upstream tarball itself from a Gentoo mirror, gib's
//! distfile cache keeps it for every later build, and a copy that does not match its
//! Manifest fails the build clearly and leaves nothing behind. Also the profile's
//! `ACCEPT_LICENSE="-* @FREE"`, which masks a package under a license outside @FREE until
//! `build.accept_licenses` accepts it.
//!
//! The mirror is python3's http.server on 127.0.0.1, laid out as a Gentoo mirror
//! (`distfiles/<file>`) and named by `build.distfile_mirrors`. It serves GNU hello 2.10's
//! release tarball (`fixture::hello_distfile()`); the fixture's app-misc/hello fetches it as
//! `mirror://gnu/hello/hello-2.10.tar.gz`, checks it against its thin Manifest (BLAKE2B,
//! SHA512), applies two FILESDIR patches with eapply and configures with a `tc-export`ing
//! eclass. The thirdpartymirrors of the fixture name only unresolvable hosts, so the test
//! mirror is the one place the tarball can come from. Each case runs as root and rootless.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::fixture::{hello_distfile, manifest_dist, mini_stage3};
use crate::util::{HttpServer, Podman, Runner, as_test_user, gib, gib_bin, work_dir};

const DISTFILE: &str = "hello-2.10.tar.gz";

/// A Gentoo-style mirror in `dir/mirror` holding `bytes` as distfiles/hello-2.10.tar.gz.
fn mirror(dir: &Path, bytes: &[u8]) -> (PathBuf, HttpServer) {
    let root = dir.join("mirror");
    fs::create_dir_all(root.join("distfiles")).unwrap();
    let file = root.join("distfiles").join(DISTFILE);
    fs::write(&file, bytes).unwrap();
    (file, HttpServer::serve(&root))
}

fn write_config(dir: &Path, mirror: &HttpServer, package: &str) -> PathBuf {
    write_config_with(dir, mirror, package, "")
}

/// The same with `build_lines` added under `build:`.
fn write_config_with(dir: &Path, mirror: &HttpServer, package: &str, build_lines: &str) -> PathBuf {
    let text = format!(
        "stage3:\n  path: {}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n  \
         distfile_mirrors: [{}]\n{build_lines}images:\n  hello:\n    from: scratch\n    \
         packages: [{package}]\n    entrypoint: [/usr/bin/hello]\n",
        mini_stage3().display(),
        mirror.url(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

/// gib with `args`, as root or as the unprivileged test user.
fn run_gib(rootless: bool, args: &[&str], cache: &Path) -> Output {
    let mut cmd = if rootless {
        let mut cmd = as_test_user(&gib_bin());
        cmd.env("NO_COLOR", "1");
        cmd
    } else {
        gib()
    };
    cmd.args(args)
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .unwrap()
}

fn build(rootless: bool, config: &Path, cache: &Path, archive: &Path) -> Output {
    run_gib(
        rootless,
        &[
            "build",
            "-f",
            config.to_str().unwrap(),
            "--archive",
            archive.to_str().unwrap(),
        ],
        cache,
    )
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn distfile_requests(mirror: &HttpServer) -> usize {
    let path = format!("/distfiles/{DISTFILE}");
    mirror.requests().iter().filter(|r| **r == path).count()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn fetched_once_and_reused(rootless: bool) {
    let dir = work_dir(
        if rootless { Runner::User } else { Runner::Root },
        "distfiles-reuse",
    );
    let original = fs::read(hello_distfile()).unwrap();
    let (_, server) = mirror(dir.path(), &original);
    let config = write_config(dir.path(), &server, "app-misc/hello");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("hello.tar");

    let out = build(rootless, &config, &cache, &archive);
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "gib build failed:\n{stderr}");
    assert!(
        stderr.contains("app-misc/hello-2.10 from source into the image"),
        "{stderr}"
    );
    assert_eq!(distfile_requests(&server), 1, "{:?}", server.requests());
    // The shared cache holds the distfile as the mirror served it, and nothing else of it.
    let distfiles = cache.join("distfiles");
    assert_eq!(fs::read(distfiles.join(DISTFILE)).unwrap(), original);
    assert!(
        !entries(&distfiles)
            .iter()
            .any(|n| n.starts_with(DISTFILE) && n != DISTFILE),
        "{:?}",
        entries(&distfiles)
    );

    // The patched program runs: the first patch changed the greeting, the second --version.
    let podman = Podman::new(dir.path());
    podman.load(&archive);
    assert_eq!(
        podman.run("hello:2.10", &[]).trim(),
        "Hello, world, from a Gentoo mirror!"
    );
    let version = podman.run("hello:2.10", &["--version"]);
    assert!(version.starts_with("hello (GNU Hello) 2.10\n"), "{version}");
    assert!(
        version.contains("Patched by the gib test repository with eapply."),
        "{version}"
    );

    // A second build with no image and no binary package to reuse compiles hello again
    // from the cached distfile: the mirror hears nothing.
    let requests = server.requests().len();
    let out = run_gib(rootless, &["clean", "--builders", "--binpkgs"], &cache);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let out = build(rootless, &config, &cache, &dir.path().join("again.tar"));
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "second gib build failed:\n{stderr}");
    assert!(
        stderr.contains("app-misc/hello-2.10 from source into the image"),
        "{stderr}"
    );
    assert_eq!(
        server.requests().len(),
        requests,
        "the second build asked the mirror: {:?}",
        server.requests()
    );

    // gib clean --distfiles empties the distfile cache.
    let out = run_gib(rootless, &["clean", "--distfiles"], &cache);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(entries(&distfiles), Vec::<String>::new());
}

#[test]
fn a_real_tarball_is_fetched_once_from_the_mirror_and_reused() {
    fetched_once_and_reused(false);
}

#[test]
fn a_real_tarball_is_fetched_once_from_the_mirror_and_reused_rootless() {
    fetched_once_and_reused(true);
}

fn corrupted_copy_fails(rootless: bool) {
    let dir = work_dir(
        if rootless { Runner::User } else { Runner::Root },
        "distfiles-corrupt",
    );
    let mut bytes = fs::read(hello_distfile()).unwrap();
    // Same size, other bytes: only a hash can tell.
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let (served, server) = mirror(dir.path(), &bytes);
    let config = write_config(dir.path(), &server, "app-misc/hello");
    let cache = dir.path().join("cache");

    let started = Instant::now();
    let out = build(rootless, &config, &cache, &dir.path().join("hello.tar"));
    let elapsed = started.elapsed();
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(elapsed < Duration::from_secs(180), "took {elapsed:?}");
    assert!(distfile_requests(&server) >= 1, "{:?}", server.requests());
    // One line names the package, the file and the hash that differs, with both values.
    let (_, sha512) = manifest_dist("app-misc/hello", DISTFILE);
    let error = stderr
        .lines()
        .find(|l| l.contains("emerge failed"))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.contains("app-misc/hello-2.10"), "{error}");
    assert!(
        error.contains(&format!("distfile {DISTFILE} does not match its Manifest")),
        "{error}"
    );
    let hash_named = ["BLAKE2B", "SHA512"]
        .iter()
        .any(|h| error.contains(&format!(": {h} is ")));
    assert!(hash_named, "{error}");
    if error.contains(": SHA512 is ") {
        assert!(error.contains(&sha512), "{error}");
    }
    // Nothing of it stays in the distfile cache, and the mirror's copy is untouched.
    let distfiles = cache.join("distfiles");
    let left: Vec<String> = entries(&distfiles)
        .into_iter()
        .filter(|n| n.starts_with(DISTFILE))
        .collect();
    assert!(left.is_empty(), "left in the distfile cache: {left:?}");
    assert_eq!(fs::read(&served).unwrap(), bytes);
}

#[test]
fn a_distfile_that_does_not_match_its_manifest_fails_and_is_not_kept() {
    corrupted_copy_fails(false);
}

#[test]
fn a_distfile_that_does_not_match_its_manifest_fails_and_is_not_kept_rootless() {
    corrupted_copy_fails(true);
}

fn unfree_license_is_masked(rootless: bool) {
    let dir = work_dir(
        if rootless { Runner::User } else { Runner::Root },
        "distfiles-license",
    );
    let (_, server) = mirror(dir.path(), b"unused");
    let config = write_config(dir.path(), &server, "app-misc/unfree-greeting");
    let cache = dir.path().join("cache");
    let out = build(rootless, &config, &cache, &dir.path().join("x.tar"));
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let log = fs::read_to_string(crate::util::emerge_log(&cache, "hello")).unwrap();
    // Portage's own words: the profile's ACCEPT_LICENSE="-* @FREE" leaves gib-EULA out.
    assert!(
        log.contains("app-misc/unfree-greeting-1.0::gentoo (masked by: gib-EULA license(s))"),
        "{log}"
    );
    assert!(stderr.contains("masked by: gib-EULA license"), "{stderr}");

    // Accepted for that package in gib.yaml (package.license), it builds.
    let config = write_config_with(
        dir.path(),
        &server,
        "app-misc/unfree-greeting",
        "  accept_licenses:\n    app-misc/unfree-greeting: [gib-EULA]\n",
    );
    let out = build(rootless, &config, &cache, &dir.path().join("x.tar"));
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("app-misc/unfree-greeting-1.0 from source into the image"),
        "{stderr}"
    );
}

#[test]
fn a_package_outside_the_free_license_group_is_masked() {
    unfree_license_is_masked(false);
}

#[test]
fn a_package_outside_the_free_license_group_is_masked_rootless() {
    unfree_license_is_masked(true);
}
