//! Image chains on the mini stage3 (real Portage): base (glibc, baselayout) -> lib (libgreet)
//! -> app (greet), each built on its parent's builder and tree. A child's layer holds only
//! what it adds; its emerge does not merge its parents' packages again; an unchanged chain is
//! reused without a sandbox; a change rebuilds the image and its descendants only; a failing
//! `test:` writes no output; a `script:` image builds a program with the rootfs-tools
//! helpers; builds share one cache concurrently and survive a SIGKILL in the middle.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::fixture::mini_stage3;
use crate::util::{
    Podman, archive_layers, as_test_user, emerge_log, gib, gib_bin, run_ok, scratch_dir, test_user,
};

/// What to vary in the chain's gib.yaml.
struct Chain<'a> {
    greet_use: &'a [&'a str],
    /// Extra lines of base's settings (a change to base).
    base_extra: &'a str,
    app_test: &'a str,
}

impl Default for Chain<'_> {
    fn default() -> Self {
        Chain {
            greet_use: &["loud"],
            base_extra: "",
            // The image has no shell: the test is a command and its arguments.
            app_test: "/usr/bin/greet",
        }
    }
}

/// The script of the `hello` image: a C program compiled in the builder and installed with
/// the helpers of rootfs-tools/lib.sh.
const HELLO_SCRIPT: &str = r#"cat > hello.c <<'C'
#include <stdio.h>
int main(void) { puts("hello from a script"); return 0; }
C
gcc -O2 -o hello hello.c
gib_install_binary ./hello /usr/bin/hello
gib_copy_gcc_runtime
gib_add_group app 1000
gib_add_user app 1000 1000
"#;

fn write_config(dir: &Path, chain: &Chain<'_>) -> PathBuf {
    let script = dir.join("hello.sh");
    fs::write(&script, HELLO_SCRIPT).unwrap();
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n  \
         package_use_flags:\n    app-misc/greet: [{uses}]\nimages:\n\
         \x20 base:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout, sys-libs/glibc]\n{base_extra}\
         \x20 lib:\n    from: base\n    tag: t\n    packages: [dev-libs/libgreet]\n\
         \x20 app:\n    from: lib\n    tag: t\n    packages: [app-misc/greet]\n    \
         entrypoint: [/usr/bin/greet]\n    test: \"{test}\"\n\
         \x20 hello:\n    from: base\n    tag: t\n    script: {script}\n    \
         entrypoint: [/usr/bin/hello]\n    user: app\n    test: /usr/bin/hello\n",
        stage3 = mini_stage3().display(),
        uses = chain.greet_use.join(", "),
        base_extra = chain.base_extra,
        test = chain.app_test.replace('"', "\\\""),
        script = script.display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn build_cmd(config: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = gib();
    cmd.arg("build")
        .arg("-f")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    cmd
}

pub(crate) fn build(config: &Path, cache: &Path, args: &[&str]) -> Output {
    build_cmd(config, cache, args).output().unwrap()
}

/// Build; panic with gib's output on failure; return (stdout, stderr).
pub(crate) fn build_ok(config: &Path, cache: &Path, args: &[&str]) -> (String, String) {
    let out = build(config, cache, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "gib build {args:?} failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Path, size, mode and mtime of everything in the cache entry named `prefix*` under `images`.
fn tree_listing(images: &Path, prefix: &str) -> Vec<(PathBuf, u64, u32, i64)> {
    use std::os::unix::fs::MetadataExt;
    let entry = fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* entry in {}", images.display()));
    walkdir::WalkDir::new(&entry)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.path().symlink_metadata().unwrap();
            (e.into_path(), meta.len(), meta.mode(), meta.mtime())
        })
        .filter(|(path, ..)| !path.ends_with("lock"))
        .collect()
}

/// The non-directory entries of a layer listing.
fn files(layer: &BTreeMap<String, (char, u32, u64, u64)>) -> Vec<&String> {
    layer
        .iter()
        .filter(|(_, (kind, ..))| *kind != '5')
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn a_chain_builds_in_tandem_and_rebuilds_only_what_changed() {
    let dir = scratch_dir("chain");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("app.tar");
    let archive_arg = ["--archive", archive.to_str().unwrap()];
    let config = write_config(dir.path(), &Chain::default());

    // base first, so we can see that its children leave its cache entry as it was.
    build_ok(&config, &cache, &["base"]);
    let base_entry = tree_listing(&cache.join("images"), "base-");
    let (stdout, stderr) = build_ok(
        &config,
        &cache,
        &[&archive_arg[..], &["--json", "app"]].concat(),
    );
    assert!(stderr.contains("Reusing base "), "{stderr}");
    assert_eq!(
        tree_listing(&cache.join("images"), "base-"),
        base_entry,
        "building lib and app changed base's builder or layer"
    );
    // `gib build app` builds app and its ancestors only.
    assert!(!stderr.contains("Building hello"), "{stderr}");

    // --json: every image with its references, digest, size and packages with versions.
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{stdout}"));
    let names: Vec<&str> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["base", "lib", "app"]);
    let app = &report[2];
    assert_eq!(app["references"][0], "app:t");
    assert!(app["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(app["size"].as_u64().unwrap() > 0);
    let packages: Vec<&str> = app["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        packages,
        [
            "app-misc/greet-1.0",
            "dev-libs/libgreet-1.0",
            "sys-apps/baselayout-2.17",
            "sys-libs/glibc-2.36"
        ]
    );

    assert_each_layer_holds_only_its_own(&archive);

    // app's emerge merged greet alone into the image: base's and lib's packages are
    // installed there already (lib's libgreet went into the builder only, as a DEPEND).
    assert_merged_again_none_of(&cache, "app", &["sys-libs/glibc", "sys-apps/baselayout"]);
    assert!(
        stderr.contains("dev-libs/libgreet-1.0 from binary package into the builder"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("dev-libs/libgreet-1.0 from binary package into the image")
            && stderr.contains("Emerged app: 1 packages into the image"),
        "{stderr}"
    );
    let podman = Podman::new(dir.path());
    podman.load(&archive);
    assert_eq!(podman.run("app:t", &[]).trim(), "HELLO FROM GIB");

    // Nothing changed: every image is reused and no sandbox is entered (the build runs where
    // no user namespace can be made). How long it takes is benches/chain-bench.sh's.
    let out = crate::util::build_without_sandboxes(&config, &cache, &["app"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for name in ["base", "lib", "app"] {
        assert!(stderr.contains(&format!("Reusing {name} ")), "{stderr}");
    }
    for verb in ["Building", "Emerging", "Testing", "Layering"] {
        assert!(!stderr.contains(verb), "{stderr}");
    }

    // (Where a build would need one, it fails so.)
    let out = crate::util::build_without_sandboxes(&config, &cache, &["--force", "app"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("user namespaces are disabled"), "{stderr}");

    // --force rebuilds (from the binary packages).
    let (_, stderr) = build_ok(&config, &cache, &["--force", "app"]);
    assert!(stderr.contains("Building app"), "{stderr}");

    // app's USE flags changed: app alone is rebuilt.
    let quiet = Chain {
        greet_use: &["-loud"],
        ..Chain::default()
    };
    let config = write_config(dir.path(), &quiet);
    let (_, stderr) = build_ok(&config, &cache, &[&archive_arg[..], &["app"]].concat());
    assert!(
        stderr.contains("Reusing base ") && stderr.contains("Reusing lib "),
        "{stderr}"
    );
    assert!(stderr.contains("Building app"), "{stderr}");
    podman.load(&archive);
    assert_eq!(podman.run("app:t", &[]).trim(), "hello from gib");

    // base changed: all three are rebuilt.
    let base_changed = Chain {
        base_extra: "    env: {BASE_CHANGED: \"1\"}\n",
        ..quiet
    };
    let config = write_config(dir.path(), &base_changed);
    let (_, stderr) = build_ok(&config, &cache, &["app"]);
    for name in ["base", "lib", "app"] {
        assert!(stderr.contains(&format!("Building {name} ")), "{stderr}");
    }
    assert!(!stderr.contains("Reusing"), "{stderr}");

    // A failing test: exit 1, the test's output shown, the image in no output. (The loader
    // asked to run a program that is not there says so and exits 127.)
    let failing = Chain {
        app_test: "/usr/lib64/ld-linux-x86-64.so.2 /usr/bin/no-such-program",
        ..base_changed
    };
    let config = write_config(dir.path(), &failing);
    let failed_archive = dir.path().join("failed.tar");
    let layout = dir.path().join("layout");
    let out = build(
        &config,
        &cache,
        &[
            "--archive",
            failed_archive.to_str().unwrap(),
            "--oci-layout",
            layout.to_str().unwrap(),
            "app",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/usr/bin/no-such-program: cannot open shared object file"),
        "{stderr}"
    );
    assert!(stderr.contains("the test of image app failed"), "{stderr}");
    assert!(!failed_archive.exists(), "a failed image was written");
    assert!(!layout.exists(), "a failed image was written");
    // Nor is it cached: the next build tests it again.
    let out = build(&config, &cache, &["app"]);
    assert_eq!(out.status.code(), Some(1));
}

/// `image`'s last emerge log merges none of `parent_packages` (its parents'); the log.
fn assert_merged_again_none_of(cache: &Path, image: &str, parent_packages: &[&str]) -> String {
    let log = fs::read_to_string(emerge_log(cache, image)).unwrap();
    for parent_package in parent_packages {
        assert!(
            !log.lines()
                .any(|l| l.starts_with(">>> Emerging") && l.contains(parent_package)),
            "{image}'s emerge merged {parent_package} again:\n{log}"
        );
    }
    log
}

/// The image is base's layer, lib's and app's; app's own layer holds none of the files of
/// the layers below (not even the passwd, profile.env or ld.so.cache emerge rewrote).
fn assert_each_layer_holds_only_its_own(archive: &Path) {
    let layers = archive_layers(archive, "app:t");
    assert_eq!(layers.len(), 3, "app's layers");
    let (base_layer, lib_layer, app_layer) = (&layers[0], &layers[1], &layers[2]);
    assert!(base_layer.contains_key("usr/lib64/libc.so.6"));
    assert!(lib_layer.contains_key("usr/lib64/libgreet.so.1.0.0"));
    assert!(app_layer.contains_key("usr/bin/greet"));
    for path in files(app_layer) {
        assert!(
            !base_layer.contains_key(path) && !lib_layer.contains_key(path),
            "{path} of a parent's layer is in app's layer"
        );
        assert!(
            path.starts_with("usr/bin/greet") || path.starts_with("var/db/pkg/app-misc/greet-1.0"),
            "app's layer holds {path}, which app's build did not add"
        );
    }
    // lib's layer: libgreet, and the linker cache its library changed.
    for path in files(lib_layer) {
        assert!(
            path.starts_with("usr/lib64/libgreet")
                || path.starts_with("var/db/pkg/dev-libs/libgreet-1.0")
                || path == "etc/ld.so.cache",
            "lib's layer holds {path}, which lib's build did not add or change"
        );
    }
}

#[test]
fn a_chain_builds_rootless() {
    let dir = scratch_dir("chain-rootless");
    let user = test_user();
    run_ok(
        Command::new("chown")
            .arg(format!("{user}:{user}"))
            .arg(dir.path()),
    );
    let config = write_config(dir.path(), &Chain::default());
    let archive = dir.path().join("app.tar");
    let out = as_test_user(&gib_bin())
        .env("NO_COLOR", "1")
        .args(["build", "-f"])
        .arg(&config)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--archive")
        .arg(&archive)
        .arg("app")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_each_layer_holds_only_its_own(&archive);
}

#[test]
fn a_script_image_builds_a_program_with_the_helpers_and_runs_in_podman() {
    let dir = scratch_dir("chain-script");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("hello.tar");
    let config = write_config(dir.path(), &Chain::default());
    let (_, stderr) = build_ok(
        &config,
        &cache,
        &["--archive", archive.to_str().unwrap(), "hello"],
    );
    assert!(stderr.contains("Running hello"), "{stderr}");
    assert!(stderr.contains("Testing hello"), "{stderr}");

    let layers = archive_layers(&archive, "hello:t");
    assert_eq!(layers.len(), 2);
    let layer = &layers[1];
    for present in [
        "usr/bin/hello",
        "usr/lib64/libgcc_s.so.1",
        "etc/passwd",
        "home/app",
    ] {
        assert!(
            layer.contains_key(present),
            "{present} is not in hello's layer"
        );
    }
    assert_eq!((layer["home/app"].2, layer["home/app"].3), (1000, 1000));
    // The program's libc is base's: the helper copied no library the image had.
    assert!(!layer.contains_key("usr/lib64/libc.so.6"), "{layer:?}");

    let podman = Podman::new(dir.path());
    podman.load(&archive);
    assert_eq!(podman.run("hello:t", &[]).trim(), "hello from a script");

    // An edited script is a new input: hello is rebuilt, base reused.
    fs::write(
        dir.path().join("hello.sh"),
        HELLO_SCRIPT.replace("a script", "an edit"),
    )
    .unwrap();
    let (_, stderr) = build_ok(&config, &cache, &["hello"]);
    assert!(
        stderr.contains("Reusing base ") && stderr.contains("Building hello"),
        "{stderr}"
    );

    // gib clean --builders removes the image entries and says how much it freed.
    let out = clean_builders(&cache);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let freed: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(freed > 1_000_000, "freed {freed} bytes: {stderr}");
    assert!(stderr.contains("freed"), "{stderr}");
    assert_eq!(fs::read_dir(cache.join("images")).unwrap().count(), 0);
    assert!(cache.join("binpkgs").read_dir().unwrap().next().is_some());
    let out = gib()
        .args(["clean", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clean without a kind");
    let out = gib()
        .args(["clean", "--all", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    assert!(out.status.success());
    // Every kind of entry is gone; only the (empty) kind directories and the locks remain.
    for kind in fs::read_dir(&cache).unwrap().map(|e| e.unwrap()) {
        if kind.file_name() == "locks" {
            continue;
        }
        let left: Vec<_> = fs::read_dir(kind.path()).unwrap().flatten().collect();
        assert!(left.is_empty(), "{:?} is left", left[0].path());
    }
}

#[test]
fn a_build_killed_in_emerge_is_followed_by_clean_builds_also_concurrent_ones() {
    let dir = scratch_dir("chain-kill");
    let cache = dir.path().join("cache");
    let config = write_config(dir.path(), &Chain::default());

    // SIGKILL gib once emerge is compiling base's packages.
    let mut child = build_cmd(&config, &cache, &["base"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Emerging base: ") {
            break;
        }
    }
    assert!(
        seen.contains("Emerging base: "),
        "emerge never started:\n{seen}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The partial build is a scratch dir, never an entry.
    assert!(
        !fs::read_dir(cache.join("images"))
            .unwrap()
            .flatten()
            .any(|e| !e.file_name().to_string_lossy().starts_with(".tmp-")),
        "a killed build left an image entry"
    );

    // Two builds of different images started together on the same cache: both need base,
    // one builds it while the other waits for its lock, then reuses it.
    let app = build_cmd(&config, &cache, &["app"]).output_in_thread();
    let hello = build_cmd(&config, &cache, &["hello"]).output_in_thread();
    for (name, out) in [
        ("app", app.join().unwrap()),
        ("hello", hello.join().unwrap()),
    ] {
        assert!(
            out.status.success(),
            "the build of {name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The killed build's scratch dir is gone and nothing half-made remains.
    let entries: Vec<String> = fs::read_dir(cache.join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        entries.iter().all(|e| !e.starts_with(".tmp-")),
        "{entries:?}"
    );
    assert_eq!(entries.len(), 4, "{entries:?}");
    let (_, stderr) = build_ok(&config, &cache, &[]);
    assert_eq!(stderr.matches("Reusing").count(), 4, "{stderr}");
}

/// A gib that stands on cache entries (here `gib shell app`, on base's and lib's) keeps
/// them: `gib clean` skips them and says so, and a rebuild of lib makes a new generation
/// beside the one in use instead of replacing it; once nothing uses the old one, the next
/// rebuild removes it.
#[test]
fn entries_in_use_are_neither_cleaned_nor_replaced() {
    let dir = scratch_dir("chain-in-use");
    let cache = dir.path().join("cache");
    let config = write_config(dir.path(), &Chain::default());
    build_ok(&config, &cache, &["lib"]);
    let entries = |name: &str| -> Vec<String> {
        fs::read_dir(cache.join("images"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|e| e.starts_with(&format!("{name}-")))
            .collect()
    };
    assert_eq!(entries("lib").len(), 1);

    let mut shell = gib()
        .args(["shell", "app", "-f"])
        .arg(&config)
        .arg("--cache-dir")
        .arg(&cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shell.stdin.take().unwrap();
    let mut stdout = BufReader::new(shell.stdout.take().unwrap());
    use std::io::Write;
    stdin.write_all(b"echo ready\n").unwrap();
    let mut banner = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the shell ended before it said ready:\n{banner}"
        );
        if line.trim() == "ready" {
            break;
        }
        banner.push_str(&line);
    }

    let clean = clean_builders(&cache);
    let stderr = String::from_utf8_lossy(&clean.stderr);
    assert!(clean.status.success(), "{stderr}");
    for name in ["base", "lib"] {
        assert!(
            stderr.contains(&format!("/images/{name}-")) && stderr.contains("in use"),
            "{stderr}"
        );
        assert_eq!(
            entries(name).len(),
            1,
            "{name}'s entry was removed: {stderr}"
        );
    }
    assert!(
        stderr.contains("/stage3/"),
        "the stage3 was not kept: {stderr}"
    );

    let (_, stderr) = build_ok(&config, &cache, &["--force", "lib"]);
    assert!(stderr.contains("Building lib"), "{stderr}");
    assert_eq!(entries("lib").len(), 2, "lib's entry in use was replaced");

    // The shell still sees lib's tree under /staging.
    stdin
        .write_all(b"test -s /staging/usr/lib64/libgreet.so.1.0.0 && echo alive\nexit 3\n")
        .unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let status = shell.wait().unwrap();
    assert!(rest.lines().any(|l| l == "alive"), "{rest}");
    assert_eq!(status.code(), Some(3));

    // Nothing uses the old generation now: the next rebuild removes it, and the build after
    // that reuses the newest.
    build_ok(&config, &cache, &["--force", "lib"]);
    assert_eq!(entries("lib").len(), 1, "{:?}", entries("lib"));
    let (_, stderr) = build_ok(&config, &cache, &["lib"]);
    assert!(stderr.contains("Reusing lib "), "{stderr}");
    let clean = clean_builders(&cache);
    let stderr = String::from_utf8_lossy(&clean.stderr);
    assert!(
        clean.status.success() && !stderr.contains("in use"),
        "{stderr}"
    );
    assert!(entries("base").is_empty() && entries("lib").is_empty());
}

/// A parent whose image leaves out its package database (`keep_package_db: false`) still
/// keeps its child from merging its packages again: gib keeps the database in the parent's
/// cache entry and shows it under the child's /staging during emerge. Neither image holds a
/// database (nor a whiteout for one); `--json` and the SBOM still list every package.
#[test]
fn a_parent_without_its_package_database_is_not_merged_again() {
    let dir = scratch_dir("chain-no-pkgdb");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("app.tar");
    let config = dir.path().join("gib.yaml");
    fs::write(
        &config,
        format!(
            "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n  \
             keep_package_db: false\nimages:\n\
             \x20 base:\n    from: scratch\n    tag: t\n    \
             packages: [sys-apps/baselayout, sys-libs/glibc]\n\
             \x20 app:\n    from: base\n    tag: t\n    packages: [app-misc/greet]\n    \
             entrypoint: [/usr/bin/greet]\n    test: /usr/bin/greet\n",
            stage3 = mini_stage3().display(),
        ),
    )
    .unwrap();
    let (stdout, _) = build_ok(
        &config,
        &cache,
        &["--archive", archive.to_str().unwrap(), "--json", "app"],
    );

    let log =
        assert_merged_again_none_of(&cache, "app", &["sys-libs/glibc", "sys-apps/baselayout"]);
    assert!(
        log.lines()
            .any(|l| l.starts_with(">>> Emerging") && l.contains("app-misc/greet")),
        "{log}"
    );

    let layers = archive_layers(&archive, "app:t");
    assert_eq!(layers.len(), 2);
    assert!(layers[0].contains_key("usr/lib64/libc.so.6"));
    assert!(layers[1].contains_key("usr/bin/greet"));
    for layer in &layers {
        for path in layer.keys() {
            assert!(!path.starts_with("var/db"), "{path} is in a layer");
            assert!(!path.contains(".wh."), "a whiteout in a layer: {path}");
        }
    }
    assert!(
        !layers[1].contains_key("usr/lib64/libc.so.6"),
        "app's layer holds base's glibc"
    );

    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report[1]["packages"],
        serde_json::json!([
            "app-misc/greet-1.0",
            "dev-libs/libgreet-1.0",
            "sys-apps/baselayout-2.17",
            "sys-libs/glibc-2.36"
        ])
    );
    let sbom: serde_json::Value = serde_json::from_slice(
        &fs::read(dir.path().join("app.tar.app.spdx.json"))
            .or_else(|_| fs::read(dir.path().join("app.tar.spdx.json")))
            .unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for package in [
        "sys-libs/glibc",
        "sys-apps/baselayout",
        "dev-libs/libgreet",
        "app-misc/greet",
    ] {
        assert!(
            names.contains(&package),
            "{package} not in the SBOM: {names:?}"
        );
    }

    // gib inspect gives each package its share from the kept databases too.
    let inspect = run_ok(
        gib()
            .args(["inspect", "app", "--json", "--cache-dir"])
            .arg(&cache),
    );
    let usage: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    for package in ["sys-libs/glibc-2.36", "app-misc/greet-1.0"] {
        let share = usage["usage"]["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["package"] == package)
            .unwrap_or_else(|| panic!("{package} not in gib inspect: {inspect}"));
        assert!(share["files"].as_u64().unwrap() > 0, "{share}");
    }
}

/// `gib clean --builders` on `cache`.
fn clean_builders(cache: &Path) -> Output {
    gib()
        .args(["clean", "--builders", "--cache-dir"])
        .arg(cache)
        .output()
        .unwrap()
}

/// `Command::output` on a thread of its own, so two builds run at once.
trait OutputInThread {
    fn output_in_thread(self) -> std::thread::JoinHandle<Output>;
}

impl OutputInThread for Command {
    fn output_in_thread(mut self) -> std::thread::JoinHandle<Output> {
        std::thread::spawn(move || self.output().unwrap())
    }
}
