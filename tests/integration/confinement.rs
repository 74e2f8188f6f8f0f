//! The sandbox is not the host's root, even when gib runs as root: a probe run as an image's
//! `test:` (in the image's root) and as a `script:` (in the builder, on the mini stage3),
//! as root and as the unprivileged test user, tries to write kernel settings, remount
//! `/sys` and `/proc/sys` read-write, unmask a masked path (also from a user namespace of
//! its own, where it has every capability), and reports its id map and capabilities.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::fixture::mini_stage3;
use crate::sandbox::{USERNS, Who, gib_as, subgid_start, subuid_start};
use crate::util::{self, scratch_dir};

/// Prints one `name: result` line per attempt; a result in capitals means it got through.
const PROBE: &str = r#"
attempt() {
	name=$1; shift
	if "$@" >/dev/null 2>&1; then echo "$name: DONE"; else echo "$name: refused"; fi
}
for tool in mount umount unshare; do
	command -v "$tool" >/dev/null || echo "missing: $tool"
done
echo "uid_map: $(head -n 1 /proc/self/uid_map)"
grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status | tr -d '\t' | sed 's/:/: /'
attempt core_pattern sh -c 'echo "|/tmp/gib-pwned %p" > /proc/sys/kernel/core_pattern'
attempt sysrq sh -c 'echo h > /proc/sysrq-trigger'
attempt sys_remount mount -o remount,rw /sys
attempt sys_write sh -c 'echo 1 > /sys/kernel/mm/ksm/run'
attempt procsys_remount mount -o remount,bind,rw /proc/sys
attempt mask_umount umount /sys/firmware
attempt nested_sys_remount unshare -Urm mount -o remount,rw /sys
attempt nested_procsys_remount unshare -Urm mount -o remount,bind,rw /proc/sys
attempt nested_mask_umount unshare -Urm umount /sys/firmware
attempt nested_proc_mount unshare -Urmpf --mount-proc true
attempt nested_userns unshare -Urm true
echo probe-done
"#;

/// The attempts that must fail.
const REFUSED: &[&str] = &[
    "core_pattern",
    "sysrq",
    "sys_remount",
    "sys_write",
    "procsys_remount",
    "mask_umount",
];
const REFUSED_NESTED: &[&str] = &[
    "nested_sys_remount",
    "nested_procsys_remount",
    "nested_mask_umount",
    "nested_proc_mount",
];

/// The capabilities the sandbox keeps (chown, dac_override, fowner, fsetid, kill, setgid,
/// setuid, net_bind_service, net_admin, sys_chroot, sys_admin, setfcap), as
/// /proc/<pid>/status prints them.
const KEPT_CAPS: &str = "00000000802414fb";

fn check_probe(who: Who, what: &str, text: &str) {
    let line = |name: &str| -> String {
        text.lines()
            // `gib build -v` prints the test's output as `  | <line>`.
            .map(|l| l.trim_start().trim_start_matches("| "))
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("{who:?} {what}: no {name} line in {text}"))
            .trim()
            .to_string()
    };
    assert!(text.contains("probe-done"), "{who:?} {what}: {text}");
    assert!(!text.contains("missing: "), "{who:?} {what}: {text}");
    // The nested attempts are refused for the locks, not because no namespace can be made.
    assert_eq!(line("nested_userns"), "DONE", "{who:?} {what}: {text}");
    let map: Vec<String> = line("uid_map")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(map[0], "0", "{who:?} {what}: {text}");
    assert_ne!(
        map[2], "4294967295",
        "{who:?} {what}: the whole id space: {text}"
    );
    assert_eq!(line("CapEff"), KEPT_CAPS, "{who:?} {what}: {text}");
    assert_eq!(line("CapBnd"), KEPT_CAPS, "{who:?} {what}: {text}");
    assert_eq!(line("NoNewPrivs"), "1", "{who:?} {what}: {text}");
    for name in REFUSED.iter().chain(REFUSED_NESTED) {
        assert_eq!(line(name), "refused", "{who:?} {what}: {name}: {text}");
    }
}

/// A busybox tree (applets as links) with the probe at /probe.sh.
fn busybox_image(dir: &Path) {
    let busybox = util::require_tool("busybox");
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::copy(&busybox, dir.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "grep", "head", "tr", "sed", "echo", "mount", "umount", "unshare", "true",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    fs::write(dir.join("probe.sh"), PROBE).unwrap();
}

fn run_build(who: Who, dir: &Path, config: &Path, args: &[&str]) -> Output {
    let cache = dir.join("cache");
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    let mut cmd = gib_as(who);
    cmd.args(["build", "-v", "-f"])
        .arg(config)
        .arg("--cache-dir")
        .arg(&cache)
        .args(args);
    let started = std::time::Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(600),
        "{who:?}: the build took {:?}",
        started.elapsed()
    );
    out
}

fn scratch_for(who: Who, name: &str) -> tempfile::TempDir {
    let dir = scratch_dir(name);
    if who == Who::User {
        let user = util::test_user();
        util::run_ok(
            Command::new("chown")
                .arg(format!("{user}:{user}"))
                .arg(dir.path()),
        );
    }
    dir
}

/// gib.yaml of one `script:` image `probe` running `./probe.sh` on the mini stage3.
fn script_probe_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("gib.yaml");
    fs::write(
        &config,
        format!(
            "stage3:\n  path: {}\nportage:\n  sync_type: none\nimages:\n  \
             probe:\n    tag: t\n    script: ./probe.sh\n",
            mini_stage3().display()
        ),
    )
    .unwrap();
    config
}

fn host_core_pattern() -> String {
    fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap()
}

#[test]
fn a_test_probe_is_confined_as_root_and_as_a_user() {
    let before = host_core_pattern();
    for who in crate::sandbox::EVERYONE {
        let dir = scratch_for(who, "confine-test");
        let tree = dir.path().join("tree");
        busybox_image(&tree);
        let config = dir.path().join("gib.yaml");
        fs::write(
            &config,
            "images:\n  probe:\n    rootfs: ./tree\n    tag: t\n    test: /bin/sh /probe.sh\n",
        )
        .unwrap();
        crate::sandbox::give_to(who, dir.path());
        let out = run_build(who, dir.path(), &config, &["probe"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{who:?}: {text}");
        check_probe(who, "test:", &text);
        assert_eq!(host_core_pattern(), before, "{who:?}: core_pattern changed");
    }
}

#[test]
fn a_script_probe_is_confined_and_writes_as_a_subordinate_id() {
    let before = host_core_pattern();
    for who in crate::sandbox::EVERYONE {
        let dir = scratch_for(who, "confine-script");
        // The probe's report goes to the shared distfiles cache, bound read-write: its owner
        // on the host is the id the sandbox's root really is.
        let script = format!(
            "exec > /var/cache/distfiles/probe-report 2>&1\n{PROBE}\n\
             touch /var/cache/distfiles/probe-owner\n"
        );
        fs::write(dir.path().join("probe.sh"), script).unwrap();
        let config = script_probe_config(dir.path());
        crate::sandbox::give_to(who, dir.path());
        let out = run_build(who, dir.path(), &config, &["probe"]);
        assert!(
            out.status.success(),
            "{who:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let distfiles = dir.path().join("cache/distfiles");
        let report = fs::read_to_string(distfiles.join("probe-report")).unwrap();
        check_probe(who, "script:", &report);
        let meta = fs::metadata(distfiles.join("probe-owner")).unwrap();
        let expected = match who {
            Who::Root => (subuid_start("root"), subgid_start("root")),
            Who::User => {
                let id = |flag: &str| -> u32 {
                    util::run_ok(Command::new("id").args([flag, util::test_user()]))
                        .trim()
                        .parse()
                        .unwrap()
                };
                (id("-u"), id("-g"))
            }
        };
        assert_eq!((meta.uid(), meta.gid()), expected, "{who:?}");
        assert_ne!(
            meta.uid(),
            0,
            "{who:?}: the sandbox wrote as the host's root"
        );
        assert_eq!(host_core_pattern(), before, "{who:?}: core_pattern changed");
    }
}

/// In a container whose /proc is partly masked the kernel refuses the sandbox a new /proc;
/// gib then fails with a clear error instead of showing the build the container's /proc.
/// The container is made with unshare(1) (a user, mount and pid namespace with its own
/// /proc), masked as runc masks it (a file bound over /proc/keys).
#[test]
fn a_masked_proc_is_a_clear_error_and_never_the_hosts() {
    let dir = scratch_dir("confine-proc");
    // The container's root is the host's root: its tree is root's.
    let root = crate::sandbox::busybox_root(dir.path(), Who::User);
    util::run_ok(Command::new("chown").args(["-R", "0:0"]).arg(&root));
    let unshare = util::require_tool("unshare");
    let run = |mask: bool| {
        let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
        let mask = if mask {
            "mount --bind /dev/null /proc/keys && "
        } else {
            ""
        };
        let started = std::time::Instant::now();
        let out = Command::new(&unshare)
            .args(["--user", "--map-root-user", "--mount", "--pid", "--fork"])
            .args(["--mount-proc", "/bin/sh", "-c"])
            .arg(format!("{mask}exec \"$0\" \"$@\""))
            .arg(util::gib_bin())
            .args(["__internal", "run", "--root"])
            .arg(&root)
            .args(["--", "/bin/sh", "-c", "ls /proc"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
        out
    };
    let out = run(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the kernel refuses a new /proc") && stderr.contains("hint: "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "the command ran: {stderr}");
    // Unmasked, the sandbox has a /proc of its own: its few processes, not the container's.
    let out = run(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pids = stdout
        .split_whitespace()
        .filter(|name| name.parse::<u32>().is_ok())
        .count();
    assert!((1..=4).contains(&pids), "{stdout}");
}

/// A stage3 a root gib's cache holds as the host's root's (what gib did before its sandbox
/// had a range of its own) is refused with a clear error, not a build failing half-way.
#[test]
fn a_cached_stage3_of_the_hosts_root_is_refused_as_root() {
    let dir = scratch_dir("confine-legacy");
    let config = script_probe_config(dir.path());
    fs::write(dir.path().join("probe.sh"), "true\n").unwrap();
    let out = run_build(Who::Root, dir.path(), &config, &["probe"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stage3s = dir.path().join("cache/stage3");
    let entry = fs::read_dir(&stage3s)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.') && p.is_dir())
        .expect("a stage3 entry");
    assert_ne!(fs::metadata(&entry).unwrap().uid(), 0);
    util::run_ok(Command::new("chown").arg("0:0").arg(&entry));
    let out = run_build(Who::Root, dir.path(), &config, &["--force", "probe"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("belongs to the host's root") && stderr.contains("gib clean --all"),
        "{stderr}"
    );
}

/// Portage's own network sandbox works inside gib's (whose network is the host's): an
/// ebuild's build phase sees only a loopback interface (the probe package records it in the
/// image), and no phase logs "Unable to unshare" for a feature gib left on.
#[test]
fn an_ebuilds_build_phase_is_offline_in_portages_own_sandboxes() {
    for who in crate::sandbox::EVERYONE {
        let dir = scratch_for(who, "confine-portage");
        let config = dir.path().join("gib.yaml");
        fs::write(
            &config,
            format!(
                "stage3:\n  path: {}\nportage:\n  sync_type: none\nimages:\n  \
                 probe:\n    tag: t\n    packages: [app-misc/sandbox-probe]\n",
                mini_stage3().display()
            ),
        )
        .unwrap();
        crate::sandbox::give_to(who, dir.path());
        let layout = dir.path().join("layout");
        let out = run_build(
            who,
            dir.path(),
            &config,
            &["--oci-layout", layout.to_str().unwrap(), "probe"],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{who:?}: {stderr}");
        let unpacked = dir.path().join("unpacked");
        util::run_ok(
            Command::new(util::require_tool("umoci"))
                .args(["raw", "unpack", "--rootless", "--image"])
                .arg(format!("{}:probe:t", layout.display()))
                .arg(&unpacked),
        );
        let probe = fs::read_to_string(unpacked.join("usr/share/sandbox-probe/probe.txt")).unwrap();
        let field = |name: &str| -> String {
            probe
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{who:?}: no {name} in {probe}"))
                .trim()
                .to_string()
        };
        assert_eq!(field("net"), "lo", "{who:?}: the build phase saw a network");
        let mut logs = String::new();
        for entry in walkdir::WalkDir::new(dir.path().join("cache/logs")) {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                logs.push_str(&String::from_utf8_lossy(&fs::read(entry.path()).unwrap()));
            }
        }
        assert!(logs.contains("sandbox-probe"), "{who:?}: no build log read");
        assert!(!logs.contains("Unable to"), "{who:?}: {logs}");
    }
}
