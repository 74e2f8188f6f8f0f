//! Hostile trees: hand-made `rootfs:` tarballs, layers of a parent pulled from the test
//! registry, and package databases that try to make gib write or read outside the tree
//! (symlink-then-entry, whiteouts and opaque markers through a symlink, whiteouts of `..`,
//! files over a symlinked directory, fifos and devices through a symlink, hardlinks out, a
//! `var/db/pkg` file linked to a secret). Run as root and as the unprivileged test user.
//!
//! Every case asserts that a canary directory beside the target is unchanged, that gib failed
//! with an error naming the entry, the same exit code both ways, and quickly.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::registry_server::{Registry, tail};
use crate::util::{as_test_user, gib, gib_bin, run_ok, scratch_dir, test_user};

/// How long a refusal may take (the attack suite's cases took milliseconds).
const BOUND: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Root,
    User,
}

/// One raw tar entry; the names and targets are written as given (no sanitising).
#[derive(Clone, Debug)]
enum Entry {
    Dir(&'static str),
    File(&'static str, &'static str),
    Symlink(&'static str, String),
    Hardlink(&'static str, String),
    Fifo(&'static str),
    Block(&'static str, u32, u32),
}

fn tarball(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mode(0o666);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_size(0);
        let (name, kind, link, data): (&str, tar::EntryType, Option<&str>, &str) = match entry {
            Entry::Dir(n) => (n, tar::EntryType::Directory, None, ""),
            Entry::File(n, d) => (n, tar::EntryType::Regular, None, d),
            Entry::Symlink(n, t) => (n, tar::EntryType::Symlink, Some(t), ""),
            Entry::Hardlink(n, t) => (n, tar::EntryType::Link, Some(t), ""),
            Entry::Fifo(n) => (n, tar::EntryType::Fifo, None, ""),
            Entry::Block(n, major, minor) => {
                header.set_device_major(*major).unwrap();
                header.set_device_minor(*minor).unwrap();
                (n, tar::EntryType::Block, None, "")
            }
        };
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        builder.append(&header, data.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Every path below `dir` with its type, mode, size and contents: what "unchanged" compares.
fn listing(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .map(|e| {
            let meta = e.path().symlink_metadata().unwrap();
            let data = if meta.is_file() {
                std::fs::read(e.path()).unwrap()
            } else {
                Vec::new()
            };
            (e.path().to_path_buf(), (meta.mode(), meta.len(), data))
        })
        .collect()
}

/// A canary beside the target: a file, a directory with a file, owned by the user who runs
/// gib (so the attack could succeed if gib let it).
fn canary(dir: &Path, who: Who) -> PathBuf {
    let canary = dir.join("canary");
    std::fs::create_dir_all(canary.join("dir")).unwrap();
    std::fs::write(canary.join("victim"), "keep me").unwrap();
    std::fs::write(canary.join("dir/inner"), "keep me too").unwrap();
    if who == Who::User {
        chown_to_user(&canary);
    }
    canary
}

fn chown_to_user(path: &Path) {
    let user = test_user();
    run_ok(
        Command::new("chown")
            .args(["-R", &format!("{user}:{user}")])
            .arg(path),
    );
}

/// The hostile tarballs and layers, each a list of layers (a `rootfs:` tarball is one), the
/// entry the error must name and whether OCI whiteouts apply (layers only).
fn cases(canary: &Path) -> Vec<(&'static str, Vec<Vec<Entry>>, &'static str)> {
    use Entry::*;
    let out = canary.display().to_string();
    let link = || Symlink("lnk", out.clone());
    vec![
        (
            "symlink then entry",
            vec![vec![link(), File("lnk/pwned", "x")]],
            "lnk/pwned",
        ),
        (
            "file over a symlinked dir",
            vec![vec![link(), File("lnk/dir", "x")]],
            "lnk/dir",
        ),
        (
            "fifo through a symlink",
            vec![vec![link(), Fifo("lnk/fifo")]],
            "lnk/fifo",
        ),
        (
            "device through a symlink",
            vec![vec![link(), Block("lnk/disk", 8, 0)]],
            "lnk/disk",
        ),
        (
            "root symlink then an absolute path",
            vec![vec![
                Symlink("up", "/".into()),
                File(leak(format!("up{out}/pwned")), "x"),
            ]],
            "/pwned",
        ),
        (
            "dotdot entry",
            vec![vec![File(leak(format!("../{}/pwned", base(canary))), "x")]],
            "pwned",
        ),
        (
            "hardlink out",
            vec![vec![Hardlink("h", format!("../{}/victim", base(canary)))]],
            "`h`",
        ),
        (
            "hardlink through a symlink",
            vec![vec![link(), Hardlink("h", "lnk/victim".into())]],
            "`h`",
        ),
        // Whiteouts: the symlink in a lower layer, the marker in the next.
        (
            "whiteout through a symlink",
            vec![vec![link()], vec![File("lnk/.wh.victim", "")]],
            "lnk/.wh.victim",
        ),
        (
            "opaque through a symlink",
            vec![vec![link()], vec![File("lnk/.wh..wh..opq", "")]],
            "lnk/.wh..wh..opq",
        ),
        (
            "dotdot whiteout through a symlink",
            vec![vec![link()], vec![File("lnk/.wh...", "")]],
            "lnk/.wh...",
        ),
        (
            "dotdot whiteout",
            vec![vec![Dir("d")], vec![File("d/.wh...", "")]],
            "d/.wh...",
        ),
        (
            "dot whiteout",
            vec![vec![Dir("d")], vec![File("d/.wh..", "")]],
            "d/.wh..",
        ),
    ]
}

fn base(path: &Path) -> String {
    // The canary is `<dir>/canary`, the target is below `<dir>/cache/...`: `..` climbs from
    // wherever gib unpacks, so the dotdot cases aim at a name that must stay absent.
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn run_timed(cmd: &mut Command) -> (Output, Duration) {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    (out, start.elapsed())
}

/// Check one refused run: non-zero, the entry named, quick, the canary untouched.
fn assert_refused(
    case: &str,
    who: Who,
    out: &Output,
    took: Duration,
    named: &str,
    canary: &Path,
    before: &BTreeMap<PathBuf, (u32, u64, Vec<u8>)>,
) -> i32 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{case} ({who:?}): gib succeeded\n{stderr}"
    );
    assert!(took < BOUND, "{case} ({who:?}): took {took:?}");
    let error_line = stderr
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("error:") || l.starts_with("caused by:"))
        .find(|l| l.contains(named));
    assert!(
        error_line.is_some(),
        "{case} ({who:?}): no error line names `{named}`:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{case} ({who:?}): {stderr}");
    eprintln!("{case} ({who:?}): {}", error_line.unwrap_or_default());
    assert_eq!(
        &listing(canary),
        before,
        "{case} ({who:?}): the canary changed"
    );
    out.status.code().unwrap_or(-1)
}

fn gib_as(who: Who) -> Command {
    match who {
        Who::Root => gib(),
        Who::User => {
            let mut cmd = as_test_user(&gib_bin());
            cmd.env("NO_COLOR", "1");
            cmd
        }
    }
}

/// A fresh cache (owned by the user who runs gib).
fn cache_for(dir: &Path, who: Who, name: &str) -> PathBuf {
    let cache = dir.join(name);
    std::fs::create_dir_all(&cache).unwrap();
    if who == Who::User {
        chown_to_user(&cache);
    }
    cache
}

#[test]
fn hostile_rootfs_tarballs_fail_naming_the_entry_and_touch_nothing_outside() {
    let dir = scratch_dir("hostile-rootfs");
    let mut codes: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for who in [Who::Root, Who::User] {
        let run_dir = dir.path().join(format!("{who:?}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let canary = canary(&run_dir, who);
        for (i, (case, layers, named)) in cases(&canary).into_iter().enumerate() {
            if layers.len() > 1 {
                continue; // whiteouts mean nothing in a plain tarball
            }
            let tar = run_dir.join(format!("case{i}.tar"));
            std::fs::write(&tar, tarball(&layers[0])).unwrap();
            let config = run_dir.join(format!("case{i}.yaml"));
            std::fs::write(
                &config,
                format!("images:\n  evil:\n    rootfs: ./case{i}.tar\n    tag: t\n"),
            )
            .unwrap();
            if who == Who::User {
                chown_to_user(&run_dir.join(format!("case{i}.tar")));
            }
            let before = listing(&canary);
            let cache = cache_for(&run_dir, who, &format!("cache{i}"));
            // Where the user may write: a layout it cannot write is refused before any work.
            let outputs = cache_for(&run_dir, who, &format!("out{i}"));
            let (out, took) = run_timed(
                gib_as(who)
                    .arg("build")
                    .arg("-f")
                    .arg(&config)
                    .arg("--cache-dir")
                    .arg(&cache)
                    .arg("--oci-layout")
                    .arg(outputs.join("layout")),
            );
            let code = assert_refused(case, who, &out, took, named, &canary, &before);
            codes.entry(case).or_default().push(code);
        }
    }
    for (case, codes) in codes {
        assert_eq!(codes[0], codes[1], "{case}: root and user exit differently");
    }
}

/// The layers of a hand-made image pushed to the test registry, pulled as a parent.
#[test]
fn hostile_layers_of_a_pulled_parent_fail_naming_the_entry_and_touch_nothing_outside() {
    let dir = scratch_dir("hostile-layers");
    let registry = Registry::start(dir.path());
    let blobs = dir.path().join("blobs");
    let app = dir.path().join("app/etc");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("message"), "child\n").unwrap();
    let mut codes: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for who in [Who::Root, Who::User] {
        let run_dir = dir.path().join(format!("{who:?}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        let canary = canary(&run_dir, who);
        for (i, (case, layers, named)) in cases(&canary).into_iter().enumerate() {
            let repo = format!("gib/{}-evil{i}", format!("{who:?}").to_lowercase());
            let manifest = image(&blobs, &layers);
            registry.push_ok(&blobs, &manifest, &format!("{repo}:1"), &[]);
            let config = run_dir.join(format!("case{i}.yaml"));
            std::fs::write(
                &config,
                format!(
                    "registries:\n  \"{host}\":\n    ca_certificate: {ca}\n\
                     images:\n  child:\n    from: {host}/{repo}:1\n    rootfs: ../app\n    \
                     tag: t\n",
                    host = registry.host(),
                    ca = registry.ca().display()
                ),
            )
            .unwrap();
            let before = listing(&canary);
            let cache = cache_for(&run_dir, who, &format!("cache{i}"));
            let (out, took) = run_timed(
                gib_as(who)
                    .env("REGISTRY_AUTH_FILE", registry.dir.join("auth.json"))
                    .arg("build")
                    .arg("-f")
                    .arg(&config)
                    .arg("--cache-dir")
                    .arg(&cache),
            );
            if out.status.success() {
                panic!(
                    "{case} ({who:?}) succeeded:\n{}\nregistry log:\n{}",
                    String::from_utf8_lossy(&out.stderr),
                    tail(&registry.log())
                );
            }
            let code = assert_refused(case, who, &out, took, named, &canary, &before);
            codes.entry(case).or_default().push(code);
        }
    }
    for (case, codes) in codes {
        assert_eq!(codes[0], codes[1], "{case}: root and user exit differently");
    }
}

/// Write `layers` (plain tars) with a config and a manifest into `blobs`; the manifest digest.
fn image(blobs: &Path, layers: &[Vec<Entry>]) -> String {
    let put = |bytes: &[u8]| {
        use sha2::Digest;
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        std::fs::create_dir_all(blobs.join("sha256")).unwrap();
        std::fs::write(blobs.join("sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let layers: Vec<(String, usize)> = layers.iter().map(|l| put(&tarball(l))).collect();
    let diff_ids: Vec<String> = layers.iter().map(|(d, _)| format!("\"{d}\"")).collect();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
        diff_ids.join(",")
    );
    let (config_digest, config_len) = put(config.as_bytes());
    let descriptors: Vec<String> = layers
        .iter()
        .map(|(d, n)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{n}}}"#
            )
        })
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_len}}},"layers":[{}]}}"#,
        descriptors.join(",")
    );
    put(manifest.as_bytes()).0
}

/// A package database whose DESCRIPTION links to a secret file: gib names the link and the
/// secret appears in no output (stdout, stderr, SBOM, layout).
#[test]
fn a_package_database_symlink_to_a_secret_is_refused_and_nothing_leaks() {
    const SECRET: &str = "s3cr3t-token-that-must-not-leak";
    let dir = scratch_dir("hostile-vdb");
    for who in [Who::Root, Who::User] {
        let run_dir = dir.path().join(format!("{who:?}"));
        let secret = run_dir.join("home/.docker/config.json");
        std::fs::create_dir_all(secret.parent().unwrap()).unwrap();
        std::fs::write(&secret, SECRET).unwrap();
        let tree = run_dir.join("tree");
        let package = tree.join("var/db/pkg/app-misc/evil-1");
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(package.join("SLOT"), "0\n").unwrap();
        std::os::unix::fs::symlink(&secret, package.join("DESCRIPTION")).unwrap();
        // The same tree as a tarball: its symlink lands in the cache, pointing at the secret.
        run_ok(
            Command::new("tar")
                .arg("-C")
                .arg(&tree)
                .arg("-cf")
                .arg(run_dir.join("tree.tar"))
                .arg("."),
        );
        std::fs::write(
            run_dir.join("gib.yaml"),
            "images:\n  dir:\n    rootfs: ./tree\n    tag: t\n  \
             tarball:\n    rootfs: ./tree.tar\n    tag: t\n",
        )
        .unwrap();
        if who == Who::User {
            chown_to_user(&run_dir);
        }
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        for image in ["dir", "tarball"] {
            let layout = run_dir.join(format!("layout-{image}"));
            let cache = cache_for(&run_dir, who, &format!("cache-{image}"));
            let (out, took) = run_timed(
                gib_as(who)
                    .arg("build")
                    .arg(image)
                    .arg("--json")
                    .arg("-f")
                    .arg(run_dir.join("gib.yaml"))
                    .arg("--cache-dir")
                    .arg(&cache)
                    .arg("--oci-layout")
                    .arg(&layout),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{image} ({who:?}) succeeded\n{stderr}"
            );
            assert!(took < BOUND, "{image} ({who:?}): took {took:?}");
            assert!(
                stderr.contains("evil-1/DESCRIPTION is a symbolic link"),
                "{image} ({who:?}):\n{stderr}"
            );
            assert!(!stderr.contains(SECRET), "{image} ({who:?}): {stderr}");
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(SECRET),
                "{image} ({who:?}): the secret is in stdout"
            );
            if layout.exists() {
                for (path, (_, _, data)) in listing(&layout) {
                    assert!(
                        !String::from_utf8_lossy(&data).contains(SECRET),
                        "{image} ({who:?}): the secret is in {}",
                        path.display()
                    );
                }
            }
        }
    }
}

/// A parent of 30,000 layers: the digests reach the layer helper on stdin (on its command
/// line they would exceed the kernel's argument limit, E2BIG), and each layer is applied.
#[test]
fn thirty_thousand_layers_reach_the_layer_helper() {
    use std::io::Write;
    let dir = scratch_dir("hostile-many-layers");
    let blobs = dir.path().join("blobs");
    let manifest = image(&blobs, &[vec![Entry::Dir("d"), Entry::File("d/f", "x")]]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            blobs
                .join("sha256")
                .join(manifest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let dest = dir.path().join("tree");
    let job = serde_json::json!({ "unpack_layers": {
        "blobs": blobs, "dest": dest, "digests": vec![layer; 30_000],
    }})
    .to_string();
    assert!(job.len() > 2 << 20, "the job must exceed ARG_MAX");
    let start = Instant::now();
    let mut child = gib()
        .args(["__internal", "job"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(job.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["entries"], 60_000, "{summary}");
    assert_eq!(std::fs::read_to_string(dest.join("d/f")).unwrap(), "x");
    assert!(start.elapsed() < BOUND, "took {:?}", start.elapsed());
}

/// The same corrupt `rootfs:` tarball (a gzip stream cut short) fails with the same exit code
/// and message as root (unpacked in-process) and as a user (in the user namespace).
#[test]
fn a_corrupt_rootfs_tarball_exits_the_same_as_root_and_as_a_user() {
    let dir = scratch_dir("hostile-corrupt");
    let tar = tarball(&[Entry::Dir("etc"), Entry::File("etc/motd", "hello")]);
    let mut gz = Vec::new();
    {
        let mut encoder = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &tar).unwrap();
        encoder.finish().unwrap();
    }
    gz.truncate(gz.len() - 12);
    let mut results = Vec::new();
    for who in [Who::Root, Who::User] {
        let run_dir = dir.path().join(format!("{who:?}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        std::fs::write(run_dir.join("root.tar.gz"), &gz).unwrap();
        std::fs::write(
            run_dir.join("gib.yaml"),
            "images:\n  broken:\n    rootfs: ./root.tar.gz\n    tag: t\n",
        )
        .unwrap();
        let cache = cache_for(&run_dir, who, "cache");
        let (out, took) = run_timed(
            gib_as(who)
                .arg("build")
                .arg("-f")
                .arg(run_dir.join("gib.yaml"))
                .arg("--cache-dir")
                .arg(&cache),
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{who:?}: {stderr}");
        assert!(took < BOUND, "{who:?}: took {took:?}");
        let cause = stderr
            .lines()
            .find(|l| l.contains("corrupt or truncated"))
            .unwrap_or_else(|| panic!("{who:?}: {stderr}"))
            .replace(&run_dir.display().to_string(), "DIR");
        results.push((out.status.code(), cause));
    }
    assert_eq!(results[0], results[1]);
}
