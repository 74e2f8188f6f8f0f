//! What a user sees while gib builds: live steps in a real pseudo-terminal (util-linux
//! `script`), collapsing into finished lines that time each step from its own start, and the
//! closing table; plain lines without escape codes when stderr is a pipe (CI logs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixture::mini_stage3;
use crate::util::{Runner, gib_bin, gib_build, require_tool, work_dir};

/// A two-image chain on the mini stage3: base (glibc, baselayout) -> app (greet).
fn write_chain(dir: &Path) -> PathBuf {
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nbuild:\n  threads: 2\n\
         images:\n\
         \x20 base:\n    from: scratch\n    tag: t\n    packages: [sys-apps/baselayout, sys-libs/glibc]\n\
         \x20 app:\n    from: base\n    tag: t\n    packages: [app-misc/greet]\n    \
         entrypoint: [/usr/bin/greet]\n    test: /usr/bin/greet\n",
        stage3 = mini_stage3().display(),
    );
    let path = dir.join("gib.yaml");
    fs::write(&path, text).unwrap();
    path
}

/// The `[N.Ns]` figure at the end of the first line that starts (after padding) with `verb`
/// and contains `what`.
fn seconds_of(output: &str, verb: &str, what: &str) -> f64 {
    let line = output
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l))
        .map(strip_escapes)
        .find(|l| l.trim_start().starts_with(verb) && l.contains(what))
        .unwrap_or_else(|| panic!("no `{verb} … {what}` line in:\n{output}"));
    let figure = line
        .rsplit_once('[')
        .and_then(|(_, f)| f.strip_suffix("s]"))
        .unwrap_or_else(|| panic!("no [seconds] at the end of {line:?}"));
    figure.parse().unwrap()
}

/// `text` without CSI escape sequences (colours, erase line).
fn strip_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The closing table's rows: image name -> its cells.
fn table(output: &str) -> Vec<Vec<String>> {
    let lines: Vec<String> = output
        .lines()
        .map(|l| strip_escapes(l.rsplit('\r').next().unwrap_or(l)))
        .collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("IMAGE ") && l.contains("DIGEST"))
        .unwrap_or_else(|| panic!("no closing table in:\n{output}"));
    lines[start..]
        .iter()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Script done"))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn a_terminal_shows_live_steps_and_a_closing_table() {
    let script = require_tool("script");
    let dir = work_dir(Runner::Root, "progress-tty");
    let config = write_chain(dir.path());
    let cache = dir.path().join("cache");
    let capture = dir.path().join("capture");
    // A real pseudo-terminal: `script` runs the build with its stdio on a pty and keeps all
    // it drew. No NO_COLOR: a user's terminal.
    let command = format!(
        "{} build -f {} --cache-dir {}",
        gib_bin().display(),
        config.display(),
        cache.display()
    );
    let out = Command::new(script)
        .arg("-qfec")
        .arg(&command)
        .arg(&capture)
        .env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    let drawn = fs::read_to_string(&capture).unwrap();
    assert!(out.status.success(), "{}\n{drawn}", out.status);

    // Live lines: redrawn in place (erase line), with a running emerge's `n/N cpv from
    // source` and the step's own clock.
    assert!(
        drawn.contains("\x1b[2K"),
        "nothing was drawn live:\n{drawn}"
    );
    let live: Vec<String> = drawn
        .split(['\r', '\n'])
        .map(strip_escapes)
        .filter(|l| l.contains("Emerging") && l.contains("from source"))
        .collect();
    assert!(
        live.iter().any(|l| l.contains("app: ")
            && l.contains("app-misc/greet-1.0")
            && l.trim_end().ends_with("s]")),
        "no live emerge line for app:\n{live:#?}"
    );
    // The stage3's unpacking (in the sandbox's helper) counts the tarball's bytes.
    assert!(
        drawn
            .split(['\r', '\n'])
            .map(strip_escapes)
            .any(|l| l.contains("Unpacking") && l.contains("iB/") && l.contains("iB/s)")),
        "no byte count while unpacking:\n{drawn}"
    );
    // Each step collapses into one finished line, timed from the step's start: writing app's
    // small layer takes far less than emerging its package, which came before it.
    let emerged = seconds_of(&drawn, "Emerged", "app: ");
    let wrote = seconds_of(&drawn, "Wrote", "image app: its layer");
    assert!(
        wrote < emerged && wrote < 5.0,
        "the layer's time ({wrote}s) is not its own (emerge took {emerged}s):\n{drawn}"
    );
    let built_base = seconds_of(&drawn, "Built", "base:t");
    let built_app = seconds_of(&drawn, "Built", "app:t");
    assert!(built_app < built_base + emerged + 30.0);

    let rows = table(&drawn);
    assert_eq!(
        rows[0],
        ["IMAGE", "TAGS", "SIZE", "DIGEST", "RESULT", "TIME"],
        "{drawn}"
    );
    let names: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["base", "app"], "{drawn}");
    for row in &rows[1..] {
        assert!(row.contains(&"built".to_string()), "{row:?}");
        let digest = &row[row.len() - 3];
        assert_eq!(digest.len(), 12, "{row:?}");
        assert!(drawn.contains(&format!("sha256:{digest}")), "{row:?}");
    }

    // The same build again: every image reused, and the table says so.
    let again = Command::new(require_tool("script"))
        .arg("-qfec")
        .arg(&command)
        .arg(&capture)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let drawn = fs::read_to_string(&capture).unwrap();
    assert!(again.status.success(), "{drawn}");
    for row in &table(&drawn)[1..] {
        assert!(row.contains(&"reused".to_string()), "{row:?}\n{drawn}");
    }

    // `--progress plain` on the terminal: plain lines, no escape codes.
    let plain = Command::new(require_tool("script"))
        .arg("-qfec")
        .arg(format!("{command} --progress plain"))
        .arg(&capture)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let drawn = fs::read_to_string(&capture).unwrap();
    assert!(plain.status.success(), "{drawn}");
    assert!(
        !drawn.contains('\x1b'),
        "escape codes with --progress plain:\n{drawn:?}"
    );
    assert_eq!(table(&drawn).len(), 3, "{drawn}");
}

#[test]
fn a_pipe_gets_plain_lines_one_per_finished_step() {
    // Rootless: the unprivileged test user's build, its stderr a pipe.
    let dir = work_dir(Runner::User, "progress-pipe");
    let config = write_chain(dir.path());
    let cache = dir.path().join("cache");
    let out = gib_build(Runner::User, &config, &cache, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\r'),
        "escape codes in a pipe:\n{stderr:?}"
    );
    // One finished line per step, each with the step's own time.
    let count = |verb: &str| {
        stderr
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("{verb} ")))
            .count()
    };
    assert_eq!(count("Unpacked"), 1, "{stderr}");
    assert_eq!(count("Emerged"), 2, "{stderr}");
    assert_eq!(count("Built"), 2, "{stderr}");
    assert_eq!(
        count("Wrote"),
        2,
        "one layer per image, no output asked for:\n{stderr}"
    );
    for verb in ["Unpacked", "Emerged", "Built", "Wrote"] {
        for line in stderr.lines().filter(|l| l.trim_start().starts_with(verb)) {
            assert!(line.ends_with("s]"), "{line:?} has no time of its own");
        }
    }
    // What emerge is doing, line by line.
    assert!(
        stderr
            .lines()
            .any(|l| l.trim_start().starts_with("Emerging app: ")
                && l.contains("app-misc/greet-1.0 from source")),
        "{stderr}"
    );
    let rows = table(&stderr);
    assert_eq!(rows.len(), 3, "{stderr}");
}

/// A push on a terminal counts the bytes sent with their rate, live, then says what it did.
#[test]
fn a_push_on_a_terminal_counts_its_bytes() {
    let script = require_tool("script");
    let dir = work_dir(Runner::Root, "progress-push");
    let registry = crate::registry_server::Registry::start(dir.path());
    // Incompressible, so the upload takes long enough to be drawn.
    let tree = dir.path().join("noise");
    fs::create_dir_all(&tree).unwrap();
    let out = Command::new("head")
        .args(["-c", "67108864", "/dev/urandom"])
        .stdout(fs::File::create(tree.join("noise")).unwrap())
        .status()
        .unwrap();
    assert!(out.success());
    let config = dir.path().join("gib.yaml");
    fs::write(
        &config,
        format!(
            "registry: {host}/gib\nregistries:\n  \"{host}\":\n    ca_certificate: {ca}\n\
             images:\n  noise:\n    rootfs: ./noise\n    tag: \"1\"\n",
            host = registry.host(),
            ca = registry.ca().display()
        ),
    )
    .unwrap();
    let capture = dir.path().join("capture");
    // The registry's credentials reach gib through `script`'s environment.
    let with_credentials = registry.gib("auth.json");
    let mut cmd = Command::new(script);
    for (key, value) in with_credentials.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let out = cmd
        .arg("-qfec")
        .arg(format!(
            "{} build -f {} --cache-dir {} --push",
            gib_bin().display(),
            config.display(),
            dir.path().join("cache").display()
        ))
        .arg(&capture)
        .env_remove("NO_COLOR")
        .env("COLUMNS", "150")
        .output()
        .unwrap();
    let drawn = fs::read_to_string(&capture).unwrap();
    assert!(out.status.success(), "{}\n{drawn}", out.status);
    let lines: Vec<String> = drawn.split(['\r', '\n']).map(strip_escapes).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Pushing") && l.contains("MiB/64.0") && l.contains("iB/s)")),
        "no live byte count while pushing:\n{drawn}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Writing") && l.contains("iB (") && l.contains("iB/s)")),
        "no live byte count while writing the layer:\n{drawn}"
    );
    let pushed = seconds_of(&drawn, "Pushed", "noise:1");
    assert!(pushed < 120.0, "{drawn}");
}
