//! An image's `accounts:` and `paths:` written into its staging root: passwd/group/shadow
//! entries and home directories the way distroless has them, then the directories, files and
//! symlinks the user listed, with their owners and modes.
//!
//! Runs on the host side of the staging root (inside gib's user namespace, so ownership
//! works). Every path is resolved inside the root and may not lead out of it. Not a user
//! database library: it writes the plain-file formats passwd(5), group(5), shadow(5).

use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

use serde::{Deserialize, Serialize};

use super::resolve::resolve_in_root;

/// One user of an image's `accounts:` (gib.yaml); config re-exports these types.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: Option<String>,
    pub shell: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

/// An image's `accounts:`: users, groups and the user it runs as.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Accounts {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub run_as: Option<String>,
}

/// One of an image's `paths:` (gib.yaml).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub enum PathKind {
    Directory,
    /// A file copied from the host (absolute path after load).
    File {
        source: PathBuf,
    },
    Symlink {
        target: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct PathEntry {
    pub path: String,
    pub kind: PathKind,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Octal permission bits, e.g. 0o755.
    pub mode: Option<u32>,
}

/// distroless's shell for service users: logging in is not how containers run.
const DEFAULT_SHELL: &str = "/sbin/nologin";
/// distroless makes /home/nonroot 0700: nobody else needs to look in a user's home.
const HOME_MODE: u32 = 0o700;
/// Directories gib creates on the way to a path, like `mkdir -p` with the usual umask.
const PARENT_MODE: u32 = 0o755;

/// Add or replace the users and groups in `etc/passwd` and `etc/group` (and `etc/shadow`,
/// `etc/gshadow` when the root has them), keeping other entries and each file's mode and
/// owner, and create missing home directories owned by their user.
///
/// The root's own accounts (made by packages, account packages among them, or the parent
/// image) merge with the image's: an entry of the same name and id is rewritten, one of the
/// same name with another id is an error naming both.
///
/// A user whose group id no group has gets a group of its own name, as useradd does.
pub fn apply_accounts(root: &Path, accounts: &Accounts) -> Result<()> {
    let passwd_file = account_file(root, "etc/passwd")?;
    let existing_users = read_if_exists(&passwd_file)?.unwrap_or_default();
    for user in &accounts.users {
        check_clash("/etc/passwd", &existing_users, "user", &user.name, user.uid)?;
    }
    let mut group_lines: Vec<(String, String)> = accounts
        .groups
        .iter()
        .map(|g| (g.name.clone(), format!("{}:x:{}:", g.name, g.gid)))
        .collect();
    let group_file = account_file(root, "etc/group")?;
    let existing_groups = read_if_exists(&group_file)?.unwrap_or_default();
    for group in &accounts.groups {
        check_clash(
            "/etc/group",
            &existing_groups,
            "group",
            &group.name,
            group.gid,
        )?;
    }
    for user in &accounts.users {
        let has_group = accounts.groups.iter().any(|g| g.gid == user.gid)
            || existing_groups
                .lines()
                .any(|line| line.split(':').nth(2) == Some(user.gid.to_string().as_str()));
        let name_prefix = format!("{}:", user.name);
        let name_taken = group_lines.iter().any(|(name, _)| *name == user.name)
            || existing_groups
                .lines()
                .any(|line| line.starts_with(&name_prefix));
        if !has_group && !name_taken {
            group_lines.push((user.name.clone(), format!("{}:x:{}:", user.name, user.gid)));
        }
    }
    let passwd_lines: Vec<(String, String)> = accounts
        .users
        .iter()
        .map(|u| {
            let line = format!(
                "{name}:x:{uid}:{gid}:{name}:{home}:{shell}",
                name = u.name,
                uid = u.uid,
                gid = u.gid,
                home = home_of(u),
                shell = u.shell.as_deref().unwrap_or(DEFAULT_SHELL)
            );
            (u.name.clone(), line)
        })
        .collect();
    merge_entries(&passwd_file, &passwd_lines, true)?;
    merge_entries(&group_file, &group_lines, true)?;
    // Locked passwords: accounts of an image are for running services, not for logging in.
    let shadow_lines: Vec<(String, String)> = passwd_lines
        .iter()
        .map(|(name, _)| (name.clone(), format!("{name}:!:::::::")))
        .collect();
    merge_entries(&account_file(root, "etc/shadow")?, &shadow_lines, false)?;
    let gshadow_lines: Vec<(String, String)> = group_lines
        .iter()
        .map(|(name, _)| (name.clone(), format!("{name}:!::")))
        .collect();
    merge_entries(&account_file(root, "etc/gshadow")?, &gshadow_lines, false)?;
    for user in &accounts.users {
        create_home(root, user)?;
    }
    Ok(())
}

/// The image config's `User` for `run_as`: `uid:gid` for a user of `accounts`, else the
/// numeric value as written.
pub fn resolve_run_as(accounts: &Accounts) -> Option<String> {
    let run_as = accounts.run_as.as_deref()?;
    let by_name = accounts.users.iter().find(|u| u.name == run_as);
    let by_uid = || accounts.users.iter().find(|u| u.uid.to_string() == run_as);
    match by_name.or_else(by_uid) {
        Some(user) => Some(format!("{}:{}", user.uid, user.gid)),
        None => Some(run_as.to_string()),
    }
}

/// An entry of `file` (the image's passwd or group: the id is the third field) named `name`
/// whose id is not `id`.
fn check_clash(file: &str, text: &str, what: &str, name: &str, id: u32) -> Result<()> {
    let prefix = format!("{name}:");
    let Some(line) = text.lines().find(|line| line.starts_with(&prefix)) else {
        return Ok(());
    };
    if line.split(':').nth(2) == Some(id.to_string().as_str()) {
        return Ok(());
    }
    bail!(
        "accounts: the {what} `{name}` with id {id} clashes with `{line}` in the image's \
         {file}, which a package or the parent image made; use its id or another name"
    )
}

fn home_of(user: &User) -> String {
    user.home
        .clone()
        .unwrap_or_else(|| format!("/home/{}", user.name))
}

fn account_file(root: &Path, path: &str) -> Result<PathBuf> {
    let host = resolve_in_root(root, path, false)?;
    if host.is_symlink() {
        bail!(
            "{} is a symlink; gib edits account files only in place",
            host.display()
        );
    }
    Ok(host)
}

fn read_if_exists(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Replace the lines whose first field is an entry's name, append the others. Rewriting in
/// place keeps the file's mode, owner and xattrs. A missing file is created (mode 0644) only
/// when `create` is set.
fn merge_entries(path: &Path, entries: &[(String, String)], create: bool) -> Result<()> {
    let existing = match read_if_exists(path)? {
        Some(text) => Some(text),
        None if create => None,
        None => return Ok(()),
    };
    let mut lines: Vec<String> = existing
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(str::to_string)
        .collect();
    for (name, entry) in entries {
        let prefix = format!("{name}:");
        match lines.iter_mut().find(|line| line.starts_with(&prefix)) {
            Some(line) => *line = entry.clone(),
            None => lines.push(entry.clone()),
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    if existing.is_none()
        && let Some(parent) = path.parent()
    {
        create_parents(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    if existing.is_none() {
        set_mode(path, 0o644)?;
    }
    Ok(())
}

fn create_home(root: &Path, user: &User) -> Result<()> {
    let home = home_of(user);
    // The conventional "no home" entries (distroless's nobody has /nonexistent).
    if home == "/" || home == "/nonexistent" {
        return Ok(());
    }
    check_image_path(&home)?;
    let host = resolve_in_root(root, &home, true)?;
    if std::fs::symlink_metadata(&host).is_ok() {
        // A home a package or the parent image made is theirs to shape.
        return Ok(());
    }
    if let Some(parent) = host.parent() {
        create_parents(parent)?;
    }
    std::fs::create_dir(&host).with_context(|| format!("cannot create {}", host.display()))?;
    chown(&host, Some(user.uid), Some(user.gid))?;
    set_mode(&host, HOME_MODE)
}

/// Create each entry of `paths:` in order: directories (with missing parents), files copied
/// from the host, symlinks; then its owner and mode when given. New directories default to
/// 0755; a copied file keeps its source's permission bits unless `mode` is set.
pub fn apply_paths(root: &Path, paths: &[PathEntry]) -> Result<()> {
    for entry in paths {
        apply_path(root, entry).with_context(|| format!("paths: `{}`", entry.path))?;
    }
    Ok(())
}

fn apply_path(root: &Path, entry: &PathEntry) -> Result<()> {
    check_image_path(&entry.path)?;
    let image_path = Path::new(&entry.path);
    let (Some(parent), Some(name)) = (image_path.parent(), image_path.file_name()) else {
        bail!("`{}` names the image root itself", entry.path);
    };
    let parent_host = resolve_in_root(root, &parent.to_string_lossy(), true)?;
    create_parents(&parent_host)?;
    let host = parent_host.join(name);
    let existing = std::fs::symlink_metadata(&host).ok();
    match &entry.kind {
        PathKind::Directory => match existing {
            Some(meta) if meta.is_dir() => {}
            Some(_) => bail!("{} exists and is not a directory", host.display()),
            None => {
                std::fs::create_dir(&host)
                    .with_context(|| format!("cannot create {}", host.display()))?;
                set_mode(&host, PARENT_MODE)?;
            }
        },
        PathKind::File { source } => {
            remove_non_directory(&host, existing.as_ref())?;
            std::fs::copy(source, &host).with_context(|| {
                format!("cannot copy {} to {}", source.display(), host.display())
            })?;
        }
        PathKind::Symlink { target } => {
            remove_non_directory(&host, existing.as_ref())?;
            symlink(target, &host)
                .with_context(|| format!("cannot create the symlink {}", host.display()))?;
        }
    }
    // chown before chmod: chown clears set-user-ID and set-group-ID bits (chown(2)).
    chown(&host, entry.uid, entry.gid)?;
    if let Some(mode) = entry.mode
        && !matches!(entry.kind, PathKind::Symlink { .. })
    {
        set_mode(&host, mode)?;
    }
    Ok(())
}

/// Absolute, and without `..`: a path of `paths:` names a place in the image, not a walk.
fn check_image_path(path: &str) -> Result<()> {
    if !path.starts_with('/') {
        bail!("`{path}` is not an absolute path in the image");
    }
    if Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        bail!("`{path}` contains `..`");
    }
    Ok(())
}

fn remove_non_directory(host: &Path, existing: Option<&std::fs::Metadata>) -> Result<()> {
    match existing {
        Some(meta) if meta.is_dir() => bail!("{} exists and is a directory", host.display()),
        Some(_) => {
            std::fs::remove_file(host).with_context(|| format!("cannot replace {}", host.display()))
        }
        None => Ok(()),
    }
}

/// `mkdir -p` with mode 0755 for what it creates (the parents were resolved inside the root).
fn create_parents(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_parents(parent)?;
    }
    std::fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    set_mode(dir, PARENT_MODE)
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    lchown(path, uid, gid).with_context(|| {
        format!(
            "cannot give {} the owner {}:{}",
            path.display(),
            uid.map_or("-".into(), |u| u.to_string()),
            gid.map_or("-".into(), |g| g.to_string())
        )
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode {mode:o} on {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn user(name: &str, uid: u32, home: Option<&str>) -> User {
        User {
            name: name.into(),
            uid,
            gid: uid,
            home: home.map(str::to_string),
            shell: None,
        }
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn adds_users_and_groups_and_keeps_existing_entries() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(
            r.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nwww:x:1000:999::/old:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\nusers:x:100:\n").unwrap();
        std::fs::write(r.join("etc/shadow"), "root:*:::::::\n").unwrap();
        set_mode(&r.join("etc/shadow"), 0o640).unwrap();
        std::fs::create_dir_all(r.join("var/www")).unwrap();
        set_mode(&r.join("var/www"), 0o755).unwrap();
        let accounts = Accounts {
            users: vec![
                user("www", 1000, Some("/var/www")),
                user("nonroot", 65532, None),
                User {
                    gid: 100,
                    ..user("app", 1001, Some("/srv/app"))
                },
            ],
            groups: vec![Group {
                name: "www".into(),
                gid: 1000,
            }],
            run_as: Some("nonroot".into()),
        };
        apply_accounts(r, &accounts).unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join("etc/passwd")).unwrap(),
            "root:x:0:0:root:/root:/bin/bash\n\
             www:x:1000:1000:www:/var/www:/sbin/nologin\n\
             nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n\
             app:x:1001:100:app:/srv/app:/sbin/nologin\n"
        );
        assert_eq!(
            std::fs::read_to_string(r.join("etc/group")).unwrap(),
            "root:x:0:\nusers:x:100:\nwww:x:1000:\nnonroot:x:65532:\n"
        );
        assert_eq!(
            std::fs::read_to_string(r.join("etc/shadow")).unwrap(),
            "root:*:::::::\nwww:!:::::::\nnonroot:!:::::::\napp:!:::::::\n"
        );
        assert_eq!(mode_of(&r.join("etc/shadow")), 0o640);
        assert!(!r.join("etc/gshadow").exists());
        let home = std::fs::metadata(r.join("home/nonroot")).unwrap();
        assert_eq!(
            (home.uid(), home.gid(), home.mode() & 0o7777),
            (65532, 65532, 0o700)
        );
        assert_eq!(mode_of(&r.join("home")), 0o755);
        // An existing home is left as it was.
        assert_eq!(mode_of(&r.join("var/www")), 0o755);
        assert_eq!(std::fs::metadata(r.join("srv/app")).unwrap().uid(), 1001);

        assert_eq!(resolve_run_as(&accounts).as_deref(), Some("65532:65532"));
    }

    #[test]
    fn creates_account_files_in_an_empty_root() {
        let root = tempfile::tempdir().unwrap();
        let accounts = Accounts {
            users: vec![
                user("nonroot", 65532, None),
                user("nobody", 65534, Some("/nonexistent")),
            ],
            ..Accounts::default()
        };
        apply_accounts(root.path(), &accounts).unwrap();
        assert!(!root.path().join("nonexistent").exists());
        assert_eq!(mode_of(&root.path().join("etc/passwd")), 0o644);
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/group")).unwrap(),
            "nonroot:x:65532:\nnobody:x:65534:\n"
        );
    }

    #[test]
    fn an_account_of_the_root_with_another_id_is_a_clash() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        let passwd = "gibsvc:x:301:301:User for svc-whoami:/var/lib/gibsvc:/sbin/nologin\n";
        let group = "gibsvc:x:301:\n";
        std::fs::write(r.join("etc/passwd"), passwd).unwrap();
        std::fs::write(r.join("etc/group"), group).unwrap();
        let err = apply_accounts(
            r,
            &Accounts {
                users: vec![user("gibsvc", 1000, None)],
                ..Accounts::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("the user `gibsvc` with id 1000")
                && err.contains(
                    "`gibsvc:x:301:301:User for svc-whoami:/var/lib/gibsvc:/sbin/nologin`"
                )
                && err.contains("the image's /etc/passwd"),
            "{err}"
        );
        let err = apply_accounts(
            r,
            &Accounts {
                groups: vec![Group {
                    name: "gibsvc".into(),
                    gid: 302,
                }],
                ..Accounts::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("the group `gibsvc` with id 302") && err.contains("`gibsvc:x:301:`"),
            "{err}"
        );
        // Nothing was written.
        assert_eq!(
            std::fs::read_to_string(r.join("etc/passwd")).unwrap(),
            passwd
        );
        assert_eq!(std::fs::read_to_string(r.join("etc/group")).unwrap(), group);
        // The same name with the same id merges.
        apply_accounts(
            r,
            &Accounts {
                users: vec![User {
                    gid: 301,
                    ..user("gibsvc", 301, Some("/var/lib/gibsvc"))
                }],
                ..Accounts::default()
            },
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join("etc/passwd")).unwrap(),
            "gibsvc:x:301:301:gibsvc:/var/lib/gibsvc:/sbin/nologin\n"
        );
    }

    #[test]
    fn run_as_may_be_numeric() {
        let mut accounts = Accounts {
            users: vec![User {
                gid: 50,
                ..user("www", 1000, None)
            }],
            run_as: Some("1000".into()),
            ..Accounts::default()
        };
        assert_eq!(resolve_run_as(&accounts).as_deref(), Some("1000:50"));
        accounts.run_as = Some("2000:2000".into());
        assert_eq!(resolve_run_as(&accounts).as_deref(), Some("2000:2000"));
        accounts.run_as = None;
        assert_eq!(resolve_run_as(&accounts), None);
    }

    fn entry(path: &str, kind: PathKind, owner: Option<u32>, mode: Option<u32>) -> PathEntry {
        PathEntry {
            path: path.into(),
            kind,
            uid: owner,
            gid: owner,
            mode,
        }
    }

    #[test]
    fn creates_directories_files_and_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let r = root.path();
        let source = host.path().join("nginx.conf");
        std::fs::write(&source, "worker_processes 1;\n").unwrap();
        std::fs::create_dir_all(r.join("run")).unwrap();
        std::fs::create_dir_all(r.join("var")).unwrap();
        symlink("/run", r.join("var/run")).unwrap();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::write(r.join("usr/bin/server"), "old").unwrap();
        let paths = [
            entry(
                "/var/www/html",
                PathKind::Directory,
                Some(1000),
                Some(0o750),
            ),
            entry(
                "/etc/nginx/nginx.conf",
                PathKind::File {
                    source: source.clone(),
                },
                None,
                Some(0o600),
            ),
            entry(
                "/usr/bin/server",
                PathKind::Symlink {
                    target: "nginx".into(),
                },
                Some(1000),
                None,
            ),
            entry(
                "/var/run/app.sock.d",
                PathKind::Directory,
                None,
                Some(0o1777),
            ),
        ];
        apply_paths(r, &paths).unwrap();
        let html = std::fs::metadata(r.join("var/www/html")).unwrap();
        assert_eq!(
            (html.uid(), html.gid(), html.mode() & 0o7777),
            (1000, 1000, 0o750)
        );
        assert_eq!(mode_of(&r.join("var/www")), 0o755);
        assert_eq!(
            std::fs::read_to_string(r.join("etc/nginx/nginx.conf")).unwrap(),
            "worker_processes 1;\n"
        );
        assert_eq!(mode_of(&r.join("etc/nginx/nginx.conf")), 0o600);
        assert_eq!(
            std::fs::read_link(r.join("usr/bin/server")).unwrap(),
            Path::new("nginx")
        );
        assert_eq!(
            std::fs::symlink_metadata(r.join("usr/bin/server"))
                .unwrap()
                .uid(),
            1000
        );
        // Through the image's own /var/run -> /run symlink, not the host's.
        assert_eq!(mode_of(&r.join("run/app.sock.d")), 0o1777);
    }

    #[test]
    fn refuses_paths_that_leave_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        symlink("../../../../../..", r.join("etc/up")).unwrap();
        symlink(outside.path(), r.join("escape")).unwrap();
        for path in ["/../x", "/etc/../../x", "/etc/up/tmp/x", "/", "relative"] {
            let err = apply_paths(r, &[entry(path, PathKind::Directory, None, None)]);
            assert!(err.is_err(), "{path} was accepted");
        }
        // The absolute symlink `/escape -> <outside>` resolves inside the root, where it
        // names nothing yet: the directory is created there, never on the host.
        apply_paths(r, &[entry("/escape/x", PathKind::Directory, None, None)]).unwrap();
        assert!(
            r.join(outside.path().strip_prefix("/").unwrap())
                .join("x")
                .is_dir()
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
