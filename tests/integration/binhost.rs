//! `build.binhost`: a second machine installs from the first one's binary packages.
//!
//! Machine A builds the greet image from source into an empty cache; its `binpkgs/` (gpkg
//! files and the `Packages` index Portage writes) is then served over HTTP on 127.0.0.1 by
//! python3's http.server, and used as a directory. Builds B and C start from empty caches
//! and must take every package from that binhost, compiling nothing. The packages are
//! unsigned (gib does not sign), so these builds say `binhost_verify_signature: false`;
//! the official binhost's signed path needs a real stage3 and the internet, and is not
//! exercised here.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::fixture::mini_stage3;
use crate::util::{HttpServer, Podman, gib, scratch_dir};

/// A gib.yaml building greet on the mini stage3, with `binhost_lines` under `build:`.
fn write_config(dir: &Path, binhost_lines: &str) -> PathBuf {
    let text = format!(
        "stage3:\n  path: {}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n  \
         package_use_flags:\n    app-misc/greet: [loud]\n{binhost_lines}images:\n  \
         greet:\n    from: scratch\n    packages: [app-misc/greet]\n    \
         entrypoint: [/usr/bin/greet]\n",
        mini_stage3().display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn build(config: &Path, cache: &Path, archive: &Path) -> Output {
    gib()
        .arg("build")
        .arg("-f")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .arg("--archive")
        .arg(archive)
        .output()
        .unwrap()
}

fn build_ok(config: &Path, cache: &Path, archive: &Path) -> String {
    let out = build(config, cache, archive);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "gib build failed:\n{stderr}");
    stderr
}

/// The gpkg files under a binpkgs directory, relative.
fn gpkg_files(binpkgs: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![binpkgs.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(".gpkg.tar") {
                found.push(
                    path.strip_prefix(binpkgs)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    found.sort();
    found
}

/// Every package of the build came from the binhost: emerge's log and gib's progress say
/// so, and nothing was compiled.
fn assert_all_binary(stderr: &str, cache: &Path, packages: usize) {
    assert!(!stderr.contains("from source"), "{stderr}");
    assert!(
        stderr.contains("app-misc/greet-1.0 from binary package into the image"),
        "{stderr}"
    );
    let log = fs::read_to_string(crate::util::emerge_log(cache, "greet")).unwrap();
    assert!(log.contains("--getbinpkg"), "{log}");
    assert_eq!(
        log.matches(">>> Emerging binary").count(),
        packages,
        "every package from the binhost:\n{log}"
    );
    assert!(!log.contains(">>> Emerging ("), "{log}");
    for compiling in [">>> Compiling source", ">>> Unpacking source"] {
        assert!(!log.contains(compiling), "{log}");
    }
    // The fetched packages land in the machine's own cache, ready to serve further.
    assert!(!gpkg_files(&cache.join("binpkgs")).is_empty());
}

#[test]
fn a_second_machine_installs_every_package_from_a_binhost_over_http_or_a_directory() {
    let dir = scratch_dir("binhost");
    let podman = Podman::new(dir.path());

    // Machine A: everything from source, into an empty cache.
    let cache_a = dir.path().join("cache-a");
    let config = write_config(dir.path(), "");
    let stderr = build_ok(&config, &cache_a, &dir.path().join("a.tar"));
    assert!(
        stderr.contains("app-misc/greet-1.0 from source into the image"),
        "{stderr}"
    );
    let binpkgs = cache_a.join("binpkgs");
    let packages = gpkg_files(&binpkgs);
    assert!(
        packages.iter().any(|p| p.starts_with("app-misc/greet/")),
        "{packages:?}"
    );
    assert!(binpkgs.join("Packages").is_file(), "no Packages index");
    let log_a = fs::read_to_string(crate::util::emerge_log(&cache_a, "greet")).unwrap();
    // What goes into the image; build-only dependencies are not needed with binaries.
    let emerged = log_a
        .lines()
        .filter(|l| l.starts_with(">>> Emerging (") && l.ends_with("for /staging/"))
        .count();
    assert!(emerged >= 2, "{log_a}");

    // Machine B: an empty cache and A's cache served over HTTP.
    let server = HttpServer::serve(&binpkgs);
    let cache_b = dir.path().join("cache-b");
    let config = write_config(
        dir.path(),
        &format!(
            "  binhost: {}\n  binhost_verify_signature: false\n",
            server.url()
        ),
    );
    let archive_b = dir.path().join("b.tar");
    let stderr = build_ok(&config, &cache_b, &archive_b);
    assert_all_binary(&stderr, &cache_b, emerged);
    drop(server);
    podman.load(&archive_b);
    assert_eq!(podman.run("greet:1.0", &[]).trim(), "HELLO FROM GIB");

    // Machine C: the same cache as a directory.
    let cache_c = dir.path().join("cache-c");
    let config = write_config(
        dir.path(),
        &format!(
            "  binhost: {}\n  binhost_verify_signature: false\n",
            binpkgs.display()
        ),
    );
    let stderr = build_ok(&config, &cache_c, &dir.path().join("c.tar"));
    assert_all_binary(&stderr, &cache_c, emerged);
    // gib.lock records the index the build saw.
    let index = fs::read(binpkgs.join("Packages")).unwrap();
    let lock = fs::read_to_string(dir.path().join("gib.lock")).unwrap();
    assert!(
        lock.contains(&format!("index_sha256: {}", sha256_hex(&index))),
        "{lock}"
    );

    // A binhost that is down is a cache miss: gib warns, naming it, and compiles.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = format!("http://127.0.0.1:{port}");
    let config = write_config(
        dir.path(),
        &format!("  binhost: {down}/\n  binhost_verify_signature: false\n"),
    );
    let stderr = build_ok(
        &config,
        &dir.path().join("cache-d"),
        &dir.path().join("d.tar"),
    );
    let warning = format!("warning: the binhost {down} cannot be read; packages are compiled");
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    assert!(
        stderr.contains("app-misc/greet-1.0 from source into the image"),
        "{stderr}"
    );
}

#[test]
fn plan_shows_the_binrepos_conf_of_the_official_binhost() {
    let dir = scratch_dir("binhost-plan");
    let config = dir.path().join("gib.yaml");
    fs::write(
        &config,
        "stage3:\n  flavor: amd64-musl\n  mirror: https://mirror.example.org/gentoo\n\
         build:\n  binhost: official\nimages:\n  a: {packages: app-misc/greet}\n",
    )
    .unwrap();
    let out = gib().arg("plan").arg("-f").arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "==> /etc/portage/binrepos.conf/gib.conf <==\n\
             # Written by gib from its configuration; changes here are overwritten.\n\
             [gib]\npriority = 9999\n\
             sync-uri = https://mirror.example.org/gentoo/releases/amd64/binpackages/23.0/x86-64_musl/\n\
             location = /var/cache/binpkgs\nverify-signature = true\n"
        ),
        "{text}"
    );
}

#[test]
fn a_directory_without_a_packages_index_is_refused() {
    let dir = scratch_dir("binhost-empty");
    let empty = dir.path().join("not-a-binhost");
    fs::create_dir(&empty).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "  binhost: {}\n  binhost_verify_signature: false\n",
            empty.display()
        ),
    );
    let out = build(
        &config,
        &dir.path().join("cache"),
        &dir.path().join("x.tar"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the binhost {} has no Packages index",
            empty.display()
        )),
        "{stderr}"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
