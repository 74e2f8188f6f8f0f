//! `gib inspect --html`: the page of a real build (the greet chain on the mini stage3, and a
//! `rootfs:` image whose file names are markup) opened in headless Chromium, built and
//! written by root and by the test user: it renders (the script's marker, every image's
//! section, the DAG's edges, the treemap's packages), logs no console message, makes no
//! network request, and its screenshot is kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::fixture::mini_stage3;
use crate::util::{Runner, build_with, gib_by, require_tool, run_ok, work_dir};

/// A file name that is markup: were it put into the page as HTML, Chromium would try to load
/// `x` (a request) and run the handler (which removes the page).
const HOSTILE_NAME: &str = "x<img src=x onerror=document.body.remove()>\"'&amp;";

fn write_project(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("srv")).unwrap();
    fs::write(tree.join("srv").join(HOSTILE_NAME), "markup\n").unwrap();
    run_ok(
        Command::new(require_tool("tar"))
            .arg("-C")
            .arg(&tree)
            .args(["--owner=0", "--group=0", "-cf"])
            .arg(dir.join("tree.tar"))
            .arg("."),
    );
    let config = dir.join("gib.yaml");
    fs::write(
        &config,
        format!(
            "stage3:\n  path: {}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\nimages:\n\
             \x20 base:\n    from: scratch\n    packages: [sys-libs/glibc]\n\
             \x20 app:\n    from: base\n    packages: [app-misc/greet]\n    tag: \"1\"\n\
             \x20 odd:\n    from: scratch\n    tag: t\n    rootfs: ./tree.tar\n",
            mini_stage3().display()
        ),
    )
    .unwrap();
    config
}

/// Headless Chromium on `page` with `args`, in a profile of its own, its network log in
/// `dir`; bounded in time.
fn chromium(dir: &Path, page: &Path, args: &[&str]) -> (Output, Vec<String>) {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let netlog = dir.join(format!(
        "netlog-{}.json",
        profile.path().file_name().unwrap().to_string_lossy()
    ));
    let out = Command::new(require_tool("timeout"))
        .arg("120")
        .arg(require_tool("chromium"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, page_requests(&netlog))
}

/// The URLs of the requests the page made, from Chromium's network log: the browser's own
/// (time, update and account checks, which it makes whatever the page) have no initiator
/// origin; a page's have its origin (`null` for a file).
fn page_requests(netlog: &Path) -> Vec<String> {
    let log: Value = serde_json::from_slice(&fs::read(netlog).unwrap()).unwrap();
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    assert!(start_job.is_number(), "no URL_REQUEST_START_JOB in the log");
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == start_job)
        .filter(|e| {
            let initiator = &e["params"]["initiator"];
            initiator.is_string() && initiator != "not an origin"
        })
        .map(|e| e["params"]["url"].to_string())
        .collect()
}

/// The console lines Chromium logged for the page (errors, warnings, a CSP refusal).
fn console_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect()
}

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

/// The checks above catch what they are for: a script error is a console line, and a page
/// that loads something is a request.
fn the_checks_bite(dir: &Path) {
    let bad = dir.join("bad.html");
    fs::write(
        &bad,
        "<!doctype html><body><img src=\"http://127.0.0.1:9/x.png\">\
         <script>notAFunction();</script></body>",
    )
    .unwrap();
    let (out, requests) = chromium(dir, &bad, &["--dump-dom"]);
    assert!(
        console_lines(&out)
            .iter()
            .any(|l| l.contains("notAFunction")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        requests.iter().any(|r| r.contains("127.0.0.1:9")),
        "{requests:?}"
    );
}

#[test]
fn the_inspect_page_renders_in_chromium_without_errors_or_requests() {
    for runner in [Runner::Root, Runner::User] {
        let dir = work_dir(runner, "inspect-page");
        let config = write_project(dir.path());
        let cache = dir.path().join("cache");
        run_ok(&mut build_with(gib_by(runner), &config, &cache));
        let page = dir.path().join("page.html");
        let out = gib_by(runner)
            .current_dir(dir.path())
            .args(["inspect", "--html", "page.html", "-f"])
            .arg(&config)
            .arg("--cache-dir")
            .arg(&cache)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{runner:?}: {stderr}");
        assert!(stderr.contains("page.html"), "{stderr}");

        // The page names no place to load from: its only URL is the SVG namespace.
        let html = fs::read_to_string(&page).unwrap();
        let urls: Vec<&str> = html
            .match_indices("http")
            .map(|(at, _)| &html[at..(at + 30).min(html.len())])
            .filter(|u| u.starts_with("http:") || u.starts_with("https:"))
            .collect();
        assert!(
            urls.iter()
                .all(|u| u.starts_with("http://www.w3.org/2000/svg")),
            "{urls:?}"
        );

        let (out, requests) = chromium(dir.path(), &page, &["--dump-dom"]);
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(dom.contains("data-gib-rendered=\"3\""), "{dom}");
        assert!(!dom.contains("data-gib-error=\""), "{dom}");
        assert_eq!(console_lines(&out), Vec::<String>::new());
        assert_eq!(requests, Vec::<String>::new());
        for section in ["base", "app", "odd"] {
            assert!(dom.contains(&format!("data-image=\"{section}\"")), "{dom}");
        }
        // The DAG: scratch -> base -> app, scratch -> odd.
        assert_eq!(dom.matches("class=\"edge\"").count(), 3, "{dom}");
        // The treemap of app has its packages in both layers, named.
        assert!(dom.contains("app-misc/greet-1.0: "), "{dom}");
        assert!(dom.contains("(layer of base)"), "{dom}");
        assert!(dom.contains("sys-libs/glibc-2.36"), "{dom}");
        // What trimming removed, and the checks' sections.
        assert!(dom.contains("/usr/include"), "{dom}");
        assert!(
            dom.contains("<h3>lint</h3>") && dom.contains("<h3>audit</h3>"),
            "{dom}"
        );
        // The markup in a file name is text.
        assert!(dom.contains("x&lt;img src=x onerror="), "{dom}");
        assert!(!dom.contains("<img"), "{dom}");

        let shot = dir.path().join("page.png");
        chromium(
            dir.path(),
            &page,
            &[
                &format!("--screenshot={}", shot.display()),
                "--window-size=1280,900",
            ],
        );
        let png = fs::read(&shot).unwrap();
        assert_eq!(png_size(&png), (1280, 900));
        assert!(png.len() > 20_000, "{} bytes", png.len());
        // Kept where a person can look at it after the run.
        let kept =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("inspect-page-{runner:?}.png"));
        fs::copy(&shot, kept).unwrap();

        if runner == Runner::Root {
            the_checks_bite(dir.path());
        }
    }
}
