//! Small helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The gib binary under test.
pub fn gib_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gib"))
}

/// A `gib` command with an isolated cache unless the test sets one.
pub fn gib() -> Command {
    let mut cmd = Command::new(gib_bin());
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Fail (never skip) when a tool the test needs is missing.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("this test needs `{name}`, which is not installed (.ci/run installs it)");
}

/// Run a command, panic with its output when it fails, return its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert_success(cmd, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn assert_success(cmd: &Command, out: &Output) {
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A scratch directory under the repository's target dir (not /tmp, which may be a small
/// tmpfs), readable by the unprivileged test user.
pub fn scratch_dir(name: &str) -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).unwrap();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(base)
        .unwrap();
    make_world_traversable(dir.path());
    dir
}

fn make_world_traversable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = Some(path);
    while let Some(dir) = p {
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.permissions().mode();
            if mode & 0o005 != 0o005 && dir.starts_with(env!("CARGO_TARGET_TMPDIR")) {
                let _ =
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o755));
            }
        }
        p = dir.parent();
    }
}

/// The unprivileged user the rootless tests run as, with /etc/subuid and /etc/subgid ranges
/// (created on first use; the tests run as root).
pub fn test_user() -> &'static str {
    static USER: OnceLock<&'static str> = OnceLock::new();
    USER.get_or_init(|| {
        const NAME: &str = "gibtest";
        let exists = Command::new("id")
            .arg(NAME)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !exists {
            run_ok(Command::new("useradd").args(["-m", "-s", "/bin/sh", NAME]));
        }
        let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
        assert!(
            subuid.lines().any(|l| l.starts_with(&format!("{NAME}:"))),
            "useradd gave {NAME} no /etc/subuid range"
        );
        NAME
    })
}

/// A command that runs `program` as the unprivileged test user, keeping the given env.
pub fn as_test_user(program: &Path) -> Command {
    let user = test_user();
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", user, "--"]).arg(program);
    cmd.env("HOME", format!("/home/{user}"));
    cmd
}

/// Whether the tests run as root (CI does).
pub fn is_root() -> bool {
    nix_uid() == 0
}

fn nix_uid() -> u32 {
    // SAFETY-free: read our uid from /proc to avoid a libc dependency in the tests.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap()
}

/// podman with a private store (vfs) and the runtime flags that work on this kind of machine.
pub struct Podman {
    bin: PathBuf,
    root: PathBuf,
    // podman refuses a runroot path longer than 50 characters, so it lives in /tmp.
    runroot: tempfile::TempDir,
}

impl Podman {
    /// A podman whose images live under `dir`.
    pub fn new(dir: &Path) -> Podman {
        Podman {
            bin: require_tool("podman"),
            root: dir.join("podman-root"),
            runroot: tempfile::Builder::new()
                .prefix("gib-podman-")
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(self.runroot.path())
            .args(["--storage-driver", "vfs", "--runtime", "/usr/sbin/runc"])
            .args(["--cgroup-manager", "cgroupfs"])
            .args(args);
        cmd
    }

    /// `podman load -i ARCHIVE`; its output.
    pub fn load(&self, archive: &Path) -> String {
        run_ok(self.command(&["load", "-i"]).arg(archive))
    }

    /// `podman run --rm IMAGE ARGS…` without network; its stdout.
    pub fn run(&self, image: &str, args: &[&str]) -> String {
        let mut cmd = self.command(&["run", "--rm", "--network", "none"]);
        cmd.args([
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .arg(image)
        .args(args);
        run_ok(&mut cmd)
    }
}

/// The entries of an image's layers in a docker/podman archive gib wrote, each layer as a
/// map of path -> (entry type, mode, uid, gid), base layer first.
pub fn archive_layers(
    archive: &Path,
    reference: &str,
) -> Vec<std::collections::BTreeMap<String, (char, u32, u64, u64)>> {
    archive_layer_blobs(archive, reference)
        .iter()
        .map(|blob| {
            let mut entries = std::collections::BTreeMap::new();
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
            for entry in tar.entries().unwrap() {
                let entry = entry.unwrap();
                let header = entry.header();
                let path = entry
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string();
                entries.insert(
                    path,
                    (
                        header.entry_type().as_byte() as char,
                        header.mode().unwrap(),
                        header.uid().unwrap(),
                        header.gid().unwrap(),
                    ),
                );
            }
            entries
        })
        .collect()
}

/// The regular files of an image's layers in an archive gib wrote, each layer as a map of
/// path -> contents, base layer first.
pub fn archive_layer_files(
    archive: &Path,
    reference: &str,
) -> Vec<std::collections::BTreeMap<String, Vec<u8>>> {
    use std::io::Read;
    archive_layer_blobs(archive, reference)
        .iter()
        .map(|blob| {
            let mut files = std::collections::BTreeMap::new();
            let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
            for entry in tar.entries().unwrap() {
                let mut entry = entry.unwrap();
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let path = entry.path().unwrap().to_string_lossy().into_owned();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                files.insert(path, bytes);
            }
            files
        })
        .collect()
}

/// The layer blobs (gzip) of `reference` in a docker/podman archive, base layer first.
fn archive_layer_blobs(archive: &Path, reference: &str) -> Vec<Vec<u8>> {
    use std::io::Read;
    let mut files = std::collections::BTreeMap::new();
    let mut outer = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for entry in outer.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(path, bytes);
    }
    let manifests: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let manifest = manifests
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["RepoTags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == reference)
        })
        .unwrap_or_else(|| panic!("{reference} is not in {}", archive.display()));
    manifest["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| files[layer.as_str().unwrap()].clone())
        .collect()
}

/// The emerge log of the latest build of image `name` in `cache` (`logs/<name>-<key>/`).
pub fn emerge_log(cache: &Path, name: &str) -> PathBuf {
    let logs = cache.join("logs");
    let prefix = format!("{name}-");
    std::fs::read_dir(&logs)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", logs.display()))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path().join("emerge.log"))
        .filter(|p| p.is_file())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no emerge log of {name} in {}", logs.display()))
}

/// A test CA and a certificate for 127.0.0.1 signed by it.
pub struct Pki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_pki(dir: &Path) -> Pki {
    require_tool("openssl");
    std::fs::create_dir_all(dir).unwrap();
    let p = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| {
        run_ok(Command::new("openssl").args(args).current_dir(dir));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=gib test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        p("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    Pki {
        ca: p("ca.pem"),
        cert: p("server.pem"),
        key: p("server.key"),
    }
}

/// `python3 -m http.server` serving a directory on 127.0.0.1, stopped on drop. Its request
/// log is kept, so a test can count what was fetched from it.
pub struct HttpServer {
    child: std::process::Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl HttpServer {
    pub fn serve(dir: &Path) -> HttpServer {
        use std::net::{TcpListener, TcpStream};
        use std::time::{Duration, Instant};
        let python = require_tool("python3");
        // A free port: the kernel picks one, then the server binds it.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let child = Command::new(python)
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(dir)
            .arg(port.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        let server = HttpServer { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The paths requested so far (`/distfiles/x.tar.gz`), in order, whatever the method.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let request = line.split_once('"')?.1;
                let mut words = request.split_whitespace();
                let _method = words.next()?;
                words.next().map(str::to_string)
            })
            .collect()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who runs gib in a test: root, or the unprivileged test user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    Root,
    User,
}

/// A scratch work dir `runner` can write to.
pub fn work_dir(runner: Runner, name: &str) -> tempfile::TempDir {
    let dir = scratch_dir(name);
    if runner == Runner::User {
        let user = test_user();
        run_ok(
            Command::new("chown")
                .arg(format!("{user}:{user}"))
                .arg(dir.path()),
        );
    }
    dir
}

/// gib run by `runner`.
pub fn gib_by(runner: Runner) -> Command {
    match runner {
        Runner::Root => gib(),
        Runner::User => {
            let mut cmd = as_test_user(&gib_bin());
            cmd.env("NO_COLOR", "1");
            cmd
        }
    }
}

/// `cmd build -f config --cache-dir cache`, `cmd` being gib as someone.
pub fn build_with(mut cmd: Command, config: &Path, cache: &Path) -> Command {
    cmd.arg("build")
        .arg("-f")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache);
    cmd
}

/// `gib build -f config --cache-dir cache extra...` run by `runner`.
pub fn gib_build(runner: Runner, config: &Path, cache: &Path, extra: &[&str]) -> Output {
    build_with(gib_by(runner), config, cache)
        .args(extra)
        .output()
        .unwrap()
}

/// `gib build` where no user namespace can be made: the limit is set to 0 in a user
/// namespace of its own (root there is root here; the machine is untouched), so any sandbox
/// fails.
pub fn build_without_sandboxes(config: &Path, cache: &Path, args: &[&str]) -> Output {
    // A user namespace that maps every id to itself, so gib is as much root there as on the
    // host (a root gib's cache belongs to its sandbox's range, which `unshare
    // --map-root-user` would not map), with max_user_namespaces 0 in it.
    const NO_USERNS: &str = r#"
import ctypes, os, sys
ready, go = os.pipe(), os.pipe()
pid = os.fork()
if pid == 0:
    if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
        os._exit(99)
    os.write(ready[1], b"u")
    os.read(go[0], 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as limit:
        limit.write("0")
    os.execv(sys.argv[1], sys.argv[1:])
os.read(ready[0], 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as map_file:
        map_file.write("0 0 4294967295")
os.write(go[1], b"m")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"#;
    Command::new(require_tool("python3"))
        .env("NO_COLOR", "1")
        .args(["-c", NO_USERNS])
        .arg(gib_bin())
        .args(["build", "-f"])
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .unwrap()
}

/// A venv under target/gib-fixtures named `name` with `packages` installed from PyPI, made
/// once (under a lock, for parallel test processes). A venv cannot be moved, so a marker file
/// says it is complete.
pub fn pypi_venv(name: &str, packages: &[&str]) -> PathBuf {
    let python = require_tool("python3");
    let cache = crate::fixture::fixtures_cache_dir();
    std::fs::create_dir_all(&cache).unwrap();
    let dir = cache.join(name);
    let lock = std::fs::File::create(cache.join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    let complete = dir.join("gib-installed");
    if !complete.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        run_ok(Command::new(python).args(["-m", "venv"]).arg(&dir));
        run_ok(
            Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check"])
                .args(packages),
        );
        std::fs::write(&complete, packages.join("\n")).unwrap();
    }
    dir
}
