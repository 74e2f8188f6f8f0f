//! The library directories an image's loader searches besides an ELF file's own RUNPATH: those
//! of its `/etc/ld.so.conf` (and the files it `include`s, as ldconfig(8) reads them into
//! ld.so.cache) and the trusted defaults.
//!
//! Not for: reading ELF files (`elf`), the overlay view (`merged`).

use std::path::Path;

use anyhow::Result;

use super::merged::{Lookup, MergedTree, read_prefix};

/// The directories ld.so searches last (glibc's trusted dirs on a multilib amd64 system, as
/// Gentoo lays them out).
pub const DEFAULT_DIRS: [&str; 4] = ["/lib64", "/usr/lib64", "/lib", "/usr/lib"];

/// Bytes read of one configuration file: ld.so.conf files are a few lines.
const MAX_CONF_BYTES: u64 = 256 * 1024;
/// `include`s nested deeper than this are not followed (a file may include itself).
const MAX_INCLUDE_DEPTH: usize = 8;
/// Configuration files read in all.
const MAX_CONF_FILES: usize = 512;

/// The directories of the image's ld.so.conf, in order, then the defaults.
pub fn search_dirs(tree: &MergedTree<'_>) -> Result<Vec<String>> {
    let mut dirs = Vec::new();
    let mut files_read = 0;
    read_conf(tree, "/etc/ld.so.conf", 0, &mut files_read, &mut dirs)?;
    for dir in DEFAULT_DIRS {
        if !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_string());
        }
    }
    Ok(dirs)
}

fn read_conf(
    tree: &MergedTree<'_>,
    path: &str,
    depth: usize,
    files_read: &mut usize,
    dirs: &mut Vec<String>,
) -> Result<()> {
    if depth > MAX_INCLUDE_DEPTH || *files_read >= MAX_CONF_FILES {
        return Ok(());
    }
    let Lookup::Found(file) = tree.lookup(Path::new(path), true)? else {
        return Ok(());
    };
    if !file.meta.is_file() {
        return Ok(());
    }
    *files_read += 1;
    let text = String::from_utf8_lossy(&read_prefix(&file.host, MAX_CONF_BYTES)?).into_owned();
    let here = Path::new(path).parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(pattern) = line
            .strip_prefix("include")
            .filter(|r| r.starts_with([' ', '\t']))
        {
            for pattern in pattern.split_whitespace() {
                let pattern = here.join(pattern);
                for included in expand_glob(tree, &pattern)? {
                    read_conf(tree, &included, depth + 1, files_read, dirs)?;
                }
            }
            continue;
        }
        if line.starts_with("hwcap") {
            continue;
        }
        // ldconfig takes whitespace, `:` and `,` between directories; `dir=TYPE` is obsolete.
        for dir in line.split([' ', '\t', ':', ',']).filter(|d| !d.is_empty()) {
            let dir = dir.split('=').next().unwrap_or(dir).trim_end_matches('/');
            if dir.starts_with('/') && !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_string());
            }
        }
    }
    Ok(())
}

/// The image paths `pattern` names: wildcards (`*`, `?`) only in its last component, as
/// ld.so.conf's `include ld.so.conf.d/*.conf`; sorted, as glob(3) returns them.
fn expand_glob(tree: &MergedTree<'_>, pattern: &Path) -> Result<Vec<String>> {
    let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
        return Ok(Vec::new());
    };
    let name = name.to_string_lossy();
    if !name.contains(['*', '?']) {
        return Ok(vec![pattern.to_string_lossy().into_owned()]);
    }
    let Lookup::Found(listed) = tree.lookup(dir, true)? else {
        return Ok(Vec::new());
    };
    let mut found: Vec<String> = tree
        .walk_dir(&listed.rel)?
        .into_iter()
        .filter(|rel| {
            rel.file_name()
                .is_some_and(|file| wildcard_match(&name, &file.to_string_lossy()))
        })
        .map(|rel| format!("/{}", rel.display()))
        .collect();
    found.sort();
    Ok(found)
}

/// Shell-style matching of `*` and `?` (no brackets), a leading `.` matched only literally.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Greedy match with one backtrack point: linear in the name for each `*`.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn reads_includes_and_keeps_the_order() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc/ld.so.conf.d")).unwrap();
        std::fs::create_dir_all(r.join("usr/share")).unwrap();
        std::fs::write(
            r.join("etc/ld.so.conf"),
            "# generated\ninclude ld.so.conf.d/*.conf\n/usr/lib/gcc/x86_64-pc-linux-gnu/14 \n\
             /usr/lib64:/opt/b,/opt/c/\nhwcap 0 nosegneg\ninclude /etc/ld.so.conf\n",
        )
        .unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/10-a.conf"), "/opt/a # a\n").unwrap();
        std::fs::write(r.join("usr/share/z.conf"), "/opt/z\n").unwrap();
        // Through a symlink, and a name the pattern does not take.
        symlink("/usr/share/z.conf", r.join("etc/ld.so.conf.d/20-z.conf")).unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/README"), "/opt/no\n").unwrap();
        std::fs::write(r.join("etc/ld.so.conf.d/.hidden.conf"), "/opt/no\n").unwrap();
        let layers = [r.to_path_buf()];
        let dirs = search_dirs(&MergedTree::new(&layers)).unwrap();
        assert_eq!(
            dirs,
            [
                "/opt/a",
                "/opt/z",
                "/usr/lib/gcc/x86_64-pc-linux-gnu/14",
                "/usr/lib64",
                "/opt/b",
                "/opt/c",
                "/lib64",
                "/lib",
                "/usr/lib"
            ]
        );
    }

    #[test]
    fn without_ld_so_conf_the_defaults_remain() {
        let root = tempfile::tempdir().unwrap();
        let layers = [root.path().to_path_buf()];
        assert_eq!(
            search_dirs(&MergedTree::new(&layers)).unwrap(),
            DEFAULT_DIRS
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.conf", "10-a.conf"));
        assert!(wildcard_match("a?c*", "abcdef"));
        assert!(!wildcard_match("*.conf", "README"));
        assert!(!wildcard_match("*.conf", ".x.conf"));
        assert!(wildcard_match("*a*a*a*b", "xaaab"));
        assert!(!wildcard_match("*a*a*a*b", &"a".repeat(10_000)));
    }
}
