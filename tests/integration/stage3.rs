//! Stage3 tarballs: unpacked in every format inside the user namespace (owners, setuid bits,
//! hardlinks, xattrs kept; device nodes skipped), cached (a second run does not unpack, the
//! cached root is never modified), downloaded over http, and corrupt, truncated and
//! mis-digested tarballs rejected with nothing half-written left in the cache.
//!
//! The stage3-shaped tarball is written by Python's tarfile (python3) around busybox-static;
//! .tar.zst with the zstd tool.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::sandbox::{
    APPLETS, EVERYONE, USERNS, Who, as_user, gib_as, give_to, output, user_without_subids,
};
use crate::util;

const MAKE_TARBALL: &str = r##"
import sys, tarfile, io, struct
busybox, out, mode, applets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
T = 1700000000
def add(t, name, kind, mode, uid=0, gid=0, data=b"", link="", pax=None, dev=(0, 0)):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime, ti.linkname = kind, mode, uid, gid, T, link
    ti.devmajor, ti.devminor = dev
    if pax:
        ti.pax_headers = pax
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    t.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
with tarfile.open(out, mode, format=tarfile.PAX_FORMAT) as t:
    add(t, ".", tarfile.DIRTYPE, 0o755)
    for d in ["bin", "etc", "root", "proc", "sys", "dev", "var", "var/lib"]:
        add(t, d, tarfile.DIRTYPE, 0o755)
    add(t, "tmp", tarfile.DIRTYPE, 0o1777)
    add(t, "var/lib/portage", tarfile.DIRTYPE, 0o2750, 250, 250)
    add(t, "bin/busybox", tarfile.REGTYPE, 0o755, data=open(busybox, "rb").read())
    for a in applets:
        add(t, "bin/" + a, tarfile.SYMTYPE, 0o777, link="busybox")
    add(t, "var/lib/portage/world", tarfile.REGTYPE, 0o640, 250, 250, data=b"sys-apps/portage\n")
    add(t, "bin/suid", tarfile.REGTYPE, 0o4755, data=b"#!/bin/sh\n")
    add(t, "bin/suid-link", tarfile.LNKTYPE, 0o4755, link="bin/suid")
    add(t, "etc/xattr", tarfile.REGTYPE, 0o644, data=b"x", pax={"SCHILY.xattr.user.gib": "yes"})
    add(t, "dev/console", tarfile.CHRTYPE, 0o600, dev=(5, 1))
    # A file capability (cap_net_raw, as iputils' ping has): binary xattr, v2 format.
    cap = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0).decode("utf-8", "surrogateescape")
    add(t, "bin/ping", tarfile.REGTYPE, 0o755, data=b"x", pax={"SCHILY.xattr.security.capability": cap})
"##;

pub const FORMATS: [&str; 5] = ["tar", "tar.gz", "tar.bz2", "tar.xz", "tar.zst"];

/// A stage3-shaped tarball in `format` (one of [`FORMATS`]) under `dir`.
pub fn stage3_tarball(dir: &Path, format: &str) -> PathBuf {
    let busybox = util::require_tool("busybox");
    let python = util::require_tool("python3");
    let out = dir.join(format!("stage3-test.{format}"));
    let (path, mode) = match format {
        "tar" => (out.clone(), "w"),
        "tar.gz" => (out.clone(), "w:gz"),
        "tar.bz2" => (out.clone(), "w:bz2"),
        "tar.xz" => (out.clone(), "w:xz"),
        "tar.zst" => (dir.join("stage3-for-zstd.tar"), "w"),
        other => panic!("unknown format {other}"),
    };
    util::run_ok(
        Command::new(python)
            .args(["-c", MAKE_TARBALL])
            .arg(&busybox)
            .arg(&path)
            .arg(mode)
            .arg(APPLETS.join(",")),
    );
    if format == "tar.zst" {
        util::run_ok(
            Command::new(util::require_tool("zstd"))
                .args(["-q", "-f", "--rm", "-o"])
                .arg(&out)
                .arg(&path),
        );
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a script in the stage3 root of `tarball` (prepared in `cache`), as `gib shell` would.
fn in_stage3(who: Who, tarball: &str, cache: &Path, extra: &[&str], script: &str) -> Output {
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    output(
        gib_as(who)
            .args(["__internal", "run", "--stage3", tarball, "--cache-dir"])
            .arg(cache)
            .args(extra)
            .args(["--", "/bin/sh", "-c", script]),
    )
}

/// The entries of the cache's stage3 dir, except the url index.
fn stage3_entries(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(cache.join("stage3")) {
        Ok(dir) => dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != "urls")
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn sha512(path: &Path) -> String {
    util::run_ok(Command::new("sha512sum").arg(path))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

const CHECK: &str = r#"
    stat -c '%u:%g %a' /var/lib/portage/world /var/lib/portage
    stat -c '%a %h' /bin/suid
    test -e /dev/console && echo console-present || echo console-absent
    echo hi > /dev/null && echo devnull-ok
    touch /new-file
"#;

#[test]
fn every_format_unpacks_with_owners_modes_links_and_xattrs() {
    for who in EVERYONE {
        let dir = util::scratch_dir("stage3-formats");
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        give_to(who, &cache);
        for format in FORMATS {
            let tarball = stage3_tarball(dir.path(), format);
            let out = in_stage3(who, tarball.to_str().unwrap(), &cache, &[], CHECK);
            util::assert_success(&Command::new("gib"), &out);
            let text = stdout(&out);
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(
                lines,
                [
                    "250:250 640",
                    "250:250 2750",
                    "4755 2",
                    "console-absent",
                    "devnull-ok"
                ],
                "{who:?} {format}: {}",
                stderr(&out)
            );
            assert!(
                stderr(&out).contains("1 device node"),
                "{who:?} {format}: no note on the skipped device: {}",
                stderr(&out)
            );
            let entry = cache.join("stage3").join(sha512(&tarball));
            // The cached root is the overlay's lower: the sandbox's write went elsewhere.
            assert!(entry.join("bin/busybox").is_file());
            assert!(
                !entry.join("new-file").exists(),
                "the cached root was modified"
            );
            let xattr = util::run_ok(
                Command::new("python3")
                    .args([
                        "-c",
                        "import os,sys; print(os.getxattr(sys.argv[1], 'user.gib').decode())",
                    ])
                    .arg(entry.join("etc/xattr")),
            );
            assert_eq!(xattr.trim(), "yes", "{who:?} {format}");
            // The kernel rewrites the capability for the namespace (v3, with its root id).
            let cap = util::run_ok(
                Command::new("python3")
                    .args([
                        "-c",
                        "import os,sys; c=os.getxattr(sys.argv[1], 'security.capability'); \
                         print(int.from_bytes(c[4:8], 'little') == 1 << 13)",
                    ])
                    .arg(entry.join("bin/ping")),
            );
            assert_eq!(cap.trim(), "True", "{who:?} {format}: cap_net_raw lost");
        }
        // Stage3s are cached by digest; the throwaway uppers are gone.
        let mut entries = stage3_entries(&cache);
        entries.sort();
        assert_eq!(entries.len(), FORMATS.len(), "{entries:?}");
        let shell_dir = cache.join("shell");
        let leftovers: Vec<_> = std::fs::read_dir(&shell_dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(leftovers.is_empty(), "uppers left: {leftovers:?}");
    }
}

#[test]
fn a_second_run_does_not_unpack_again() {
    let who = Who::User;
    let dir = util::scratch_dir("stage3-again");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    give_to(who, &cache);
    let tarball = stage3_tarball(dir.path(), "tar.xz");
    let first = in_stage3(who, tarball.to_str().unwrap(), &cache, &[], "true");
    util::assert_success(&Command::new("gib"), &first);
    assert!(stderr(&first).contains("Unpacking"), "{}", stderr(&first));
    let second = in_stage3(who, tarball.to_str().unwrap(), &cache, &[], "true");
    util::assert_success(&Command::new("gib"), &second);
    assert!(
        !stderr(&second).contains("Unpacking"),
        "{}",
        stderr(&second)
    );
}

fn assert_rejected(out: &Output, file: &Path, cache: &Path, what: &str) {
    assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(out));
    assert!(
        stderr(out).contains(&file.display().to_string()),
        "{what}: the error does not name the file: {}",
        stderr(out)
    );
    assert!(
        stage3_entries(cache).is_empty(),
        "{what}: left in the cache: {:?}",
        stage3_entries(cache)
    );
}

#[test]
fn corrupt_truncated_and_misdigested_tarballs_are_rejected_cleanly() {
    for who in EVERYONE {
        let dir = util::scratch_dir("stage3-bad");
        let cache = dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        give_to(who, &cache);
        for format in ["tar", "tar.gz", "tar.xz", "tar.zst", "tar.bz2"] {
            let good = stage3_tarball(dir.path(), format);
            let bytes = std::fs::read(&good).unwrap();

            let truncated = dir.path().join(format!("truncated.{format}"));
            std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
            let out = in_stage3(who, truncated.to_str().unwrap(), &cache, &[], "true");
            assert_rejected(
                &out,
                &truncated,
                &cache,
                &format!("{who:?} truncated {format}"),
            );

            let corrupt = dir.path().join(format!("corrupt.{format}"));
            let mut damaged = bytes.clone();
            let middle = damaged.len() / 2;
            for byte in &mut damaged[middle..middle + 4096.min(bytes.len() / 4)] {
                *byte ^= 0x5a;
            }
            if format == "tar" {
                // A plain tar has no checksum over file data: break a header instead.
                for byte in &mut damaged[0..100] {
                    *byte = b'Z';
                }
                damaged[148..156].copy_from_slice(b"1234567\0");
            }
            std::fs::write(&corrupt, &damaged).unwrap();
            let out = in_stage3(who, corrupt.to_str().unwrap(), &cache, &[], "true");
            assert_rejected(&out, &corrupt, &cache, &format!("{who:?} corrupt {format}"));
        }

        let good = stage3_tarball(dir.path(), "tar.gz");
        let wrong = "0".repeat(128);
        let out = in_stage3(
            who,
            good.to_str().unwrap(),
            &cache,
            &["--sha512", &wrong],
            "true",
        );
        assert_rejected(&out, &good, &cache, "mis-digested");
        assert!(stderr(&out).contains("expects"), "{}", stderr(&out));

        let not_a_tarball = dir.path().join("notes.txt");
        std::fs::write(&not_a_tarball, "hello").unwrap();
        let out = in_stage3(who, not_a_tarball.to_str().unwrap(), &cache, &[], "true");
        assert_rejected(&out, &not_a_tarball, &cache, "not a tarball");
        assert!(
            stderr(&out).contains("not a tar archive"),
            "{}",
            stderr(&out)
        );
    }
}

/// A local http server (python3 -m http.server) over `dir`, killed on drop.
struct HttpServer {
    child: std::process::Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &Path) -> HttpServer {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new(util::require_tool("python3"))
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "http server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        HttpServer { child, port }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_url_is_downloaded_verified_and_cached() {
    let who = Who::User;
    let dir = util::scratch_dir("stage3-url");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    give_to(who, &cache);
    let tarball = stage3_tarball(dir.path(), "tar.xz");
    let digest = sha512(&tarball);
    let url = {
        let server = HttpServer::start(dir.path());
        let url = format!("http://127.0.0.1:{}/stage3-test.tar.xz", server.port);
        let wrong = "f".repeat(128);
        let out = in_stage3(who, &url, &cache, &["--sha512", &wrong], "true");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(&url), "{}", stderr(&out));
        assert!(stage3_entries(&cache).is_empty());

        let out = in_stage3(
            who,
            &url,
            &cache,
            &["--sha512", &digest],
            "stat -c %u /var/lib/portage/world",
        );
        util::assert_success(&Command::new("gib"), &out);
        assert_eq!(stdout(&out).trim(), "250");
        assert!(stderr(&out).contains("Downloading"));

        let missing = format!("http://127.0.0.1:{}/nope.tar.xz", server.port);
        let unknown = "e".repeat(128);
        let out = in_stage3(who, &missing, &cache, &["--sha512", &unknown], "true");
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(&missing), "{}", stderr(&out));
        // Over plain HTTP, a stage3 nothing can be checked against is not downloaded.
        let out = in_stage3(who, &missing, &cache, &[], "true");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("plain HTTP with no sha512") && stderr(&out).contains("hint:"),
            "{}",
            stderr(&out)
        );
        url
    };
    // The server is gone: the cached root (found by digest, or by url) is used.
    for extra in [vec!["--sha512", digest.as_str()], vec![]] {
        let out = in_stage3(who, &url, &cache, &extra, "true");
        util::assert_success(&Command::new("gib"), &out);
        assert!(!stderr(&out).contains("Downloading"));
    }
    let downloads: Vec<_> = std::fs::read_dir(cache.join("downloads"))
        .unwrap()
        .flatten()
        .collect();
    assert!(downloads.is_empty(), "downloads left: {downloads:?}");
}

#[test]
fn without_a_subordinate_range_the_stage3_is_unpacked_without_owners_and_works() {
    let user = user_without_subids();
    let dir = util::scratch_dir("stage3-nosub");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    util::run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(&cache),
    );
    let tarball = stage3_tarball(dir.path(), "tar.gz");
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    let out = output(
        as_user(user)
            .args(["__internal", "run", "--stage3"])
            .arg(&tarball)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--", "/bin/sh", "-c"])
            .arg("stat -c '%u:%g %a' /var/lib/portage/world /bin/suid; echo $PORTAGE_USERNAME"),
    );
    util::assert_success(&Command::new("gib"), &out);
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        ["0:0 640", "0:0 4755", "root"],
        "{}",
        stderr(&out)
    );
    assert_eq!(
        stderr(&out).matches("no subordinate id range").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn gib_shell_says_what_is_missing() {
    let dir = util::scratch_dir("stage3-shell");
    let config = dir.path().join("gib.yaml");
    std::fs::write(
        &config,
        "images:\n  base:\n    packages: [sys-apps/busybox]\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let out = output(
        util::gib()
            .args(["shell", "-f"])
            .arg(&config)
            .arg("--cache-dir")
            .arg(&cache),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("has no `stage3:`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("gib.yaml:2:3"), "{}", stderr(&out));
}

#[test]
fn the_upper_of_a_killed_gib_is_removed_by_the_next_run() {
    let who = Who::User;
    let dir = util::scratch_dir("stage3-stale");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    give_to(who, &cache);
    let tarball = stage3_tarball(dir.path(), "tar.gz");
    let marker = format!("sleep {}", 3100 + std::process::id() % 1000);
    let shell_dir = cache.join("shell");
    let scratch_dirs = || -> Vec<PathBuf> {
        std::fs::read_dir(&shell_dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    {
        let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
        let mut child = gib_as(who)
            .args(["__internal", "run", "--stage3"])
            .arg(&tarball)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--", "/bin/sh", "-c"])
            // A file of a subordinate id in the upper: the host user cannot delete it.
            .arg(format!(
                "mkdir -p /x/y && touch /x/y/f && chown -R 250:250 /x && chmod 700 /x && {marker}"
            ))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let running = util::run_ok(Command::new("ps").args(["-eo", "args"]));
            if running.lines().any(|l| l.trim() == marker) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the sleep never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // runuser's child is gib; SIGKILL it so nothing is cleaned up.
        let gib = util::run_ok(Command::new("pgrep").args(["-P", &child.id().to_string()]));
        util::run_ok(Command::new("kill").args(["-KILL", gib.trim()]));
        let _ = child.wait();
    }
    let stale = scratch_dirs();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert!(stale[0].join("upper/x").exists());
    let out = in_stage3(who, tarball.to_str().unwrap(), &cache, &[], "true");
    util::assert_success(&Command::new("gib"), &out);
    assert!(scratch_dirs().is_empty(), "left: {:?}", scratch_dirs());
}

/// A tarball of `files` (path, bytes, mode) and `links` (path, target), built with tar.
fn tarball_of(
    dir: &Path,
    name: &str,
    files: &[(&str, &[u8], u32)],
    links: &[(&str, &str)],
) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tree = dir.join(format!("{name}-tree"));
    for (path, bytes, mode) in files {
        let path = tree.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    for (path, target) in links {
        let path = tree.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    }
    let tarball = dir.join(format!("{name}.tar"));
    util::run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&tree)
            .arg("-cf")
            .arg(&tarball)
            .arg("."),
    );
    tarball
}

/// The first bytes of an ELF program for a machine this one does not run: RISC-V, which gib
/// does not build for (an arm64 stage3 runs here under qemu-user when binfmt_misc has it).
fn foreign_elf() -> Vec<u8> {
    let machine: u16 = 243;
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(18, 0);
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.resize(64, 0);
    elf
}

fn a_stage3_of_the_wrong_kind_is_refused(runner: util::Runner) {
    let dir = util::work_dir(runner, "stage3-kind");
    let busybox = std::fs::read(util::require_tool("busybox")).unwrap();
    let foreign = foreign_elf();
    let cases: [(&str, PathBuf, &str); 3] = [
        (
            "no-shell",
            tarball_of(
                dir.path(),
                "no-shell",
                &[("etc/os-release", b"ID=x\n", 0o644)],
                &[],
            ),
            "has no /bin/sh: it is not a Gentoo stage3",
        ),
        (
            "foreign",
            tarball_of(
                dir.path(),
                "foreign",
                &[
                    ("usr/bin/bash", &foreign, 0o755),
                    ("usr/bin/emerge", b"#!/bin/sh\n", 0o755),
                ],
                &[("bin", "usr/bin"), ("usr/bin/sh", "bash")],
            ),
            "its programs cannot run here",
        ),
        (
            "no-portage",
            tarball_of(
                dir.path(),
                "no-portage",
                &[("bin/sh", &busybox, 0o755)],
                &[],
            ),
            "the stage3 has no emerge (/usr/bin/emerge): it is not a Gentoo stage3",
        ),
    ];
    for (name, tarball, expected) in cases {
        let config = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "stage3:\n  path: {}\nportage:\n  sync_type: none\nimages:\n  a:\n    \
                 packages: [app-misc/greet]\n",
                tarball.display()
            ),
        )
        .unwrap();
        let cache = dir.path().join(format!("cache-{name}"));
        let started = std::time::Instant::now();
        let out = util::gib_build(runner, &config, &cache, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(!err.contains("cannot execute"), "{name}: {err}");
        assert!(
            started.elapsed().as_secs() < 30,
            "{name} took {:?}",
            started.elapsed()
        );
        if name == "foreign" {
            assert!(err.contains("is for riscv"), "{err}");
        }
    }
}

#[test]
fn a_stage3_of_the_wrong_kind_is_refused_as_root() {
    a_stage3_of_the_wrong_kind_is_refused(util::Runner::Root);
}

#[test]
fn a_stage3_of_the_wrong_kind_is_refused_rootless() {
    a_stage3_of_the_wrong_kind_is_refused(util::Runner::User);
}
