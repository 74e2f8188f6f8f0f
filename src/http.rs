//! How gib talks HTTP, in one place: the ureq agent configuration every client starts from
//! (downloads, stage3 `url:`, registry pulls and pushes), so that every network wait has a
//! bound, and the limits behind it.
//!
//! A wait is bounded three ways: connecting ([`Limits::connect`]), each read and each write on
//! the socket ([`Limits::stall`]: a peer that sends or takes nothing for that long is given up
//! on), and a minimum rate ([`RateFloor`]: a peer that trickles a few bytes now and then
//! defeats a stall timeout but not this). How many bytes a download or blob may have is
//! bounded too ([`Limits::max_blob_size`]). The defaults suit slow links; the `GIB_HTTP_*`
//! environment variables change them (the tests make them short).
//!
//! Which certificate authorities a server may be signed by is decided here too, with one
//! meaning of `ca_certificate` wherever gib.yaml or a flag gives one (a registry, a
//! repository's git or webrsync host, a stage3 mirror and a keyserver of its own): its
//! certificates are trusted **besides** the default roots, never instead of them, so a
//! private host and the public hosts it redirects to (a CDN for blobs) both work. The default
//! roots are the system's bundle (`$SSL_CERT_FILE`, else the distribution's file), else the
//! Mozilla roots built into gib (which a `ca_certificate` cannot extend: on a machine without
//! a bundle it is then all that is trusted). See [`root_certificates`].
//!
//! Not here: retries and what a status means (the callers: `download`, `registry`).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ureq::config::ConfigBuilder;
use ureq::tls::{PemItem, RootCerts, TlsConfig};
use ureq::typestate::AgentScope;

/// The bounds on every exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Establishing a connection, TLS handshake included.
    pub connect: Duration,
    /// The longest a single read or write may wait for the peer.
    pub stall: Duration,
    /// How long a server may take to answer a request whose body it received (a registry
    /// hashes a whole blob before it answers the `PUT`).
    pub response: Duration,
    /// Bytes per second a transfer must average over every `stall`-long window.
    pub min_rate: u64,
    /// The largest download or blob accepted, whatever a server or manifest declares.
    pub max_blob_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(30),
            // Long enough for a congested mirror, short enough that a dead one is noticed.
            stall: Duration::from_secs(60),
            response: Duration::from_secs(600),
            // 1 KiB/s: far below any real link, far above a trickle meant to hold gib forever.
            min_rate: 1024,
            // The largest layers of real images are a few GiB; a stage3 is well under one.
            max_blob_size: 64 << 30,
        }
    }
}

/// The environment variables that override [`Limits`], with what each sets.
const SETTINGS: [(&str, &str); 5] = [
    ("GIB_HTTP_CONNECT_TIMEOUT", "seconds"),
    ("GIB_HTTP_STALL_TIMEOUT", "seconds"),
    ("GIB_HTTP_RESPONSE_TIMEOUT", "seconds"),
    ("GIB_HTTP_MIN_RATE", "bytes per second"),
    ("GIB_MAX_BLOB_SIZE", "bytes"),
];

impl Limits {
    /// The defaults, changed by whichever `GIB_HTTP_*` / `GIB_MAX_BLOB_SIZE` variables are set.
    pub fn from_env() -> Result<Limits> {
        Limits::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Limits> {
        let mut limits = Limits::default();
        for (name, unit) in SETTINGS {
            let Some(text) = lookup(name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let text = text.trim();
            let invalid = || format!("${name} must be a positive number of {unit}, not `{text}`");
            if unit == "seconds" {
                let secs: f64 = text
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .with_context(invalid)?;
                let value = Duration::try_from_secs_f64(secs)
                    .ok()
                    .with_context(invalid)?;
                match name {
                    "GIB_HTTP_CONNECT_TIMEOUT" => limits.connect = value,
                    "GIB_HTTP_STALL_TIMEOUT" => limits.stall = value,
                    _ => limits.response = value,
                }
            } else {
                let value: u64 = text.parse().ok().filter(|n| *n > 0).with_context(invalid)?;
                match name {
                    "GIB_HTTP_MIN_RATE" => limits.min_rate = value,
                    _ => limits.max_blob_size = value,
                }
            }
        }
        Ok(limits)
    }

    /// The agent configuration every gib client starts from: these bounds, no transparent
    /// decompression (bytes must arrive as stored and ranges count file bytes), at most a few
    /// redirects and never an `Authorization` header after one.
    ///
    /// No resolve, global or per-call timeout: with one, ureq resolves names on a detached
    /// thread, and gib must be single-threaded again once a transfer returns. A name that does
    /// not resolve fails fast on its own.
    pub fn agent_config(&self) -> ConfigBuilder<AgentScope> {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("gib/", env!("CARGO_PKG_VERSION")))
            .accept_encoding("identity")
            .timeout_connect(Some(self.connect))
            .timeout_per_read(Some(self.stall))
            .timeout_per_write(Some(self.stall))
            // Headers dribbled a byte at a time still end.
            .timeout_recv_response(Some(self.response.max(self.stall)))
            .max_redirects(8)
            .max_redirects_will_error(true)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
    }

    /// `reader` (a response body, or a file being uploaded) failing once it falls below the
    /// minimum rate.
    pub fn rate_floor<R: Read>(&self, reader: R) -> RateFloor<R> {
        RateFloor {
            inner: reader,
            window: self.stall,
            min_rate: self.min_rate,
            window_start: None,
            window_bytes: 0,
        }
    }
}

/// A reader that fails with `TimedOut` when, over a window, fewer bytes passed than the
/// minimum rate asks: the defence against a peer that sends (or takes) one byte now and then,
/// forever.
///
/// Bytes count for the time up to the next read: for a download, when they arrived; for an
/// upload (ureq reads the body as it sends), while the peer took them.
pub struct RateFloor<R> {
    inner: R,
    window: Duration,
    min_rate: u64,
    /// Set by the first read: connecting and sending headers are bounded elsewhere.
    window_start: Option<Instant>,
    window_bytes: u64,
}

impl<R: Read> Read for RateFloor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let start = *self.window_start.get_or_insert_with(Instant::now);
        let elapsed = start.elapsed();
        if elapsed >= self.window {
            let required = self.min_rate as f64 * elapsed.as_secs_f64();
            if (self.window_bytes as f64) < required {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "only {} bytes in {:.1?}, below the minimum of {} bytes per second \
                         ($GIB_HTTP_MIN_RATE)",
                        self.window_bytes, elapsed, self.min_rate
                    ),
                ));
            }
            self.window_start = Some(Instant::now());
            self.window_bytes = 0;
        }
        let n = self.inner.read(buf)?;
        self.window_bytes += n as u64;
        Ok(n)
    }
}

/// The scheme, host and port of an `http(s)://` URL (the port made explicit), lowercased:
/// what must match for a credential to go along.
pub fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: ureq::http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let host = uri.host()?.to_ascii_lowercase();
    Some((scheme, host, uri.port_u16().unwrap_or(default_port)))
}

/// The TLS configuration of a client that trusts [`root_certificates`].
pub fn tls_config(ca_certificate: Option<&Path>) -> Result<TlsConfig> {
    Ok(TlsConfig::builder()
        .root_certs(root_certificates(ca_certificate)?)
        .build())
}

/// The roots a client trusts: the default roots (the system bundle, else the Mozilla roots
/// built into gib) and, besides them, the certificates in the PEM file `ca_certificate`.
pub fn root_certificates(ca_certificate: Option<&Path>) -> Result<RootCerts> {
    let mut certs: Vec<ureq::tls::Certificate<'static>> = Vec::new();
    if let Some(bundle) = system_bundle() {
        // An unreadable system bundle is not fatal: the given CA may be all that is needed.
        if let Ok(pem) = std::fs::read(&bundle) {
            certs.extend(ureq::tls::parse_pem(&pem).filter_map(|item| match item {
                Ok(PemItem::Certificate(cert)) => Some(cert.to_owned()),
                _ => None,
            }));
        }
    }
    if let Some(path) = ca_certificate {
        certs.extend(read_ca_certificates(path)?);
    }
    // Without a system bundle, the built-in roots; ureq cannot add to those, so there a
    // `ca_certificate` is all that is trusted (a machine with git and gpg has a bundle).
    Ok(if certs.is_empty() {
        RootCerts::WebPki
    } else {
        RootCerts::new_with_certs(&certs)
    })
}

/// The trusted roots as one PEM text, for a tool that takes a CA file (git's
/// `http.sslCAInfo` replaces its roots with the file, so the file holds the defaults too).
pub fn trusted_pem(ca_certificate: &Path) -> Result<String> {
    let own = std::fs::read_to_string(ca_certificate).with_context(|| {
        format!(
            "cannot read the CA certificate {}",
            ca_certificate.display()
        )
    })?;
    read_ca_certificates(ca_certificate)?;
    let system = system_bundle()
        .and_then(|bundle| std::fs::read_to_string(bundle).ok())
        .unwrap_or_default();
    Ok(format!("{system}\n{own}\n"))
}

/// The certificates of a PEM file; an error naming the file when it holds none.
fn read_ca_certificates(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        let item = item.with_context(|| format!("{} is not a valid PEM file", path.display()))?;
        if let PemItem::Certificate(cert) = item {
            certs.push(cert.to_owned());
        }
    }
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        path.display()
    );
    Ok(certs)
}

/// `$SSL_CERT_FILE`, else the bundle of the usual distributions.
fn system_bundle() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(file));
    }
    [
        "/etc/ssl/certs/ca-certificates.crt", // Debian, Gentoo, Alpine
        "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
        "/etc/ssl/ca-bundle.pem",             // openSUSE
        "/etc/ssl/cert.pem",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Limits::from_lookup(env(&[])).unwrap(), Limits::default());
        let limits = Limits::from_lookup(env(&[
            ("GIB_HTTP_STALL_TIMEOUT", "1.5"),
            ("GIB_MAX_BLOB_SIZE", "4096"),
        ]))
        .unwrap();
        assert_eq!(limits.stall, Duration::from_millis(1500));
        assert_eq!(limits.max_blob_size, 4096);
        let err = Limits::from_lookup(env(&[("GIB_HTTP_MIN_RATE", "fast")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "$GIB_HTTP_MIN_RATE must be a positive number of bytes per second, not `fast`"
        );
        assert!(Limits::from_lookup(env(&[("GIB_HTTP_CONNECT_TIMEOUT", "-1")])).is_err());
    }

    /// A source that yields one byte per read, each after a pause.
    struct Trickle(Duration);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.0);
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn a_trickle_falls_below_the_floor() {
        let limits = Limits {
            stall: Duration::from_millis(50),
            min_rate: 1000,
            ..Limits::default()
        };
        let mut reader = limits.rate_floor(Trickle(Duration::from_millis(10)));
        let err = io::copy(&mut reader, &mut io::sink()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("below the minimum"), "{err}");
        // A fast source passes.
        let mut fast = limits.rate_floor(&[7u8; 100_000][..]);
        assert_eq!(io::copy(&mut fast, &mut io::sink()).unwrap(), 100_000);

        // An upload: a large read, then a peer that takes it slowly (the next read waits).
        let mut upload = limits.rate_floor(&[7u8; 100][..]);
        let mut buf = [0u8; 40];
        upload.read_exact(&mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            upload.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut,
            "40 bytes in 60 ms is below 1000 bytes/s"
        );
    }

    #[test]
    fn origins_make_ports_explicit() {
        assert_eq!(
            origin("https://Registry.example.org/v2/"),
            Some(("https".into(), "registry.example.org".into(), 443))
        );
        assert_eq!(
            origin("http://127.0.0.1:5000/v2/a/blobs/uploads/1?x=y"),
            Some(("http".into(), "127.0.0.1".into(), 5000))
        );
        assert_ne!(origin("https://h:5000/"), origin("https://h:5001/"));
        assert_ne!(origin("http://h/"), origin("https://h/"));
        assert_eq!(origin("ftp://h/"), None);
        assert_eq!(origin("/v2/relative"), None);
    }
}
