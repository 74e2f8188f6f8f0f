//! Images built side by side (`gib build --jobs N`) on the mini stage3: a wide DAG (a base,
//! four children, two grandchildren) gives the same OCI layout whatever N; two images really
//! build at the same time; an image that fails stops its own descendants only, and
//! `--fail-fast` stops everything, leaving no half-made cache entry behind. Root and the
//! unprivileged test user alike.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::fixture::mini_stage3;
use crate::util::{Runner, emerge_log, gib_build, run_ok, test_user, work_dir};

/// A script that writes one file into the image: `$ROOT/etc/<name>`.
fn marker_script(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.sh"));
    fs::write(
        &path,
        format!("mkdir -p \"$ROOT/etc\"\necho {name} > \"$ROOT/etc/{name}\"\n"),
    )
    .unwrap();
    path
}

/// The wide DAG: base -> lib -> app, base -> tools, base -> notes -> more, base -> extra;
/// `base_env` varies base (and so rebuilds everything, from the cache's binary packages);
/// `more_images` are appended as they are.
fn write_wide(dir: &Path, base_env: &str, more_images: &str) -> PathBuf {
    let script = |name: &str| marker_script(dir, name).display().to_string();
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\nimages:\n\
         \x20 base:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout, sys-libs/glibc]\n    \
         env: {{RUN: \"{base_env}\"}}\n\
         \x20 lib:\n    from: base\n    tag: t\n    packages: [dev-libs/libgreet]\n\
         \x20 app:\n    from: lib\n    tag: t\n    packages: [app-misc/greet]\n    \
         entrypoint: [/usr/bin/greet]\n    test: /usr/bin/greet\n\
         \x20 tools:\n    from: base\n    tag: t\n    packages: [dev-util/greet-tools]\n\
         \x20 notes:\n    from: base\n    tag: t\n    script: {notes}\n\
         \x20 more:\n    from: notes\n    tag: t\n    script: {more}\n\
         \x20 extra:\n    from: base\n    tag: t\n    script: {extra}\n{more_images}",
        stage3 = mini_stage3().display(),
        notes = script("notes"),
        more = script("more"),
        extra = script("extra"),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

/// `bad` fails its `test:` (after building); `badchild` is built on it.
fn failing_images(dir: &Path) -> String {
    format!(
        "\x20 bad:\n    from: base\n    tag: t\n    script: {bad}\n    test: /no/such/program\n\
         \x20 badchild:\n    from: bad\n    tag: t\n    script: {child}\n",
        bad = marker_script(dir, "bad").display(),
        child = marker_script(dir, "badchild").display(),
    )
}

/// `gib build` run by `runner` with a fixed SOURCE_DATE_EPOCH.
fn build(runner: Runner, config: &Path, cache: &Path, args: &[&str]) -> Output {
    let mut cmd = crate::util::build_with(crate::util::gib_by(runner), config, cache);
    cmd.env("SOURCE_DATE_EPOCH", "1700000000").args(args);
    cmd.output().unwrap()
}

/// A build of a config with [`failing_images`] with `--jobs N`: it exits 1, `bad` failed and
/// `badchild` was skipped. Its stderr.
fn build_failing(runner: Runner, config: &Path, cache: &Path, jobs: &str) -> String {
    let out = build(
        runner,
        config,
        cache,
        &["--jobs", jobs, "--progress", "plain"],
    );
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(result_of(&stderr, "bad"), "failed", "{stderr}");
    assert_eq!(result_of(&stderr, "badchild"), "skipped", "{stderr}");
    stderr
}

/// Everything under `dir` to the test user (a work dir of [`Runner::User`] is its own, its
/// files are not).
fn give_to_test_user(dir: &Path) {
    let user = test_user();
    run_ok(
        std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:{user}"))
            .arg(dir),
    );
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The summary table's RESULT of `image`.
fn result_of(stderr: &str, image: &str) -> String {
    stderr
        .lines()
        .skip_while(|l| !l.starts_with("IMAGE "))
        .find(|l| l.split_whitespace().next() == Some(image))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words
                .get(words.len().wrapping_sub(2))
                .map(|w| w.to_string())
        })
        .unwrap_or_else(|| panic!("no summary row for {image}:\n{stderr}"))
}

/// The names of the published cache entries (`images/<name>-<key>`), hidden scratch dirs
/// apart, and the hidden ones.
fn cache_entries(cache: &Path) -> (Vec<String>, Vec<String>) {
    let mut published = Vec::new();
    let mut hidden = Vec::new();
    for entry in fs::read_dir(cache.join("images")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            hidden.push(name);
        } else {
            published.push(name);
        }
    }
    (published, hidden)
}

/// Portage's build log of the package whose log name starts with `prefix`, in the newest
/// build of `image` (`logs/<image>-<key>/portage/`).
fn package_log(cache: &Path, image: &str, prefix: &str) -> String {
    let portage = emerge_log(cache, image).with_file_name("portage");
    let log = fs::read_dir(&portage)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* log in {}", portage.display()));
    fs::read_to_string(log).unwrap()
}

fn has_entry(entries: &[String], image: &str) -> bool {
    entries
        .iter()
        .any(|e| e.strip_prefix(image).is_some_and(|r| r.starts_with('-')))
}

#[test]
fn one_or_three_jobs_give_the_same_layout_and_a_failure_stops_its_subtree_only() {
    let tmp = work_dir(Runner::Root, "parallel-wide");
    let dir = tmp.path();
    let config = write_wide(dir, "1", "");

    // `--jobs N` from an empty cache-N into layout-N, with a JSON report.
    let build_layout = |jobs: &str| -> (Output, String) {
        let layout = dir.join(format!("layout-{jobs}"));
        let out = build(
            Runner::Root,
            &config,
            &dir.join(format!("cache-{jobs}")),
            &[
                "--jobs",
                jobs,
                "--progress",
                "plain",
                "--json",
                "--oci-layout",
                layout.to_str().unwrap(),
            ],
        );
        let stderr = stderr_of(&out);
        assert!(out.status.success(), "--jobs {jobs}: {stderr}");
        (out, stderr)
    };
    let (out, stderr) = build_layout("1");
    // One at a time: no line is tagged with its image.
    assert!(!stderr.contains("[base]"), "{stderr}");
    let names = |out: &Output| -> Vec<String> {
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let sequential = names(&out);

    let (out, stderr) = build_layout("3");
    // Built side by side, every line says whose it is.
    for image in ["base", "lib", "app", "tools", "notes", "more", "extra"] {
        assert!(
            stderr.contains(&format!("[{image}]     Building {image} (")),
            "no tagged line for {image}:\n{stderr}"
        );
    }
    assert_eq!(
        fs::read(dir.join("layout-1/index.json")).unwrap(),
        fs::read(dir.join("layout-3/index.json")).unwrap(),
        "the layouts' indexes differ"
    );
    // Plan order, not the order they finished in.
    assert_eq!(names(&out), sequential);
    assert_eq!(sequential.len(), 7, "{sequential:?}");
    // Three at a time (four leaves): each emerge got its share of `threads: 2`, divided
    // among the images running or ready beside it (lib starts with three others ready: a
    // third, at least one job), and the whole machine's load average; one at a time,
    // make.conf's settings.
    let log = |cache: &str| fs::read_to_string(emerge_log(&dir.join(cache), "app")).unwrap();
    assert!(
        log("cache-3").contains(" --load-average=2"),
        "{}",
        log("cache-3")
    );
    assert!(
        !log("cache-1").contains("--load-average"),
        "{}",
        log("cache-1")
    );
    // What make itself ran with: libgreet's build log (emake passes MAKEOPTS on).
    for (cache, make) in [("cache-3", "make -j1 "), ("cache-1", "make -j2 ")] {
        let log = package_log(&dir.join(cache), "lib", "dev-libs:libgreet-1.0:");
        assert!(
            log.contains(make),
            "{cache}: no `{make}` in libgreet's log:\n{log}"
        );
    }

    // A failing child: its subtree fails, its siblings are built (and cached).
    let config = write_wide(dir, "2", &failing_images(dir));
    let cache = dir.join("cache-3");
    let stderr = build_failing(Runner::Root, &config, &cache, "3");
    for image in ["base", "lib", "app", "tools", "notes", "more", "extra"] {
        assert_eq!(result_of(&stderr, image), "built", "{image}:\n{stderr}");
    }
    assert!(
        stderr.contains("warning: 1 failed (bad); 1 skipped, 0 stopped"),
        "{stderr}"
    );
    // The run's error is bad's: its test's command.
    let error = stderr.split("\nerror: ").nth(1).unwrap_or_default();
    assert!(error.contains("/no/such/program"), "{stderr}");
    let (published, hidden) = cache_entries(&cache);
    assert!(hidden.is_empty(), "scratch left in the cache: {hidden:?}");
    assert!(!has_entry(&published, "badchild"), "{published:?}");
    // The siblings are in the cache: a build without the failing images reuses them all.
    let config = write_wide(dir, "2", "");
    let out = build(
        Runner::Root,
        &config,
        &cache,
        &["--jobs", "3", "--progress", "plain"],
    );
    let stderr = stderr_of(&out);
    assert!(out.status.success(), "{stderr}");
    for image in ["base", "lib", "app", "tools", "notes", "more", "extra"] {
        assert_eq!(result_of(&stderr, image), "reused", "{image}:\n{stderr}");
    }

    // --fail-fast: the first failure stops the images still running and those not started.
    let (before, _) = cache_entries(&cache);
    let config = write_wide(dir, "3", &failing_images(dir));
    let out = build(
        Runner::Root,
        &config,
        &cache,
        &["--jobs", "3", "--progress", "plain", "--fail-fast"],
    );
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(result_of(&stderr, "bad"), "failed", "{stderr}");
    assert_eq!(result_of(&stderr, "badchild"), "stopped", "{stderr}");
    // `app` waits for `lib`, which is still emerging when `bad`'s test fails.
    assert_eq!(result_of(&stderr, "app"), "stopped", "{stderr}");
    let (published, hidden) = cache_entries(&cache);
    assert!(hidden.is_empty(), "scratch left in the cache: {hidden:?}");
    let stopped: Vec<&str> = ["lib", "app", "tools", "notes", "more", "extra", "badchild"]
        .into_iter()
        .filter(|image| result_of(&stderr, image) == "stopped")
        .collect();
    // A stopped image has no new entry, whole or half-made; base's is new.
    let new: Vec<String> = published
        .into_iter()
        .filter(|e| !before.contains(e))
        .collect();
    for image in &stopped {
        assert!(
            !has_entry(&new, image),
            "{image} was stopped but has a new entry: {new:?}"
        );
    }
    assert!(has_entry(&new, "base"), "{new:?}");
}

/// Two `script:` images that each wait (up to 30 s) for the other to be running: with
/// `--jobs 2` both build; one at a time, the first gives up.
fn write_rendezvous(dir: &Path) -> PathBuf {
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let script = |me: u16, other: u16, name: &str| {
        let path = dir.join(format!("{name}.sh"));
        fs::write(
            &path,
            format!(
                r#"python3 - <<'PY'
import socket, sys, time
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {me}))
server.listen(1)
server.settimeout(30)
deadline = time.time() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", {other}), timeout=2).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("{name}: the other image never ran beside me")
        time.sleep(0.2)
server.accept()
PY
mkdir -p "$ROOT/etc"
echo met > "$ROOT/etc/{name}"
"#
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nimages:\n\
         \x20 ping:\n    from: scratch\n    tag: t\n    script: {ping}\n\
         \x20 pong:\n    from: scratch\n    tag: t\n    script: {pong}\n",
        stage3 = mini_stage3().display(),
        ping = script(ports[0], ports[1], "ping"),
        pong = script(ports[1], ports[0], "pong"),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn two_images_build_at_the_same_time() {
    for runner in [Runner::Root, Runner::User] {
        let tmp = work_dir(runner, &format!("parallel-overlap-{runner:?}"));
        let dir = tmp.path();
        let config = write_rendezvous(dir);
        if runner == Runner::User {
            give_to_test_user(dir);
        }
        let out = gib_build(
            runner,
            &config,
            &dir.join("cache"),
            &["--jobs", "2", "--json", "--progress", "plain"],
        );
        let stderr = stderr_of(&out);
        assert!(out.status.success(), "{runner:?}: {stderr}");
        // The report's times overlap too.
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let times: Vec<(f64, f64)> = report
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["started"].as_f64().unwrap(),
                    i["finished"].as_f64().unwrap(),
                )
            })
            .collect();
        assert!(
            times[0].0 < times[1].1 && times[1].0 < times[0].1,
            "{runner:?}: {times:?}"
        );
    }
    // One at a time the first image waits for the second in vain: the test can fail.
    let tmp = work_dir(Runner::Root, "parallel-overlap-one");
    let dir = tmp.path();
    let config = write_rendezvous(dir);
    let out = gib_build(
        Runner::Root,
        &config,
        &dir.join("cache"),
        &["--jobs", "1", "--progress", "plain"],
    );
    let stderr = stderr_of(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ping: the other image never ran beside me"),
        "{stderr}"
    );
    // Then the second waits for the first in vain.
    assert_eq!(result_of(&stderr, "ping"), "failed", "{stderr}");
    assert_eq!(result_of(&stderr, "pong"), "failed", "{stderr}");
}

#[test]
fn a_failure_stops_its_subtree_only_rootless() {
    let tmp = work_dir(Runner::User, "parallel-failure-user");
    let dir = tmp.path();
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nimages:\n\
         \x20 base:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout]\n\
         \x20 good:\n    from: base\n    tag: t\n    script: {good}\n{failing}",
        stage3 = mini_stage3().display(),
        good = marker_script(dir, "good").display(),
        failing = failing_images(dir),
    );
    let config = dir.join("gib.yaml");
    fs::write(&config, text).unwrap();
    give_to_test_user(dir);
    let cache = dir.join("cache");
    let stderr = build_failing(Runner::User, &config, &cache, "2");
    assert_eq!(result_of(&stderr, "base"), "built", "{stderr}");
    assert_eq!(result_of(&stderr, "good"), "built", "{stderr}");
    let (published, hidden) = cache_entries(&cache);
    assert!(hidden.is_empty(), "scratch left in the cache: {hidden:?}");
    assert!(has_entry(&published, "good"), "{published:?}");
    assert!(!has_entry(&published, "bad"), "{published:?}");
}
