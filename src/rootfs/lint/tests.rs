//! The lint on hand-made trees: real ELF files of the host (its /bin/true, its loader and
//! libc) copied around a temporary root.

use super::*;
use std::os::unix::fs::symlink;

const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";

/// A root with the host's /bin/true at /usr/bin/true, its loader at /lib64 and its libc at
/// `libc_at` (none when `None`).
fn image(libc_at: Option<&str>) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    put(r, "/usr/bin/true", "/bin/true");
    put(r, LOADER, LOADER);
    if let Some(at) = libc_at {
        put(r, at, LIBC);
    }
    root
}

fn put(root: &Path, at: &str, from: &str) {
    let dest = root.join(at.trim_start_matches('/'));
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(from, &dest).unwrap_or_else(|e| panic!("cannot copy the host's {from}: {e}"));
}

fn inputs(owned: BTreeSet<String>) -> LintInputs {
    LintInputs {
        owned,
        library_path: Vec::new(),
    }
}

fn lint(layers: &[&Path]) -> Report {
    let layers: Vec<PathBuf> = layers.iter().map(|l| l.to_path_buf()).collect();
    lint_layers(&layers, &LintInputs::default()).unwrap()
}

/// `(kind, path, detail)` of the findings of `kinds`.
fn found(report: &Report, kinds: &[Kind]) -> Vec<(Kind, String, String)> {
    report
        .findings
        .iter()
        .filter(|f| kinds.contains(&f.kind))
        .map(|f| (f.kind, f.path.clone(), f.detail.clone()))
        .collect()
}

const LOADING: [Kind; 3] = [
    Kind::MissingLibrary,
    Kind::MissingInterpreter,
    Kind::Unreadable,
];

#[test]
fn a_program_with_its_loader_and_libc_passes() {
    let root = image(Some("/usr/lib64/libc.so.6"));
    let report = lint(&[root.path()]);
    assert_eq!(found(&report, &LOADING), []);
    assert_eq!(report.checked.elf_files, 3);
}

#[test]
fn a_missing_soname_names_the_binary_and_the_soname() {
    let root = image(None);
    let report = lint(&[root.path()]);
    assert_eq!(
        found(&report, &LOADING),
        [(
            Kind::MissingLibrary,
            "/usr/bin/true".to_string(),
            "libc.so.6".to_string()
        )]
    );
    assert_eq!(report.findings[0].severity, Severity::Error);
}

#[test]
fn a_missing_loader_is_found() {
    let root = image(Some("/usr/lib64/libc.so.6"));
    std::fs::remove_file(root.path().join(LOADER.trim_start_matches('/'))).unwrap();
    let report = lint(&[root.path()]);
    let missing = found(&report, &[Kind::MissingInterpreter]);
    assert!(
        missing.contains(&(
            Kind::MissingInterpreter,
            "/usr/bin/true".to_string(),
            LOADER.to_string()
        )),
        "{missing:?}"
    );
}

#[test]
fn libraries_are_searched_where_ld_so_conf_says() {
    let root = image(Some("/opt/vendor/lib/libc.so.6"));
    let r = root.path();
    assert_eq!(found(&lint(&[r]), &[Kind::MissingLibrary]).len(), 1);
    std::fs::create_dir_all(r.join("etc/ld.so.conf.d")).unwrap();
    std::fs::write(r.join("etc/ld.so.conf"), "include ld.so.conf.d/*.conf\n").unwrap();
    std::fs::write(r.join("etc/ld.so.conf.d/vendor.conf"), "/opt/vendor/lib\n").unwrap();
    assert_eq!(found(&lint(&[r]), &LOADING), []);
}

#[test]
fn a_library_through_symlinks_counts_and_one_of_another_abi_does_not() {
    let root = image(Some("/usr/lib64/libc-2.41.so"));
    let r = root.path();
    symlink("libc-2.41.so", r.join("usr/lib64/libc.so.6")).unwrap();
    assert_eq!(found(&lint(&[r]), &LOADING), []);
    // A 32-bit libc (the class byte says so) is skipped by the loader, so by the lint.
    let lib = r.join("usr/lib64/libc-2.41.so");
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes[4] = 1;
    std::fs::write(&lib, bytes).unwrap();
    let missing = found(&lint(&[r]), &[Kind::MissingLibrary]);
    assert!(
        missing.contains(&(
            Kind::MissingLibrary,
            "/usr/bin/true".to_string(),
            "libc.so.6".to_string()
        )),
        "{missing:?}"
    );
}

#[test]
fn a_library_in_a_parent_layer_counts_unless_the_child_deleted_it() {
    let (child, parent) = (image(None), tempfile::tempdir().unwrap());
    put(parent.path(), "/usr/lib64/libc.so.6", LIBC);
    assert_eq!(found(&lint(&[child.path(), parent.path()]), &LOADING), []);
    // An overlay whiteout in the child's layer (only root may make one).
    let whiteout = child.path().join("usr/lib64/libc.so.6");
    std::fs::create_dir_all(whiteout.parent().unwrap()).unwrap();
    if nix::sys::stat::mknod(
        &whiteout,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        0,
    )
    .is_ok()
    {
        assert_eq!(
            found(&lint(&[child.path(), parent.path()]), &LOADING).len(),
            1
        );
    }
}

#[test]
fn scripts_need_their_interpreter() {
    let root = image(Some("/usr/lib64/libc.so.6"));
    let r = root.path();
    let script = |name: &str, text: &str| {
        let path = r.join("usr/bin").join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    script("ok", "#!/usr/bin/true -x\n");
    script("no-bash", "#! /bin/bash\necho\n");
    script("env-ok", "#!/usr/bin/env -S true\n");
    script("env-missing", "#!/usr/bin/env python3\n");
    script("empty", "#!\n");
    // Not executable: not a script the kernel would run.
    std::fs::write(r.join("usr/bin/data"), "#!/nowhere\n").unwrap();
    symlink("true", r.join("usr/bin/env")).unwrap();
    let report = lint(&[r]);
    assert_eq!(
        found(&report, &[Kind::MissingScriptInterpreter]),
        [
            (
                Kind::MissingScriptInterpreter,
                "/usr/bin/empty".into(),
                "`#!` names no interpreter".into()
            ),
            (
                Kind::MissingScriptInterpreter,
                "/usr/bin/env-missing".into(),
                "/usr/bin/env python3".into()
            ),
            (
                Kind::MissingScriptInterpreter,
                "/usr/bin/no-bash".into(),
                "/bin/bash".into()
            ),
        ]
    );
    assert_eq!(report.checked.scripts, 5);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind != Kind::MissingScriptInterpreter || f.severity == Severity::Warning)
    );
}

#[test]
fn dangling_links_and_loops_warn_and_never_reach_the_host() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("there"), "host file").unwrap();
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc")).unwrap();
    std::fs::create_dir_all(r.join("usr/lib")).unwrap();
    std::fs::write(r.join("usr/lib/real"), "").unwrap();
    symlink("../proc/self/mounts", r.join("etc/mtab")).unwrap();
    symlink("real", r.join("usr/lib/good")).unwrap();
    symlink("gone", r.join("usr/lib/dangling")).unwrap();
    symlink(outside.path().join("there"), r.join("usr/lib/host")).unwrap();
    symlink("loop-b", r.join("usr/lib/loop-a")).unwrap();
    symlink("loop-a", r.join("usr/lib/loop-b")).unwrap();
    let report = lint(&[r]);
    let dangling = found(&report, &[Kind::DanglingSymlink]);
    let paths: Vec<&str> = dangling.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/usr/lib/dangling",
            "/usr/lib/host",
            "/usr/lib/loop-a",
            "/usr/lib/loop-b"
        ]
    );
    assert!(dangling[2].2.contains("too many levels"), "{dangling:?}");
    assert_eq!(dangling[0].2, "-> gone");
    assert_eq!(report.checked.symlinks, 6);
}

#[test]
fn modes_and_owners() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in ["tmp", "srv/open", "var/db/pkg/app-misc/x-1", "etc"] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    let mode = |path: &str, mode: u32| {
        std::fs::set_permissions(r.join(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode("tmp", 0o1777);
    mode("srv/open", 0o777);
    for file in [
        "srv/owned",
        "srv/stray",
        "srv/su",
        "var/db/pkg/app-misc/x-1/CONTENTS",
        // Written by env-update: no package lists it, and no warning is due.
        "etc/ld.so.cache",
    ] {
        std::fs::write(r.join(file), "").unwrap();
    }
    mode("srv/stray", 0o666);
    mode("srv/su", 0o4755);
    let layers = [r.to_path_buf()];
    let owned: BTreeSet<String> = ["/srv/owned", "/srv/su", "/srv/gone"]
        .map(String::from)
        .into();
    let report = lint_layers(&layers, &inputs(owned.clone())).unwrap();
    assert_eq!(
        found(&report, &[Kind::Unowned, Kind::WorldWritable, Kind::SetId]),
        [
            (Kind::Unowned, "/srv/stray".into(), "".into()),
            (Kind::WorldWritable, "/srv/open".into(), "mode 0777".into()),
            (Kind::WorldWritable, "/srv/stray".into(), "mode 0666".into()),
            (Kind::SetId, "/srv/su".into(), "setuid (mode 4755)".into()),
        ]
    );
}

#[test]
fn owned_paths_are_matched_through_symlinked_directories() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("usr/lib64")).unwrap();
    std::fs::write(r.join("usr/lib64/libx.so"), "").unwrap();
    symlink("usr/lib64", r.join("lib64")).unwrap();
    let layers = [r.to_path_buf()];
    let owned: BTreeSet<String> = ["/lib64/libx.so", "/lib64"].map(String::from).into();
    let report = lint_layers(&layers, &inputs(owned.clone())).unwrap();
    assert_eq!(found(&report, &[Kind::Unowned]), []);
    // Owned by nothing: only an image with packages has owners to check.
    std::fs::write(r.join("usr/lib64/stray"), "").unwrap();
    let report = lint_layers(&layers, &inputs(owned.clone())).unwrap();
    assert_eq!(found(&report, &[Kind::Unowned]).len(), 1);
    assert_eq!(lint(&[r]).findings, []);
}

#[test]
fn hostile_files_are_findings_not_failures() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    // Cut short after the program headers' offset.
    let program = std::fs::read("/bin/true").unwrap();
    std::fs::write(r.join("bin/cut"), &program[..100]).unwrap();
    // Bigger than gib reads (sparse: costs no disk).
    let huge = std::fs::File::create(r.join("bin/huge")).unwrap();
    std::io::Write::write_all(&mut &huge, &program[..64]).unwrap();
    huge.set_len(MAX_ELF_BYTES + 1).unwrap();
    // A fifo with the execute bit: reading it must not block.
    nix::unistd::mkfifo(
        &r.join("bin/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o755),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let report = lint(&[r]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let unreadable = found(&report, &[Kind::Unreadable]);
    let paths: Vec<&str> = unreadable.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(paths, ["/bin/cut", "/bin/huge"], "{unreadable:?}");
    assert!(unreadable[1].2.contains("bigger than"), "{unreadable:?}");
}

#[test]
fn runtime_dirs_are_recognised_lexically() {
    assert!(into_runtime_dir(
        Path::new("etc/mtab"),
        Path::new("../proc/self/mounts")
    ));
    assert!(into_runtime_dir(
        Path::new("dev/stdin"),
        Path::new("/proc/self/fd/0")
    ));
    assert!(!into_runtime_dir(Path::new("etc/x"), Path::new("../procs")));
    assert!(!into_runtime_dir(
        Path::new("etc/x"),
        Path::new("/usr/lib/x")
    ));
}

#[test]
fn a_library_may_rely_on_what_its_program_loaded_and_ld_library_path_counts() {
    let root = image(Some("/opt/private/libc.so.6"));
    let r = root.path();
    // libm has no interpreter: a library, loaded by a program that may have loaded libc.
    put(r, "/usr/lib64/libm.so.6", "/lib/x86_64-linux-gnu/libm.so.6");
    let report = lint(&[r]);
    assert_eq!(
        found(&report, &[Kind::MissingLibrary, Kind::UnsearchedLibrary]),
        [
            (
                Kind::MissingLibrary,
                "/usr/bin/true".to_string(),
                "libc.so.6".to_string()
            ),
            (
                Kind::UnsearchedLibrary,
                "/usr/lib64/libm.so.6".to_string(),
                "libc.so.6 (at /opt/private/libc.so.6)".to_string()
            ),
        ]
    );
    let layers = [r.to_path_buf()];
    let with_path = LintInputs {
        owned: BTreeSet::new(),
        library_path: vec!["/opt/private".into()],
    };
    let report = lint_layers(&layers, &with_path).unwrap();
    assert_eq!(found(&report, &LOADING), []);
}

#[test]
fn a_needed_path_has_its_origin_expanded() {
    let root = image(Some("/opt/app/lib/libc.so.6"));
    std::fs::create_dir_all(root.path().join("opt/app/bin")).unwrap();
    let layers = [root.path().to_path_buf()];
    let tree = MergedTree::new(&layers);
    let mut lint = Lint {
        tree: &tree,
        search_dirs: Vec::new(),
        found_libraries: BTreeMap::new(),
        libraries_by_name: BTreeMap::new(),
        report: Report::default(),
    };
    let abi = elf::abi(&std::fs::read(LIBC).unwrap()[..64]).unwrap();
    for (needed, found) in [
        ("$ORIGIN/../lib/libc.so.6", true),
        ("${ORIGIN}/../lib/libc.so.6", true),
        ("/opt/app/lib/libc.so.6", true),
        ("$ORIGIN/libc.so.6", false),
        ("$PLATFORM/libc.so.6", false),
    ] {
        assert_eq!(
            lint.provides(needed, "/opt/app/bin", &[], abi).unwrap(),
            found,
            "{needed}"
        );
    }
}
