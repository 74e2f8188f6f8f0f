//! Who a command runs as inside its root: a `user[:group]` string (names or numeric ids, as
//! an image config's `User` and `podman run --user` take it) resolved against the root's own
//! `/etc/passwd` and `/etc/group`, the way runc resolves it after entering the container.
//!
//! Not for: writing accounts into an image (see `rootfs::accounts`).

use anyhow::{Result, bail};

/// The ids and home a command runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: those of `/etc/group` that list the user by name (none when
    /// a group was given explicitly, as runc does).
    pub groups: Vec<u32>,
    /// The passwd entry's home, else `/`.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields[..] {
            [name, _, uid, gid, _, home, ..] => Some(PasswdEntry {
                name,
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                home,
            }),
            _ => None,
        }
    })
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields[..] {
            [name, _, gid, members, ..] => Some(GroupEntry {
                name,
                gid: gid.parse().ok()?,
                members: members.split(',').filter(|m| !m.is_empty()).collect(),
            }),
            [name, _, gid] => Some(GroupEntry {
                name,
                gid: gid.parse().ok()?,
                members: Vec::new(),
            }),
            _ => None,
        }
    })
}

/// Resolve `spec` (`user`, `uid`, `user:group`, `uid:gid`, …) against the root's `passwd`
/// and `group` texts (empty when the file is missing). A name must be listed; a number
/// need not be (its group is then 0 and its home `/`).
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<RunAs> {
    let (user, group_spec) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let entry = passwd_entries(passwd).find(|e| match user.parse::<u32>() {
        Ok(uid) => e.uid == uid,
        Err(_) => e.name == user,
    });
    let (uid, primary_gid, home, name) = match (&entry, user.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Ok(uid)) => (uid, 0, "/".to_string(), None),
        (None, Err(_)) => bail!("the user `{user}` is not in the image's /etc/passwd"),
    };
    let (gid, groups) = match group_spec {
        Some(g) => {
            let gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => match group_entries(group).find(|e| e.name == g) {
                    Some(e) => e.gid,
                    None => bail!("the group `{g}` is not in the image's /etc/group"),
                },
            };
            (gid, Vec::new())
        }
        None => {
            let mut groups: Vec<u32> = match name {
                Some(name) => group_entries(group)
                    .filter(|e| e.members.contains(&name))
                    .map(|e| e.gid)
                    .collect(),
                None => Vec::new(),
            };
            groups.sort_unstable();
            groups.dedup();
            (primary_gid, groups)
        }
    };
    let home = if home.is_empty() { "/".into() } else { home };
    Ok(RunAs {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          broken line\n\
                          gibsvc:x:301:302:svc:/var/lib/gibsvc:/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,gibsvc\ngibsvc:x:302:\naudio:x:18:gibsvc\n";

    #[test]
    fn a_name_takes_its_ids_home_and_groups_from_the_image() {
        assert_eq!(
            resolve("gibsvc", PASSWD, GROUP).unwrap(),
            RunAs {
                uid: 301,
                gid: 302,
                groups: vec![10, 18],
                home: "/var/lib/gibsvc".into()
            }
        );
        // By number, the same entry.
        assert_eq!(
            resolve("301", PASSWD, GROUP).unwrap().home,
            "/var/lib/gibsvc"
        );
    }

    #[test]
    fn an_explicit_group_replaces_the_primary_and_supplementary_ones() {
        let run_as = resolve("gibsvc:wheel", PASSWD, GROUP).unwrap();
        assert_eq!((run_as.uid, run_as.gid, run_as.groups), (301, 10, vec![]));
        let run_as = resolve("65532:65532", "", "").unwrap();
        assert_eq!((run_as.uid, run_as.gid), (65532, 65532));
    }

    #[test]
    fn an_unlisted_number_is_taken_as_it_is_and_an_unlisted_name_is_an_error() {
        assert_eq!(
            resolve("65532", PASSWD, GROUP).unwrap(),
            RunAs {
                uid: 65532,
                gid: 0,
                groups: vec![],
                home: "/".into()
            }
        );
        let err = resolve("nobody", PASSWD, GROUP).unwrap_err().to_string();
        assert!(
            err.contains("`nobody` is not in the image's /etc/passwd"),
            "{err}"
        );
        let err = resolve("gibsvc:nogroup", PASSWD, GROUP)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`nogroup` is not in the image's /etc/group"),
            "{err}"
        );
    }
}
