//! A real registry for the tests: Debian's docker-registry (the distribution project's) on
//! 127.0.0.1 with htpasswd authentication and TLS from a CA made by the test, its access log
//! for counting uploads, and skopeo to look at what it holds. Shared by `registry` (the
//! client alone) and `push` (gib build --push, gib push, registry parents).

use base64::Engine;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use crate::util::{gib, require_tool, run_ok};

pub const USER: &str = "gib";
pub const PASSWORD: &str = "s3cret-pa55";

/// A docker-registry process with its own CA, storage, htpasswd and log; killed on drop.
pub struct Registry {
    pub dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Registry {
    /// With htpasswd (Basic) authentication.
    pub fn start(dir: &Path) -> Registry {
        Registry::start_with_auth(dir, None)
    }

    /// With `auth` as the config's `auth:` section (e.g. a token server's), else htpasswd.
    pub fn start_with_auth(dir: &Path, auth_section: Option<String>) -> Registry {
        require_tool("docker-registry");
        require_tool("openssl");
        require_tool("htpasswd");
        let dir = dir.join("registry");
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        let port = free_port();
        crate::util::make_pki(&dir);
        // skopeo and podman read `<cert-dir>/*.crt`.
        std::fs::copy(dir.join("ca.pem"), dir.join("certs/ca.crt")).unwrap();
        let htpasswd = run_ok(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
        std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
        let auth = |password: &str| {
            let basic =
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
            format!(r#"{{"auths":{{"127.0.0.1:{port}":{{"auth":"{basic}"}}}}}}"#)
        };
        std::fs::write(dir.join("auth.json"), auth(PASSWORD)).unwrap();
        std::fs::write(dir.join("wrong-auth.json"), auth("not-the-password")).unwrap();
        let d = dir.display();
        let auth_section = auth_section.unwrap_or_else(|| {
            format!("auth:\n  htpasswd:\n    realm: gib-test\n    path: {d}/htpasswd\n")
        });
        std::fs::write(
            dir.join("config.yml"),
            format!(
                "version: 0.1\nlog:\n  level: info\n  formatter: text\nstorage:\n  filesystem:\n    \
                 rootdirectory: {d}/storage\n  delete:\n    enabled: true\nhttp:\n  addr: \
                 127.0.0.1:{port}\n  secret: gib-test\n  tls:\n    certificate: {d}/server.pem\n    \
                 key: {d}/server.key\n{auth_section}"
            ),
        )
        .unwrap();
        let mut registry = Registry {
            dir,
            port,
            child: None,
        };
        registry.restart();
        registry
    }

    /// Start (again) on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("registry.log"))
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill it (SIGKILL: a crash, not a shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn reference(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.host())
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The registry's access-log lines of blob upload requests (the `PUT`/`PATCH` that carry
    /// bytes) to `repository`.
    pub fn upload_requests(&self, repository: &str) -> Vec<String> {
        let put = format!("\"PUT /v2/{repository}/blobs/uploads/");
        let patch = format!("\"PATCH /v2/{repository}/blobs/uploads/");
        self.log()
            .lines()
            .filter(|l| l.contains(&put) || l.contains(&patch))
            .map(str::to_string)
            .collect()
    }

    /// Wait until an upload to `repository` has written more than 1 MiB (to kill the
    /// registry in the middle of it).
    pub fn wait_for_upload(&self, repository: &str) {
        let uploads = self.dir.join(format!(
            "storage/docker/registry/v2/repositories/{repository}/_uploads"
        ));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            assert!(
                Instant::now() < deadline,
                "the upload never started:\n{}",
                tail(&self.log())
            );
            for entry in std::fs::read_dir(&uploads).into_iter().flatten().flatten() {
                if std::fs::metadata(entry.path().join("data")).is_ok_and(|m| m.len() > 1 << 20) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Where the registry keeps a blob's bytes.
    pub fn stored_blob(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.join(format!(
            "storage/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// A gib command with this registry's credentials and nothing else of the machine's.
    pub fn gib(&self, auth_file: &str) -> Command {
        let mut cmd = gib();
        let home = self.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        cmd.env("HOME", &home)
            .env("DOCKER_CONFIG", home.join(".docker"))
            .env("REGISTRY_AUTH_FILE", self.dir.join(auth_file))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_CONFIG_HOME");
        cmd
    }

    pub fn push(&self, blobs: &Path, digest: &str, reference: &str, extra: &[&str]) -> Output {
        self.gib("auth.json")
            .args(["__registry", "push"])
            .arg(blobs)
            .arg(digest)
            .arg(self.reference(reference))
            .arg("--ca")
            .arg(self.ca())
            .args(extra)
            .output()
            .unwrap()
    }

    pub fn push_ok(
        &self,
        blobs: &Path,
        digest: &str,
        reference: &str,
        extra: &[&str],
    ) -> serde_json::Value {
        let out = self.push(blobs, digest, reference, extra);
        assert!(
            out.status.success(),
            "push of {reference} failed:\n{}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log())
        );
        serde_json::from_slice(&out.stdout).expect("the push report is JSON")
    }

    /// `gib __registry pull` of `reference` into `into`, with the credentials of `auth_file`.
    pub fn pull(&self, auth_file: &str, reference: &str, into: &Path, extra: &[&str]) -> Output {
        self.gib(auth_file)
            .args(["__registry", "pull"])
            .args(extra)
            .arg(self.reference(reference))
            .arg(into)
            .arg("--ca")
            .arg(self.ca())
            .output()
            .unwrap()
    }

    /// `skopeo inspect <extra…>` of `reference` with the test credentials and CA.
    fn skopeo_inspect(&self, extra: &[&str], reference: &str) -> Output {
        Command::new(require_tool("skopeo"))
            .arg("inspect")
            .args(extra)
            .args(["--creds", &format!("{USER}:{PASSWORD}"), "--cert-dir"])
            .arg(self.dir.join("certs"))
            .arg(format!("docker://{}", self.reference(reference)))
            .output()
            .unwrap()
    }

    /// The manifest (or index) skopeo reads under `reference` (`--raw`), parsed.
    pub fn skopeo_raw(&self, reference: &str) -> serde_json::Value {
        let out = self.skopeo_inspect(&["--raw"], reference);
        assert!(
            out.status.success(),
            "skopeo inspect --raw {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("skopeo printed JSON")
    }

    /// A blob's bytes, fetched from `repository` over the API with the test credentials
    /// (curl: skopeo has no command for one blob).
    pub fn blob(&self, repository: &str, digest: &str) -> Vec<u8> {
        let out = Command::new(require_tool("curl"))
            .args([
                "--fail",
                "--silent",
                "--show-error",
                "--location",
                "--cacert",
            ])
            .arg(self.ca())
            .args(["--user", &format!("{USER}:{PASSWORD}")])
            .arg(format!(
                "https://{}/v2/{repository}/blobs/{digest}",
                self.host()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "GET blob {digest} of {repository}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The digest skopeo sees under `reference`, or its error.
    pub fn skopeo_digest(&self, reference: &str) -> Result<String, String> {
        let out = self.skopeo_inspect(&[], reference);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        Ok(v["Digest"].as_str().unwrap().to_string())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
