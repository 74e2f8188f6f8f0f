//! User and group id maps of the sandbox's user namespace: which ids gib may map (a user's
//! /etc/subuid and /etc/subgid ranges; as root, root's own range there or one gib claims,
//! never the host's root), and writing the maps for the helper's pid (newuidmap/newgidmap as
//! an ordinary user, /proc/<pid>/{uid,gid}_map as root).
//!
//! Every root gib maps the same range, as every run of one user maps that user's ranges: the
//! trees in a cache keep one set of owners, whichever run made them.
//!
//! Not for: creating the namespace (see `helper`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::printer::{Hint, UserError};

/// A subordinate id range from /etc/subuid or /etc/subgid: host ids `start..start+count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// One line of a uid_map or gid_map: `inside outside count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapLine {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// Where the range of a root gib comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RangeSource {
    /// root's own entries in /etc/subuid and /etc/subgid.
    SubidFiles,
    /// [`CLAIMED_RANGE`]: root has no entry, and no entry of anybody overlaps it.
    Claimed,
}

/// The ids a root gib claims when /etc/subuid has no range for root: 65536 ids high above
/// where useradd hands out subordinate ranges (SUB_UID_MAX is 600100000 by default) and
/// below 2^31, where some tools treat ids as signed.
pub const CLAIMED_RANGE: IdRange = IdRange {
    start: 2_147_352_576,
    count: 65536,
};

/// Enough ids for an image's accounts: nobody (65534) and nogroup must be mapped.
pub const MIN_RANGE: u32 = 65536;

/// How the ids of the sandbox map to the host's.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum IdMode {
    /// gib runs as root: the sandbox maps onto a subordinate range reserved for it (as
    /// podman's `--userns=auto`), never onto the host's root. Root inside is the range's
    /// first id, ids 1.. the next ones; files keep their owners inside (250 stays 250).
    Reserved {
        uids: IdRange,
        gids: IdRange,
        source: RangeSource,
    },
    /// An ordinary user with subordinate ranges: root inside is the user, ids 1.. are the
    /// ranges, in order. Files keep their owners (portage's 250 stays 250).
    Full {
        uid: u32,
        gid: u32,
        subuids: Vec<IdRange>,
        subgids: Vec<IdRange>,
    },
    /// No subordinate range: only root inside, mapped to the user. Nothing can be chowned to
    /// another id, so Portage must run with `PORTAGE_USERNAME=root PORTAGE_GRPNAME=root` and
    /// tarballs are unpacked without their owners.
    Single { uid: u32, gid: u32 },
}

impl IdMode {
    /// Whether only root is mapped (see [`IdMode::Single`]).
    pub fn is_single(&self) -> bool {
        matches!(self, IdMode::Single { .. })
    }

    /// Whether group `gid` (inside) is mapped; devpts's `gid=5` needs the tty group.
    pub fn maps_gid(&self, gid: u32) -> bool {
        match self {
            IdMode::Reserved { gids, .. } => gid < gids.count,
            IdMode::Full { subgids, .. } => {
                gid == 0 || u64::from(gid) <= subgids.iter().map(|r| u64::from(r.count)).sum()
            }
            IdMode::Single { .. } => gid == 0,
        }
    }

    pub fn uid_map(&self) -> Vec<MapLine> {
        match self {
            IdMode::Reserved { uids, .. } => vec![range_line(uids)],
            IdMode::Full { uid, subuids, .. } => map_lines(*uid, subuids),
            IdMode::Single { uid, .. } => map_lines(*uid, &[]),
        }
    }

    /// The host owner of root inside the sandbox, for directories gib makes on the host
    /// for the sandbox to write in; `None` when that is gib's own user (rootless).
    pub fn host_root(&self) -> Option<(u32, u32)> {
        match self {
            IdMode::Reserved { uids, gids, .. } => Some((uids.start, gids.start)),
            _ => None,
        }
    }

    /// One line for `gib plan`: which host ids the sandbox runs as.
    pub fn describe(&self) -> String {
        match self {
            IdMode::Reserved { uids, gids, source } => format!(
                "as root on host uids {}..{} and gids {}..{} ({}); never the host's root",
                uids.start,
                u64::from(uids.start) + u64::from(uids.count) - 1,
                gids.start,
                u64::from(gids.start) + u64::from(gids.count) - 1,
                match source {
                    RangeSource::SubidFiles => "root's range in /etc/subuid and /etc/subgid",
                    RangeSource::Claimed =>
                        "claimed by gib: root has no range in /etc/subuid and /etc/subgid",
                }
            ),
            IdMode::Full { uid, subuids, .. } => format!(
                "as your user {uid}, with {} subordinate uid(s) from /etc/subuid",
                subuids.iter().map(|r| u64::from(r.count)).sum::<u64>()
            ),
            IdMode::Single { uid, .. } => {
                format!("as your user {uid} alone (no subordinate range)")
            }
        }
    }

    pub fn gid_map(&self) -> Vec<MapLine> {
        match self {
            IdMode::Reserved { gids, .. } => vec![range_line(gids)],
            IdMode::Full { gid, subgids, .. } => map_lines(*gid, subgids),
            IdMode::Single { gid, .. } => map_lines(*gid, &[]),
        }
    }
}

fn range_line(range: &IdRange) -> MapLine {
    MapLine {
        inside: 0,
        outside: range.start,
        count: range.count,
    }
}

/// The range of a root gib, from the text of /etc/subuid (or /etc/subgid): root's first
/// range of at least [`MIN_RANGE`] ids, else [`CLAIMED_RANGE`] unless any entry (of
/// anybody, well-formed or not) overlaps it; then nothing is safe to take.
pub fn root_range(text: &str) -> Result<(IdRange, RangeSource), String> {
    if let Some(range) = subid_ranges(text, "root", 0)
        .into_iter()
        .find(|r| r.count >= MIN_RANGE)
    {
        return Ok((range, RangeSource::SubidFiles));
    }
    let claimed = CLAIMED_RANGE;
    let end = u64::from(claimed.start) + u64::from(claimed.count);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut fields = line.split(':').skip(1);
        let (Some(Ok(start)), Some(Ok(count))) = (
            fields.next().map(|f| f.trim().parse::<u64>()),
            fields.next().map(|f| f.trim().parse::<u64>()),
        ) else {
            continue;
        };
        if start < end && start + count > u64::from(claimed.start) {
            return Err(format!(
                "the range gib claims for its sandbox as root ({}..{}) overlaps the entry \
                 {line:?}",
                claimed.start,
                end - 1
            ));
        }
    }
    Ok((claimed, RangeSource::Claimed))
}

/// The subordinate ranges of a user in the text of /etc/subuid or /etc/subgid, whose lines
/// are `name-or-uid:start:count`. Malformed lines are skipped, as shadow does.
pub fn subid_ranges(text: &str, user: &str, id: u32) -> Vec<IdRange> {
    let id = id.to_string();
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let mut fields = line.split(':');
            let owner = fields.next()?;
            let start = fields.next()?.trim().parse().ok()?;
            let count: u32 = fields.next()?.trim().parse().ok()?;
            if fields.next().is_some() || count == 0 || (owner != user && owner != id) {
                return None;
            }
            Some(IdRange { start, count })
        })
        .collect()
}

/// Root inside is `host_id`; ids 1.. inside are the ranges, one after the other.
pub fn map_lines(host_id: u32, ranges: &[IdRange]) -> Vec<MapLine> {
    let mut lines = vec![MapLine {
        inside: 0,
        outside: host_id,
        count: 1,
    }];
    let mut next: u32 = 1;
    for range in ranges {
        lines.push(MapLine {
            inside: next,
            outside: range.start,
            count: range.count,
        });
        next = next.saturating_add(range.count);
    }
    lines
}

/// The arguments of `newuidmap`/`newgidmap`: the pid, then `inside outside count` triples.
pub fn newidmap_args(pid: u32, lines: &[MapLine]) -> Vec<String> {
    let mut args = vec![pid.to_string()];
    for line in lines {
        args.extend([
            line.inside.to_string(),
            line.outside.to_string(),
            line.count.to_string(),
        ]);
    }
    args
}

/// The text written to /proc/<pid>/uid_map (one write, as the kernel requires).
pub fn map_file_text(lines: &[MapLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{} {} {}\n", l.inside, l.outside, l.count))
        .collect()
}

/// Decide the id mode of this process: identity as root, the subordinate ranges of the user
/// otherwise, a single id when the user has none.
pub fn detect() -> Result<IdMode> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    if uid == 0 {
        if !in_initial_user_namespace()? {
            // Root of a user namespace (a rootless container): only ids mapped here can be
            // mapped again, so no range of /etc/subuid; root's own id alone is safe.
            return Ok(IdMode::Single { uid, gid });
        }
        return root_mode();
    }
    let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let subuids = read_ranges(Path::new("/etc/subuid"), &name, uid)?;
    let subgids = read_ranges(Path::new("/etc/subgid"), &name, uid)?;
    if subuids.is_empty() || subgids.is_empty() {
        return Ok(IdMode::Single { uid, gid });
    }
    Ok(IdMode::Full {
        uid,
        gid,
        subuids,
        subgids,
    })
}

/// Whether this process's user namespace maps every id to itself (the host's own).
fn in_initial_user_namespace() -> Result<bool> {
    let path = "/proc/self/uid_map";
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    Ok(lines == [["0", "0", "4294967295"]])
}

/// A root gib's mode: its reserved range, the same for uids and gids.
fn root_mode() -> Result<IdMode> {
    let range = |file: &str| -> Result<(IdRange, RangeSource)> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(err) => return Err(err).with_context(|| format!("cannot read {file}")),
        };
        root_range(&text).map_err(|message| {
            UserError::new(format!("{message} in {file}")).hint(
                "give root a range of its own: usermod --add-subuids 100000-165535 \
                 --add-subgids 100000-165535 root",
            )
        })
    };
    let (uids, uid_source) = range("/etc/subuid")?;
    let (gids, gid_source) = range("/etc/subgid")?;
    let source = if uid_source == RangeSource::SubidFiles && gid_source == RangeSource::SubidFiles {
        RangeSource::SubidFiles
    } else {
        RangeSource::Claimed
    };
    Ok(IdMode::Reserved { uids, gids, source })
}

fn read_ranges(file: &Path, name: &str, uid: u32) -> Result<Vec<IdRange>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(subid_ranges(&text, name, uid)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// Where newuidmap/newgidmap are: on PATH (then /usr/bin, /usr/sbin, as shadow installs them).
pub fn find_tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            UserError::new(format!(
                "`{name}` is not on PATH; gib needs it to map the subordinate ids of /etc/subuid \
                     and /etc/subgid into its user namespace"
            ))
            .hint("install it (Debian: apt-get install uidmap; Gentoo: sys-apps/shadow)")
        })
}

/// Write the maps of the user namespace of process `pid`. Runs in gib (the parent), after
/// the helper has unshared and before it continues.
pub fn write_maps(mode: &IdMode, pid: u32) -> Result<()> {
    match mode {
        IdMode::Full { .. } => {
            // newuidmap/newgidmap are setuid helpers that check /etc/subuid for us; they leave
            // setgroups "allow" for subgid ranges, which Portage needs (it calls setgroups).
            run_newidmap("newuidmap", pid, &mode.uid_map())?;
            run_newidmap("newgidmap", pid, &mode.gid_map())
        }
        IdMode::Reserved { .. } | IdMode::Single { .. } => {
            if mode.is_single() {
                // user_namespaces(7): an unprivileged process must deny setgroups before it
                // may write gid_map.
                write_proc(pid, "setgroups", "deny")?;
            }
            write_proc(pid, "uid_map", &map_file_text(&mode.uid_map()))?;
            write_proc(pid, "gid_map", &map_file_text(&mode.gid_map()))
        }
    }
}

fn run_newidmap(tool: &str, pid: u32, lines: &[MapLine]) -> Result<()> {
    let program = find_tool(tool)?;
    let args = newidmap_args(pid, lines);
    let output = Command::new(&program)
        .args(&args)
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "`{} {}` failed ({}): {}",
            program.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn write_proc(pid: u32, file: &str, text: &str) -> Result<()> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {:?} to {}", text.trim(), path.display()))
}

/// Check that this kernel lets us create user namespaces at all, with the reason if not.
pub fn check_userns_enabled() -> Result<()> {
    let path = Path::new("/proc/sys/user/max_user_namespaces");
    if let Ok(text) = std::fs::read_to_string(path)
        && text.trim() == "0"
    {
        return Err(UserError::new(
            "user namespaces are disabled here (/proc/sys/user/max_user_namespaces is 0); \
             gib builds inside one",
        )
        .hint("enable them as root: sysctl -w user.max_user_namespaces=15000"));
    }
    check_unprivileged_userns()
}

/// Check the switches that keep an unprivileged user (not root) from using user namespaces:
/// Debian's `kernel.unprivileged_userns_clone` and Ubuntu 24.04's AppArmor restriction. The
/// limit `user.max_user_namespaces` is left to the first sandbox, so that a build that
/// reuses every image needs none.
pub fn check_unprivileged_userns() -> Result<()> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let blocker = userns_blocker(
        nix::unistd::getuid().as_raw() == 0,
        read("/proc/sys/kernel/unprivileged_userns_clone").as_deref(),
        read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref(),
        read("/proc/self/attr/apparmor/current")
            .or_else(|| read("/proc/self/attr/current"))
            .as_deref(),
    );
    match blocker {
        Some((message, hint)) => Err(UserError::new(message).hint(hint)),
        None => Ok(()),
    }
}

/// What keeps this user from user namespaces, as a message and a hint, from the values of
/// the two sysctls and the process's AppArmor label (`None` where there is no such file).
fn userns_blocker(
    root: bool,
    userns_clone: Option<&str>,
    apparmor_restrict: Option<&str>,
    apparmor_label: Option<&str>,
) -> Option<(String, String)> {
    if root {
        return None;
    }
    if userns_clone.map(str::trim) == Some("0") {
        return Some((
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone is 0); \
             gib builds inside one"
                .to_string(),
            "enable them as root: sysctl -w kernel.unprivileged_userns_clone=1".to_string(),
        ));
    }
    // A process confined by a profile may be allowed `userns`; an unconfined one is not.
    let unconfined = apparmor_label.is_none_or(|l| l.trim().starts_with("unconfined"));
    if apparmor_restrict.map(str::trim) == Some("1") && unconfined {
        return Some((
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns is 1, as on Ubuntu 24.04); gib builds \
             inside one"
                .to_string(),
            "as root, either lift it: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, \
             or give gib a profile that allows it (`userns,` in /etc/apparmor.d/gib, as Ubuntu \
             does for podman)"
                .to_string(),
        ));
    }
    None
}

#[cfg(test)]
impl IdMode {
    /// A root gib's map for unit tests: uids 100000.., gids 300000.., from the subid files.
    pub(crate) fn example_reserved() -> IdMode {
        IdMode::Reserved {
            uids: IdRange {
                start: 100000,
                count: 65536,
            },
            gids: IdRange {
                start: 300000,
                count: 65536,
            },
            source: RangeSource::SubidFiles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_keeps_a_user_from_user_namespaces() {
        assert_eq!(userns_blocker(false, None, None, None), None);
        assert_eq!(userns_blocker(true, Some("0\n"), Some("1\n"), None), None);
        let (message, hint) = userns_blocker(false, Some("0\n"), None, None).unwrap();
        assert!(
            message.contains("unprivileged_userns_clone is 0"),
            "{message}"
        );
        assert!(
            hint.contains("kernel.unprivileged_userns_clone=1"),
            "{hint}"
        );
        let (message, hint) =
            userns_blocker(false, Some("1\n"), Some("1\n"), Some("unconfined\n")).unwrap();
        assert!(message.contains("apparmor_restrict_unprivileged_userns is 1"));
        assert!(
            hint.contains("apparmor_restrict_unprivileged_userns=0"),
            "{hint}"
        );
        // A profile may allow it; restriction off allows it.
        assert_eq!(
            userns_blocker(false, None, Some("1"), Some("gib (enforce)")),
            None
        );
        assert_eq!(userns_blocker(false, None, Some("0"), None), None);
    }

    const SUBUID: &str = "\
# comment
alice:100000:65536
1001:165536:65536
bob:231072:65536
broken:line
alice:300000:1000
";

    #[test]
    fn ranges_by_name_and_by_uid() {
        let alice = subid_ranges(SUBUID, "alice", 1000);
        assert_eq!(
            alice,
            vec![
                IdRange {
                    start: 100000,
                    count: 65536
                },
                IdRange {
                    start: 300000,
                    count: 1000
                }
            ]
        );
        let by_uid = subid_ranges(SUBUID, "carol", 1001);
        assert_eq!(
            by_uid,
            vec![IdRange {
                start: 165536,
                count: 65536
            }]
        );
        assert!(subid_ranges(SUBUID, "nobody", 65534).is_empty());
        assert!(subid_ranges(SUBUID, "broken", 5).is_empty());
    }

    #[test]
    fn map_lines_put_root_first_then_ranges_back_to_back() {
        let lines = map_lines(
            1000,
            &[
                IdRange {
                    start: 100000,
                    count: 65536,
                },
                IdRange {
                    start: 300000,
                    count: 1000,
                },
            ],
        );
        assert_eq!(
            newidmap_args(42, &lines),
            [
                "42", "0", "1000", "1", "1", "100000", "65536", "65537", "300000", "1000"
            ]
        );
    }

    fn reserved() -> IdMode {
        IdMode::example_reserved()
    }

    #[test]
    fn root_takes_its_own_range_never_the_identity() {
        let text = "root:50000:1000\nalice:100000:65536\n0:200000:65536\nroot:400000:65536\n";
        // Too small for nobody (65534), then root by uid.
        assert_eq!(
            root_range(text),
            Ok((
                IdRange {
                    start: 200000,
                    count: 65536
                },
                RangeSource::SubidFiles
            ))
        );
        assert_eq!(
            root_range("alice:100000:65536\n"),
            Ok((CLAIMED_RANGE, RangeSource::Claimed))
        );
        assert_eq!(root_range(""), Ok((CLAIMED_RANGE, RangeSource::Claimed)));
        // Somebody's range reaching into the claimed one, or starting inside it: refused.
        let below = format!("bob:{}:10\n", CLAIMED_RANGE.start - 5);
        assert!(root_range(&below).unwrap_err().contains("bob"));
        let inside = format!("carol:{}:1\n", CLAIMED_RANGE.start + 65535);
        assert!(root_range(&inside).is_err());
        let after = format!("dave:{}:1\n", CLAIMED_RANGE.start + 65536);
        assert_eq!(
            root_range(&after),
            Ok((CLAIMED_RANGE, RangeSource::Claimed))
        );
        let mode = reserved();
        assert_eq!(map_file_text(&mode.uid_map()), "0 100000 65536\n");
        assert_eq!(map_file_text(&mode.gid_map()), "0 300000 65536\n");
        assert_eq!(mode.host_root(), Some((100000, 300000)));
        assert!(mode.maps_gid(65534) && !mode.maps_gid(65536));
        assert!(!mode.is_single());
    }

    #[test]
    fn single_and_full_maps() {
        let single = IdMode::Single { uid: 7, gid: 8 };
        assert_eq!(map_file_text(&single.gid_map()), "0 8 1\n");
        assert!(!single.maps_gid(5));
        let full = IdMode::Full {
            uid: 1,
            gid: 1,
            subuids: vec![],
            subgids: vec![IdRange {
                start: 100000,
                count: 10,
            }],
        };
        assert!(full.maps_gid(5));
        assert!(!full.maps_gid(11));
    }
}
