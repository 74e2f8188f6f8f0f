//! The rootless sandbox: user, mount, pid, uts and ipc (and, with [`Network::None`], net)
//! namespaces entered by gib itself, with a builder root pivoted into and the mounts a build
//! needs. The only module with unsafe code and raw syscalls. Knows nothing of OCI or Gentoo.
//!
//! How it runs (see `helper` for the other side):
//! 1. [`spawn`] re-executes `/proc/self/exe` as a helper (a fresh, single-threaded process:
//!    `unshare(CLONE_NEWUSER)` fails with EINVAL in a threaded one) with two pipes;
//! 2. the helper unshares the namespaces and says so; gib writes its id maps (newuidmap and
//!    newgidmap, or /proc as root) and acks;
//! 3. the helper becomes root inside, forks PID 1 of the new pid namespace, which performs
//!    the mounts (a [`mounts::MountOp`] list), pivots into the root, and runs the command as
//!    its child, reaping orphans until it exits;
//! 4. PID 1 reports the command's exit (code or signal) over the pipe; [`SandboxChild::wait`]
//!    returns it. gib dying kills the helper, which kills PID 1, which empties the pid
//!    namespace (PR_SET_PDEATHSIG); the mounts die with the mount namespace.
//!
//! A spec with `root: None` only enters the namespaces (no mounts, no pivot): used to unpack
//! tarballs and read trees back with the ids as the sandbox sees them.
//!
//! Running emerge in a builder root, its output in a log (what `gib build` will do):
//!
//! ```text
//! let scratch = OverlayScratch::create(&cache.dir("images")?)?;   // never touch the stage3
//! let mut env = sandbox::default_env();
//! env.push(("FEATURES".into(), "-sandbox -usersandbox".into()));
//! if sandbox::id_mode_warned(printer)?.is_single() {                // nothing can be 250
//!     env.push(("PORTAGE_USERNAME".into(), "root".into()));
//!     env.push(("PORTAGE_GRPNAME".into(), "root".into()));
//! }
//! let spec = SandboxSpec {
//!     root: Some(RootFs::Overlay { lowers: vec![stage3.path], upper: scratch.upper(), work: scratch.work() }),
//!     mounts: stage3::cache_mounts(&cache)?,                          // + repositories read-only
//!     network: Network::Host, hostname: "gib-build".into(),
//!     command: vec!["emerge".into(), "--info".into()], env, cwd: "/".into(), interactive: false,
//!     user: None,
//! };
//! let exit = sandbox::run(&spec, SandboxStdio::log_file(&File::create(log)?)?)?;
//! scratch.remove()?;
//! ```

pub mod binfmt;
mod confine;
mod credentials;
pub mod helper;
mod idmap;
pub mod job;
mod mounts;
mod protocol;
pub mod safe_fs;
mod scratch;

use std::ffi::OsString;
use std::fs::File;
use std::io::BufReader;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

pub use idmap::{IdMode, MapLine, check_unprivileged_userns};
#[cfg(test)]
pub use idmap::{IdRange, RangeSource};
pub use scratch::{OverlayScratch, remove_tree, retire_tree};

use crate::printer::{Hint, Printer, UserError};
use protocol::{ToHelper, ToParent};

/// What to run in the sandbox, and on which root with which mounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The builder root; `None`: enter the namespaces only, on the host's filesystem.
    pub root: Option<RootFs>,
    /// Mounts after the standard ones (/proc, /dev, /tmp, /run, /sys, resolv.conf).
    pub mounts: Vec<ExtraMount>,
    pub network: Network,
    pub hostname: String,
    /// The program (looked up on the PATH of `env` when it has no `/`) and its arguments.
    pub command: Vec<OsString>,
    /// The command's whole environment: nothing is inherited (see [`default_env`]).
    pub env: Vec<(OsString, OsString)>,
    /// The command's working directory (inside the root).
    pub cwd: PathBuf,
    /// An interactive command (a shell): gib ignores Ctrl-C while it runs, as the command
    /// shares its terminal and handles it.
    pub interactive: bool,
    /// Run the command as this `user[:group]` of the root's own `/etc/passwd` and
    /// `/etc/group` (names or ids; `HOME` from passwd unless `env` sets it) instead of root.
    /// Needs a root and more than a single mapped id.
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootFs {
    /// A host directory, used (and modified) in place.
    Dir(PathBuf),
    /// An overlay: `lowers` (topmost first) stay untouched, changes go to `upper`. `work` is
    /// an empty directory on the filesystem of `upper`.
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
}

/// A mount inside the root; `target` is a path inside the sandbox, created when missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtraMount {
    /// A host directory or file (shared caches read-write, repositories read-only).
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
    },
    /// An overlay (e.g. /staging over the parent image's tree).
    Overlay {
        target: PathBuf,
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    Tmpfs {
        target: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Network {
    /// The host's network (emerge fetches sources), with the host's /etc/resolv.conf.
    #[default]
    Host,
    /// A new network namespace with only the loopback interface, up.
    None,
}

/// gib's own executable, for commands that run gib's hidden helpers in a sandbox. The
/// sandboxed command is forked from the helper, itself gib, so `/proc/self/exe` is gib there
/// too — and stays valid when the file was replaced or deleted during a long build, where the
/// path from `current_exe` would not.
pub const GIB_EXE: &str = "/proc/self/exe";

impl SandboxSpec {
    /// Run `command` in the namespaces only: no root change, no mounts, no network, the
    /// default environment. For gib's own helpers that must see files with the sandbox's
    /// owners (unpacking, reading trees back, removing them).
    pub fn in_namespace(hostname: &str, command: Vec<OsString>) -> SandboxSpec {
        SandboxSpec {
            root: None,
            mounts: Vec::new(),
            network: Network::None,
            hostname: hostname.into(),
            command,
            env: default_env(),
            cwd: "/".into(),
            interactive: false,
            user: None,
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }

    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn code(&self) -> i32 {
        match *self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => {
                let name = nix::sys::signal::Signal::try_from(signal)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| signal.to_string());
                write!(f, "signal {name}")
            }
        }
    }
}

/// Where the command's standard streams go (`Stdio::from(file)` for a log file).
pub struct SandboxStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl SandboxStdio {
    /// The terminal of gib (for `gib shell`).
    pub fn inherit() -> SandboxStdio {
        SandboxStdio {
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
        }
    }

    /// Both output streams appended to one log file, no input (for emerge).
    pub fn log_file(log: &File) -> Result<SandboxStdio> {
        Ok(SandboxStdio {
            stdin: Stdio::null(),
            stdout: Stdio::from(log.try_clone().context("cannot duplicate the log file")?),
            stderr: Stdio::from(log.try_clone().context("cannot duplicate the log file")?),
        })
    }

    /// Both output streams into one pipe, returned for reading, no input: the command's
    /// order of lines is kept, and a full stderr pipe can never stall it while the caller
    /// reads stdout.
    pub fn one_pipe() -> Result<(SandboxStdio, std::io::PipeReader)> {
        let (output, writer) = std::io::pipe().context("cannot create a pipe")?;
        let stdio = SandboxStdio {
            stdin: Stdio::null(),
            stdout: Stdio::from(writer.try_clone().context("cannot duplicate a pipe")?),
            stderr: Stdio::from(writer),
        };
        Ok((stdio, output))
    }
}

/// A running sandbox. Dropping it without [`SandboxChild::wait`] leaves the helper to the
/// kernel (it is killed when gib exits).
pub struct SandboxChild {
    helper: Child,
    events: BufReader<File>,
    command: String,
    interactive: bool,
}

/// The helpers of the sandboxes running now (their pids), so [`stop_all`] can end them.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Set by [`stop_all`]: no sandbox starts any more in this process.
static STOPPED: AtomicBool = AtomicBool::new(false);

fn running() -> std::sync::MutexGuard<'static, Vec<u32>> {
    RUNNING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// End every sandbox of this process and start no more (`gib build --fail-fast` after a
/// failure). Killing a helper kills its PID 1 and so its whole pid namespace; its mounts go
/// with its mount namespace, so nothing is left behind. The builds waiting on them fail,
/// and clean up as any failed build does.
pub fn stop_all() {
    let helpers = running();
    STOPPED.store(true, Ordering::SeqCst);
    for pid in helpers.iter() {
        // A helper still listed has not been reaped (`wait` unlists it first), so its pid
        // cannot have been reused.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(*pid).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// Whether [`stop_all`] was called.
pub fn stopped() -> bool {
    STOPPED.load(Ordering::SeqCst)
}

/// The environment a command gets when the caller has no better idea.
pub fn default_env() -> Vec<(OsString, OsString)> {
    let term = std::env::var_os("TERM").unwrap_or_else(|| "dumb".into());
    vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOME".into(), "/root".into()),
        ("USER".into(), "root".into()),
        ("TERM".into(), term),
    ]
}

/// How ids map into the sandbox for this process (decided once).
pub fn id_mode() -> Result<IdMode> {
    static MODE: OnceLock<IdMode> = OnceLock::new();
    if let Some(mode) = MODE.get() {
        return Ok(mode.clone());
    }
    let mode = idmap::detect()?;
    Ok(MODE.get_or_init(|| mode).clone())
}

/// [`id_mode`], warning once when only a single id can be mapped.
pub fn id_mode_warned(printer: &Printer) -> Result<IdMode> {
    let mode = id_mode()?;
    if mode.is_single() && nix::unistd::getuid().is_root() {
        printer.warn_once(
            "gib runs as root of a user namespace (a container), not as the host's root: the \
             sandbox maps only that root, so files cannot keep other owners and Portage runs as \
             root",
        );
    } else if mode.is_single() {
        printer.warn_once(
            "no subordinate id range for this user in /etc/subuid and /etc/subgid: the sandbox maps \
             only your own id, so files cannot keep other owners and Portage runs as root \
             (add a range with `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 USER`)",
        );
    }
    Ok(mode)
}

/// gib run as root: its sandbox runs as other host ids (see `idmap`), which enter what gib
/// makes on the host (the cache's entries, logs and scratch dirs) through the permissions
/// of others. Under a strict umask (027, say) they would find every such directory shut, so
/// from here on gib makes them readable and enterable by others, still never writable
/// (umask `022` at most); the cache root itself stays as private as its parents make it.
/// The outputs keep the user's own umask (`output::user_umask`, read before this).
pub fn let_the_sandbox_in() {
    if nix::unistd::geteuid().is_root() {
        let current = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        nix::sys::stat::umask(current & nix::sys::stat::Mode::from_bits_truncate(0o022));
    }
}

/// Give a directory gib made on the host to root inside the sandbox, so the sandbox can
/// write in it: as root, the sandbox's root is the first id of its reserved range, not the
/// host's root, whose files it cannot change. Only directories of the host's root are
/// handed over (never anybody else's); a no-op rootless, where gib's user is root inside.
pub fn hand_over(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Some((uid, gid)) = id_mode()?.host_root() else {
        return Ok(());
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Not there: whatever needed it says so (a bind's source, say).
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("cannot stat {}", path.display())),
    };
    if meta.is_dir() && meta.uid() == 0 {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).with_context(|| {
            format!(
                "cannot give {} to the sandbox's root ({uid}:{gid})",
                path.display()
            )
        })?;
    }
    Ok(())
}

/// Refuse a cached tree of the host's root under a root gib's sandbox: an older gib, whose
/// sandbox was the host's root, unpacked it; the sandbox could not change a file of it.
pub fn check_not_hosts_root(tree: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if id_mode()?.host_root().is_none() {
        return Ok(());
    }
    let meta = std::fs::symlink_metadata(tree)
        .with_context(|| format!("cannot stat {}", tree.display()))?;
    if meta.uid() == 0 {
        return Err(UserError::new(format!(
            "{} belongs to the host's root: an older gib made it with the host's root as \
                 the sandbox's, which this one never is",
            tree.display()
        ))
        .hint("start the cache afresh: gib clean --all"));
    }
    Ok(())
}

/// Shift the owners of a tree gib copied for the sandbox (a root gib's copy of a `rootfs:`
/// tree, which holds the host's root's files) into the sandbox's range, so root's files are
/// root's inside and the sandbox can copy them up: id `n` below the range's size becomes the
/// range's `n`th, other ids stay. Modes and file capabilities, which chown clears, are put
/// back. A no-op rootless. The tree must be gib's own copy: its symlinks are not followed.
pub fn shift_tree_into_range(tree: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let IdMode::Reserved { uids, gids, .. } = id_mode()? else {
        return Ok(());
    };
    let shift = |id: u32, range: &idmap::IdRange| {
        if id < range.count {
            range.start + id
        } else {
            id
        }
    };
    for entry in walkdir::WalkDir::new(tree).follow_links(false) {
        let entry = entry.with_context(|| format!("cannot walk {}", tree.display()))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?;
        let (uid, gid) = (shift(meta.uid(), &uids), shift(meta.gid(), &gids));
        if (uid, gid) == (meta.uid(), meta.gid()) {
            continue;
        }
        let caps = if meta.file_type().is_file() {
            xattr::get(path, "security.capability")
                .with_context(|| format!("cannot read the capabilities of {}", path.display()))?
        } else {
            None
        };
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot change the owner of {}", path.display()))?;
        if !meta.file_type().is_symlink() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
        if let Some(caps) = caps {
            xattr::set(path, "security.capability", &caps)
                .with_context(|| format!("cannot set the capabilities of {}", path.display()))?;
        }
    }
    Ok(())
}

/// [`hand_over`] every directory `spec` lets the sandbox write in: its root, the uppers and
/// work dirs of its overlays, its read-write binds.
fn hand_over_writable(spec: &SandboxSpec) -> Result<()> {
    let mut dirs: Vec<&std::path::Path> = Vec::new();
    match &spec.root {
        Some(RootFs::Dir(dir)) => dirs.push(dir),
        Some(RootFs::Overlay { upper, work, .. }) => dirs.extend([upper.as_path(), work]),
        None => {}
    }
    for mount in &spec.mounts {
        match mount {
            ExtraMount::Bind {
                source,
                readonly: false,
                ..
            } => dirs.push(source),
            ExtraMount::Overlay { upper, work, .. } => dirs.extend([upper.as_path(), work]),
            _ => {}
        }
    }
    dirs.into_iter().try_for_each(hand_over)
}

/// Start `spec.command` in a new sandbox. Returns once the namespaces exist and the id maps
/// are written; mount and exec failures are reported by [`SandboxChild::wait`].
///
/// Call it from a thread that lives until the sandbox ends (the one that waits): the kernel's
/// parent-death signal, which tears the sandbox down when gib dies, fires when the *thread*
/// that started the helper exits (prctl(2), PR_SET_PDEATHSIG).
pub fn spawn(spec: &SandboxSpec, stdio: SandboxStdio) -> Result<SandboxChild> {
    let command = spec
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if spec.command.is_empty() {
        bail!("the sandbox needs a command to run");
    }
    idmap::check_userns_enabled()?;
    let mode = id_mode()?;
    hand_over_writable(spec)?;
    if matches!(mode, IdMode::Full { .. }) {
        // Fail before starting anything when the map tools are missing.
        idmap::find_tool("newuidmap")?;
        idmap::find_tool("newgidmap")?;
    }

    let (ctl_read, mut ctl_write) = std::io::pipe().context("cannot create a pipe")?;
    let (events_read, events_write) = std::io::pipe().context("cannot create a pipe")?;
    let fds = [ctl_read.as_raw_fd(), events_write.as_raw_fd()];
    let mut helper = Command::new("/proc/self/exe");
    helper
        .arg0("gib-sandbox")
        .env(helper::HELPER_ENV, format!("{},{}", fds[0], fds[1]))
        .stdin(stdio.stdin)
        .stdout(stdio.stdout)
        .stderr(stdio.stderr);
    // SAFETY: between fork and exec only async-signal-safe calls (fcntl, prctl).
    unsafe {
        helper.pre_exec(move || {
            // std creates pipes close-on-exec; the helper's two must survive the exec.
            for fd in fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // prctl(2) PR_SET_PDEATHSIG: gib dying (Ctrl-C, SIGKILL) kills the helper, which
            // takes PID 1 and so the whole pid namespace with it.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            Ok(())
        });
    }
    let mut helper = helper
        .spawn()
        .context("cannot start the sandbox helper (/proc/self/exe)")?;
    {
        let mut helpers = running();
        if stopped() {
            drop(helpers);
            let _ = helper.kill();
            let _ = helper.wait();
            bail!("the build was stopped: `{command}` was not started");
        }
        helpers.push(helper.id());
    }
    drop(ctl_read);
    drop(events_write);
    let mut events = BufReader::new(File::from(std::os::fd::OwnedFd::from(events_read)));

    let started = (|| -> Result<()> {
        protocol::send(
            &mut ctl_write,
            &ToHelper::Start {
                spec: Box::new(spec.clone()),
                id_mode: mode.clone(),
            },
        )?;
        match protocol::receive::<ToParent>(&mut events)? {
            Some(ToParent::Unshared) => {}
            Some(ToParent::Failed { message, hint }) => return Err(failure(message, hint)),
            other => bail!("the sandbox helper said {other:?} instead of unsharing"),
        }
        idmap::write_maps(&mode, helper.id())?;
        protocol::send(&mut ctl_write, &ToHelper::Mapped)
    })();
    if let Err(err) = started {
        unlist(helper.id());
        let _ = helper.kill();
        let _ = helper.wait();
        return Err(err.context(format!("cannot start a sandbox for `{command}`")));
    }
    Ok(SandboxChild {
        helper,
        events,
        command,
        interactive: spec.interactive,
    })
}

/// Take a helper off the running list, before it is reaped.
fn unlist(pid: u32) {
    running().retain(|p| *p != pid);
}

/// Run `spec` to the end.
pub fn run(spec: &SandboxSpec, stdio: SandboxStdio) -> Result<Exit> {
    spawn(spec, stdio)?.wait()
}

fn failure(message: String, hint: Option<String>) -> anyhow::Error {
    match hint {
        Some(hint) => UserError::new(message).hint(hint),
        None => anyhow!(message),
    }
}

impl SandboxChild {
    /// Wait for the command; its exit code or signal, or why it could not run.
    pub fn wait(mut self) -> Result<Exit> {
        let _interrupts = self.interactive.then(IgnoreInterrupts::new);
        let mut exit = None;
        let mut failed = None;
        loop {
            match protocol::receive::<ToParent>(&mut self.events) {
                Ok(Some(ToParent::Exited(e))) => exit = Some(e),
                Ok(Some(ToParent::Failed { message, hint })) => {
                    failed.get_or_insert((message, hint));
                }
                Ok(Some(ToParent::Unshared)) => {}
                Ok(None) => break,
                Err(err) => {
                    failed.get_or_insert((format!("{err:#}"), None));
                    break;
                }
            }
        }
        unlist(self.helper.id());
        let status = self
            .helper
            .wait()
            .context("cannot wait for the sandbox helper")?;
        if let Some((message, hint)) = failed {
            return Err(failure(message, hint)
                .context(format!("the sandbox could not run `{}`", self.command)));
        }
        exit.ok_or_else(|| {
            anyhow!(
                "the sandbox helper for `{}` ended ({status}) without reporting how the command ended",
                self.command
            )
        })
    }
}

/// SIGINT and SIGQUIT ignored while an interactive command owns the terminal (as su and
/// sudo do); restored on drop.
struct IgnoreInterrupts {
    previous: Vec<(nix::sys::signal::Signal, nix::sys::signal::SigHandler)>,
}

impl IgnoreInterrupts {
    fn new() -> IgnoreInterrupts {
        use nix::sys::signal::{SigHandler, Signal, signal};
        let mut previous = Vec::new();
        for sig in [Signal::SIGINT, Signal::SIGQUIT] {
            // SAFETY: installing SIG_IGN runs no code in signal context.
            if let Ok(old) = unsafe { signal(sig, SigHandler::SigIgn) } {
                previous.push((sig, old));
            }
        }
        IgnoreInterrupts { previous }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        for (sig, handler) in self.previous.drain(..) {
            // SAFETY: restores the handler that was installed before.
            let _ = unsafe { nix::sys::signal::signal(sig, handler) };
        }
    }
}
