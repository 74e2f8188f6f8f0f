//! `script:` images with `builder_packages:` and a `context:` on the mini stage3: the tools a
//! script needs are emerged into the builder only (and stay in the builders of the image's
//! children), the script reads its sources from the read-only `$GIB_CONTEXT`, and the
//! context's contents, not its times, are part of the image's input key. The language
//! helpers of rootfs-tools (Go, Rust, Python, Node) are tested on a stage3 with those
//! toolchains.

use std::fs;
use std::path::Path;

use crate::chains::{build, build_ok};
use crate::fixture::mini_stage3;
use crate::util::{Podman, archive_layers, emerge_log, gib, run_ok, scratch_dir};

/// Compiles the context's program with a header made by greet-mkheader, a program only the
/// builder has (dev-util/greet-tools from `builder_packages:`).
const TOOL_SCRIPT: &str = r#"command -v greet-mkheader
if touch "$GIB_CONTEXT/written" 2>/dev/null; then
	echo "the context is writable" >&2
	exit 1
fi
greet-mkheader "$(cat "$GIB_CONTEXT/who")" > who.h
gcc -O2 -I. -o hello "$GIB_CONTEXT/hello.c"
gib_install_binary ./hello
"#;

/// Runs in the builder of `tool`'s child, which has no `builder_packages:` of its own.
const CHILD_SCRIPT: &str = r#"mkdir -p "$ROOT/etc"
greet-mkheader child > "$ROOT/etc/child.h"
"#;

const HELLO_C: &str = r#"#include <stdio.h>
#include "who.h"
int main(void) { printf("hello from %s\n", GREET_WHO); return 0; }
"#;

fn write_project(dir: &Path) -> std::path::PathBuf {
    let context = dir.join("ctx");
    fs::create_dir_all(&context).unwrap();
    fs::write(context.join("hello.c"), HELLO_C).unwrap();
    fs::write(context.join("who"), "the context\n").unwrap();
    fs::write(dir.join("tool.sh"), TOOL_SCRIPT).unwrap();
    fs::write(dir.join("child.sh"), CHILD_SCRIPT).unwrap();
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nimages:\n\
         \x20 base:\n    tag: t\n    packages: [sys-apps/baselayout, sys-libs/glibc]\n\
         \x20 tool:\n    from: base\n    tag: t\n    builder_packages: dev-util/greet-tools\n    \
         script: ./tool.sh\n    context: ./ctx\n    entrypoint: [/usr/bin/hello]\n    \
         test: /usr/bin/hello\n\
         \x20 child:\n    from: tool\n    tag: t\n    script: ./child.sh\n",
        stage3 = mini_stage3().display(),
    );
    let config = dir.join("gib.yaml");
    fs::write(&config, text).unwrap();
    config
}

#[test]
fn builder_packages_and_a_read_only_context_feed_a_script() {
    let dir = scratch_dir("script-context");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("images.tar");
    let config = write_project(dir.path());
    let archive_arg = ["--archive", archive.to_str().unwrap()];

    // gib plan shows what goes where.
    let plan = run_ok(gib().args(["plan", "--json", "-f"]).arg(&config));
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    let tool = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "tool")
        .unwrap();
    assert_eq!(tool["builder_packages"][0], "dev-util/greet-tools");
    assert_eq!(tool["kind"], "script");
    assert!(tool["context"].as_str().unwrap().ends_with("/ctx"));

    let (_, stderr) = build_ok(&config, &cache, &archive_arg);
    assert!(
        stderr.contains("dev-util/greet-tools-1.0 from source into the builder"),
        "{stderr}"
    );
    let log = fs::read_to_string(emerge_log(&cache, "tool")).unwrap();
    assert!(log.contains(">>> gib: emerge --root=/ "), "{log}");
    assert!(
        !log.contains("--root=/staging"),
        "tool has no packages of its own: {log}"
    );

    let layers = archive_layers(&archive, "tool:t");
    let tool_layer = layers.last().unwrap();
    assert!(tool_layer.contains_key("usr/bin/hello"), "{tool_layer:?}");
    let leaked: Vec<_> = tool_layer
        .keys()
        .filter(|p| p.contains("greet-mkheader") || p.contains("greet-tools"))
        .collect();
    assert!(
        leaked.is_empty(),
        "builder-only files in the image: {leaked:?}"
    );
    assert!(!tool_layer.contains_key("written"));

    // The child's script found the tool in the builder it inherited.
    let child_layer = archive_layers(&archive, "child:t").pop().unwrap();
    assert!(child_layer.contains_key("etc/child.h"), "{child_layer:?}");

    let podman = Podman::new(dir.path());
    podman.load(&archive);
    assert_eq!(podman.run("tool:t", &[]).trim(), "hello from the context");

    // New times on the same contents: nothing to rebuild.
    let who = dir.path().join("ctx/who");
    let file = fs::File::options().append(true).open(&who).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    drop(file);
    let (_, stderr) = build_ok(&config, &cache, &[]);
    for name in ["base", "tool", "child"] {
        assert!(stderr.contains(&format!("Reusing {name} ")), "{stderr}");
    }

    // New contents: tool and its child are rebuilt, base is not.
    fs::write(&who, "an edited context\n").unwrap();
    let (_, stderr) = build_ok(&config, &cache, &archive_arg);
    assert!(stderr.contains("Reusing base "), "{stderr}");
    assert!(stderr.contains("Building tool"), "{stderr}");
    assert!(stderr.contains("Building child"), "{stderr}");
    podman.load(&archive);
    assert_eq!(
        podman.run("tool:t", &[]).trim(),
        "hello from an edited context"
    );

    // gib shell enters tool's builder with the script's context and helpers at hand.
    let mut cmd = gib();
    cmd.args(["shell", "tool", "-f"])
        .arg(&config)
        .arg("--cache-dir")
        .arg(&cache)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"cat \"$GIB_CONTEXT/who\"\n. /var/tmp/gib/tools/lib.sh\n\
              command -v gib_install_binary\nexit 3\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("an edited context"), "{stdout}");
    assert!(stdout.contains("gib_install_binary"), "{stdout}");

    // A script that needs a tool no builder has fails with its output shown.
    fs::write(dir.path().join("child.sh"), "greet-nonexistent child\n").unwrap();
    let out = build(&config, &cache, &["child"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("greet-nonexistent"), "{stderr}");
    assert!(
        stderr.contains("the script of image child failed"),
        "{stderr}"
    );
}

/// The language helpers on a stage3 with Debian's Go, Rust, Python (pip) and Node.js:
/// `tests/fixtures/langs-app/build.sh` builds one program per language from the read-only
/// context, offline, into an image that runs each in podman.
#[test]
fn go_rust_python_and_node_apps_build_from_a_context_and_run_in_podman() {
    let dir = scratch_dir("script-langs");
    let cache = dir.path().join("cache");
    let archive = dir.path().join("apps.tar");
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/langs-app");
    let text = format!(
        "stage3:\n  path: {stage3}\nportage:\n  sync_type: none\nimages:\n\
         \x20 base:\n    tag: t\n    packages: [sys-apps/baselayout, sys-libs/glibc]\n\
         \x20 apps:\n    from: base\n    tag: t\n    script: {app}/build.sh\n    \
         context: {app}\n    test: \"/usr/bin/python3 -c 'import ssl, sqlite3, ctypes'\"\n",
        stage3 = crate::fixture::mini_stage3_langs().display(),
        app = app.display(),
    );
    let config = dir.path().join("gib.yaml");
    fs::write(&config, text).unwrap();
    // --network none: the helpers build these apps from the context alone. The test (no
    // shell in the image: split with quotes) imports stdlib modules with native libraries.
    build_ok(
        &config,
        &cache,
        &["--network", "none", "--archive", archive.to_str().unwrap()],
    );

    let layer = archive_layers(&archive, "apps:t").pop().unwrap();
    for present in [
        "usr/bin/hello-go",
        "usr/bin/hello-rust",
        "usr/local/bin/hello-py",
        "usr/bin/node",
        "opt/hello-node/index.js",
        "usr/lib64/libgcc_s.so.1",
    ] {
        assert!(layer.contains_key(present), "{present} is not in the layer");
    }
    // No toolchain, no build tree, no source went into the image; the stdlib has bytecode.
    for absent in [
        "usr/bin/go",
        "usr/bin/cargo",
        "usr/bin/rustc",
        "usr/bin/npm",
        "tmp/gib-scratch",
    ] {
        assert!(!layer.contains_key(absent), "{absent} is in the layer");
    }
    assert!(
        !layer.keys().any(|p| p.contains("site-packages/pip/")),
        "the builder's pip is in the image"
    );
    assert!(
        layer
            .keys()
            .any(|p| p.starts_with("usr/lib/python3.11/__pycache__/os.")),
        "the stdlib was not compiled"
    );

    let podman = Podman::new(dir.path());
    podman.load(&archive);
    for (command, expected) in [
        (&["/usr/bin/hello-go"][..], "hello from go"),
        (&["/usr/bin/hello-rust"][..], "hello from rust"),
        (&["/usr/local/bin/hello-py"][..], "hello from python"),
        (
            &["/usr/bin/node", "/opt/hello-node/index.js"][..],
            "hello from node",
        ),
    ] {
        let out = podman.run("apps:t", command);
        assert!(out.contains(expected), "{command:?} printed {out:?}");
    }
}

/// What finish-root.sh trims after a script shows in `gib inspect` as after emerge: both
/// reports of an image that emerges and has a script, as root and rootless.
#[test]
fn a_script_images_trimming_shows_in_gib_inspect() {
    for rootless in [false, true] {
        let dir = scratch_dir("script-trimmed");
        if rootless {
            let user = crate::util::test_user();
            run_ok(
                std::process::Command::new("chown")
                    .arg(format!("{user}:{user}"))
                    .arg(dir.path()),
            );
        }
        let script = "mkdir -p \"$ROOT/usr/include\" \"$ROOT/var/tmp\" \"$ROOT/etc\"\n\
                      echo 'int x;' > \"$ROOT/usr/include/x.h\"\n\
                      echo junk > \"$ROOT/var/tmp/junk\"\n\
                      echo kept > \"$ROOT/etc/kept\"\n";
        fs::write(dir.path().join("trim.sh"), script).unwrap();
        let config = dir.path().join("gib.yaml");
        fs::write(
            &config,
            format!(
                "stage3:\n  path: {}\nportage:\n  sync_type: none\nimages:\n\
                 \x20 both:\n    tag: t\n    packages: [sys-apps/baselayout]\n    \
                 script: ./trim.sh\n",
                mini_stage3().display()
            ),
        )
        .unwrap();
        let cache = dir.path().join("cache");
        let archive = dir.path().join("both.tar");
        let gib_as = || {
            let mut cmd = if rootless {
                crate::util::as_test_user(&crate::util::gib_bin())
            } else {
                gib()
            };
            cmd.env("NO_COLOR", "1");
            cmd
        };
        run_ok(
            gib_as()
                .args(["build", "-f"])
                .arg(&config)
                .arg("--cache-dir")
                .arg(&cache)
                .arg("--archive")
                .arg(&archive),
        );
        let layer = archive_layers(&archive, "both:t").pop().unwrap();
        assert!(layer.contains_key("etc/kept"), "{layer:?}");
        assert!(!layer.contains_key("usr/include/x.h"), "{layer:?}");
        assert!(!layer.contains_key("var/tmp/junk"), "{layer:?}");

        let inspect = run_ok(
            gib_as()
                .args(["inspect", "both", "--json", "--cache-dir"])
                .arg(&cache),
        );
        let report: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        let trimmed: Vec<&str> = report["trimmed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["path"].as_str().unwrap())
            .collect();
        // The script's finish, then emerge's (Portage's state).
        for path in ["/usr/include", "/var/tmp/junk", "/var/cache/edb"] {
            assert!(trimmed.contains(&path), "rootless {rootless}: {trimmed:?}");
        }
        assert!(report["trimmed_bytes"].as_u64().unwrap() > 0, "{inspect}");
    }
}
