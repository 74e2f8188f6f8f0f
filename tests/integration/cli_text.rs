//! Text that users read outside a build: `--help`'s examples fit an 80-column terminal, and
//! every `GIB_*` variable a comment, a doc or an example names is one gib or its
//! rootfs-tools really read or set (no stale names).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{gib, run_ok};

#[test]
fn help_examples_fit_in_80_columns() {
    let help = run_ok(gib().arg("--help"));
    let examples = help
        .split_once("Examples:")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no examples in --help:\n{help}"));
    assert!(examples.lines().count() > 5, "{help}");
    for line in examples.lines() {
        assert!(
            line.chars().count() <= 80,
            "a --help example is wider than 80 columns:\n{line}"
        );
    }
}

/// Files under `dir` (recursively) whose name ends in one of `suffixes`.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| suffixes.iter().any(|s| p.to_string_lossy().ends_with(s)))
        .collect()
}

/// The `GIB_[A-Z0-9_]*[A-Z0-9]` words of `text`.
fn gib_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("GIB_") {
        let preceded = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        // `GIB_HTTP_*`, `GIB_KEEP_*`: a family, not a name.
        if !preceded && !name.ends_with('_') {
            names.insert(name.to_string());
        }
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_gib_variable_named_in_comments_docs_and_examples_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Where a name is used: a string in gib's code, or read or set in rootfs-tools.
    let mut code = String::new();
    for file in files(&root.join("src"), &[".rs"]) {
        let text = fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            code.push_str(line);
            code.push('\n');
        }
    }
    let mut shell = String::new();
    for file in files(&root.join("rootfs-tools"), &[".sh"]) {
        let text = fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            shell.push_str(line);
            shell.push('\n');
        }
    }
    let used = |name: &str| {
        code.contains(&format!("\"{name}\""))
            || code.contains(&format!("\"{name}="))
            // A Rust constant (`GIB_EXE`) named in a comment is code too.
            || code.contains(&format!("const {name}:"))
            || shell.contains(&format!("${name}"))
            || shell.contains(&format!("${{{name}"))
            || shell.contains(&format!("{name}="))
    };
    let mut read: Vec<PathBuf> = vec![root.join("README.md")];
    read.extend(files(&root.join("docs"), &[".md"]));
    read.extend(files(
        &root.join("examples"),
        &[".yaml", ".yml", ".sh", ".md"],
    ));
    read.extend(files(&root.join("src"), &[".rs"]));
    read.extend(files(&root.join("rootfs-tools"), &[".sh"]));
    let mut stale = Vec::new();
    for file in read {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for name in gib_names(&text) {
            if !used(&name) {
                stale.push(format!("{}: {name}", file.display()));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "names no code reads or sets:\n{}",
        stale.join("\n")
    );
}

/// `gib clean` in a terminal (a real pseudo-terminal, by `script`): the summary with a human
/// size, no bare byte count; piped, the count on stdout for scripts.
#[test]
fn clean_says_what_it_freed_in_human_units() {
    let dir = crate::util::scratch_dir("clean-human");
    let cache = dir.path().join("cache");
    let fill = |size: usize| {
        let entry = cache.join("images/some-image/tree");
        fs::create_dir_all(&entry).unwrap();
        fs::write(entry.join("file"), vec![0u8; size]).unwrap();
    };
    fill(3 * 1024 * 1024);
    let command = format!(
        "{} clean --builders --cache-dir {}",
        crate::util::gib_bin().display(),
        cache.display()
    );
    let terminal = run_ok(
        std::process::Command::new(crate::util::require_tool("script"))
            .args(["-qec", &command, "/dev/null"])
            .env("NO_COLOR", "1"),
    );
    assert!(
        terminal.contains("freed 3.0 MiB") || terminal.contains("freed 3.1 MiB"),
        "{terminal}"
    );
    assert!(
        !terminal
            .lines()
            .any(|l| !l.trim().is_empty() && l.trim().chars().all(|c| c.is_ascii_digit())),
        "a bare byte count in the terminal:\n{terminal}"
    );
    fill(4096);
    let piped = run_ok(
        gib()
            .args(["clean", "--builders", "--cache-dir"])
            .arg(&cache),
    );
    let bytes: u64 = piped.trim().parse().unwrap();
    assert!(bytes >= 4096, "{piped}");
}
