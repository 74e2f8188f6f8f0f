//! Small helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The gib binary under test.
pub fn gib_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gib"))
}

/// A `gib` command with an isolated cache unless the test sets one.
pub fn gib() -> Command {
    let mut cmd = Command::new(gib_bin());
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Fail (never skip) when a tool the test needs is missing.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("this test needs `{name}`, which is not installed (.ci/run installs it)");
}

/// Run a command, panic with its output when it fails, return its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_success(cmd, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_success(cmd: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scratch directory under the repository's target dir (not /tmp, which may be a small
/// tmpfs), readable by the unprivileged test user.
pub fn scratch_dir(name: &str) -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(base)
        .unwrap();
    make_world_traversable(dir.path());
    dir
}

fn make_world_traversable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = Some(path);
    while let Some(dir) = p {
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.permissions().mode();
            if mode & 0o005 != 0o005 && dir.starts_with(env!("CARGO_TARGET_TMPDIR")) {
                let _ =
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o755));
            }
        }
        p = dir.parent();
    }
}

/// The unprivileged user the rootless tests run as, with /etc/subuid and /etc/subgid ranges
/// (created on first use; the tests run as root).
pub fn test_user() -> &'static str {
    static USER: OnceLock<&'static str> = OnceLock::new();
    USER.get_or_init(|| {
        const NAME: &str = "gibtest";
        let exists = Command::new("id")
            .arg(NAME)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !exists {
            run_ok(Command::new("useradd").args(["-m", "-s", "/bin/sh", NAME]));
        }
        let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
        assert!(
            subuid.lines().any(|l| l.starts_with(&format!("{NAME}:"))),
            "useradd gave {NAME} no /etc/subuid range"
        );
        NAME
    })
}

/// A command that runs `program` as the unprivileged test user, keeping the given env.
pub fn as_test_user(program: &Path) -> Command {
    let user = test_user();
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", user, "--"]).arg(program);
    cmd.env("HOME", format!("/home/{user}"));
    cmd
}

/// Whether the tests run as root (CI does).
pub fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // SAFETY-free: read our uid from /proc to avoid a libc dependency in the tests.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}
