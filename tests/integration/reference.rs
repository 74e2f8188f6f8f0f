//! The reference and editor support, each held against what it describes: docs/gib-yaml.md
//! against the keys the loader reads, `gib schema` against the loader on good and bad files
//! (with check-jsonschema from PyPI, a validator nobody here wrote), the CI examples against
//! the CI vendors' own schemas, the commands reference and README against clap's flags, and
//! the completion script and man pages in bash and man.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::CommandFactory;
use serde_json::Value;

use crate::fixture;
use crate::util::{as_test_user, gib, gib_bin, require_tool, run_ok, scratch_dir};

/// The validator, pinned: its built-in CI schemas ship in the package, so checks are offline.
const CHECK_JSONSCHEMA: &str = "check-jsonschema==0.39.0";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// check-jsonschema, from PyPI, in a venv under target/gib-fixtures.
pub fn check_jsonschema() -> PathBuf {
    let name = CHECK_JSONSCHEMA.replace("==", "-");
    crate::util::pypi_venv(&name, &[CHECK_JSONSCHEMA]).join("bin/check-jsonschema")
}

pub fn validate(args: &[&str], files: &[PathBuf]) -> Output {
    let mut cmd = Command::new(check_jsonschema());
    cmd.args(args).args(files);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `gib plan -f FILE` as root and as the unprivileged test user: the loader is the same for
/// both.
fn plan_both_ways(file: &Path) -> [Output; 2] {
    let run = |mut cmd: Command| {
        cmd.env("NO_COLOR", "1").arg("plan").arg("-f").arg(file);
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    };
    [run(gib()), run(as_test_user(&gib_bin()))]
}

fn schema() -> Value {
    let text = run_ok(gib().arg("schema"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("gib schema is not JSON: {e}\n{text}"))
}

fn schema_file(dir: &Path) -> PathBuf {
    let path = dir.join("gib.schema.json");
    fs::write(&path, run_ok(gib().arg("schema"))).unwrap();
    path
}

/// Every key path the schema allows: `build.threads`, `images.*.paths[].mode` (`*` for a
/// name the user chooses, `[]` for each item of a list).
fn key_paths(schema: &Value) -> BTreeSet<String> {
    fn walk(node: &Value, defs: &Value, path: &str, out: &mut BTreeSet<String>) {
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            let name = reference.trim_start_matches("#/$defs/");
            walk(&defs[name], defs, path, out);
        }
        for combinator in ["anyOf", "oneOf", "allOf"] {
            for sub in node[combinator].as_array().into_iter().flatten() {
                walk(sub, defs, path, out);
            }
        }
        for (key, sub) in node["properties"].as_object().into_iter().flatten() {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            out.insert(child.clone());
            walk(sub, defs, &child, out);
        }
        if node["additionalProperties"].is_object() {
            walk(
                &node["additionalProperties"],
                defs,
                &format!("{path}.*"),
                out,
            );
        }
        if node["items"].is_object() {
            walk(&node["items"], defs, &format!("{path}[]"), out);
        }
    }
    let mut out = BTreeSet::new();
    walk(schema, &schema["$defs"], "", &mut out);
    out
}

/// The keys docs/gib-yaml.md describes: the first cell of its table rows, `` | `key` | ``.
fn documented_keys(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(key, _)| key.to_string()))
        .collect()
}

#[test]
fn reference_lists_every_key_the_loader_accepts() {
    let keys = key_paths(&schema());
    // The walk reaches the deepest keys, or it proves nothing.
    for deep in [
        "images.*.paths[].mode",
        "images.*.accounts.users[].uid",
        "registries.*.plain_http",
    ] {
        assert!(
            keys.contains(deep),
            "the schema's keys lack {deep}: {keys:?}"
        );
    }
    let documented = documented_keys(&read(&repo().join("docs/gib-yaml.md")));
    let missing: Vec<_> = keys.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "gib.yaml accepts keys docs/gib-yaml.md does not describe: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&keys).collect();
    assert!(
        stale.is_empty(),
        "docs/gib-yaml.md describes keys gib.yaml does not accept: {stale:?}"
    );
}

/// examples/ copied to a scratch directory, with the mini stage3 where examples/quickstart.sh
/// puts it (examples/greet names it by a relative path).
fn examples_copy(dir: &Path) -> PathBuf {
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(repo().join("examples"))
            .arg(dir),
    );
    let stage3 = dir.join("target/gib-fixtures/mini-stage3.tar.zst");
    fs::create_dir_all(stage3.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(fixture::mini_stage3(), &stage3).unwrap();
    dir.join("examples")
}

fn example_configs(examples: &Path) -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = walkdir::WalkDir::new(examples)
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .filter(|path| path.file_name().is_some_and(|n| n == "gib.yaml"))
        .collect();
    configs.sort();
    configs
}

/// The ```yaml blocks of a document that are gib.yaml (their first key is one of gib.yaml's
/// top-level keys), each written to a file of its own.
fn yaml_snippets(doc: &Path, top_level: &BTreeSet<String>, dir: &Path) -> Vec<PathBuf> {
    let text = read(doc);
    let mut files = Vec::new();
    for (n, block) in text.split("```yaml\n").skip(1).enumerate() {
        let block = block.split("```").next().unwrap_or_default();
        let first_key = block
            .lines()
            .find(|l| !l.starts_with('#') && !l.trim().is_empty())
            .and_then(|l| l.split_once(':'))
            .map(|(key, _)| key.to_string())
            .unwrap_or_default();
        if top_level.contains(&first_key) {
            let stem = doc.file_stem().unwrap().to_string_lossy();
            let path = dir.join(format!("{stem}-snippet-{n}.yaml"));
            fs::write(&path, block).unwrap();
            files.push(path);
        }
    }
    files
}

#[test]
fn schema_accepts_every_example_and_gib_plan_agrees() {
    let dir = scratch_dir("schema-examples");
    let examples = examples_copy(dir.path());
    let configs = example_configs(&examples);
    for name in ["contract/gib.yaml", "greet/gib.yaml"] {
        assert!(
            configs.contains(&examples.join(name)),
            "examples/{name} not found among {configs:?}"
        );
    }
    let schema = schema();
    let top_level: BTreeSet<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut files = configs.clone();
    for doc in ["README.md", "docs/gib-yaml.md"] {
        let snippets = yaml_snippets(&repo().join(doc), &top_level, dir.path());
        assert!(!snippets.is_empty(), "no gib.yaml snippet found in {doc}");
        files.extend(snippets);
    }
    let schema_path = schema_file(dir.path());
    let out = validate(&["--schemafile", schema_path.to_str().unwrap()], &files);
    assert!(
        out.status.success(),
        "the schema refuses an example:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The loader accepts the same files (the snippets are fragments: schema only).
    for config in &configs {
        for out in plan_both_ways(config) {
            assert!(
                out.status.success(),
                "gib plan -f {}: {out:?}",
                config.display()
            );
        }
    }
}

const GOOD: &str = "\
stage3:
  flavor: amd64-openrc
build:
  compression: zstd
images:
  base:
    packages: [sys-libs/glibc]
    entrypoint: [/bin/app]
    latest: true
    layering: {strategy: per-package}
    paths:
      - {path: /data, type: directory, mode: \"0750\"}
";

/// Empty values: the loader takes them as left out, and the schema allows them.
const EMPTY_VALUES: &str = "\
stage3:
  flavor: amd64-openrc
  pin:
portage:
build:
  compression:
  threads: ~
  keep_headers:
  package_use_flags:
  global_use_flags:
    add:
registry:
registries:
repositories:
images:
  base:
    packages: [sys-libs/glibc]
    latest:
    entrypoint:
    env:
    layering:
      strategy:
    accounts:
      users:
";

#[test]
fn schema_and_loader_refuse_the_same_bad_files() {
    let dir = scratch_dir("schema-bad");
    let schema_path = schema_file(dir.path());
    // (what is wrong, the good file's text, its replacement)
    let cases: &[(&str, &str, &str)] = &[
        ("an unknown top-level key", "build:", "biuld:"),
        ("an unknown key of an image", "packages:", "pakages:"),
        (
            "an unknown key of a path",
            "type: directory",
            "kind: directory",
        ),
        (
            "a string for a number",
            "compression: zstd",
            "threads: many",
        ),
        (
            "a string for a list",
            "entrypoint: [/bin/app]",
            "entrypoint: /bin/app",
        ),
        (
            "a string for a boolean",
            "latest: true",
            "latest: sometimes",
        ),
        (
            "a list for a mapping",
            "layering: {strategy: per-package}",
            "layering: [per-package]",
        ),
        (
            "a bad compression",
            "compression: zstd",
            "compression: brotli",
        ),
        (
            "a bad layering strategy",
            "strategy: per-package",
            "strategy: per-file",
        ),
        ("a bad path type", "type: directory", "type: fifo"),
        (
            "a bad sync type",
            "build:",
            "portage: {sync_type: svn}\nbuild:",
        ),
    ];
    for (name, text) in [("good", GOOD), ("empty-values", EMPTY_VALUES)] {
        let good = dir.path().join(format!("{name}.yaml"));
        fs::write(&good, text).unwrap();
        let out = validate(
            &["--schemafile", schema_path.to_str().unwrap()],
            std::slice::from_ref(&good),
        );
        assert!(
            out.status.success(),
            "the schema refuses {name}.yaml: {out:?}"
        );
        for out in plan_both_ways(&good) {
            assert!(out.status.success(), "gib plan -f {name}.yaml: {out:?}");
        }
    }

    for (n, (what, from, to)) in cases.iter().enumerate() {
        assert!(
            GOOD.contains(from),
            "{what}: `{from}` is not in the good file"
        );
        let path = dir.path().join(format!("bad-{n}.yaml"));
        fs::write(&path, GOOD.replacen(from, to, 1)).unwrap();
        let out = validate(
            &["--schemafile", schema_path.to_str().unwrap()],
            std::slice::from_ref(&path),
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "the schema accepts {what}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        // gib build refuses it the same way, before it makes anything in its cache.
        let cache = dir.path().join(format!("cache-{n}"));
        let build = gib()
            .args(["build", "--cache-dir"])
            .arg(&cache)
            .arg("-f")
            .arg(&path)
            .output()
            .unwrap();
        for (command, out) in [
            ("plan", plan_both_ways(&path).to_vec()),
            ("build", vec![build]),
        ] {
            for out in out {
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(
                    out.status.code(),
                    Some(2),
                    "gib {command} on {what}: {stderr}"
                );
                let located = format!("error: {}:", path.display());
                assert!(
                    stderr.starts_with(&located),
                    "gib {command} on {what} does not point into the file: {stderr}"
                );
            }
        }
        assert!(
            fs::read_dir(&cache).map_or(true, |mut entries| entries.next().is_none()),
            "gib build on {what} wrote into its cache"
        );
    }
}

#[test]
fn ci_examples_pass_their_vendors_schemas() {
    let dir = scratch_dir("ci-examples");
    let ci = repo().join("examples/ci");
    let github = ci.join("github-actions.yml");
    let gitlab = ci.join("gitlab-ci.yml");
    for (file, schema, key, misspelt) in [
        (&github, "vendor.github-workflows", "runs-on:", "run-on:"),
        (&gitlab, "vendor.gitlab-ci", "trigger:", "triger:"),
    ] {
        let out = validate(&["--builtin-schema", schema], std::slice::from_ref(file));
        assert!(
            out.status.success(),
            "{} fails {schema}:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        // The check bites: a misspelt key fails it.
        let broken = dir.path().join(file.file_name().unwrap());
        let text = read(file);
        assert!(text.contains(key), "{}: no {key}", file.display());
        fs::write(&broken, text.replacen(key, misspelt, 1)).unwrap();
        let out = validate(&["--builtin-schema", schema], std::slice::from_ref(&broken));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{schema} accepts a misspelt key"
        );
    }
    let workflow = read(&github);
    for needed in ["gib plan --json", "--parents-from-registry --push"] {
        assert!(workflow.contains(needed), "the workflow lacks `{needed}`");
    }
    assert!(read(&gitlab).contains("gib plan --json"));

    // Both turn a real plan into the jobs it needs.
    let jq = require_tool("jq");
    let examples = examples_copy(dir.path());
    let plan_text = run_ok(
        gib()
            .args(["plan", "--json", "-f"])
            .arg(examples.join("contract/gib.yaml")),
    );
    let plan_path = dir.path().join("plan.json");
    fs::write(&plan_path, &plan_text).unwrap();
    let plan: Value = serde_json::from_str(&plan_text).unwrap();
    let images = plan["images"].as_array().unwrap();
    assert!(
        images.len() >= 3,
        "the contract example has a chain: {plan_text}"
    );

    // GitHub: the plan job's jq filter, one matrix per level.
    let filter = workflow
        .split("jq -c --argjson l \"$level\" '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the workflow's jq filter");
    let mut by_level: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for image in images {
        let level = image["level"].as_u64().unwrap();
        by_level
            .entry(level)
            .or_default()
            .push(image["name"].as_str().unwrap().to_string());
    }
    let deepest = *by_level.keys().max().unwrap();
    assert!(
        workflow.contains(&format!("level{deepest}:")),
        "the workflow has no job for level {deepest} of the contract example"
    );
    for (level, names) in &by_level {
        let out = run_ok(
            Command::new(&jq)
                .args(["-c", "--argjson", "l", &level.to_string(), filter])
                .arg(&plan_path),
        );
        let listed: Vec<String> = serde_json::from_str(&out).unwrap();
        assert_eq!(&listed, names, "level {level}");
    }

    // GitLab: the child pipeline, itself valid, with each image after its parents.
    let child = dir.path().join("images.gitlab-ci.yml");
    let out = run_ok(
        Command::new(&jq)
            .arg("-f")
            .arg(ci.join("gitlab-images.jq"))
            .arg(&plan_path),
    );
    fs::write(&child, &out).unwrap();
    let out = validate(
        &["--builtin-schema", "vendor.gitlab-ci"],
        std::slice::from_ref(&child),
    );
    assert!(
        out.status.success(),
        "the child pipeline fails vendor.gitlab-ci:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let pipeline: Value = serde_json::from_str(&read(&child)).unwrap();
    for image in images {
        let name = image["name"].as_str().unwrap();
        let job = &pipeline[format!("image:{name}")];
        let needs: Vec<&str> = job["needs"]
            .as_array()
            .unwrap_or_else(|| panic!("no job for {name}: {pipeline}"))
            .iter()
            .filter(|need| need.get("pipeline").is_none())
            .map(|need| need["job"].as_str().unwrap())
            .collect();
        let parents: Vec<String> = image["depends_on"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("image:{}", p.as_str().unwrap()))
            .collect();
        assert_eq!(needs, parents, "the needs of {name}");
        let script = job["script"].to_string();
        assert!(
            script.contains("--parents-from-registry --push"),
            "{script}"
        );
    }
}

/// The visible subcommands and, for each, the names of each visible option (`-f` and
/// `--file` name one).
fn clap_flags() -> BTreeMap<String, Vec<BTreeSet<String>>> {
    let command = gib::cli::Cli::command();
    command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| {
            let options = sub
                .get_arguments()
                .filter(|arg| !arg.is_hide_set() && !arg.is_positional())
                .map(|arg| {
                    arg.get_long()
                        .map(|l| format!("--{l}"))
                        .into_iter()
                        .chain(arg.get_short().map(|s| format!("-{s}")))
                        .collect()
                })
                .collect();
            (sub.get_name().to_string(), options)
        })
        .collect()
}

/// The flags written in a piece of text: `--word` and `-x` tokens.
fn written_flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| {
            let long = word
                .strip_prefix("--")
                .is_some_and(|w| w.len() > 1 && w.starts_with(|c: char| c.is_ascii_lowercase()));
            let short = word.len() == 2
                && word.starts_with('-')
                && word[1..].starts_with(|c: char| c.is_ascii_alphabetic());
            long || short
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn commands_reference_and_readme_list_every_flag() {
    let flags = clap_flags();
    assert!(
        flags["build"]
            .iter()
            .any(|names| names.contains("--oci-layout"))
    );

    // docs/commands.md: a section per subcommand whose table lists its flags, and no others.
    let doc = read(&repo().join("docs/commands.md"));
    let sections: BTreeMap<String, String> = doc
        .split("\n## `gib ")
        .skip(1)
        .filter_map(|section| {
            let (name, body) = section.split_once("`\n")?;
            Some((name.to_string(), body.to_string()))
        })
        .collect();
    // README's Commands block: a synopsis per subcommand (`gib NAME …`, continued by indented
    // lines).
    let readme = read(&repo().join("README.md"));
    let block = readme
        .split("\n## Commands\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n").nth(1))
        .expect("README.md's Commands section with a code block");
    let mut synopses: BTreeMap<String, String> = BTreeMap::new();
    let mut current = None;
    for line in block.lines() {
        if let Some(rest) = line.strip_prefix("gib ") {
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            synopses.insert(name.clone(), String::new());
            current = Some(name);
        }
        if let Some(name) = &current {
            let synopsis = synopses.get_mut(name).unwrap();
            // A comment explains; it is not part of the synopsis.
            synopsis.push_str(line.split(" # ").next().unwrap_or_default());
            synopsis.push('\n');
        }
    }

    for (name, options) in &flags {
        let every_name: BTreeSet<String> = options.iter().flatten().cloned().collect();
        let section = sections
            .get(name)
            .unwrap_or_else(|| panic!("docs/commands.md has no section ## `gib {name}`"));
        let table: String = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|l| l.split(" | ").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ");
        // The reference names every option by all its names.
        assert_eq!(
            written_flags(&table),
            every_name,
            "docs/commands.md's table for `gib {name}` (left) against clap (right)"
        );
        // README's synopsis names every option (by one of its names) and nothing else.
        let synopsis = synopses
            .get(name)
            .unwrap_or_else(|| panic!("README.md's Commands block has no `gib {name}` line"));
        let written = written_flags(synopsis);
        let unknown: Vec<_> = written.difference(&every_name).collect();
        assert!(
            unknown.is_empty(),
            "README.md's `gib {name}` has no option {unknown:?}"
        );
        for names in options {
            assert!(
                !names.is_disjoint(&written),
                "README.md's synopsis of `gib {name}` lacks {names:?}"
            );
        }
    }
    for (place, names) in [
        ("docs/commands.md", sections.keys()),
        ("README.md", synopses.keys()),
    ] {
        let extra: Vec<_> = names.filter(|n| !flags.contains_key(*n)).collect();
        assert!(
            extra.is_empty(),
            "{place} has commands gib lacks: {extra:?}"
        );
    }
}

/// What bash completes for the words of `line` (the last one being completed).
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let bash = require_tool("bash");
    let program = r#"
        source "$1"; shift
        spec=$(complete -p gib) || exit 3
        function=$(printf '%s\n' "$spec" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        "$function" gib "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = run_ok(
        Command::new(bash)
            .args(["--norc", "--noprofile", "-c", program, "bash"])
            .arg(script)
            .args(words),
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn shells_complete_subcommands_and_flags() {
    let dir = scratch_dir("completions");
    let script = dir.path().join("gib.bash");
    fs::write(&script, run_ok(gib().args(["completions", "bash"]))).unwrap();
    assert_eq!(bash_complete(&script, &["gib", "bu"]), ["build"]);
    assert_eq!(
        bash_complete(&script, &["gib", "build", "--oci"]),
        ["--oci-layout"]
    );
    assert_eq!(
        bash_complete(&script, &["gib", "completions", "f"]),
        ["fish"]
    );
    // Hidden helpers are not offered.
    assert_eq!(bash_complete(&script, &["gib", "__"]), Vec::<String>::new());

    // fish completes from the script itself; zsh's needs its completion system running in a
    // terminal, so it is only parsed.
    let fish_script = dir.path().join("gib.fish");
    fs::write(&fish_script, run_ok(gib().args(["completions", "fish"]))).unwrap();
    let fish_complete = |line: &str| -> Vec<String> {
        let out = run_ok(
            Command::new(require_tool("fish"))
                .args([
                    "--no-config",
                    "-c",
                    "source $argv[1]; complete --do-complete $argv[2]",
                ])
                .arg(&fish_script)
                .arg(line),
        );
        out.lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(fish_complete("gib bu"), ["build"]);
    assert_eq!(fish_complete("gib build --oci"), ["--oci-layout"]);
    assert_eq!(fish_complete("gib __"), Vec::<String>::new());
    let zsh_script = dir.path().join("_gib");
    let zsh = run_ok(gib().args(["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef gib"), "{zsh}");
    fs::write(&zsh_script, zsh).unwrap();
    run_ok(Command::new(require_tool("zsh")).arg("-n").arg(&zsh_script));
    let out = gib().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown shell is bad usage");
}

#[test]
fn man_pages_render_for_every_command() {
    let man = require_tool("man");
    require_tool("groff");
    let dir = scratch_dir("man");
    let pages = dir.path().join("man1");
    run_ok(gib().arg("man").arg(&pages));
    let mut written: Vec<String> = fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut expected: Vec<String> = clap_flags()
        .keys()
        .map(|name| format!("gib-{name}.1"))
        .chain(["gib.1".to_string()])
        .collect();
    expected.sort();
    assert_eq!(written, expected);

    let mut rendered = BTreeMap::new();
    for page in &written {
        let out = Command::new(&man)
            .args(["--warnings", "-l"])
            .arg(pages.join(page))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "man -l {page}: {stderr}"
        );
        assert!(text.contains("NAME"), "man -l {page}:\n{text}");
        rendered.insert(page.as_str(), text);
    }
    let build = &rendered["gib-build.1"];
    assert!(
        build.contains("--oci-layout") && build.contains("--parents-from-registry"),
        "{build}"
    );
}

/// README.md and docs/ link only to files of the project that exist (the README once pointed
/// at a design document outside it).
#[test]
fn docs_link_only_to_files_of_the_project() {
    let root = repo().canonicalize().unwrap();
    let mut docs = vec![root.join("README.md")];
    for entry in fs::read_dir(root.join("docs")).unwrap() {
        docs.push(entry.unwrap().path());
    }
    let mut checked = 0;
    for doc in &docs {
        let text = read(doc);
        for target in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
        {
            if target.contains("://") || target.starts_with('#') {
                continue;
            }
            let file = target.split('#').next().unwrap_or_default();
            let resolved = doc.parent().unwrap().join(file).canonicalize();
            assert!(
                resolved.as_ref().is_ok_and(|p| p.starts_with(&root)),
                "{} links to {target}, which is not a file of the project",
                doc.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} links found");
}
