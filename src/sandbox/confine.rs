//! What the sandboxed command may still do once the namespaces and mounts exist: the
//! capability bounding set it keeps, `no_new_privs`, and the inner user namespace that
//! locks the sandbox's read-only and masking mounts.
//!
//! Why an inner user namespace: mount_namespaces(7), "Restrictions on mount namespaces" —
//! mounts copied into a mount namespace owned by a *less privileged* user namespace are
//! locked: their read-only, nosuid, nodev and noexec flags cannot be cleared, and a mount
//! cannot be unmounted to reveal what it covers. PID 1 makes the mounts (in the sandbox's
//! user namespace), then the command enters a child user namespace with its own mount
//! namespace before it runs, so `/sys`, `/proc/sys` and the masks stay as PID 1 left them.
//!
//! Not for: the id maps of the sandbox itself (see `idmap`), or the mounts (see `mounts`).

use anyhow::{Context, Result};

/// Capabilities the command keeps (capabilities(7) numbers), what emerge and Portage use:
/// owners and modes of installed files (chown, fowner, fsetid, dac_override), dropping to
/// the portage user and back (setuid, setgid), killing its build processes, file
/// capabilities of installed programs (setfcap, fcaps.eclass), `ldconfig -r` (sys_chroot),
/// and test servers on low ports (net_bind_service), and Portage's own network and IPC
/// sandboxes (FEATURES network-sandbox, ipc-sandbox: `unshare(CLONE_NEWNET|CLONE_NEWIPC)`
/// needs sys_admin, bringing up the new namespace's loopback net_admin) so that ebuild
/// phases stay offline as on a real Gentoo. Both act only on namespaces the command's own
/// user namespace owns: the mounts it inherits stay locked (any process could reach the
/// same powers with `unshare --user`). Dropped, among others: dac_read_search
/// (open_by_handle_at), mknod, net_raw, sys_ptrace, sys_module, sys_rawio, setpcap.
pub const KEPT: &[(u32, &str)] = &[
    (0, "chown"),
    (1, "dac_override"),
    (3, "fowner"),
    (4, "fsetid"),
    (5, "kill"),
    (6, "setgid"),
    (7, "setuid"),
    (10, "net_bind_service"),
    (12, "net_admin"),
    (18, "sys_chroot"),
    (21, "sys_admin"),
    (31, "setfcap"),
];

/// The bounding-set mask of [`KEPT`], as /proc/<pid>/status shows CapBnd.
pub fn kept_mask() -> u64 {
    KEPT.iter().fold(0, |mask, (cap, _)| mask | 1 << cap)
}

/// The inner namespace's map: every id the sandbox maps, to itself. `outer` is the text of
/// the sandbox's own uid_map or gid_map as read inside it (`inside outside count` lines).
pub fn nested_map(outer: &str) -> Result<String> {
    let mut text = String::new();
    for line in outer.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<u32> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .with_context(|| format!("unexpected id map line {line:?}"))?;
        let [inside, _outside, count] = fields[..] else {
            anyhow::bail!("unexpected id map line {line:?}");
        };
        text.push_str(&format!("{inside} {inside} {count}\n"));
    }
    Ok(text)
}

/// Drop every capability not in [`KEPT`] from the bounding set, clear the inheritable and
/// ambient sets, and set `no_new_privs`: after exec the command (root inside) has exactly
/// the kept capabilities, and no setuid or file-capability program can add any.
pub fn restrict_capabilities() -> Result<()> {
    let kept = kept_mask();
    for cap in 0..64u32 {
        if kept & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl(2) with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // EINVAL: past the kernel's last capability.
            if err.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(err).with_context(|| format!("cannot drop capability {cap}"));
        }
    }
    // SAFETY: prctl(2) with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot clear ambient capabilities");
    }
    clear_inheritable()?;
    // SAFETY: prctl(2) with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot set no_new_privs");
    }
    Ok(())
}

/// capset(2) with the current permitted and effective sets and an empty inheritable set.
fn clear_inheritable() -> Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset(2) with a v3 header and the two data structs v3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("capget failed");
    }
    for d in &mut data {
        d.inheritable = 0;
    }
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("capset failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_map_maps_what_the_sandbox_maps_to_itself() {
        assert_eq!(
            nested_map("         0     100000      65536\n").unwrap(),
            "0 0 65536\n"
        );
        assert_eq!(
            nested_map("0 1000 1\n1 100000 65536\n").unwrap(),
            "0 0 1\n1 1 65536\n"
        );
        assert!(nested_map("0 1\n").is_err());
    }

    #[test]
    fn the_kept_set_has_no_capability_that_reaches_past_its_namespaces() {
        let mask = kept_mask();
        assert_eq!(mask.count_ones() as usize, KEPT.len());
        // dac_read_search 2, net_raw 13, sys_module 16, sys_rawio 17, sys_ptrace 19,
        // sys_boot 22, sys_time 25, mknod 27, setpcap 8, mac_admin 33, bpf 39, perfmon 38
        for cap in [2, 13, 16, 17, 19, 22, 25, 27, 8, 33, 39, 38] {
            assert_eq!(mask & (1 << cap), 0, "capability {cap} kept");
        }
        assert_ne!(mask & (1 << 0), 0);
    }
}
