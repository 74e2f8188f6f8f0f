//! An image's `test:`: run inside the finished image's root in the sandbox, without a
//! container runtime. The root is an overlay of the image's layer trees with a throwaway
//! upper, so the test cannot change the image.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result};

use super::BuildContext;
use crate::plan::ImagePlan;
use crate::printer::UserError;
use crate::sandbox::{self, Exit, OverlayScratch, RootFs, SandboxSpec, SandboxStdio};

/// The test failed: its command, how it ended and what it printed.
#[derive(Debug, thiserror::Error)]
#[error("the test of image {image} failed ({exit}): {command}")]
pub struct TestFailed {
    pub image: String,
    pub command: String,
    pub exit: Exit,
    pub output: String,
}

/// Run `image.test`, if any, on the image made of `layer_dirs` (nearest first), as the
/// container would: as the image's `user:` (root when it has none), in its `workdir`, with
/// its `env`.
pub fn run(ctx: &BuildContext<'_>, image: &ImagePlan, layer_dirs: &[PathBuf]) -> Result<()> {
    let Some(test) = &image.test else {
        return Ok(());
    };
    let shell = has_shell(layer_dirs);
    if let (false, Some(syntax)) = (shell, test.shell_syntax) {
        // Known only now: whether the image has a shell depends on what emerge installed.
        return Err(UserError::with_hint(
            format!(
                "{}: the test of image `{}` uses {syntax}, which needs a shell, and the image \
                 has no /bin/sh",
                test.at, image.name
            ),
            "without a shell gib runs the test as one program and its arguments: drop the \
             shell syntax, or add a shell (app-shells/bash, sys-apps/busybox) to the image",
        ));
    }
    let user = test_user(ctx, image)?;
    let as_user = user
        .as_deref()
        .map(|u| format!(" (as {u})"))
        .unwrap_or_default();
    let label = format!("{}: {}{as_user}", image.name, test.command);
    let step = ctx.printer.step("Testing", &label);
    let command = test_command(&test.command, shell).map_err(|message| {
        UserError::with_hint(
            format!("{}: image {}: {message}", test.at, image.name),
            "the image has no /bin/sh, so gib splits the test into words itself, \
             with the shell's quoting rules",
        )
    })?;
    let scratch = OverlayScratch::create(&ctx.cache.dir("tests")?)?;
    let output_path = scratch.path().join("output");
    let result = run_in(
        ctx,
        image,
        command,
        user,
        layer_dirs,
        &scratch,
        &output_path,
    );
    let output = std::fs::read_to_string(&output_path).unwrap_or_default();
    scratch.remove()?;
    let exit = result?;
    if !exit.success() {
        return Err(TestFailed {
            image: image.name.clone(),
            command: test.command.clone(),
            exit,
            output,
        }
        .into());
    }
    step.finish("Tested", &label);
    if ctx.printer.verbose() {
        ctx.printer.excerpt(&output);
    }
    Ok(())
}

/// Whom the test runs as: the image's `user:`, unless the sandbox maps a single id (no
/// subordinate range), where nobody but root exists.
fn test_user(ctx: &BuildContext<'_>, image: &ImagePlan) -> Result<Option<String>> {
    let Some(user) = &image.runtime.user else {
        return Ok(None);
    };
    if sandbox::id_mode_warned(ctx.printer)?.is_single() {
        ctx.printer.warn(&format!(
            "the test of image {} runs as root, not as its user `{user}`: the sandbox maps a \
             single id",
            image.name
        ));
        return Ok(None);
    }
    Ok(Some(user.clone()))
}

fn run_in(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    command: Vec<OsString>,
    user: Option<String>,
    layer_dirs: &[PathBuf],
    scratch: &OverlayScratch,
    output_path: &Path,
) -> Result<Exit> {
    let mut env = sandbox::default_env();
    if user.is_some() {
        // The user's own HOME comes from the image's passwd (the sandbox sets it).
        env.retain(|(k, _)| k != "HOME" && k != "USER");
    }
    for (key, value) in &image.runtime.env {
        env.retain(|(k, _)| k != key.as_str());
        env.push((key.into(), value.into()));
    }
    let log = std::fs::File::create(output_path)
        .with_context(|| format!("cannot create {}", output_path.display()))?;
    let stdio = SandboxStdio {
        stdin: Stdio::null(),
        stdout: Stdio::from(log.try_clone()?),
        stderr: Stdio::from(log),
    };
    let spec = SandboxSpec {
        root: Some(RootFs::Overlay {
            lowers: layer_dirs.to_vec(),
            upper: scratch.upper(),
            work: scratch.work(),
        }),
        mounts: Vec::new(),
        network: ctx.network,
        hostname: image.name.clone(),
        command,
        env,
        cwd: image
            .runtime
            .workdir
            .clone()
            .unwrap_or_else(|| "/".into())
            .into(),
        interactive: false,
        user,
    };
    sandbox::run(&spec, stdio)
}

/// `/bin/sh -c TEST` when the image has a shell, else TEST split into words as the shell
/// would (quotes and backslashes; no variables, globs or pipes: there is nothing to run them).
fn test_command(test: &str, shell: bool) -> std::result::Result<Vec<OsString>, String> {
    if shell {
        return Ok(vec!["/bin/sh".into(), "-c".into(), test.into()]);
    }
    match shlex::split(test) {
        Some(words) if !words.is_empty() => Ok(words.into_iter().map(OsString::from).collect()),
        Some(_) => Err("the test is empty".to_string()),
        None => Err(format!(
            "cannot split the test `{test}` into words: a quote is not closed"
        )),
    }
}

/// Whether any of the image's trees has /bin/sh (directly or under a merged /usr).
fn has_shell(layer_dirs: &[PathBuf]) -> bool {
    layer_dirs.iter().any(|dir| {
        ["bin/sh", "usr/bin/sh"]
            .iter()
            .any(|p| std::fs::symlink_metadata(dir.join(p)).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_runs_under_the_shell_only_when_there_is_one() {
        assert_eq!(
            test_command("greet --loud", true).unwrap(),
            vec![
                OsString::from("/bin/sh"),
                "-c".into(),
                "greet --loud".into()
            ]
        );
        assert_eq!(
            test_command("/usr/bin/greet --loud", false).unwrap(),
            vec![OsString::from("/usr/bin/greet"), "--loud".into()]
        );
        assert_eq!(
            test_command(r#"/usr/bin/python3 -c 'print("a b")' "x y" z\ w"#, false).unwrap(),
            vec![
                OsString::from("/usr/bin/python3"),
                "-c".into(),
                r#"print("a b")"#.into(),
                "x y".into(),
                "z w".into()
            ]
        );
        let err = test_command("/usr/bin/greet 'unclosed", false).unwrap_err();
        assert!(err.contains("a quote is not closed"), "{err}");
    }
}
