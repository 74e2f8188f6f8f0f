//! gib.lock: the first build pins the inputs, later builds follow the pin with no network and
//! no sandbox, `gib update` moves it (and exactly the images that depend on what moved
//! rebuild), `--locked` refuses a gib.yaml the lock does not match and leaves the lock alone.
//!
//! The overlay is a real git repository reached over git's `file://` transport; "the server
//! is gone" is the repository moved away, so any fetch would fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fixture::mini_stage3;
use crate::util::{build_without_sandboxes, gib, require_tool, run_ok, scratch_dir};

const EBUILD: &str = r#"EAPI=8

DESCRIPTION="A file that says which overlay commit built it"
HOMEPAGE="https://example.org/lockdemo"
S=${WORKDIR}
LICENSE="MIT"
SLOT="0"
KEYWORDS="amd64 arm64"

src_install() {
	echo "@TEXT@" > "${T}"/said || die
	insinto /usr/share/lockdemo
	doins "${T}"/said
}
"#;

/// A git overlay `mine` whose one package, at `version`, installs a file saying `text`; its
/// new HEAD. (A change to a package comes with a new version, as in ::gentoo: Portage reuses
/// the binary package of a version it built.)
pub(crate) fn commit_overlay(repo: &Path, version: &str, text: &str) -> String {
    let git = require_tool("git");
    let package = repo.join("app-misc/lockdemo");
    fs::create_dir_all(&package).unwrap();
    fs::create_dir_all(repo.join("metadata")).unwrap();
    fs::create_dir_all(repo.join("profiles")).unwrap();
    fs::write(
        repo.join("metadata/layout.conf"),
        "masters = gentoo\nthin-manifests = true\nsign-manifests = false\n",
    )
    .unwrap();
    fs::write(repo.join("profiles/repo_name"), "mine\n").unwrap();
    for old in fs::read_dir(&package).unwrap().flatten() {
        fs::remove_file(old.path()).unwrap();
    }
    fs::write(
        package.join(format!("lockdemo-{version}.ebuild")),
        EBUILD.replace("@TEXT@", text),
    )
    .unwrap();
    let g = |args: &[&str]| {
        run_ok(
            Command::new(&git)
                .arg("-C")
                .arg(repo)
                .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
                .args(args),
        )
    };
    if !repo.join(".git").exists() {
        g(&["init", "--quiet", "--initial-branch=main"]);
    }
    g(&["add", "-A"]);
    g(&["commit", "--quiet", "-m", text]);
    g(&["rev-parse", "HEAD"]).trim().to_string()
}

fn write_config(dir: &Path, overlay_uri: &str) -> PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("etc")).unwrap();
    fs::write(tree.join("etc/motd"), "files\n").unwrap();
    run_ok(
        Command::new(require_tool("tar"))
            .arg("-C")
            .arg(&tree)
            .arg("-cf")
            .arg(dir.join("tree.tar"))
            .arg("."),
    );
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nrepositories:\n  - name: mine\n    \
         sync_type: git\n    uri: {overlay_uri}\nbuild:\n  threads: 2\nimages:\n  \
         demo:\n    from: scratch\n    tag: t\n    packages: [app-misc/lockdemo]\n  \
         files:\n    from: scratch\n    tag: t\n    rootfs: ./tree.tar\n",
        stage3 = mini_stage3().display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn gib_in(config: &Path, cache: &Path, args: &[&str]) -> Output {
    let mut cmd = gib();
    cmd.args(args).arg("-f").arg(config);
    if args[0] != "plan" {
        cmd.arg("--cache-dir").arg(cache);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> String {
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    shown
}

/// The file the demo image holds, read from its layer in the cache.
fn said(cache: &Path) -> String {
    let images = cache.join("images");
    let mut found = Vec::new();
    for entry in fs::read_dir(&images).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let file = entry.path().join("layer/usr/share/lockdemo/said");
        // The layer's mtimes are clamped to the epoch; the entry's own is when it was made.
        if name.starts_with("demo") && file.is_file() {
            found.push((entry.metadata().unwrap().modified().unwrap(), file));
        }
    }
    found.sort();
    let newest = &found.last().expect("a demo entry").1;
    fs::read_to_string(newest).unwrap().trim().to_string()
}

#[test]
fn a_lock_pins_the_inputs_until_gib_update_moves_them() {
    let dir = scratch_dir("lock-pins");
    let (repo, cache) = (dir.path().join("overlay"), dir.path().join("cache"));
    let first = commit_overlay(&repo, "1", "first");
    let config = write_config(dir.path(), &format!("file://{}", repo.display()));
    let lock_path = dir.path().join("gib.lock");

    // The first build resolves the overlay to its HEAD and writes the lock.
    let out = ok(gib_in(&config, &cache, &["build"]));
    assert!(out.contains("Locked"), "{out}");
    let lock = fs::read_to_string(&lock_path).unwrap();
    assert!(lock.starts_with("# gib.lock"), "{lock}");
    assert!(lock.contains(&first), "{lock}");
    assert!(
        lock.contains("sha512:"),
        "the stage3 is pinned by content: {lock}"
    );
    assert_eq!(said(&cache), "first");

    // A new commit upstream changes nothing until `gib update`: the build follows the lock,
    // asks no server (the repository is gone) and enters no sandbox (none can be made).
    let second = commit_overlay(&repo, "2", "second");
    let gone = dir.path().join("overlay-away");
    fs::rename(&repo, &gone).unwrap();
    let out = build_without_sandboxes(&config, &cache, &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("Reusing demo"), "{shown}");
    assert!(shown.contains("Reusing files"), "{shown}");
    assert!(!shown.contains("Syncing"), "{shown}");
    assert_eq!(
        fs::read_to_string(&lock_path).unwrap(),
        lock,
        "the lock stays"
    );
    // Nor does it need a network: the same build in a network namespace of its own, which
    // has no interface up.
    let out = Command::new(require_tool("unshare"))
        .arg("--net")
        .arg(crate::util::gib_bin())
        .args(["build", "--locked", "-f"])
        .arg(&config)
        .arg("--cache-dir")
        .arg(&cache)
        .output()
        .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("Reusing demo"), "{shown}");
    fs::rename(&gone, &repo).unwrap();

    // `gib plan` shows what is locked.
    let plan = ok(gib_in(&config, &cache, &["plan"]));
    assert!(
        plan.contains(&format!("repository mine: commit {}", &first[..12])),
        "{plan}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&gib_in(&config, &cache, &["plan", "--json"]).stdout).unwrap();
    assert_eq!(
        json["lock"]["lock"]["repositories"][1]["revision"],
        first.as_str(),
        "{json}"
    );
    assert_eq!(json["lock"]["unlocked"], serde_json::json!([]));

    // `gib update --repos` moves the overlay (and says from what to what); the stage3 stays.
    let out = ok(gib_in(&config, &cache, &["update", "--repos"]));
    let moved_line = out
        .lines()
        .find(|l| l.contains("repository mine: commit"))
        .unwrap_or_else(|| panic!("{out}"));
    let (old, new) = moved_line.split_once('→').unwrap();
    assert!(
        old.contains(&first[..12]) && new.contains(&second[..12]),
        "{out}"
    );
    let moved = fs::read_to_string(&lock_path).unwrap();
    assert!(
        moved.contains(&second) && !moved.contains(&first),
        "{moved}"
    );
    let stage3_line = |lock: &str| {
        lock.lines()
            .find(|l| l.contains("sha512:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(stage3_line(&moved), stage3_line(&lock));
    let out = ok(gib_in(&config, &cache, &["update", "--repos"]));
    assert!(out.contains("Unchanged"), "{out}");

    // Exactly the image built from the overlay rebuilds; the rootfs image is reused.
    let out = ok(gib_in(&config, &cache, &["build"]));
    assert!(out.contains("Built demo"), "{out}");
    assert!(out.contains("Reusing files"), "{out}");
    assert_eq!(said(&cache), "second");
}

#[test]
fn locked_refuses_what_the_lock_does_not_name_and_leaves_it_alone() {
    let dir = scratch_dir("lock-locked");
    let (repo, cache) = (dir.path().join("overlay"), dir.path().join("cache"));
    commit_overlay(&repo, "1", "first");
    let uri = format!("file://{}", repo.display());
    let config = write_config(dir.path(), &uri);
    let lock_path = dir.path().join("gib.lock");

    // No lock: `--locked` refuses before any work and writes none.
    let out = gib_in(&config, &cache, &["build", "--locked"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("--locked: there is no"), "{shown}");
    assert!(!lock_path.exists());
    assert!(!shown.contains("Building"), "{shown}");

    ok(gib_in(&config, &cache, &["build"]));
    let lock = fs::read(&lock_path).unwrap();
    // The same gib.yaml builds locked.
    let out = ok(gib_in(&config, &cache, &["build", "--locked"]));
    assert!(out.contains("Reusing demo"), "{out}");

    // gib.yaml now asks for another overlay source: refused, the lock untouched.
    let other = dir.path().join("other");
    commit_overlay(&other, "3", "other");
    write_config(dir.path(), &format!("file://{}", other.display()));
    let out = gib_in(&config, &cache, &["build", "--locked"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("does not name repository `mine`"), "{shown}");
    assert!(shown.contains("hint: run `gib update`"), "{shown}");
    assert_eq!(fs::read(&lock_path).unwrap(), lock, "the lock is untouched");
    let plan = ok(gib_in(&config, &cache, &["plan"]));
    assert!(plan.contains("not locked for what gib.yaml says"), "{plan}");

    // Without --locked the changed input is resolved again and the lock says so.
    let out = ok(gib_in(&config, &cache, &["build"]));
    assert!(out.contains("Updated"), "{out}");
    assert!(out.contains("Built demo"), "{out}");
    assert_eq!(said(&cache), "other");

    // A damaged lock is a clear error naming the file.
    fs::write(&lock_path, "version: 1\ngib: x\nstage3: [\n").unwrap();
    let out = gib_in(&config, &cache, &["build"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("gib.lock"), "{shown}");
}
