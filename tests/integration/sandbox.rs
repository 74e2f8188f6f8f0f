//! The rootless sandbox, as root and as the unprivileged test user: id maps, ownership,
//! mounts, exit codes and signals, cleanup after a killed gib, network isolation, and the
//! failure modes (no newuidmap, no subordinate range, user namespaces disabled).
//!
//! The test root is a busybox-static tree (Debian package busybox-static); gib runs it
//! through its hidden `__internal run` subcommand.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::util;

/// Tests that disable user namespaces machine-wide take this for writing; every test that
/// creates one holds it for reading.
pub static USERNS: RwLock<()> = RwLock::new(());

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Root,
    User,
}

pub const EVERYONE: [Who; 2] = [Who::Root, Who::User];

/// A gib command run as `who`.
pub fn gib_as(who: Who) -> Command {
    assert!(
        util::is_root(),
        "the sandbox tests run as root (they also run gib as the unprivileged test user)"
    );
    match who {
        Who::Root => util::gib(),
        Who::User => {
            let mut cmd = util::as_test_user(&util::gib_bin());
            cmd.env("NO_COLOR", "1");
            cmd
        }
    }
}

/// `chown -R` a test directory to the unprivileged test user (its cache, roots, uppers).
pub fn give_to(who: Who, path: &Path) {
    if who == Who::User {
        let user = util::test_user();
        util::run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{user}:{user}"))
                .arg(path),
        );
    }
}

/// A busybox root directory owned by `who`.
pub fn busybox_root(dir: &Path, who: Who) -> PathBuf {
    let busybox = util::require_tool("busybox");
    let root = dir.join("root");
    for sub in ["bin", "etc", "root", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    give_to(who, dir);
    if who == Who::Root {
        // Root inside a root gib's sandbox is the first id of root's range, not the host's
        // root: a root directory it writes in must be that id's.
        let start = subuid_start("root");
        util::run_ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{start}:{}", subgid_start("root")))
                .arg(&root),
        );
    }
    root
}

pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "stat", "id", "mount", "touch", "chown", "chmod", "sleep", "kill", "ip",
    "echo", "readlink", "head", "wc", "grep", "test", "mkdir", "rm", "hostname",
];

pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Run a shell script in a sandbox on `root` (a directory) as `who`.
fn run_script(who: Who, root: &Path, extra: &[&str], script: &str) -> Output {
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    output(
        gib_as(who)
            .args(["__internal", "run", "--root"])
            .arg(root)
            .args(extra)
            .args(["--", "/bin/sh", "-c", script]),
    )
}

/// The first id of `user`'s range in `file`. Root's sandbox uses root's first range of at
/// least 65536 ids, and without one the range gib claims (2147352576, as the README says):
/// a fresh machine gives root none.
fn subid_start(file: &str, user: &str) -> u32 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let range = text.lines().find_map(|l| {
        let mut fields = l.strip_prefix(&format!("{user}:"))?.split(':');
        let start: u32 = fields.next()?.parse().ok()?;
        let count: u32 = fields.next()?.parse().ok()?;
        (user != "root" || count >= 65536).then_some(start)
    });
    match (range, user) {
        (Some(start), _) => start,
        (None, "root") => 2_147_352_576,
        (None, _) => panic!("{user} has no range in {file}"),
    }
}

pub fn subuid_start(user: &str) -> u32 {
    subid_start("/etc/subuid", user)
}

pub fn subgid_start(user: &str) -> u32 {
    subid_start("/etc/subgid", user)
}

/// Root inside is root's subordinate range as root (never the host's root) and the user
/// as a user; id 1 inside is the next id of the range, or the user's first subordinate id.
#[test]
fn root_inside_is_a_subordinate_id_as_root_and_the_user_as_a_user() {
    use std::os::unix::fs::MetadataExt;
    for who in EVERYONE {
        let dir = util::scratch_dir("sandbox-map");
        let root = busybox_root(dir.path(), who);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        give_to(who, &data);
        let bind = format!("{}:/data", data.display());
        let out = run_script(
            who,
            &root,
            &["--bind", &bind],
            "cat /proc/self/uid_map; cat /proc/self/setgroups; id -u; \
             touch /data/zero /data/one && chown 1:1 /data/one",
        );
        util::assert_success(&Command::new("gib"), &out);
        let lines: Vec<Vec<String>> = stdout(&out)
            .lines()
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect();
        assert_ne!(lines[0], ["0", "0", "4294967295"], "{who:?}: {lines:?}");
        let owner = |name: &str| {
            let meta = std::fs::metadata(data.join(name)).unwrap();
            (meta.uid(), meta.gid())
        };
        let (zero, one) = match who {
            Who::Root => (
                (subuid_start("root"), subgid_start("root")),
                (subuid_start("root") + 1, subgid_start("root") + 1),
            ),
            Who::User => {
                let user = util::test_user();
                let id = |flag: &str| -> u32 {
                    util::run_ok(Command::new("id").args([flag, user]))
                        .trim()
                        .parse()
                        .unwrap()
                };
                (
                    (id("-u"), id("-g")),
                    (subuid_start(user), subgid_start(user)),
                )
            }
        };
        assert_eq!(owner("zero"), zero, "{who:?}");
        assert_eq!(owner("one"), one, "{who:?}");
        assert_ne!(
            owner("zero").0,
            0,
            "{who:?}: the sandbox is the host's root"
        );
        // Portage calls setgroups(2) for userpriv: it must have been left allowed.
        assert_eq!(lines[lines.len() - 2], ["allow"], "{who:?}: {lines:?}");
        assert_eq!(lines.last().unwrap(), &["0"]);
    }
}

#[test]
fn a_file_chowned_to_250_stays_250() {
    for who in EVERYONE {
        let dir = util::scratch_dir("sandbox-chown");
        let root = busybox_root(dir.path(), who);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        give_to(who, &data);
        let bind = format!("{}:/data", data.display());
        let out = run_script(
            who,
            &root,
            &["--bind", &bind],
            "touch /data/f && chown 250:250 /data/f",
        );
        util::assert_success(&Command::new("gib"), &out);
        let out = run_script(who, &root, &["--bind", &bind], "stat -c %u:%g /data/f");
        util::assert_success(&Command::new("gib"), &out);
        assert_eq!(stdout(&out).trim(), "250:250", "{who:?}");
    }
}

#[test]
fn the_builder_mounts_are_there() {
    for who in EVERYONE {
        let dir = util::scratch_dir("sandbox-mounts");
        let root = busybox_root(dir.path(), who);
        let script = r#"
            set -e
            test -r /proc/self/status && echo proc-ok
            echo x > /dev/null && head -c 3 /dev/zero | wc -c | grep -q 3 && echo devnull-ok
            head -c 8 /dev/urandom | wc -c | grep -q 8 && echo urandom-ok
            test "$(readlink /dev/fd)" = /proc/self/fd && echo fd-ok
            grep -q ' /dev/pts devpts ' /proc/self/mounts && test -e /dev/pts/ptmx && echo devpts-ok
            grep -q ' /dev/shm tmpfs ' /proc/self/mounts && echo > /dev/shm/x && echo shm-ok
            test "$(stat -c %a /tmp)" = 1777 && echo tmp-ok
            grep -q ' /run tmpfs ' /proc/self/mounts && echo run-ok
            if touch /sys/gib-test 2>/dev/null; then echo sys-rw; else echo sys-ro; fi
            grep -q ' /sys sysfs ro' /proc/self/mounts && echo sys-ro-mount
            test "$(hostname)" = gib && echo hostname-ok
        "#;
        let out = run_script(who, &root, &[], script);
        util::assert_success(&Command::new("gib"), &out);
        let text = stdout(&out);
        for expected in [
            "proc-ok",
            "devnull-ok",
            "urandom-ok",
            "fd-ok",
            "devpts-ok",
            "shm-ok",
            "tmp-ok",
            "run-ok",
            "sys-ro\n",
            "sys-ro-mount",
            "hostname-ok",
        ] {
            assert!(text.contains(expected), "{who:?}: no {expected}: {text}");
        }
    }
}

#[test]
fn exit_codes_and_signals_pass_through() {
    for who in EVERYONE {
        let dir = util::scratch_dir("sandbox-exit");
        let root = busybox_root(dir.path(), who);
        let out = run_script(who, &root, &[], "exit 7");
        assert_eq!(out.status.code(), Some(7), "{who:?}: {}", stderr(&out));
        let out = run_script(who, &root, &[], "kill -TERM $$; sleep 5");
        assert_eq!(
            out.status.code(),
            Some(128 + 15),
            "{who:?}: {}",
            stderr(&out)
        );
        let out = run_script(who, &root, &[], "exec /nonexistent");
        assert_eq!(out.status.code(), Some(127), "{who:?}");
    }
}

#[test]
fn output_goes_to_a_log_file_with_the_environment_and_cwd_given() {
    let dir = util::scratch_dir("sandbox-log");
    let root = busybox_root(dir.path(), Who::User);
    let log = dir.path().join("build.log");
    let out = run_script(
        Who::User,
        &root,
        &["--log", log.to_str().unwrap(), "--cwd", "/etc"],
        "echo out; echo err >&2; pwd; echo $HOME; read x || echo no-input; exit 3",
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "out\nerr\n/etc\n/root\nno-input\n"
    );
}

#[test]
fn a_missing_program_is_a_clear_error() {
    let dir = util::scratch_dir("sandbox-noexec");
    let root = busybox_root(dir.path(), Who::Root);
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    let out = output(
        gib_as(Who::Root)
            .args(["__internal", "run", "--root"])
            .arg(&root)
            .args(["--", "/no/such/program"]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot execute /no/such/program"),
        "{}",
        stderr(&out)
    );
}

/// Every process: (pid, parent pid, state, command line with spaces for NULs).
fn processes() -> Vec<(u32, u32, char, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (Ok(stat), Ok(cmdline)) = (
            std::fs::read_to_string(entry.path().join("stat")),
            std::fs::read(entry.path().join("cmdline")),
        ) else {
            continue;
        };
        // stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ')'.
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        found.push((pid, ppid, state, cmdline.trim().to_string()));
    }
    found
}

/// `pid` and all its descendants.
fn tree(pid: u32) -> Vec<u32> {
    let all = processes();
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    tree
}

/// The pids of `pids` that still run (zombies waiting for their reaper count as gone).
fn alive(pids: &[u32]) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|p| pids.contains(&p.0) && p.2 != 'Z')
        .map(|p| p.0)
        .collect()
}

/// SIGKILLs what a failed test left behind.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in alive(&self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

#[test]
fn a_killed_gib_leaves_no_process_and_no_mount() {
    let cases = [(Who::Root, "KILL"), (Who::User, "KILL"), (Who::User, "INT")];
    for (n, (who, signal)) in cases.into_iter().enumerate() {
        let dir = util::scratch_dir("sandbox-kill");
        let root = busybox_root(dir.path(), who);
        let marker = format!(
            "sleep {}",
            4200 + n * 7 + std::process::id() as usize % 1000
        );
        let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
        let mut cmd = gib_as(who);
        cmd.args(["__internal", "run", "--root"])
            .arg(&root)
            .args(["--", "/bin/sh", "-c", &format!("{marker}; echo never")])
            .stderr(std::process::Stdio::null());
        // A test run from a background job inherits SIGINT and SIGQUIT ignored (a
        // non-interactive shell's background commands ignore them, and exec keeps that); a
        // Ctrl-C comes from a foreground terminal, so gib gets the default disposition here.
        // SAFETY: only async-signal-safe calls (signal(2)) between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                use nix::sys::signal::{SigHandler, Signal, signal};
                for sig in [Signal::SIGINT, Signal::SIGQUIT] {
                    signal(sig, SigHandler::SigDfl).map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let mut cleanup = KillOnDrop(vec![child.id()]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !processes().iter().any(|p| p.3 == marker) {
            assert!(
                Instant::now() < deadline,
                "the sandboxed sleep never started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // gib itself: the test's child as root, runuser's child as the user.
        let gib = match who {
            Who::Root => child.id(),
            Who::User => tree(child.id())[1],
        };
        let sandbox = tree(gib);
        cleanup.0.extend(&sandbox);
        assert!(
            processes()
                .iter()
                .any(|p| p.3 == marker && sandbox.contains(&p.0)),
            "the sleep is not below gib {gib}"
        );
        // As a Ctrl-C (SIGINT, gib not interactive) or an OOM kill (SIGKILL) would.
        util::run_ok(Command::new("kill").args([&format!("-{signal}"), &gib.to_string()]));
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !alive(&sandbox).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{who:?} {signal}: processes left: {:?}",
                alive(&sandbox)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(&root.display().to_string()),
            "a mount is left: {mounts}"
        );
    }
}

#[test]
fn network_none_has_only_loopback() {
    for who in EVERYONE {
        let dir = util::scratch_dir("sandbox-net");
        let root = busybox_root(dir.path(), who);
        let out = run_script(
            who,
            &root,
            &["--network", "none"],
            "cat /proc/net/dev | grep : | cut -d: -f1; ip link show lo | grep -c UP",
        );
        util::assert_success(&Command::new("gib"), &out);
        let text = stdout(&out);
        let interfaces: Vec<&str> = text.lines().map(str::trim).collect();
        assert_eq!(interfaces, ["lo", "1"], "{who:?}: {text}");
    }
}

#[test]
fn no_newuidmap_on_path_is_a_clear_error() {
    let dir = util::scratch_dir("sandbox-nonewuidmap");
    let root = busybox_root(dir.path(), Who::User);
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    let user = util::test_user();
    let out = output(
        Command::new("/usr/sbin/runuser")
            .args(["-u", user, "--"])
            .arg(util::gib_bin())
            .env("PATH", "/nonexistent")
            .env("NO_COLOR", "1")
            .args(["__internal", "run", "--root"])
            .arg(&root)
            .args(["--", "/bin/sh", "-c", "true"]),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("`newuidmap` is not on PATH"), "{err}");
    assert!(err.contains("uidmap"), "hint missing: {err}");
}

/// A user without /etc/subuid and /etc/subgid entries (created on first use).
pub fn user_without_subids() -> &'static str {
    static USER: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        const NAME: &str = "gibnosub";
        let exists = Command::new("id")
            .arg(NAME)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !exists {
            // A system user: useradd gives those no subordinate ranges.
            util::run_ok(Command::new("useradd").args(["-r", "-m", "-s", "/bin/sh", NAME]));
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            assert!(
                !text.lines().any(|l| l.starts_with(&format!("{NAME}:"))),
                "{NAME} has a range in {file}"
            );
        }
        NAME
    })
}

pub fn as_user(user: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", user, "--"]).arg(util::gib_bin());
    cmd.env("NO_COLOR", "1");
    cmd
}

#[test]
fn no_subordinate_range_falls_back_to_a_single_id_with_one_warning() {
    let user = user_without_subids();
    let dir = util::scratch_dir("sandbox-nosub");
    let root = busybox_root(dir.path(), Who::Root);
    util::run_ok(
        Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:"))
            .arg(dir.path()),
    );
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    let out = output(
        as_user(user)
            .args(["__internal", "run", "--root"])
            .arg(&root)
            .args([
                "--",
                "/bin/sh",
                "-c",
                "cat /proc/self/uid_map; id -u; echo x > /dev/null",
            ]),
    );
    util::assert_success(&Command::new("gib"), &out);
    let err = stderr(&out);
    assert_eq!(
        err.matches("no subordinate id range").count(),
        1,
        "one warning expected: {err}"
    );
    let text = stdout(&out);
    let first: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(first[0], "0");
    assert_eq!(first[2], "1", "{text}");
    assert_eq!(text.lines().count(), 2, "a single map line: {text}");
}

/// Sets a sysctl and restores it when dropped, even when the test panics.
struct Sysctl {
    path: &'static str,
    old: String,
}

impl Sysctl {
    /// `None` when root may not write it (no CAP_SYS_RESOURCE, as in some VMs).
    fn try_set(path: &'static str, value: &str) -> Option<Sysctl> {
        let old = std::fs::read_to_string(path).unwrap();
        std::fs::write(path, value).ok()?;
        Some(Sysctl { path, old })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        std::fs::write(self.path, self.old.trim()).expect("cannot restore the sysctl");
    }
}

#[test]
fn disabled_user_namespaces_are_a_clear_error() {
    const LIMIT: &str = "/proc/sys/user/max_user_namespaces";
    let dir = util::scratch_dir("sandbox-nouserns");
    let root = busybox_root(dir.path(), Who::User);
    let args = |cmd: &mut Command| {
        cmd.args(["__internal", "run", "--root"])
            .arg(&root)
            .args(["--", "/bin/sh", "-c", "true"]);
    };
    let out = {
        let _exclusive = USERNS.write().unwrap_or_else(|e| e.into_inner());
        match Sysctl::try_set(LIMIT, "0") {
            Some(_restored_on_drop) => {
                let mut cmd = gib_as(Who::User);
                args(&mut cmd);
                output(&mut cmd)
            }
            None => {
                // The limit is per user namespace: set it to 0 in a namespace of our own
                // (where we hold CAP_SYS_RESOURCE) and run gib there; the machine is untouched.
                let unshare = util::require_tool("unshare");
                let mut cmd = util::as_test_user(&unshare);
                cmd.env("NO_COLOR", "1")
                    .args(["--user", "--map-root-user", "/bin/sh", "-c"])
                    .arg(format!("echo 0 > {LIMIT} && exec \"$0\" \"$@\""))
                    .arg(util::gib_bin());
                args(&mut cmd);
                output(&mut cmd)
            }
        }
    };
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("user namespaces are disabled"), "{err}");
    assert!(err.contains("max_user_namespaces is 0"), "{err}");
    assert!(err.contains("hint: "), "{err}");
    assert_ne!(
        std::fs::read_to_string(LIMIT).unwrap().trim(),
        "0",
        "not restored"
    );
}

#[test]
fn extra_binds_and_overlays_are_mounted_and_mount_failures_name_the_mount() {
    for who in EVERYONE {
        let dir = util::scratch_dir("sandbox-extra");
        let root = busybox_root(dir.path(), who);
        for sub in ["repo", "lower", "upper", "work"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("repo/ebuild"), "x").unwrap();
        std::fs::write(dir.path().join("lower/old"), "old").unwrap();
        std::fs::write(dir.path().join("lower/gone"), "gone").unwrap();
        give_to(who, dir.path());
        let d = dir.path().display();
        let ro_bind = format!("{d}/repo:/var/db/repos/gentoo");
        let overlay = format!("/staging:{d}/lower:{d}/upper:{d}/work");
        let out = run_script(
            who,
            &root,
            &["--ro-bind", &ro_bind, "--overlay", &overlay],
            r#"
                cat /var/db/repos/gentoo/ebuild && echo
                touch /var/db/repos/gentoo/new 2>/dev/null && echo repo-rw || echo repo-ro
                cat /staging/old && echo
                echo new > /staging/new && rm /staging/gone && echo overlay-ok
            "#,
        );
        util::assert_success(&Command::new("gib"), &out);
        assert_eq!(
            stdout(&out).lines().collect::<Vec<_>>(),
            ["x", "repo-ro", "old", "overlay-ok"],
            "{who:?}: {}",
            stderr(&out)
        );
        // The lower is untouched; the change is in the upper (a whiteout for the removal).
        assert!(dir.path().join("lower/gone").exists());
        assert!(dir.path().join("upper/new").exists());
        assert!(std::fs::symlink_metadata(dir.path().join("upper/gone")).is_ok());

        let missing = format!("{d}/missing:/mnt/x");
        let out = run_script(who, &root, &["--bind", &missing], "true");
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot bind {d}/missing at /mnt/x")),
            "{who:?}: {err}"
        );
        let bad_overlay = format!("/staging:{d}/nolower:{d}/upper:{d}/work");
        let out = run_script(who, &root, &["--overlay", &bad_overlay], "true");
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("cannot mount an overlay at /staging"),
            "{who:?}: {err}"
        );
        assert!(
            err.contains("ENOENT"),
            "{who:?}: the errno is missing: {err}"
        );
    }
}
