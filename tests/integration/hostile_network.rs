//! Hostile servers: registries and mirrors that try to take gib's credentials elsewhere, hold
//! it forever or feed it what it must refuse. Each case asserts that no credential left its
//! registry, that gib failed with a clear error in bounded time, and that nothing partial was
//! left behind; each runs as root and as the unprivileged test user.
//!
//! The servers are fakes on 127.0.0.1 (a thread per connection, raw HTTP/1.1), because no
//! real registry misbehaves on purpose; where the real registry can play its part (an HTTPS
//! registry with a token realm) it does. gib's timeouts are made short through its
//! `GIB_HTTP_*` variables so each case takes seconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::Digest;

use crate::registry_server::Registry;
use crate::sandbox::{EVERYONE, USERNS, Who, gib_as, give_to};
use crate::util::scratch_dir;

/// gib must have given up by then, retries included (4 attempts of at most a few seconds).
pub(crate) const BOUND: Duration = Duration::from_secs(45);

const USER: &str = "gib";
const PASSWORD: &str = "hostile-s3cret";

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) authorization: Option<String>,
}

/// What the fake does with a request (decided before its body is read).
pub(crate) enum Reply {
    Send {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Headers announcing `len` bytes, then one byte per `every`.
    Trickle { len: usize, every: Duration },
    /// Never answer, never read the body: hold the connection.
    Hold,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply::Send {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn with(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        Reply::Send {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        }
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

/// A fake HTTP server on 127.0.0.1 that records every request.
pub(crate) struct Fake {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    pub(crate) fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, handler) = (log.clone(), handler.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &log, &*handler);
                });
            }
        });
        Fake { port, seen }
    }

    pub(crate) fn origin(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>, handler: &Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_string()),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let seen = Seen {
        method,
        target,
        authorization,
    };
    log.lock().unwrap().push(seen.clone());
    match handler(&seen) {
        Reply::Send {
            status,
            headers,
            body,
        } => {
            std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())?;
            let mut head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            writer.write_all(head.as_bytes())?;
            if seen.method != "HEAD" {
                writer.write_all(&body)?;
            }
        }
        Reply::Trickle { len, every } => {
            write!(
                writer,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            )?;
            for _ in 0..len {
                writer.write_all(b"x")?;
                std::thread::sleep(every);
            }
        }
        Reply::Hold => std::thread::sleep(Duration::from_secs(300)),
    }
    Ok(())
}

/// A one-layer image: `(manifest bytes, its digest, [(blob digest, blob bytes)])`.
struct Image {
    manifest: Vec<u8>,
    digest: String,
    blobs: Vec<(String, Vec<u8>)>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn image(layer: Vec<u8>, declared_layer_size: Option<u64>, config_type: &str) -> Image {
    let layer_digest = digest(&layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}}}}"#
    )
    .into_bytes();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"{config_type}","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":{}}}]}}"#,
        digest(&config),
        config.len(),
        declared_layer_size.unwrap_or(layer.len() as u64)
    )
    .into_bytes();
    Image {
        digest: digest(&manifest),
        manifest,
        blobs: vec![(layer_digest, layer), (digest(&config), config)],
    }
}

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Write an image's blobs and manifest into `dir/sha256/` (for pushing).
fn write_blobs(dir: &Path, image: &Image) {
    let sha = dir.join("sha256");
    std::fs::create_dir_all(&sha).unwrap();
    for (d, bytes) in image
        .blobs
        .iter()
        .chain([&(image.digest.clone(), image.manifest.clone())])
    {
        std::fs::write(sha.join(d.trim_start_matches("sha256:")), bytes).unwrap();
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes
}

/// gib as `who` with short network bounds, credentials for `registry` only (when given) and
/// nothing else of the machine's.
fn gib(who: Who, dir: &Path, registry: Option<&str>) -> Command {
    let home = dir.join(format!("home-{who:?}"));
    std::fs::create_dir_all(&home).unwrap();
    let auth = home.join("auth.json");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let auths = registry
        .map(|r| format!(r#""{r}":{{"auth":"{basic}"}}"#))
        .unwrap_or_default();
    std::fs::write(&auth, format!(r#"{{"auths":{{{auths}}}}}"#)).unwrap();
    give_to(who, &home);
    let mut cmd = gib_as(who);
    cmd.env("HOME", &home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("REGISTRY_AUTH_FILE", &auth)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME")
        .env("GIB_HTTP_CONNECT_TIMEOUT", "2")
        .env("GIB_HTTP_STALL_TIMEOUT", "1")
        .env("GIB_HTTP_RESPONSE_TIMEOUT", "2")
        .env("GIB_HTTP_MIN_RATE", "4096");
    cmd
}

/// Run `cmd`, killing it if it outlives [`BOUND`] (which fails the test); its output and
/// how long it took.
pub(crate) fn run_bounded(cmd: &mut Command) -> (Output, Duration) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).ok();
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stderr.read_to_end(&mut buf).ok();
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BOUND {
            child.kill().ok();
            child.wait().ok();
            panic!("{cmd:?} still ran after {BOUND:?}: a network wait without a bound");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    };
    (output, start.elapsed())
}

/// gib failed, quickly, with a short error that says `what` and prints no raw control
/// character; returns its stderr.
fn assert_clear_failure(who: Who, out: &Output, took: Duration, what: &[&str]) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{who:?}: gib succeeded:\n{text}");
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "{who:?}: {:?}\n{text}",
        out.status
    );
    assert!(took < BOUND, "{who:?}: took {took:?}");
    // Progress lines may come first; the error is one `error:` line and its causes.
    assert_eq!(
        text.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{who:?}: {text}"
    );
    assert!(!text.contains("panicked"), "{who:?}: {text}");
    assert!(
        text.lines().count() <= 8 && text.len() < 4000,
        "{who:?}: not a short error:\n{text}"
    );
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{who:?}: raw control characters in {text:?}"
    );
    for needle in what {
        assert!(text.contains(needle), "{who:?}: no `{needle}` in:\n{text}");
    }
    text
}

/// The pull target holds verified blobs only: no temporary or partial file.
fn assert_only_whole_blobs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join("sha256")) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        assert_eq!(
            digest(&bytes),
            format!("sha256:{name}"),
            "a partial or temporary file was left: {name}"
        );
    }
}

fn pull(
    who: Who,
    dir: &Path,
    fake: &Fake,
    reference: &str,
    credentials: bool,
) -> (Output, Duration, std::path::PathBuf) {
    let into = dir.join(format!("pulled-{who:?}"));
    std::fs::create_dir_all(&into).unwrap();
    give_to(who, &into);
    let registry = fake.origin();
    let (out, took) = run_bounded(
        gib(who, dir, credentials.then_some(registry.as_str()))
            .args(["__registry", "pull", "--plain-http"])
            .arg(format!("{registry}/{reference}"))
            .arg(&into),
    );
    (out, took, into)
}

/// An empty cache directory `who` owns.
fn cache_of(who: Who, dir: &Path) -> std::path::PathBuf {
    let cache = dir.join(format!("cache-{who:?}"));
    std::fs::create_dir_all(&cache).unwrap();
    give_to(who, &cache);
    cache
}

/// A registry answering `GET /v2/` anonymously and the manifest `image` under any tag; blobs
/// as `blob` says.
fn registry_serving(
    image: &Image,
    manifest_type: &'static str,
    blob: impl Fn(&str, &[u8]) -> Reply + Send + Sync + 'static,
) -> Fake {
    let manifest = image.manifest.clone();
    let blobs = image.blobs.clone();
    Fake::start(move |req| {
        if req.target == "/v2/" {
            return Reply::status(200);
        }
        if req.target.contains("/manifests/") {
            return Reply::with(200, &[("Content-Type", manifest_type)], &manifest);
        }
        for (d, bytes) in &blobs {
            if req.target.ends_with(&format!("/blobs/{d}")) {
                return blob(d, bytes);
            }
        }
        Reply::status(404)
    })
}

/// The answer of a registry that wants Basic credentials.
fn ask_for_basic() -> Reply {
    Reply::with(
        401,
        &[("WWW-Authenticate", r#"Basic realm="hostile""#)],
        b"",
    )
}

/// An upload `Location` and a blob redirect on another origin (another port of 127.0.0.1)
/// get the request but never the registry's credentials; the registry itself gets them.
#[test]
fn credentials_stay_with_their_registry() {
    let dir = scratch_dir("hostile-credentials");
    for who in EVERYONE {
        let elsewhere = Fake::start(|req| match req.method.as_str() {
            "PUT" => Reply::status(201),
            _ => Reply::status(404),
        });
        let other = elsewhere.origin();
        let registry = Fake::start(move |req| {
            if req.authorization.is_none() {
                return ask_for_basic();
            }
            match req.method.as_str() {
                "GET" if req.target == "/v2/" => Reply::status(200),
                "HEAD" => Reply::status(404),
                "POST" => Reply::with(
                    202,
                    &[("Location", &format!("http://{other}/steal/upload"))],
                    b"",
                ),
                "PUT" if req.target.contains("/manifests/") => Reply::status(201),
                _ => Reply::status(404),
            }
        });
        let image = image(random_bytes(200_000), None, OCI_CONFIG);
        let blobs = dir.path().join(format!("blobs-{who:?}"));
        write_blobs(&blobs, &image);
        give_to(who, &blobs);
        let (out, took) = run_bounded(
            gib(who, dir.path(), Some(&registry.origin()))
                .args(["__registry", "push", "--plain-http"])
                .arg(&blobs)
                .arg(&image.digest)
                .arg(format!("{}/gib/app:1", registry.origin())),
        );
        assert!(
            out.status.success(),
            "{who:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(took < BOUND);
        let uploads = elsewhere.seen();
        assert_eq!(uploads.len(), 2, "{who:?}: layer and config: {uploads:?}");
        assert!(
            uploads.iter().all(|s| s.authorization.is_none()),
            "{who:?}: credentials left their registry: {uploads:?}"
        );
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        assert!(
            registry
                .seen()
                .iter()
                .any(|s| s.authorization.as_deref() == Some(expected.as_str())),
            "the registry itself gets the credentials"
        );

        // A pull whose blobs redirect to another origin: followed, without credentials.
        let storage = {
            let blobs = image.blobs.clone();
            Fake::start(move |req| {
                match blobs
                    .iter()
                    .find(|(d, _)| req.target.ends_with(d.trim_start_matches("sha256:")))
                {
                    Some((_, bytes)) => Reply::with(200, &[], bytes),
                    None => Reply::status(404),
                }
            })
        };
        let store = storage.origin();
        let manifest = image.manifest.clone();
        let registry = Fake::start(move |req| {
            if req.authorization.is_none() {
                return ask_for_basic();
            }
            if req.target == "/v2/" {
                Reply::status(200)
            } else if req.target.contains("/manifests/") {
                Reply::with(200, &[("Content-Type", OCI_MANIFEST)], &manifest)
            } else if let Some((_, d)) = req.target.split_once("/blobs/sha256:") {
                Reply::with(
                    307,
                    &[("Location", &format!("http://{store}/bucket/{d}"))],
                    b"",
                )
            } else {
                Reply::status(404)
            }
        });
        let (out, _, into) = pull(who, dir.path(), &registry, "gib/app:1", true);
        assert!(
            out.status.success(),
            "{who:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_only_whole_blobs(&into);
        let fetched = storage.seen();
        assert_eq!(fetched.len(), 2, "{fetched:?}");
        assert!(
            fetched.iter().all(|s| s.authorization.is_none()),
            "{who:?}: credentials followed a redirect: {fetched:?}"
        );
    }
}

/// An HTTPS registry (the real one) whose token realm is plain HTTP: gib refuses to send the
/// credentials there and says why.
#[test]
fn a_plain_http_token_realm_gets_no_credentials() {
    let dir = scratch_dir("hostile-realm");
    let realm = Fake::start(|_| Reply::with(200, &[], br#"{"token":"t"}"#));
    let registry_dir = dir.path().join("registry");
    let section = format!(
        "auth:\n  token:\n    realm: http://{}/token\n    service: hostile\n    issuer: hostile\n    \
         rootcertbundle: {}\n",
        realm.origin(),
        registry_dir.join("ca.pem").display()
    );
    let registry = Registry::start_with_auth(dir.path(), Some(section));
    for who in EVERYONE {
        let into = dir.path().join(format!("pulled-{who:?}"));
        std::fs::create_dir_all(&into).unwrap();
        give_to(who, &into);
        let (out, took) = run_bounded(
            gib(who, dir.path(), Some(&registry.host()))
                .args(["__registry", "pull"])
                .arg(registry.reference("gib/app:1"))
                .arg(&into)
                .arg("--ca")
                .arg(registry.ca()),
        );
        assert_clear_failure(
            who,
            &out,
            took,
            &[
                "over plain HTTP",
                &format!("http://{}/token", realm.origin()),
                "plain_http",
            ],
        );
        assert!(
            realm.seen().iter().all(|s| s.authorization.is_none()),
            "{who:?}: credentials reached the realm: {:?}",
            realm.seen()
        );
    }
}

/// A blob that trickles, a registry that never answers, one that never reads an upload: each
/// is given up on within the bounds.
#[test]
fn stalls_and_trickles_are_given_up() {
    let dir = scratch_dir("hostile-stalls");
    for who in EVERYONE {
        let img = image(random_bytes(50_000), None, OCI_CONFIG);
        let trickle = registry_serving(&img, OCI_MANIFEST, |_, bytes| Reply::Trickle {
            len: bytes.len(),
            every: Duration::from_millis(100),
        });
        let (out, took, into) = pull(who, dir.path(), &trickle, "gib/app:1", false);
        assert_clear_failure(
            who,
            &out,
            took,
            &["stalled during GET", "below the minimum"],
        );
        assert_only_whole_blobs(&into);

        let silent = Fake::start(|_| Reply::Hold);
        let (out, took, _) = pull(who, dir.path(), &silent, "gib/app:1", false);
        assert_clear_failure(who, &out, took, &["stalled during GET", &silent.origin()]);

        // Large enough to fill the socket buffers of a peer that reads nothing.
        let img = image(random_bytes(32 << 20), None, OCI_CONFIG);
        let blobs = dir.path().join(format!("big-{who:?}"));
        write_blobs(&blobs, &img);
        give_to(who, &blobs);
        let deaf = Fake::start(|req| match req.method.as_str() {
            "GET" => Reply::status(200),
            "HEAD" => Reply::status(404),
            "POST" => Reply::with(202, &[("Location", "/v2/gib/app/blobs/uploads/1")], b""),
            _ => Reply::Hold,
        });
        let (out, took) = run_bounded(
            gib(who, dir.path(), None)
                .args(["__registry", "push", "--plain-http"])
                .arg(&blobs)
                .arg(&img.digest)
                .arg(format!("{}/gib/app:1", deaf.origin())),
        );
        assert_clear_failure(who, &out, took, &["stalled during PUT"]);
    }
}

/// Declared sizes beyond the limit, redirect loops and oversized manifests are refused at
/// once, not retried as lost connections.
#[test]
fn permanent_refusals_are_not_retried() {
    let dir = scratch_dir("hostile-permanent");
    for who in EVERYONE {
        // A manifest that claims a 10 TB layer: refused before a byte of it is asked for.
        let img = image(random_bytes(1000), Some(10 << 40), OCI_CONFIG);
        let huge = registry_serving(&img, OCI_MANIFEST, |_, bytes| Reply::with(200, &[], bytes));
        let (out, took, into) = pull(who, dir.path(), &huge, "gib/app:1", false);
        assert_clear_failure(
            who,
            &out,
            took,
            &["declares 10995116277760 bytes", "GIB_MAX_BLOB_SIZE"],
        );
        let layer = &img.blobs[0].0;
        assert!(
            !huge
                .seen()
                .iter()
                .any(|s| s.target.contains(layer.as_str())),
            "{who:?}: the huge blob was requested"
        );
        assert_only_whole_blobs(&into);

        // The limit holds for honest sizes too.
        let img = image(random_bytes(100_000), None, OCI_CONFIG);
        let fine = registry_serving(&img, OCI_MANIFEST, |_, bytes| Reply::with(200, &[], bytes));
        let (out, took, _) = {
            let into = dir.path().join(format!("limited-{who:?}"));
            std::fs::create_dir_all(&into).unwrap();
            give_to(who, &into);
            let (out, took) = run_bounded(
                gib(who, dir.path(), None)
                    .env("GIB_MAX_BLOB_SIZE", "50000")
                    .args(["__registry", "pull", "--plain-http"])
                    .arg(format!("{}/gib/app:1", fine.origin()))
                    .arg(&into),
            );
            (out, took, into)
        };
        assert_clear_failure(who, &out, took, &["more than the 50000 bytes"]);

        let looping = Fake::start(|req| {
            if req.target == "/v2/" {
                Reply::status(200)
            } else {
                Reply::with(302, &[("Location", &req.target)], b"")
            }
        });
        let (out, took, _) = pull(who, dir.path(), &looping, "gib/app:1", false);
        assert_clear_failure(who, &out, took, &["redirects in a loop"]);
        let asked = looping.seen().iter().filter(|s| s.target != "/v2/").count();
        assert!(asked <= 10, "{who:?}: retried the loop: {asked} requests");

        let big = Fake::start(|req| {
            if req.target == "/v2/" {
                Reply::status(200)
            } else {
                Reply::with(200, &[("Content-Type", OCI_MANIFEST)], &vec![b' '; 9 << 20])
            }
        });
        let (out, took, _) = pull(who, dir.path(), &big, "gib/app:1", false);
        assert_clear_failure(
            who,
            &out,
            took,
            &["more than the 8388608 bytes gib accepts for a manifest"],
        );
        let asked = big.seen().iter().filter(|s| s.target != "/v2/").count();
        assert_eq!(
            asked, 1,
            "{who:?}: an oversized manifest was asked for again"
        );

        let forbidden = Fake::start(|req| {
            if req.target == "/v2/" {
                Reply::status(200)
            } else {
                Reply::with(
                    403,
                    &[],
                    br#"{"errors":[{"code":"DENIED","message":"no"}]}"#,
                )
            }
        });
        let (out, took, _) = pull(who, dir.path(), &forbidden, "gib/app:1", false);
        assert_clear_failure(who, &out, took, &["HTTP 403", "DENIED: no"]);
        assert_eq!(forbidden.seen().len(), 2, "{who:?}: a 403 was retried");
    }
}

/// A manifest of a type gib does not know, or an artifact rather than an image, is refused
/// as a parent instead of being read as one.
#[test]
fn unknown_manifest_types_are_refused() {
    let dir = scratch_dir("hostile-media");
    for who in EVERYONE {
        let img = image(random_bytes(1000), None, OCI_CONFIG);
        let schema1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";
        let manifest = String::from_utf8(img.manifest.clone())
            .unwrap()
            .replace(OCI_MANIFEST, schema1);
        let odd = Image {
            digest: digest(manifest.as_bytes()),
            manifest: manifest.into_bytes(),
            blobs: img.blobs.clone(),
        };
        let server = registry_serving(&odd, schema1, |_, bytes| Reply::with(200, &[], bytes));
        let (out, took, into) = pull(who, dir.path(), &server, "gib/app:1", false);
        assert_clear_failure(who, &out, took, &["no image gib can build on", schema1]);
        assert!(!server.seen().iter().any(|s| s.target.contains("/blobs/")));
        assert_only_whole_blobs(&into);

        let helm = "application/vnd.cncf.helm.config.v1+json";
        let artifact = image(random_bytes(1000), None, helm);
        let server = registry_serving(&artifact, OCI_MANIFEST, |_, bytes| {
            Reply::with(200, &[], bytes)
        });
        let (out, took, _) = pull(who, dir.path(), &server, "gib/app:1", false);
        assert_clear_failure(who, &out, took, &["not an image config", helm]);
    }
}

/// Escape sequences in a registry's error text reach the terminal as visible text.
#[test]
fn escape_codes_in_error_text_are_made_visible() {
    let dir = scratch_dir("hostile-escapes");
    for who in EVERYONE {
        let server = Fake::start(|req| {
            if req.target == "/v2/" {
                Reply::status(200)
            } else {
                Reply::with(
                    404,
                    &[("Content-Type", "application/json")],
                    b"{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"\\u001b]0;pwned\\u0007\\u001b[2Jgone\"}]}",
                )
            }
        });
        let (out, took, _) = pull(who, dir.path(), &server, "gib/app:1", false);
        let text = assert_clear_failure(who, &out, took, &["HTTP 404", "NAME_UNKNOWN"]);
        assert!(text.contains(r"\u{1b}]0;pwned\u{7}\u{1b}[2Jgone"), "{text}");

        let plain = Fake::start(|req| {
            if req.target == "/v2/" {
                Reply::status(200)
            } else {
                Reply::with(500, &[], b"\x1b[31mred\rover\x1b[0m")
            }
        });
        let (out, took, _) = pull(who, dir.path(), &plain, "gib/app:1", false);
        let text = assert_clear_failure(who, &out, took, &["HTTP 500"]);
        assert!(text.contains(r"\u{1b}[31mred\u{d}over"), "{text}");
    }
}

/// The stage3 `url:` download has the same bounds: a mirror that never answers or trickles
/// is given up on, and a plain-HTTP stage3 with no sha512 is not downloaded at all.
#[test]
fn a_stalled_stage3_mirror_is_given_up() {
    let dir = scratch_dir("hostile-stage3");
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    for who in EVERYONE {
        let cache = cache_of(who, dir.path());
        let stage3 = |url: &str, sha512: Option<&str>| {
            let mut cmd = gib(who, dir.path(), None);
            cmd.args(["__internal", "run", "--stage3", url]);
            if let Some(sha512) = sha512 {
                cmd.args(["--sha512", sha512]);
            }
            cmd.arg("--cache-dir").arg(&cache).args(["--", "/bin/true"]);
            run_bounded(&mut cmd)
        };
        let digest = "0".repeat(128);
        for (server, what) in [
            (Fake::start(|_| Reply::Hold), "did not answer within 1s"),
            (
                Fake::start(|_| Reply::Trickle {
                    len: 1 << 20,
                    every: Duration::from_millis(100),
                }),
                "below the minimum",
            ),
        ] {
            let url = format!("http://{}/stage3.tar.xz", server.origin());
            let (out, took) = stage3(&url, Some(&digest));
            assert_clear_failure(who, &out, took, &[&url, what]);
        }
        let server = Fake::start(|_| Reply::status(500));
        let url = format!("http://{}/stage3.tar.xz", server.origin());
        let (out, took) = stage3(&url, None);
        assert_clear_failure(who, &out, took, &["plain HTTP with no sha512", "hint:"]);
        assert!(server.seen().is_empty(), "{who:?}: it was downloaded");
        let left: Vec<_> = std::fs::read_dir(cache.join("downloads"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{who:?}: downloads left: {left:?}");
    }
}

/// Temp files of a killed run (a stage3 download cut short, a blob being written, a pulled
/// image being unpacked) are swept by the next gib and by `gib clean --all`; a running gib's
/// are left alone.
#[test]
fn temp_files_of_killed_runs_are_swept_but_not_a_running_gibs() {
    let dir = scratch_dir("hostile-leftovers");
    let _userns = USERNS.read().unwrap_or_else(|e| e.into_inner());
    for who in EVERYONE {
        let cache = cache_of(who, dir.path());
        let silent = Fake::start(|_| Reply::Hold);
        let url = format!("http://{}/stage3.tar.xz", silent.origin());
        let mut running = gib(who, dir.path(), None)
            .env("GIB_HTTP_STALL_TIMEOUT", "60")
            .args(["__internal", "run", "--stage3", &url, "--sha512"])
            .arg("0".repeat(128))
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--", "/bin/true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let downloads = cache.join("downloads");
        let temp_files = || -> Vec<String> {
            std::fs::read_dir(&downloads)
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let start = Instant::now();
        while silent.seen().is_empty() {
            assert!(start.elapsed() < BOUND, "the download never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(temp_files().len(), 1, "{who:?}: {:?}", temp_files());

        let clean = |cmd: &mut Command| {
            let (out, took) =
                run_bounded(cmd.arg("clean").arg("--all").arg("--cache-dir").arg(&cache));
            assert!(out.status.success() && took < BOUND, "{who:?}: {out:?}");
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        let text = clean(&mut gib(who, dir.path(), None));
        assert!(text.contains("in use by another gib"), "{who:?}: {text}");
        assert_eq!(
            temp_files().len(),
            1,
            "{who:?}: a running gib's file was removed"
        );

        // Killed (as the user, runuser's child is gib).
        let gib_pid = match who {
            Who::Root => running.id(),
            Who::User => {
                let children =
                    std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", running.id()))
                        .unwrap();
                children.split_whitespace().next().unwrap().parse().unwrap()
            }
        };
        crate::util::run_ok(Command::new("kill").args(["-KILL", &gib_pid.to_string()]));
        running.wait().unwrap();
        assert_eq!(
            temp_files().len(),
            1,
            "{who:?}: the killed run left its file"
        );
        // What other killed runs leave.
        let blob_temp = cache.join("blobs/sha256/.tmpK1ll3d");
        let pulled_temp = cache.join("pulled/.tmp-k1ll3d/tree/usr/bin");
        std::fs::create_dir_all(blob_temp.parent().unwrap()).unwrap();
        std::fs::write(&blob_temp, b"half a blob").unwrap();
        std::fs::create_dir_all(&pulled_temp).unwrap();
        std::fs::write(pulled_temp.join("tool"), b"half a layer").unwrap();
        give_to(who, &cache);

        let text = clean(&mut gib(who, dir.path(), None));
        assert!(!text.contains("in use"), "{who:?}: {text}");
        assert!(temp_files().is_empty(), "{who:?}: {:?}", temp_files());
        assert!(!blob_temp.exists() && !cache.join("pulled/.tmp-k1ll3d").exists());
    }
}
