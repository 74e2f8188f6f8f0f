//! The re-executed helper process that creates the namespaces, and PID 1 of the new pid
//! namespace that sets up the root and runs the command. gib's side is in `super::spawn`.
//!
//! The helper is `/proc/self/exe` started with `GIB_SANDBOX_HELPER=<ctl fd>,<events fd>`:
//! `main` calls [`run_if_helper`] before anything can start a thread.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::BufReader;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{SigHandler, Signal, signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Uid, fork};

use super::protocol::{self, ToHelper, ToParent};
use super::{Exit, IdMode, Network, SandboxSpec, credentials, mounts};
use crate::printer::Hint;

/// The environment variable that marks the helper and names its two pipe fds.
pub const HELPER_ENV: &str = "GIB_SANDBOX_HELPER";

/// When this process was started as gib's sandbox helper, run it and return its exit code.
pub fn run_if_helper() -> Option<ExitCode> {
    let fds = std::env::var(HELPER_ENV).ok()?;
    // SAFETY: called first thing in main, while the process has a single thread.
    unsafe { std::env::remove_var(HELPER_ENV) };
    let (ctl, events) = match parse_fds(&fds) {
        Some(fds) => fds,
        None => {
            let err = anyhow::anyhow!("{HELPER_ENV}={fds:?} is not two file descriptors");
            return Some(crate::printer::Printer::new(false).fail(&err));
        }
    };
    for fd in [ctl, events] {
        // Close-on-exec again, so the command never inherits the pipes.
        // SAFETY: plain fcntl on an fd number we were handed.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: gib's parent passed these two fds for our exclusive use.
    let mut ctl = BufReader::new(unsafe { File::from_raw_fd(ctl) });
    let mut events = unsafe { File::from_raw_fd(events) };
    Some(match helper(&mut ctl, &mut events) {
        Ok(code) => code,
        Err(err) => {
            report(&mut events, &err);
            ExitCode::from(1)
        }
    })
}

fn parse_fds(text: &str) -> Option<(RawFd, RawFd)> {
    let (a, b) = text.split_once(',')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn report(events: &mut File, err: &anyhow::Error) {
    let hint = crate::printer::hints(err).into_iter().next();
    let _ = protocol::send(
        events,
        &ToParent::Failed {
            message: format!("{err:#}"),
            hint,
        },
    );
}

fn helper(ctl: &mut BufReader<File>, events: &mut File) -> Result<ExitCode> {
    let parent = nix::unistd::getppid();
    let Some(ToHelper::Start { spec, id_mode }) = protocol::receive(ctl)? else {
        bail!("the sandbox helper expected a start message");
    };
    let mut flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    // unshare(2): with CLONE_NEWUSER the user namespace is created first, so the others are
    // owned by it and need no privilege on the host.
    unshare(flags).map_err(explain_unshare)?;
    protocol::send(events, &ToParent::Unshared)?;
    match protocol::receive::<ToHelper>(ctl)? {
        Some(ToHelper::Mapped) => {}
        // gib gave up (it reports why); leave quietly.
        _ => return Ok(ExitCode::from(1)),
    }
    become_root(&id_mode)?;
    // prctl(2): a change of the process's host uid (root's reserved range) made it
    // undumpable, and the /proc files of an undumpable process belong to the host's root,
    // which the sandbox cannot touch; PID 1 must write the command's id maps there. As
    // dumpable, the process still cannot be traced from the command's inner namespace.
    nix::sys::prctl::set_dumpable(true).context("cannot make the sandbox helper dumpable")?;
    // prctl(2): the parent-death signal is cleared when credentials change, so set it after
    // setresuid; then make sure gib did not die before it was set.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent {
        return Ok(ExitCode::from(1));
    }
    ignore_interrupts();
    if spec.network == Network::None {
        loopback_up().context("cannot bring up the loopback interface")?;
    }
    let plan = mounts::plan(&spec, id_mode.maps_gid(5));

    // SAFETY: the helper is single-threaded (a fresh exec), so fork is sound.
    match unsafe { fork() }.context("cannot fork PID 1 of the sandbox")? {
        ForkResult::Child => {
            let code = match pid1(&spec, &plan, events) {
                Ok(exit) => {
                    let _ = protocol::send(events, &ToParent::Exited(exit));
                    0
                }
                Err(err) => {
                    report(events, &err);
                    1
                }
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(ExitCode::from(code as u8)),
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    return Ok(ExitCode::from(128u8.wrapping_add(sig as u8)));
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(err) => return Err(err).context("cannot wait for PID 1 of the sandbox"),
            }
        },
    }
}

fn explain_unshare(errno: Errno) -> anyhow::Error {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let (message, hint) = match errno {
        Errno::EPERM => (
            "cannot create a user namespace: not permitted (EPERM)".to_string(),
            "user namespaces are blocked here: by a container's seccomp profile, \
             kernel.unprivileged_userns_clone=0, or AppArmor's restrict_unprivileged_userns"
                .to_string(),
        ),
        Errno::ENOSPC | Errno::EUSERS => (
            format!(
                "cannot create a user namespace: the limit is reached ({errno}); \
                 /proc/sys/user/max_user_namespaces is {max}"
            ),
            "user namespaces are disabled or exhausted; as root: sysctl -w user.max_user_namespaces=15000"
                .to_string(),
        ),
        Errno::EINVAL => {
            return anyhow::anyhow!(
                "cannot create a user namespace (EINVAL): the sandbox helper is multi-threaded, a bug in gib"
            );
        }
        other => return anyhow::anyhow!("cannot create the sandbox namespaces: {other}"),
    };
    anyhow::anyhow!(message).hint(hint)
}

fn become_root(id_mode: &IdMode) -> Result<()> {
    let root_gid = Gid::from_raw(0);
    let root_uid = Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid).context("setresgid(0) failed")?;
    if !id_mode.is_single() {
        // Drop the host's supplementary groups (unmapped, shown as nogroup); denied and
        // unnecessary with a single-id map.
        nix::unistd::setgroups(&[]).context("setgroups([]) failed")?;
    }
    nix::unistd::setresuid(root_uid, root_uid, root_uid).context("setresuid(0) failed")?;
    Ok(())
}

fn ignore_interrupts() {
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: SIG_IGN runs no code. Ctrl-C goes to the command (same process group); the
        // helper and PID 1 must outlive it to report its exit. A dying gib still kills them.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}

/// PID 1 of the new pid namespace: mounts, pivot, then the command as its child.
fn pid1(spec: &SandboxSpec, plan: &[mounts::MountOp], events: &mut File) -> Result<Exit> {
    // If the helper dies, PID 1 dies, and with it every process of the namespace
    // (pid_namespaces(7)).
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    nix::unistd::sethostname(&spec.hostname)
        .with_context(|| format!("cannot set the hostname {:?}", spec.hostname))?;
    mounts::execute(plan)?;
    let run_as = match &spec.user {
        Some(user) => {
            Some(image_user(user).with_context(|| format!("cannot run the command as `{user}`"))?)
        }
        None => None,
    };
    let mut env = spec.env.clone();
    if let Some(run_as) = &run_as
        && !env.iter().any(|(k, _)| k == "HOME")
    {
        env.push(("HOME".into(), run_as.home.clone().into()));
    }
    let program = find_program(&spec.command[0], &env);
    let argv = cstrings(spec.command.iter().map(OsString::as_os_str))?;
    let envp = cstrings(env.iter().map(|(k, v)| {
        let mut kv = k.clone();
        kv.push("=");
        kv.push(v);
        kv
    }))?;
    let program_c = CString::new(program.as_os_str().as_bytes())
        .context("the program path contains a NUL byte")?;

    // With a root, the command runs in an inner user namespace that locks the mounts
    // (see `confine`); PID 1 writes its maps, as only it may.
    let nest = spec.root.is_some();
    let (ready_read, ready_write) = std::io::pipe().context("cannot create a pipe")?;
    let (mapped_read, mapped_write) = std::io::pipe().context("cannot create a pipe")?;
    // SAFETY: PID 1 is single-threaded (forked from the single-threaded helper).
    let command = match unsafe { fork() }.context("cannot fork the command")? {
        ForkResult::Child => {
            drop((ready_read, mapped_write));
            let err = match confine_command(nest, ready_write, mapped_read) {
                Ok(()) => match run_as.as_ref().map(switch_user).transpose() {
                    Ok(_) => exec_command(spec, &program_c, &argv, &envp)
                        .context(format!("cannot execute {}", program.display())),
                    Err(err) => err,
                },
                Err(err) => err.context("cannot confine the command"),
            };
            report(events, &err);
            // SAFETY: leave the forked child without running PID 1's destructors.
            unsafe { libc::_exit(127) };
        }
        ForkResult::Parent { child } => child,
    };
    drop((ready_write, mapped_read));
    if nest {
        map_inner_namespace(child_pid(command), ready_read, mapped_write)?;
    }
    // As init, PID 1 reaps every orphan; it reports when the command itself ends (the
    // remaining processes die with the namespace when PID 1 exits).
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => return Ok(Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                return Ok(Exit::Signal(sig as i32));
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(err) => return Err(err).context("cannot wait for the command"),
        }
    }
}

fn child_pid(pid: nix::unistd::Pid) -> u32 {
    pid.as_raw() as u32
}

/// The command's side: enter the inner user and mount namespaces (when `nest`), wait for
/// PID 1 to map them, then keep only the allowed capabilities.
fn confine_command(
    nest: bool,
    mut ready: std::io::PipeWriter,
    mut mapped: std::io::PipeReader,
) -> Result<()> {
    use std::io::{Read, Write};
    if nest {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
            .context("cannot create the inner user namespace")?;
        ready.write_all(b"u").context("cannot talk to PID 1")?;
        let mut ack = [0u8; 1];
        mapped
            .read_exact(&mut ack)
            .context("PID 1 did not map the inner user namespace")?;
    }
    super::confine::restrict_capabilities()
}

/// PID 1's side: once the command has unshared, give its user namespace every id of ours,
/// each to itself (user_namespaces(7): the writer needs CAP_SETUID in the parent namespace).
fn map_inner_namespace(
    pid: u32,
    mut ready: std::io::PipeReader,
    mut mapped: std::io::PipeWriter,
) -> Result<()> {
    use std::io::{Read, Write};
    let mut byte = [0u8; 1];
    if ready.read_exact(&mut byte).is_err() {
        // The command failed before unsharing; it reports why.
        return Ok(());
    }
    for map in ["uid_map", "gid_map"] {
        let own = format!("/proc/self/{map}");
        let outer = std::fs::read_to_string(&own).with_context(|| format!("cannot read {own}"))?;
        let text = super::confine::nested_map(&outer)?;
        let path = format!("/proc/{pid}/{map}");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .with_context(|| format!("cannot write {:?} to {path}", text.trim()))?;
    }
    mapped.write_all(b"m").context("cannot talk to the command")
}

/// `user` resolved against the root's own account files (after the pivot: the image's).
fn image_user(user: &str) -> Result<credentials::RunAs> {
    credentials::resolve(
        user,
        &account_file("/etc/passwd")?,
        &account_file("/etc/group")?,
    )
}

/// An account file of the image, empty when missing. The image may be hostile: a fifo or a
/// device there must not stall PID 1, nor a huge file fill its memory.
fn account_file(path: &str) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const MAX: u64 = 16 << 20;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read the image's {path}")),
    };
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read the image's {path}"))?;
    if !meta.is_file() || meta.len() > MAX {
        bail!("the image's {path} is not a regular file of at most {MAX} bytes");
    }
    let mut text = String::new();
    file.take(MAX)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read the image's {path}"))?;
    Ok(text)
}

/// Become `run_as`: groups first, while the command may still change them. Leaving uid 0
/// clears every capability (capabilities(7)), as for a non-root user of a container.
fn switch_user(run_as: &credentials::RunAs) -> Result<()> {
    let not_mapped = |what: &str, id: u32, err: Errno| {
        let hint = if err == Errno::EINVAL {
            " (an id the sandbox does not map)"
        } else {
            ""
        };
        anyhow::anyhow!("cannot switch to {what} {id}{hint}: {err}")
    };
    let groups: Vec<Gid> = run_as.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|err| {
        not_mapped(
            "the groups",
            run_as.groups.first().copied().unwrap_or(0),
            err,
        )
    })?;
    let gid = Gid::from_raw(run_as.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|err| not_mapped("gid", run_as.gid, err))?;
    let uid = Uid::from_raw(run_as.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|err| not_mapped("uid", run_as.uid, err))?;
    Ok(())
}

fn exec_command(
    spec: &SandboxSpec,
    program: &CString,
    argv: &[CString],
    envp: &[CString],
) -> anyhow::Error {
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: restoring the default; ignored signals would stay ignored across exec.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    if let Err(err) = nix::unistd::chdir(&spec.cwd) {
        return anyhow::anyhow!(
            "cannot change to the directory {}: {err}",
            spec.cwd.display()
        );
    }
    match nix::unistd::execve(program, argv, envp) {
        Err(err) => err.into(),
        Ok(never) => match never {},
    }
}

fn cstrings<'a, I, S>(items: I) -> Result<Vec<CString>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr> + 'a,
{
    items
        .into_iter()
        .map(|s| {
            CString::new(s.as_ref().as_bytes())
                .with_context(|| format!("{:?} contains a NUL byte", s.as_ref()))
        })
        .collect()
}

/// The program as execve needs it: looked up on the command's own PATH (not gib's).
fn find_program(name: &OsStr, env: &[(OsString, OsString)]) -> PathBuf {
    if name.as_bytes().contains(&b'/') {
        return PathBuf::from(name);
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Set IFF_UP on `lo` in the new network namespace (netdevice(7), SIOCSIFFLAGS).
fn loopback_up() -> Result<()> {
    // SAFETY: a datagram socket only used for the ioctls below, closed on every path.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: the fd was just created and is owned here.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(sock) };
    use std::os::fd::AsRawFd;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_fds_parse() {
        assert_eq!(parse_fds("3,4"), Some((3, 4)));
        assert_eq!(parse_fds("3"), None);
        assert_eq!(parse_fds("a,4"), None);
    }

    #[test]
    fn programs_are_found_on_the_commands_path() {
        let env = vec![(OsString::from("PATH"), OsString::from("/nonexistent:/bin"))];
        assert_eq!(
            find_program(OsStr::new("/x/y"), &env),
            PathBuf::from("/x/y")
        );
        assert_eq!(
            find_program(OsStr::new("sh"), &env),
            PathBuf::from("/bin/sh")
        );
    }
}
