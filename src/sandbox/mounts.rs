//! The mounts of the sandbox as data: [`plan`] turns a spec into a list of [`MountOp`]s (a
//! pure function, unit-tested), [`execute`] performs them inside the new mount namespace.
//!
//! Not for: deciding *what* a build needs mounted (callers say so with `ExtraMount`s).

use crate::printer::Hint;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::{ExtraMount, Network, RootFs, SandboxSpec};

/// Host devices bound into the builder's /dev (a user namespace cannot mknod).
pub const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Kernel interfaces hidden from builds, as runc and podman mask them by default.
pub const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Kernel interfaces builds may read but never write, as runc and podman bind them
/// (sysctls, the magic SysRq key, interrupt affinity, bus devices, filesystem tunables).
pub const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// One step of setting up the builder's root. Targets are paths inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// Stop mount events from propagating back to the host.
    MakeRootSlave,
    /// Use host directory `source` as the new root (bound onto itself so it is a mount point).
    BindRoot {
        source: PathBuf,
    },
    /// An overlay as the new root, mounted over its topmost lower dir in our namespace only.
    OverlayRoot {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A fresh procfs of the sandbox's pid namespace; never the host's /proc.
    Proc {
        target: PathBuf,
    },
    /// Hide a kernel interface: `/dev/null` over a file, an empty read-only tmpfs over a
    /// directory. Skipped when this kernel has no such path.
    Mask {
        target: PathBuf,
    },
    /// Bind a path onto itself read-only, with everything under it. Skipped when missing.
    ReadOnly {
        target: PathBuf,
    },
    Tmpfs {
        target: PathBuf,
        mode: u32,
    },
    /// Bind host path `source` (file or directory) at `target`, recursively.
    Bind {
        source: PathBuf,
        target: PathBuf,
        readonly: bool,
    },
    Devpts {
        target: PathBuf,
        tty_gid: bool,
    },
    Overlay {
        target: PathBuf,
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A symlink `link -> points_to` (replacing a non-directory already there).
    Symlink {
        link: PathBuf,
        points_to: PathBuf,
    },
    /// Make the root the new `/` and detach the host's.
    PivotRoot,
}

/// The mounts of `spec`, in order. Empty when the spec has no root (namespaces only).
pub fn plan(spec: &SandboxSpec, tty_gid_mapped: bool) -> Vec<MountOp> {
    let Some(root) = &spec.root else {
        return Vec::new();
    };
    let mut ops = vec![MountOp::MakeRootSlave];
    ops.push(match root {
        RootFs::Dir(dir) => MountOp::BindRoot {
            source: dir.clone(),
        },
        RootFs::Overlay {
            lowers,
            upper,
            work,
        } => MountOp::OverlayRoot {
            lowers: lowers.clone(),
            upper: upper.clone(),
            work: work.clone(),
        },
    });
    ops.push(MountOp::Proc {
        target: "/proc".into(),
    });
    for dev in DEVICES {
        ops.push(MountOp::Bind {
            source: Path::new("/dev").join(dev),
            target: Path::new("/dev").join(dev),
            readonly: false,
        });
    }
    for (link, points_to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        ops.push(MountOp::Symlink {
            link: Path::new("/dev").join(link),
            points_to: points_to.into(),
        });
    }
    ops.push(MountOp::Devpts {
        target: "/dev/pts".into(),
        tty_gid: tty_gid_mapped,
    });
    ops.push(MountOp::Tmpfs {
        target: "/dev/shm".into(),
        mode: 0o1777,
    });
    ops.push(MountOp::Tmpfs {
        target: "/tmp".into(),
        mode: 0o1777,
    });
    ops.push(MountOp::Tmpfs {
        target: "/run".into(),
        mode: 0o755,
    });
    ops.push(MountOp::Bind {
        source: "/sys".into(),
        target: "/sys".into(),
        readonly: true,
    });
    for target in READ_ONLY {
        ops.push(MountOp::ReadOnly {
            target: target.into(),
        });
    }
    for target in MASKED {
        ops.push(MountOp::Mask {
            target: target.into(),
        });
    }
    if spec.network == Network::Host && Path::new("/etc/resolv.conf").exists() {
        ops.push(MountOp::Bind {
            source: "/etc/resolv.conf".into(),
            target: "/etc/resolv.conf".into(),
            readonly: true,
        });
    }
    for extra in &spec.mounts {
        ops.push(match extra {
            ExtraMount::Bind {
                source,
                target,
                readonly,
            } => MountOp::Bind {
                source: source.clone(),
                target: target.clone(),
                readonly: *readonly,
            },
            ExtraMount::Overlay {
                target,
                lowers,
                upper,
                work,
            } => MountOp::Overlay {
                target: target.clone(),
                lowers: lowers.clone(),
                upper: upper.clone(),
                work: work.clone(),
            },
            ExtraMount::Tmpfs { target } => MountOp::Tmpfs {
                target: target.clone(),
                mode: 0o755,
            },
        });
    }
    ops.push(MountOp::PivotRoot);
    ops
}

/// `target` (absolute, inside the sandbox) as a host path under `root`, following symlinks
/// as if `root` were `/`, so an absolute symlink in the root never leads out of it.
pub fn resolve_in_root(root: &Path, target: &Path) -> Result<PathBuf> {
    let mut resolved = PathBuf::new(); // relative to root, no symlinks
    let mut pending: Vec<OsString> = components(target);
    pending.reverse();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        match std::fs::read_link(root.join(&candidate)) {
            Ok(link) => {
                hops += 1;
                if hops > 40 {
                    bail!(
                        "too many symlinks resolving {} in {}",
                        target.display(),
                        root.display()
                    );
                }
                if link.is_absolute() {
                    resolved = PathBuf::new();
                }
                let mut rest = components(&link);
                rest.reverse();
                pending.extend(rest);
            }
            Err(_) => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

fn components(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Escape a path for overlayfs's option string, where `,` and `:` separate values.
pub fn overlay_escape(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, ',' | ':' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub fn overlay_options(lowers: &[PathBuf], upper: &Path, work: &Path) -> String {
    let lowerdir: Vec<String> = lowers.iter().map(|l| overlay_escape(l)).collect();
    // userxattr: the sandbox is always a user namespace, where overlayfs may not use trusted.*
    // xattrs (Documentation/filesystems/overlayfs.rst, "Permission model").
    format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lowerdir.join(":"),
        overlay_escape(upper),
        overlay_escape(work)
    )
}

/// Perform the operations. Runs as PID 1 of the new pid namespace (so procfs shows it).
pub fn execute(ops: &[MountOp]) -> Result<()> {
    let mut root: Option<PathBuf> = None;
    for op in ops {
        execute_one(op, &mut root).with_context(|| describe(op))?;
    }
    Ok(())
}

fn describe(op: &MountOp) -> String {
    match op {
        MountOp::MakeRootSlave => "cannot make / a slave mount".into(),
        MountOp::BindRoot { source } => format!("cannot bind the root {}", source.display()),
        MountOp::OverlayRoot { lowers, upper, .. } => format!(
            "cannot mount the overlay root (lower {}, upper {})",
            lowers
                .iter()
                .map(|l| l.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
            upper.display()
        ),
        MountOp::Proc { target } => format!("cannot mount proc at {}", target.display()),
        MountOp::Mask { target } => format!("cannot mask {}", target.display()),
        MountOp::ReadOnly { target } => {
            format!("cannot make {} read-only", target.display())
        }
        MountOp::Tmpfs { target, .. } => format!("cannot mount a tmpfs at {}", target.display()),
        MountOp::Bind {
            source,
            target,
            readonly,
        } => format!(
            "cannot bind {} at {}{}",
            source.display(),
            target.display(),
            if *readonly { " read-only" } else { "" }
        ),
        MountOp::Devpts { target, .. } => format!("cannot mount devpts at {}", target.display()),
        MountOp::Overlay { target, upper, .. } => format!(
            "cannot mount an overlay at {} (upper {})",
            target.display(),
            upper.display()
        ),
        MountOp::Symlink { link, points_to } => format!(
            "cannot make the symlink {} -> {}",
            link.display(),
            points_to.display()
        ),
        MountOp::PivotRoot => "cannot pivot_root into the builder root".into(),
    }
}

fn execute_one(op: &MountOp, root: &mut Option<PathBuf>) -> Result<()> {
    let in_root = |target: &Path| -> Result<PathBuf> {
        let root = root
            .as_deref()
            .context("mount plan error: a mount before the root")?;
        resolve_in_root(root, target)
    };
    match op {
        MountOp::MakeRootSlave => {
            // mount_namespaces(7): MS_SLAVE|MS_REC so nothing we mount propagates to the host,
            // and pivot_root(2) requires that the root is not shared.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_SLAVE,
                None::<&str>,
            )?;
        }
        MountOp::BindRoot { source } => {
            // pivot_root(2): new_root must be a mount point.
            bind(source, source, true)?;
            *root = Some(source.clone());
        }
        MountOp::OverlayRoot {
            lowers,
            upper,
            work,
        } => {
            let Some(mountpoint) = lowers.first() else {
                bail!("an overlay root needs at least one lower directory");
            };
            // The lower is resolved before the overlay covers it, so mounting over the topmost
            // lower needs no extra directory; the host never sees it (own mount namespace).
            mount(
                Some("overlay"),
                mountpoint,
                Some("overlay"),
                MsFlags::empty(),
                Some(overlay_options(lowers, upper, work).as_str()),
            )?;
            *root = Some(mountpoint.clone());
        }
        MountOp::Proc { target } => {
            let target = in_root(target)?;
            ensure_dir(&target)?;
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            if let Err(errno) = mount(Some("proc"), &target, Some("proc"), flags, None::<&str>) {
                // The kernel refuses a new proc where the host's /proc is partly covered
                // (a container that masks /proc paths). The host's /proc would show every
                // host process to the build: fail instead.
                return Err(anyhow::anyhow!(
                    "the kernel refuses a new /proc for the sandbox ({errno}); gib runs in \
                     a container whose /proc is partly masked, and never shows a build the \
                     host's /proc"
                )
                .hint(
                    "run gib's container with an unmasked /proc (podman: --security-opt \
                     unmask=ALL; docker: --security-opt systempaths=unconfined)",
                ));
            }
        }
        MountOp::Mask { target } => {
            let target = in_root(target)?;
            match std::fs::symlink_metadata(&target) {
                Err(_) => {}
                Ok(meta) if meta.is_dir() => mount(
                    Some("tmpfs"),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY
                        | MsFlags::MS_NOSUID
                        | MsFlags::MS_NODEV
                        | MsFlags::MS_NOEXEC,
                    Some("mode=555"),
                )?,
                Ok(_) => bind(Path::new("/dev/null"), &target, false)?,
            }
        }
        MountOp::ReadOnly { target } => {
            let target = in_root(target)?;
            if std::fs::symlink_metadata(&target).is_ok() {
                bind(&target, &target, true)?;
                if !set_readonly_recursive(&target)? {
                    remount_readonly(&target)?;
                }
            }
        }
        MountOp::Tmpfs { target, mode } => {
            let target = in_root(target)?;
            ensure_dir(&target)?;
            mount(
                Some("tmpfs"),
                &target,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(format!("mode={mode:o}").as_str()),
            )?;
        }
        MountOp::Bind {
            source,
            target,
            readonly,
        } => {
            let target = in_root(target)?;
            let meta = std::fs::metadata(source)
                .with_context(|| format!("cannot stat {}", source.display()))?;
            if meta.is_dir() {
                ensure_dir(&target)?;
            } else {
                // Devices included: a host device bound onto a file of a filesystem mounted
                // inside the user namespace (tmpfs) cannot be opened (EACCES), so the mount
                // point is a plain file of the root's own filesystem.
                ensure_file(&target)?;
            }
            bind(source, &target, true)?;
            if *readonly && !set_readonly_recursive(&target)? {
                remount_readonly(&target)?;
            }
        }
        MountOp::Devpts { target, tty_gid } => {
            let target = in_root(target)?;
            ensure_dir(&target)?;
            // devpts(5): newinstance gives the sandbox its own ptys; gid=5 only when the tty
            // group is mapped, or the kernel refuses the mount.
            let mut options = String::from("newinstance,ptmxmode=0666,mode=620");
            if *tty_gid {
                options.push_str(",gid=5");
            }
            mount(
                Some("devpts"),
                &target,
                Some("devpts"),
                MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
                Some(options.as_str()),
            )?;
        }
        MountOp::Overlay {
            target,
            lowers,
            upper,
            work,
        } => {
            let target = in_root(target)?;
            ensure_dir(&target)?;
            mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                MsFlags::empty(),
                Some(overlay_options(lowers, upper, work).as_str()),
            )?;
        }
        MountOp::Symlink { link, points_to } => {
            // The link itself, not what an existing link there points to.
            let name = link.file_name().context("a symlink needs a file name")?;
            let link = in_root(link.parent().unwrap_or(Path::new("/")))?.join(name);
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            match std::fs::symlink_metadata(&link) {
                Ok(meta) if meta.is_dir() => {
                    bail!("{} is a directory", link.display())
                }
                Ok(_) => std::fs::remove_file(&link)
                    .with_context(|| format!("cannot replace {}", link.display()))?,
                Err(_) => {}
            }
            std::os::unix::fs::symlink(points_to, &link)?;
        }
        MountOp::PivotRoot => {
            let root = root
                .as_deref()
                .context("mount plan error: pivot_root without a root")?;
            pivot_into(root)?;
        }
    }
    Ok(())
}

fn bind(source: &Path, target: &Path, recursive: bool) -> Result<()> {
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(source), target, None::<&str>, flags, None::<&str>)?;
    Ok(())
}

/// The `struct mount_attr` of mount_setattr(2), declared here as the kernel defines it.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Make a mount and every mount under it read-only with mount_setattr(2) (Linux 5.12+),
/// which changes only the flags asked for, so the locked ones stay. `false` when the kernel
/// lacks the call.
fn set_readonly_recursive(target: &Path) -> Result<bool> {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .context("the mount target contains a NUL byte")?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a raw syscall (nix has no wrapper) with a valid C string and a struct of the
    // size we pass; the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOSYS) {
        return Ok(false);
    }
    Err(err).context("mount_setattr(MOUNT_ATTR_RDONLY, AT_RECURSIVE) failed")
}

/// Remount a bind read-only, keeping the flags the kernel locked when the mount was copied
/// into our namespace (nosuid, nodev, noexec, atime): mount_namespaces(7), "Restrictions on
/// mount namespaces" — clearing a locked flag fails with EPERM.
fn remount_readonly(target: &Path) -> Result<()> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let current = statvfs(target)
        .with_context(|| format!("cannot statvfs {}", target.display()))?
        .flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(fs) {
            flags |= ms;
        }
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)?;
    Ok(())
}

/// pivot_root(2) "new_root and put_old may be the same directory": pivot to `.` and then
/// lazily unmount the old root stacked underneath, as runc and youki do.
fn pivot_into(root: &Path) -> Result<()> {
    nix::unistd::chdir(root).with_context(|| format!("cannot chdir to {}", root.display()))?;
    nix::unistd::pivot_root(".", ".")?;
    // The old root is still a slave of the host: keep unmount events from propagating.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("cannot make the old root a slave")?;
    umount2(".", MntFlags::MNT_DETACH).context("cannot detach the old root")?;
    nix::unistd::chdir("/")?;
    Ok(())
}

fn ensure_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}

fn ensure_file(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        ensure_dir(parent)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.is_dir() => bail!("{} is a directory, expected a file", path.display()),
        // A symlink (it could point out of the root) or a special file: replace it.
        Ok(_) => {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot replace {}", path.display()))?;
            create_empty(path)
        }
        Err(_) => create_empty(path),
    }
}

fn create_empty(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .with_context(|| format!("cannot create {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn spec(root: Option<RootFs>, network: Network, mounts: Vec<ExtraMount>) -> SandboxSpec {
        SandboxSpec {
            root,
            mounts,
            network,
            hostname: "gib".into(),
            command: vec![OsString::from("/bin/sh")],
            env: Vec::new(),
            cwd: "/".into(),
            interactive: false,
            user: None,
        }
    }

    #[test]
    fn no_root_means_no_mounts() {
        assert!(plan(&spec(None, Network::Host, vec![]), true).is_empty());
    }

    #[test]
    fn dir_root_gets_the_standard_mounts_then_extras_then_pivot() {
        let ops = plan(
            &spec(
                Some(RootFs::Dir("/r".into())),
                Network::Host,
                vec![ExtraMount::Bind {
                    source: "/cache/distfiles".into(),
                    target: "/var/cache/distfiles".into(),
                    readonly: false,
                }],
            ),
            false,
        );
        assert_eq!(ops[0], MountOp::MakeRootSlave);
        assert_eq!(
            ops[1],
            MountOp::BindRoot {
                source: "/r".into()
            }
        );
        assert_eq!(
            ops[2],
            MountOp::Proc {
                target: "/proc".into()
            }
        );
        assert!(ops.contains(&MountOp::Bind {
            source: "/dev/null".into(),
            target: "/dev/null".into(),
            readonly: false
        }));
        assert!(ops.contains(&MountOp::Devpts {
            target: "/dev/pts".into(),
            tty_gid: false
        }));
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/tmp".into(),
            mode: 0o1777
        }));
        assert!(ops.contains(&MountOp::Bind {
            source: "/sys".into(),
            target: "/sys".into(),
            readonly: true
        }));
        assert!(ops.contains(&MountOp::Symlink {
            link: "/dev/fd".into(),
            points_to: "/proc/self/fd".into()
        }));
        let n = ops.len();
        assert_eq!(ops[n - 1], MountOp::PivotRoot);
        assert_eq!(
            ops[n - 2],
            MountOp::Bind {
                source: "/cache/distfiles".into(),
                target: "/var/cache/distfiles".into(),
                readonly: false
            }
        );
    }

    #[test]
    fn overlay_root_and_no_resolv_conf_without_network() {
        let ops = plan(
            &spec(
                Some(RootFs::Overlay {
                    lowers: vec!["/l1".into(), "/l2".into()],
                    upper: "/u".into(),
                    work: "/w".into(),
                }),
                Network::None,
                vec![],
            ),
            true,
        );
        assert!(matches!(ops[1], MountOp::OverlayRoot { .. }));
        assert!(!ops.iter().any(|op| matches!(op,
            MountOp::Bind { target, .. } if target == Path::new("/etc/resolv.conf"))));
    }

    #[test]
    fn overlay_options_escape_separators() {
        assert_eq!(
            overlay_options(
                &["/a:b".into(), "/c".into()],
                "/u,1".as_ref(),
                "/w".as_ref()
            ),
            "lowerdir=/a\\:b:/c,upperdir=/u\\,1,workdir=/w,userxattr"
        );
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../etc", root.join("usr/lib/up")).unwrap();
        std::os::unix::fs::symlink("/run/x", root.join("usr/lib/abs")).unwrap();
        assert_eq!(
            resolve_in_root(root, Path::new("/lib/a")).unwrap(),
            root.join("usr/lib/a")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/lib/up/resolv.conf")).unwrap(),
            root.join("etc/resolv.conf")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/lib/abs/f")).unwrap(),
            root.join("run/x/f")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/../../x")).unwrap(),
            root.join("x")
        );
    }
}
