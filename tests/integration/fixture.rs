//! The "mini stage3": a tarball gib cannot tell from a Gentoo stage3, built once and cached.
//!
//! `tests/fixtures/mini-stage3/build.sh` makes it from a Debian bookworm root with a C
//! toolchain, real Portage (installed as on Gentoo, EPREFIX empty) and a tiny ebuild repository
//! named `gentoo` (app-misc/greet, dev-libs/libgreet, sys-libs/glibc, app-misc/broken, …).
//! The tarball is cached under `target/gib-fixtures/`, keyed by a hash of the scripts and the
//! repository, so editing an ebuild rebuilds it and nothing else does. Building needs root
//! (mmdebstrap) and the Debian and Python package archives; it takes a few minutes.
//!
//! `mini_stage3_langs()` is the same stage with Debian's Go, Rust, Python (pip) and Node.js
//! toolchains added, for the language helpers of `rootfs-tools/lib.sh`; it is cached separately.
//!
//! This module does not run emerge: `selftest.sh` next to `build.sh` does that by hand, and
//! the emerge tests go through gib.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// Where the fixture's sources live.
pub fn mini_stage3_sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mini-stage3")
}

/// The cache directory for built fixtures: `target/gib-fixtures`, which survives test runs
/// (unlike `CARGO_TARGET_TMPDIR`'s scratch directories) and `cargo clean` removes.
pub fn fixtures_cache_dir() -> PathBuf {
    let target_tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    target_tmp
        .parent()
        .unwrap_or(target_tmp)
        .join("gib-fixtures")
}

/// One flavour of the mini stage3: the file name prefix of its tarballs in the cache and the
/// Debian packages `build.sh` adds to the base set.
struct Variant {
    name: &'static str,
    extra_packages: &'static [&'static str],
    /// A Debian architecture other than the host's (`MINI_STAGE3_ARCH` of `build.sh`).
    arch: Option<&'static str>,
}

const BASE: Variant = Variant {
    name: "mini-stage3",
    extra_packages: &[],
    arch: None,
};

/// The base set for arm64, made under qemu-user (slow): the foreign leg of multi-platform
/// builds.
const ARM64: Variant = Variant {
    name: "mini-stage3-arm64",
    extra_packages: &[],
    arch: Some("arm64"),
};

/// The toolchains `gib_go_build`, `gib_cargo_build`, `gib_pip_install` (setuptools and wheel
/// for offline `--no-build-isolation` builds) and `gib_npm_install` need in the builder.
const LANGS: Variant = Variant {
    name: "mini-stage3-langs",
    extra_packages: &[
        "golang-go",
        "rustc",
        "cargo",
        "nodejs",
        "npm",
        "python3-pip",
        "python3-setuptools",
        "python3-wheel",
    ],
    arch: None,
};

/// The mini stage3 tarball (`.tar.zst`), built on first use.
///
/// Test threads of this process share one build through a `OnceLock`; other test processes
/// wait on an exclusive lock on `<tarball>.lock`. `build.sh` writes to a temporary name and
/// renames, so a tarball that exists is complete.
pub fn mini_stage3() -> PathBuf {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL.get_or_init(|| build_or_reuse(&BASE)).clone()
}

/// The mini stage3 with Debian bookworm's Go, Rust, Python pip and Node.js toolchains
/// (`LANGS`), built on first use and cached like `mini_stage3()`. Several hundred MB more.
pub fn mini_stage3_langs() -> PathBuf {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL.get_or_init(|| build_or_reuse(&LANGS)).clone()
}

/// The mini stage3 for arm64 (Debian's arm64 userland, profile `default/linux/arm64/23.0`,
/// CHOST `aarch64-unknown-linux-gnu`), built under qemu-user on first use and cached like
/// `mini_stage3()`.
pub fn mini_stage3_arm64() -> PathBuf {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL.get_or_init(|| build_or_reuse(&ARM64)).clone()
}

/// The cache key of a variant: the sources' hash, and for variants with extra packages the
/// hash of both (so the base fixture's key does not depend on any variant's list).
fn variant_hash(variant: &Variant) -> String {
    let sources = sources_hash(&mini_stage3_sources());
    if variant.extra_packages.is_empty() && variant.arch.is_none() {
        return sources;
    }
    let mut hasher = Sha256::new();
    hasher.update(sources.as_bytes());
    if let Some(arch) = variant.arch {
        hasher.update([1]);
        hasher.update(arch.as_bytes());
    }
    for package in variant.extra_packages {
        hasher.update([0]);
        hasher.update(package.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn build_or_reuse(variant: &Variant) -> PathBuf {
    let sources = mini_stage3_sources();
    let hash = variant_hash(variant);
    let dir = fixtures_cache_dir();
    let tarball = dir.join(format!("{}-{}.tar.zst", variant.name, &hash[..16]));
    if tarball.is_file() {
        return tarball;
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let lock_path = tarball.with_extension("lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    // Another process may have built it while we waited.
    if !tarball.is_file() {
        build(&sources, variant, &tarball);
        remove_stale_builds(&dir, variant, &tarball);
    }
    drop(lock);
    tarball
}

fn build(sources: &Path, variant: &Variant, tarball: &Path) {
    let log_path = tarball.with_extension("log");
    let log = File::create(&log_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
    let log_err = log
        .try_clone()
        .expect("cannot duplicate the log file handle");
    eprintln!(
        "building the {} fixture into {} (a few minutes; log: {})",
        variant.name,
        tarball.display(),
        log_path.display()
    );
    let script = sources.join("build.sh");
    let mut command = Command::new("sh");
    command.arg(&script).arg(tarball);
    if !variant.extra_packages.is_empty() {
        command.arg(variant.extra_packages.join(" "));
    }
    if let Some(arch) = variant.arch {
        command.env("MINI_STAGE3_ARCH", arch);
    }
    let status = command
        .stdout(log)
        .stderr(log_err)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    if !status.success() {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{} failed with {status}; it needs root, mmdebstrap and the package archives. \
             Last lines of {}:\n{}",
            script.display(),
            log_path.display(),
            tail.join("\n")
        );
    }
    assert!(
        tarball.is_file(),
        "{} succeeded but wrote no {}",
        script.display(),
        tarball.display()
    );
}

/// Remove the tarballs (with their logs and locks) of older sources of the same variant: each
/// is ~90 MB or more. `mini-stage3-<hash>` never matches `mini-stage3-langs-<hash>`.
fn remove_stale_builds(dir: &Path, variant: &Variant, current: &Path) {
    let Some(current_stem) = current.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let current_stem = current_stem.trim_end_matches(".tar.zst");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(variant.name)
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            continue;
        };
        let same_variant = rest.len() > 16
            && rest.as_bytes()[..16].iter().all(u8::is_ascii_hexdigit)
            && [".tar.zst", ".tar.log", ".tar.lock"].contains(&&rest[16..]);
        let stale = same_variant && !name.starts_with(current_stem);
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// SHA-256 over what determines the tarball: the build scripts and the repository tree
/// (relative paths, file contents, executable bits and symlink targets, in sorted order).
/// `selftest.sh` does not change the tarball and is left out.
fn sources_hash(sources: &Path) -> String {
    let mut hasher = Sha256::new();
    let mut inputs: Vec<PathBuf> = vec![sources.join("build.sh"), sources.join("customize.sh")];
    for entry in walkdir::WalkDir::new(sources.join("repo")).sort_by_file_name() {
        let entry = entry.unwrap_or_else(|e| panic!("cannot walk {}: {e}", sources.display()));
        if !entry.file_type().is_dir() {
            inputs.push(entry.into_path());
        }
    }
    for path in inputs {
        let relative = path.strip_prefix(sources).unwrap_or(&path);
        let meta = fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("cannot stat {}: {e}", path.display()));
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path)
                .unwrap_or_else(|e| panic!("cannot read link {}: {e}", path.display()));
            hasher.update(b"symlink\0");
            hasher.update(target.to_string_lossy().as_bytes());
        } else {
            let executable = meta.permissions().mode() & 0o111 != 0;
            hasher.update(if executable { b"x\0" } else { b"f\0" });
            let bytes =
                fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// The distfile of the fixture's `app-misc/hello`: GNU hello 2.10's upstream release tarball,
/// which Debian's archive keeps byte for byte as `pool/main/h/hello/hello_2.10.orig.tar.gz`.
/// Downloaded once into `target/gib-fixtures/distfiles/`, from the archive the machine's apt
/// sources name (the first that serves it), and checked against the size and SHA512 of the
/// repository's Manifest; the tests serve it from a local Gentoo-style mirror.
pub fn hello_distfile() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        fetch_distfile(
            "app-misc/hello",
            "hello-2.10.tar.gz",
            "pool/main/h/hello/hello_2.10.orig.tar.gz",
        )
    })
    .clone()
}

/// The size and SHA512 the fixture repository's Manifest records for `file` of `package`.
pub fn manifest_dist(package: &str, file: &str) -> (u64, String) {
    let path = mini_stage3_sources()
        .join("repo")
        .join(package)
        .join("Manifest");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let words: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() > 3 && w[0] == "DIST" && w[1] == file)
        .unwrap_or_else(|| panic!("{} has no DIST line for {file}", path.display()));
    let size = words[2].parse().expect("a DIST size");
    let sha512 = words
        .windows(2)
        .find(|pair| pair[0] == "SHA512")
        .map(|pair| pair[1].to_string())
        .unwrap_or_else(|| panic!("{} has no SHA512 for {file}", path.display()));
    (size, sha512)
}

fn fetch_distfile(package: &str, file: &str, archive_path: &str) -> PathBuf {
    let (size, sha512) = manifest_dist(package, file);
    let dir = fixtures_cache_dir().join("distfiles");
    let target = dir.join(file);
    let matches = |bytes: &[u8]| {
        bytes.len() as u64 == size && hex::encode(sha2::Sha512::digest(bytes)) == sha512
    };
    if fs::read(&target).is_ok_and(|bytes| matches(&bytes)) {
        return target;
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let bases = apt_archive_bases();
    assert!(
        !bases.is_empty(),
        "no apt source in /etc/apt/sources.list(.d) to download {file} from"
    );
    let mut tried = Vec::new();
    for base in bases {
        let url = format!("{}/{archive_path}", base.trim_end_matches('/'));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build()
            .into();
        let bytes = agent.get(&url).call().ok().and_then(|mut response| {
            response
                .body_mut()
                .with_config()
                .limit(size + 1)
                .read_to_vec()
                .ok()
        });
        match bytes {
            Some(bytes) if matches(&bytes) => {
                let partial = dir.join(format!("{file}.part.{}", std::process::id()));
                fs::write(&partial, &bytes)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", partial.display()));
                fs::rename(&partial, &target)
                    .unwrap_or_else(|e| panic!("cannot rename to {}: {e}", target.display()));
                return target;
            }
            _ => tried.push(url),
        }
    }
    panic!("none of these served {file} as its Manifest records it: {tried:?}");
}

/// The base URLs of the Debian archives in the machine's apt configuration: `deb` lines of
/// `sources.list` and `*.list`, `URIs:` of deb822 `*.sources`, in file order.
fn apt_archive_bases() -> Vec<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    let mut bases = Vec::new();
    for file in files {
        let name = file.to_string_lossy().into_owned();
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            if name.ends_with(".sources") {
                if let Some(uris) = line.strip_prefix("URIs:") {
                    bases.extend(uris.split_whitespace().map(str::to_string));
                }
            } else if name.ends_with(".list") {
                let mut words = line.split_whitespace();
                if words.next() != Some("deb") {
                    continue;
                }
                // `deb [options] URI suite components`
                let uri = words.find(|w| w.contains("://"));
                bases.extend(uri.map(str::to_string));
            }
        }
    }
    bases.retain(|b| b.starts_with("http://") || b.starts_with("https://"));
    bases
}

/// One entry of a tarball listing, with the contents of small regular files.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub link_target: Option<PathBuf>,
    pub contents: Option<Vec<u8>>,
}

/// List a `.tar.zst`, keyed by path without the leading `./`. Regular files up to
/// `max_contents` bytes keep their contents.
pub fn list_tar_zst(
    tarball: &Path,
    max_contents: u64,
) -> std::collections::BTreeMap<String, TarEntry> {
    let file =
        File::open(tarball).unwrap_or_else(|e| panic!("cannot open {}: {e}", tarball.display()));
    let mut decoder = zstd::stream::read::Decoder::new(file).expect("cannot start zstd");
    // build.sh compresses with --long=27.
    decoder
        .window_log_max(27)
        .expect("cannot set the zstd window");
    let mut archive = tar::Archive::new(decoder);
    let mut listing = std::collections::BTreeMap::new();
    let entries = archive
        .entries()
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", tarball.display()));
    for entry in entries {
        let mut entry = entry.unwrap_or_else(|e| panic!("bad entry in {}: {e}", tarball.display()));
        let path = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        let name = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().expect("entry mode");
        let uid = header.uid().expect("entry uid");
        let gid = header.gid().expect("entry gid");
        let link_target = entry
            .link_name()
            .expect("link name")
            .map(|l| l.into_owned());
        let contents = if kind.is_file() && entry.size() <= max_contents {
            let mut bytes = Vec::new();
            entry
                .read_to_end(&mut bytes)
                .unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
            Some(bytes)
        } else {
            None
        };
        listing.insert(
            name,
            TarEntry {
                kind,
                mode,
                uid,
                gid,
                link_target,
                contents,
            },
        );
    }
    listing
}

fn text<'a>(listing: &'a std::collections::BTreeMap<String, TarEntry>, path: &str) -> &'a str {
    let entry = listing
        .get(path)
        .unwrap_or_else(|| panic!("the mini stage3 has no {path}"));
    let bytes = entry
        .contents
        .as_deref()
        .unwrap_or_else(|| panic!("{path} is not a small regular file: {entry:?}"));
    std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{path} is not UTF-8: {e}"))
}

#[test]
fn mini_stage3_is_built_once_and_cached_by_content() {
    let tarball = mini_stage3();
    assert!(tarball.is_file(), "{} is missing", tarball.display());
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    let hash = &sources_hash(&mini_stage3_sources())[..16];
    assert_eq!(name, format!("mini-stage3-{hash}.tar.zst"));
    assert!(tarball.starts_with(fixtures_cache_dir()));
    assert_eq!(mini_stage3(), tarball);
    // No temporary leftovers next to it.
    for entry in fs::read_dir(fixtures_cache_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp."), "leftover {name}");
    }
}

#[test]
fn mini_stage3_is_laid_out_like_a_gentoo_stage3() {
    let listing = list_tar_zst(&mini_stage3(), 64 * 1024);

    let profile = &listing["etc/portage/make.profile"];
    assert_eq!(profile.kind, tar::EntryType::Symlink);
    assert_eq!(
        profile.link_target.as_deref(),
        Some(Path::new(
            "../../var/db/repos/gentoo/profiles/default/linux/amd64/23.0"
        ))
    );
    assert!(listing.contains_key("var/db/repos/gentoo/profiles/default/linux/amd64/23.0/eapi"));
    assert_eq!(
        text(&listing, "var/db/repos/gentoo/profiles/repo_name"),
        "gentoo\n"
    );
    assert!(
        text(&listing, "var/db/repos/gentoo/metadata/timestamp.chk").ends_with("+0000\n"),
        "timestamp.chk is not an RFC 2822 date"
    );

    let make_conf = text(&listing, "etc/portage/make.conf");
    assert!(make_conf.contains("COMMON_FLAGS=\"-O2 -pipe\""));
    assert!(make_conf.contains("CHOST=\"x86_64-pc-linux-gnu\""));

    // Portage installed as on Gentoo: EPREFIX empty, global config in /usr/share/portage.
    for path in [
        "usr/bin/emerge",
        "usr/share/portage/config/make.globals",
        "usr/share/portage/config/repos.conf",
        "usr/lib/portage/bin/ebuild.sh",
    ] {
        assert!(listing.contains_key(path), "no {path}");
    }
    assert!(
        text(&listing, "usr/share/portage/config/repos.conf")
            .contains("location = /var/db/repos/gentoo")
    );
    // Portage's unpack helper calls gtar; wget is its FETCHCOMMAND.
    let gtar = &listing["usr/bin/gtar"];
    assert_eq!(gtar.link_target.as_deref(), Some(Path::new("tar")));
    assert!(listing["usr/bin/wget"].kind.is_file());

    // The profile stack base -> linux -> arch -> release, and only free licenses by default.
    let profiles = "var/db/repos/gentoo/profiles";
    assert_eq!(
        text(
            &listing,
            &format!("{profiles}/default/linux/amd64/23.0/parent")
        ),
        "..\n"
    );
    assert_eq!(
        text(&listing, &format!("{profiles}/default/linux/amd64/parent")),
        "..\n../../../arch/amd64\n"
    );
    assert_eq!(
        text(&listing, &format!("{profiles}/default/linux/parent")),
        "../../base\n"
    );
    assert!(
        text(&listing, &format!("{profiles}/base/make.defaults"))
            .contains("ACCEPT_LICENSE=\"-* @FREE\"")
    );
    assert!(
        text(&listing, &format!("{profiles}/license_groups"))
            .lines()
            .any(|l| l.starts_with("FREE "))
    );

    // The portage user and group, uid/gid 250, as acct-user/portage makes them.
    let passwd = text(&listing, "etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("portage:x:250:250:") && l.contains(":/var/lib/portage:")),
        "no portage user 250 in etc/passwd:\n{passwd}"
    );
    assert!(
        text(&listing, "etc/group")
            .lines()
            .any(|l| l.starts_with("portage:x:250:"))
    );

    // Ownership where Gentoo has Portage's ids: the synced repository belongs to portage
    // (usersync), DISTDIR is root:portage with setgid group write.
    let repo_entries: Vec<_> = listing
        .iter()
        .filter(|(path, _)| path.starts_with("var/db/repos/gentoo"))
        .collect();
    assert!(repo_entries.len() > 20);
    for (path, entry) in repo_entries {
        assert_eq!(
            (entry.uid, entry.gid),
            (250, 250),
            "{path} not portage:portage"
        );
    }
    let distfiles = &listing["var/cache/distfiles"];
    assert_eq!((distfiles.uid, distfiles.gid), (0, 250));
    assert_eq!(distfiles.mode & 0o7777, 0o2775);
    assert_eq!(listing["var/lib/portage"].gid, 250);
    assert!(listing.contains_key("var/cache/binpkgs"));

    // The VDB records the stage's own packages.
    for package in [
        "sys-libs/glibc-2.36",
        "sys-apps/baselayout-2.17",
        "virtual/libc-1-r1",
    ] {
        assert!(
            listing.contains_key(&format!("var/db/pkg/{package}/CONTENTS")),
            "no {package} in var/db/pkg"
        );
    }

    // /dev is empty, as in a stage3: device nodes cannot be unpacked rootless.
    assert_eq!(listing["dev"].kind, tar::EntryType::Directory);
    let devices: Vec<_> = listing
        .iter()
        .filter(|(path, entry)| {
            path.starts_with("dev/")
                || entry.kind.is_character_special()
                || entry.kind.is_block_special()
        })
        .map(|(path, _)| path)
        .collect();
    assert!(devices.is_empty(), "device entries: {devices:?}");

    let os_release = text(&listing, "usr/lib/os-release");
    assert!(os_release.lines().any(|l| l == "ID=gentoo"));
}

#[test]
fn stale_fixture_removal_keeps_the_other_variant() {
    let dir = crate::util::scratch_dir("fixture-stale");
    let old_base = "mini-stage3-0123456789abcdef";
    let new_base = "mini-stage3-fedcba9876543210";
    let langs = "mini-stage3-langs-0123456789abcdef";
    let mut names = vec!["mini-stage3.tar.zst".to_owned()];
    for stem in [old_base, new_base, langs] {
        for ext in [".tar.zst", ".tar.log", ".tar.lock"] {
            names.push(format!("{stem}{ext}"));
        }
    }
    for name in &names {
        fs::write(dir.path().join(name), b"").unwrap();
    }
    let current = dir.path().join(format!("{new_base}.tar.zst"));
    remove_stale_builds(dir.path(), &BASE, &current);
    let mut left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected: Vec<String> = names
        .into_iter()
        .filter(|n| !n.starts_with(old_base))
        .collect();
    expected.sort();
    assert_eq!(left, expected);

    // And the other way round: the langs variant removes only its own.
    let current = dir
        .path()
        .join("mini-stage3-langs-fedcba9876543210.tar.zst");
    remove_stale_builds(dir.path(), &LANGS, &current);
    let left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("mini-stage3-langs-"))
        .collect();
    assert!(left.is_empty(), "left {left:?}");
    assert!(dir.path().join(format!("{new_base}.tar.zst")).is_file());
}

/// The langs fixture (~330 MB, ~2 minutes to build; the language helpers' test uses it) is
/// still a mini stage3, with the toolchains.
#[test]
fn mini_stage3_langs_has_the_toolchains() {
    let tarball = mini_stage3_langs();
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        name,
        format!("mini-stage3-langs-{}.tar.zst", &variant_hash(&LANGS)[..16])
    );
    let listing = list_tar_zst(&tarball, 0);
    for path in [
        "usr/bin/go",
        "usr/bin/cargo",
        "usr/bin/rustc",
        "usr/bin/node",
        "usr/bin/npm",
        "usr/lib/python3/dist-packages/pip/__init__.py",
        "usr/lib/python3/dist-packages/setuptools/__init__.py",
        "usr/lib/python3/dist-packages/wheel/__init__.py",
        // Still the mini stage3.
        "usr/bin/emerge",
        "var/db/pkg/sys-libs/glibc-2.36/CONTENTS",
    ] {
        assert!(listing.contains_key(path), "no {path} in {name}");
    }
}

/// The arm64 mini stage3 is an arm64 Gentoo-like stage: its profile, CHOST and binaries
/// (an AArch64 ELF, `e_machine` 183) are arm64's, its glibc merged for arm64.
#[test]
fn mini_stage3_arm64_is_an_arm64_stage3() {
    let listing = list_tar_zst(&mini_stage3_arm64(), 2 * 1024 * 1024);
    assert_eq!(
        listing["etc/portage/make.profile"].link_target.as_deref(),
        Some(Path::new(
            "../../var/db/repos/gentoo/profiles/default/linux/arm64/23.0"
        ))
    );
    let make_conf = text(&listing, "etc/portage/make.conf");
    assert!(
        make_conf.contains("CHOST=\"aarch64-unknown-linux-gnu\""),
        "{make_conf}"
    );
    let loader = listing
        .get("usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1")
        .expect("no arm64 loader");
    assert!(loader.kind.is_file() || loader.kind == tar::EntryType::Symlink);
    let sed = listing["usr/bin/sed"]
        .contents
        .as_deref()
        .expect("/usr/bin/sed is small");
    assert_eq!(&sed[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([sed[18], sed[19]]), 183, "not AArch64");
    assert!(listing.contains_key("var/db/pkg/sys-libs/glibc-2.36/CONTENTS"));
}
