//! The registry client against a real registry: Debian's docker-registry (the distribution
//! project's) on 127.0.0.1 with htpasswd authentication and TLS from a CA made by the test,
//! checked with skopeo and podman. Images are made with umoci (a parent with busybox, a child
//! that adds a layer) or, for the large one, by writing the blobs directly.

use std::io::Write;

use base64::Engine;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::registry_server::{PASSWORD, Registry, USER};
use crate::util::{require_tool, run_ok, scratch_dir};

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// An OCI layout with `base` (busybox, prints "hello from gib") and `child` (base plus a
/// layer); returns the blobs dir and the two manifest digests.
struct Chain {
    blobs: PathBuf,
    base: String,
    child: String,
}

impl Chain {
    fn make(dir: &Path) -> Chain {
        let umoci = require_tool("umoci");
        let layout = dir.join("oci");
        let image = |tag: &str| format!("{}:{tag}", layout.display());
        run_ok(Command::new(&umoci).args(["init", "--layout"]).arg(&layout));
        run_ok(Command::new(&umoci).args(["new", "--image", &image("base")]));
        let tree = dir.join("tree-base/bin");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::copy("/bin/busybox", tree.join("busybox"))
            .expect("this test needs busybox-static");
        std::os::unix::fs::symlink("busybox", tree.join("sh")).unwrap();
        run_ok(
            Command::new(&umoci)
                .args(["insert", "--image", &image("base")])
                .arg(&tree)
                .arg("/bin"),
        );
        run_ok(Command::new(&umoci).args([
            "config",
            "--image",
            &image("base"),
            "--config.entrypoint",
            "/bin/busybox",
            "--config.cmd",
            "echo",
            "--config.cmd",
            "hello from gib",
        ]));
        let app = dir.join("tree-child");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("greeting"), "hello from the child\n").unwrap();
        run_ok(
            Command::new(&umoci)
                .args(["insert", "--image", &image("base"), "--tag", "child"])
                .arg(&app)
                .arg("/app"),
        );
        run_ok(Command::new(&umoci).args([
            "config",
            "--image",
            &image("child"),
            "--config.cmd",
            "cat",
            "--config.cmd",
            "/app/greeting",
        ]));
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let digest_of = |tag: &str| {
            index["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
                .map(|m| m["digest"].as_str().unwrap().to_string())
                .unwrap()
        };
        Chain {
            blobs: layout.join("blobs"),
            base: digest_of("base"),
            child: digest_of("child"),
        }
    }

    /// The layer and config digests of one of the chain's manifests.
    fn blobs_of(&self, manifest: &str) -> Vec<String> {
        let path = self
            .blobs
            .join("sha256")
            .join(manifest.trim_start_matches("sha256:"));
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut blobs: Vec<String> = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect();
        blobs.push(m["config"]["digest"].as_str().unwrap().to_string());
        blobs
    }
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> (String, usize) {
    use sha2::Digest;
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    std::fs::create_dir_all(blobs.join("sha256")).unwrap();
    std::fs::write(blobs.join("sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

/// An image with one layer of `layer_size` random bytes (the registry does not look inside
/// layers, so this needs no tar), written straight into `blobs`; returns the manifest digest.
fn random_image(blobs: &Path, layer_size: usize) -> String {
    let mut layer = vec![0u8; layer_size];
    let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut urandom, &mut layer).unwrap();
    let (layer_digest, layer_len) = write_blob(blobs, &layer);
    drop(layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    );
    let (config_digest, config_len) = write_blob(blobs, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_len}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{layer_len}}}]}}"#
    );
    write_blob(blobs, manifest.as_bytes()).0
}

#[test]
fn push_is_seen_by_skopeo_and_podman_and_a_child_uploads_no_parent_blob() {
    let dir = scratch_dir("registry-push");
    let chain = Chain::make(dir.path());
    let registry = Registry::start(dir.path());

    let report = registry.push_ok(
        &chain.blobs,
        &chain.base,
        "gib/base:1.0",
        &["--tag", "latest"],
    );
    assert_eq!(report["manifest_digest"], chain.base.as_str());
    assert_eq!(strings(&report["tags"]), ["1.0", "latest"]);
    for tag in ["1.0", "latest"] {
        assert_eq!(
            registry.skopeo_digest(&format!("gib/base:{tag}")),
            Ok(chain.base.clone())
        );
    }
    let base_blobs = chain.blobs_of(&chain.base);
    assert_eq!(registry.upload_requests("gib/base").len(), base_blobs.len());

    // The child after its parent: the parent's layer is mounted, never uploaded.
    let report = registry.push_ok(
        &chain.blobs,
        &chain.child,
        "gib/app:2",
        &["--mount-from", &registry.reference("gib/base:1.0")],
    );
    let uploaded = strings(&report["uploaded"]);
    let mounted = strings(&report["mounted"]);
    let base_layer = &base_blobs[0];
    assert_eq!(mounted, std::slice::from_ref(base_layer), "{report:#}");
    assert!(!uploaded.contains(base_layer));
    let child_uploads = registry.upload_requests("gib/app");
    assert_eq!(child_uploads.len(), uploaded.len(), "{child_uploads:#?}");
    assert!(
        child_uploads
            .iter()
            .all(|l| !l.contains(base_layer.as_str())),
        "a parent blob was uploaded again: {child_uploads:#?}"
    );
    assert_eq!(registry.skopeo_digest("gib/app:2"), Ok(chain.child.clone()));

    // Again: nothing to send, and the tag is left alone.
    let before = registry.log().lines().count();
    let report = registry.push_ok(&chain.blobs, &chain.child, "gib/app:2", &[]);
    assert!(strings(&report["uploaded"]).is_empty(), "{report:#}");
    assert_eq!(
        strings(&report["manifests_skipped"]),
        [registry.reference("gib/app:2")]
    );
    let after: Vec<String> = registry
        .log()
        .lines()
        .skip(before)
        .map(str::to_string)
        .collect();
    assert!(!after.iter().any(|l| l.contains("\"PUT ")), "{after:#?}");

    // Chunked uploads (a registry that wants PATCHes) give the same image.
    let report = registry.push_ok(
        &chain.blobs,
        &chain.child,
        "gib/chunked:1",
        &["--chunk-size", "65536"],
    );
    assert_eq!(strings(&report["uploaded"]).len(), base_blobs.len() + 1);
    assert!(
        registry
            .upload_requests("gib/chunked")
            .iter()
            .any(|l| l.contains("\"PATCH "))
    );
    assert_eq!(
        registry.skopeo_digest("gib/chunked:1"),
        Ok(chain.child.clone())
    );

    // podman pulls and runs both. Limits at or below ours: this machine denies raising them.
    let podman = require_tool("podman");
    // podman refuses a runroot path longer than 50 characters.
    let runroot = tempfile::Builder::new()
        .prefix("gib-podman-")
        .tempdir_in("/tmp")
        .unwrap();
    let podman_cmd = || {
        let mut cmd = Command::new(&podman);
        cmd.arg("--root")
            .arg(dir.path().join("podman"))
            .arg("--runroot")
            .arg(runroot.path())
            .args(["--storage-driver", "vfs"]);
        cmd
    };
    for (reference, expected) in [
        ("gib/base:latest", "hello from gib"),
        ("gib/app:2", "hello from the child"),
    ] {
        run_ok(
            podman_cmd()
                .args([
                    "pull",
                    "--creds",
                    &format!("{USER}:{PASSWORD}"),
                    "--cert-dir",
                ])
                .arg(registry.dir.join("certs"))
                .arg(format!("docker://{}", registry.reference(reference))),
        );
        let out = run_ok(podman_cmd().args([
            "run",
            "--rm",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            &registry.reference(reference),
        ]));
        assert_eq!(out.trim(), expected);
    }
}

#[test]
fn failures_name_the_registry_and_never_the_secret() {
    let dir = scratch_dir("registry-failures");
    let chain = Chain::make(dir.path());
    let mut registry = Registry::start(dir.path());
    let stderr = |out: Output| {
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !text.contains(PASSWORD) && !text.contains("not-the-password"),
            "{text}"
        );
        text
    };
    let host = registry.host();

    let out = registry
        .gib("wrong-auth.json")
        .args(["__registry", "push"])
        .arg(&chain.blobs)
        .arg(&chain.base)
        .arg(registry.reference("gib/base:1"))
        .arg("--ca")
        .arg(registry.ca())
        .output()
        .unwrap();
    let text = stderr(out);
    assert!(
        text.contains(&format!("{host} rejected the credentials of `gib`")),
        "{text}"
    );
    assert!(text.contains("wrong-auth.json"), "{text}");

    let out = registry
        .gib("auth.json")
        .args(["__registry", "push"])
        .arg(&chain.blobs)
        .arg(&chain.base)
        .arg(registry.reference("gib/base:1"))
        .output()
        .unwrap();
    let text = stderr(out);
    assert!(
        text.contains(&format!(
            "the TLS certificate of https://{host}/v2/ is not trusted"
        )),
        "{text}"
    );

    let out = registry.pull("auth.json", "gib/absent:1", &dir.path().join("pulled"), &[]);
    let text = stderr(out);
    assert!(
        text.contains("MANIFEST_UNKNOWN") || text.contains("NAME_UNKNOWN"),
        "{text}"
    );

    registry.stop();
    let out = registry.push(&chain.blobs, &chain.base, "gib/base:1", &[]);
    let text = stderr(out);
    assert!(
        text.contains(&format!("cannot connect to https://{host}/v2/")),
        "{text}"
    );
}

#[test]
fn a_registry_killed_mid_push_moves_no_tag_and_a_second_push_completes() {
    let dir = scratch_dir("registry-killed");
    let chain = Chain::make(dir.path());
    let mut registry = Registry::start(dir.path());
    registry.push_ok(&chain.blobs, &chain.base, "gib/big:latest", &[]);

    let big = random_image(&chain.blobs, 192 << 20);
    let push = registry
        .gib("auth.json")
        .args(["__registry", "push"])
        .arg(&chain.blobs)
        .arg(&big)
        .arg(registry.reference("gib/big:latest"))
        .arg("--ca")
        .arg(registry.ca())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the registry once the large upload has started writing.
    registry.wait_for_upload("gib/big");
    registry.stop();
    let out = push.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the push survived the registry's death"
    );
    assert!(text.contains(&registry.host()), "{text}");

    registry.restart();
    assert_eq!(
        registry.skopeo_digest("gib/big:latest"),
        Ok(chain.base.clone())
    );
    let report = registry.push_ok(&chain.blobs, &big, "gib/big:latest", &[]);
    assert_eq!(report["manifest_digest"], big.as_str());
    assert_eq!(registry.skopeo_digest("gib/big:latest"), Ok(big.clone()));
    let _ = writeln!(std::io::stderr(), "killed push said: {text}");
}

#[test]
fn pull_verifies_every_digest_and_keeps_no_corrupt_blob() {
    let dir = scratch_dir("registry-pull");
    let chain = Chain::make(dir.path());
    let registry = Registry::start(dir.path());
    registry.push_ok(&chain.blobs, &chain.child, "gib/app:1", &[]);

    let pull = |into: &Path, reference: &str| registry.pull("auth.json", reference, into, &[]);
    let pulled = dir.path().join("pulled");
    let out = pull(&pulled, "gib/app:1");
    crate::util::assert_success(&Command::new("gib"), &out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["manifest"]["digest"], chain.child.as_str());
    let mut expected = chain.blobs_of(&chain.child);
    expected.push(chain.child.clone());
    for digest in &expected {
        let bytes = std::fs::read(
            pulled
                .join("sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap();
        assert_eq!(write_blob(&dir.path().join("check"), &bytes).0, *digest);
    }
    // By digest, the second time from the cache.
    let out = pull(&pulled, &format!("gib/app@{}", chain.child));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(strings(&report["downloaded"]).is_empty(), "{report:#}");

    // An index: its manifests go first, by digest; a pull picks the platform's manifest.
    let size_of = |d: &str| {
        std::fs::metadata(
            chain
                .blobs
                .join("sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap()
        .len()
    };
    let entry = |d: &str, arch: &str| {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
            size_of(d)
        )
    };
    // The arm64 entry: base with a config that says arm64 (a pull checks the config too).
    let read_json = |d: &str| -> serde_json::Value {
        let path = chain
            .blobs
            .join("sha256")
            .join(d.trim_start_matches("sha256:"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let mut arm_manifest = read_json(&chain.base);
    let mut arm_config = read_json(arm_manifest["config"]["digest"].as_str().unwrap());
    arm_config["architecture"] = "arm64".into();
    let arm_config = serde_json::to_vec(&arm_config).unwrap();
    let (config_digest, config_len) = write_blob(&chain.blobs, &arm_config);
    arm_manifest["config"]["digest"] = config_digest.into();
    arm_manifest["config"]["size"] = config_len.into();
    let (arm_base, _) = write_blob(&chain.blobs, &serde_json::to_vec(&arm_manifest).unwrap());
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
        entry(&chain.child, "amd64"),
        entry(&arm_base, "arm64")
    );
    let (index_digest, _) = write_blob(&chain.blobs, index.as_bytes());
    let report = registry.push_ok(&chain.blobs, &index_digest, "gib/multi:1", &[]);
    let pushed = strings(&report["manifests_pushed"]);
    assert_eq!(
        pushed,
        [
            registry.reference(&format!("gib/multi@{}", chain.child)),
            registry.reference(&format!("gib/multi@{arm_base}")),
            registry.reference("gib/multi:1"),
        ]
    );
    assert_eq!(
        registry.skopeo_digest("gib/multi:1"),
        Ok(index_digest.clone())
    );
    let arm = dir.path().join("arm");
    let out = registry.pull(
        "auth.json",
        "gib/multi:1",
        &arm,
        &["--platform", "linux/arm64"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["index_digest"], index_digest.as_str());
    assert_eq!(report["manifest"]["digest"], arm_base.as_str());

    // A registry that serves a corrupted layer: a digest error, and no blob left behind.
    let layer = &chain.blobs_of(&chain.child)[0];
    let stored = registry.stored_blob(layer);
    let mut bytes = std::fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    let fresh = dir.path().join("fresh");
    let out = pull(&fresh, "gib/app:1");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("digest mismatch") && text.contains(layer.as_str()),
        "{text}"
    );
    let left: Vec<String> = std::fs::read_dir(fresh.join("sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !left.contains(&layer.trim_start_matches("sha256:").to_string()),
        "{left:?}"
    );
    assert!(
        left.iter().all(|name| name.len() == 64),
        "temporary files left: {left:?}"
    );
}

/// A token server as the distribution token spec describes it: Basic credentials in,
/// `{"access_token": <JWT>}` out, the JWT signed (RS256, `openssl dgst`) by a key whose
/// certificate the registry trusts. Written here because Debian packages none; the registry
/// that verifies its tokens is the real one.
struct TokenServer {
    port: u16,
    /// Every `scope` asked for, in order.
    scopes: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

const TOKEN_SERVICE: &str = "gib-test-registry";
const TOKEN_ISSUER: &str = "gib-test-issuer";

impl TokenServer {
    fn start(dir: &Path) -> TokenServer {
        let dir = dir.join("token");
        std::fs::create_dir_all(&dir).unwrap();
        run_ok(Command::new("openssl").current_dir(&dir).args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=gib test token issuer",
        ]));
        let der = run_ok_bytes(
            Command::new("openssl")
                .current_dir(&dir)
                .args(["x509", "-in", "cert.pem", "-outform", "DER"]),
        );
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scopes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = scopes.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve_token(stream, &dir, &x5c, &seen);
            }
        });
        TokenServer { port, scopes }
    }

    /// The registry's `auth:` section for this server.
    fn auth_section(&self, dir: &Path) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    \
             issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            dir.join("token/cert.pem").display()
        )
    }
}

fn run_ok_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    crate::util::assert_success(cmd, &out);
    out.stdout
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn serve_token(
    mut stream: TcpStream,
    dir: &Path,
    x5c: &str,
    seen: &std::sync::Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader};
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|pair| pair.strip_prefix("scope="))
        .map(percent_decode)
        .collect();
    seen.lock().unwrap().extend(scopes.iter().cloned());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    if authorization.as_deref() != Some(expected.as_str()) {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"wrong user or password"}]}"#;
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": USER, "aud": TOKEN_SERVICE, "exp": now + 300,
        "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()), "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut sign = Command::new("openssl")
        .current_dir(dir)
        .args(["dgst", "-sha256", "-sign", "key.pem"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    sign.stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())?;
    let signature = sign.wait_with_output()?.stdout;
    let token = format!("{signing_input}.{}", b64(&signature));
    let body = serde_json::json!({"access_token": token, "expires_in": 300}).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn bearer_tokens_from_the_challenge_with_a_mount_scope() {
    let dir = scratch_dir("registry-token");
    let chain = Chain::make(dir.path());
    let tokens = TokenServer::start(dir.path());
    let registry = Registry::start_with_auth(dir.path(), Some(tokens.auth_section(dir.path())));

    // The test's token server speaks plain HTTP: gib sends it credentials only when told so.
    let realm_host = format!("127.0.0.1:{}", tokens.port);
    let plain_realm = ["--plain-http-host", realm_host.as_str()];
    registry.push_ok(&chain.blobs, &chain.base, "gib/base:1", &plain_realm);
    let report = registry.push_ok(
        &chain.blobs,
        &chain.child,
        "gib/app:1",
        &[
            "--mount-from",
            &registry.reference("gib/base:1"),
            plain_realm[0],
            plain_realm[1],
        ],
    );
    let base_layer = &chain.blobs_of(&chain.base)[0];
    assert_eq!(
        strings(&report["mounted"]),
        std::slice::from_ref(base_layer)
    );
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:gib/app:pull,push".to_string()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:gib/base:pull".to_string()),
        "{scopes:?}"
    );
    assert_eq!(registry.skopeo_digest("gib/app:1"), Ok(chain.child.clone()));

    let out = registry.pull(
        "wrong-auth.json",
        "gib/app:1",
        &dir.path().join("pulled"),
        &plain_realm,
    );
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("rejected the credentials of `gib`") && text.contains("token server"),
        "{text}"
    );
}

#[test]
fn credentials_from_a_docker_credential_helper() {
    let dir = scratch_dir("registry-helper");
    let chain = Chain::make(dir.path());
    let registry = Registry::start(dir.path());
    // A helper speaking docker-credential-helpers' protocol: server on stdin, JSON out.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = dir.path().join("helper-asked");
    let helper = bin.join("docker-credential-gibtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat > {}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' x\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let docker_config = registry.dir.join("home/.docker");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"gibtest"}}}}"#, registry.host()),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = registry
        .gib("no-such-auth.json")
        .env("PATH", path)
        .args(["__registry", "push"])
        .arg(&chain.blobs)
        .arg(&chain.base)
        .arg(registry.reference("gib/helped:1"))
        .arg("--ca")
        .arg(registry.ca())
        .output()
        .unwrap();
    crate::util::assert_success(&Command::new("gib"), &out);
    assert_eq!(std::fs::read_to_string(&asked).unwrap(), registry.host());
    assert_eq!(
        registry.skopeo_digest("gib/helped:1"),
        Ok(chain.base.clone())
    );
}
