//! The HTTP side of the registry client: one ureq agent per registry (its TLS roots, plain
//! HTTP when asked), the `/v2/` ping that learns the authentication challenge, credentials
//! and bearer tokens cached per registry and scope, and retries with backoff.
//!
//! Blocking on purpose: gib is single-threaded where it unshares; pushing and pulling run in
//! the parent process, which may use a few plain threads for parallel blobs.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use ureq::http::{Method, Response};
use ureq::{Agent, Body, SendBody};

use crate::http::Limits;
use crate::printer::{ByteProgress, CountingReader};

use super::auth::{Challenge, Token, TokenResponse};
use super::credentials::{self, Credential, FoundCredential};
use super::error::{RegistryError, body_error, describe_body, is_transient, printable};

/// What the user can say about one registry (gib.yaml's `registry:` settings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// A PEM file with the CA certificate(s) that signed the registry's certificate, trusted
    /// in addition to the system roots.
    pub ca_certificate: Option<PathBuf>,
    /// Talk plain HTTP to this registry (never the default).
    pub plain_http: bool,
    /// Upload blobs in `PATCH` chunks of this many bytes instead of one monolithic `PUT`
    /// (for registries or proxies that limit the size of a request). gib also switches to
    /// chunks by itself when a registry answers 413 to a monolithic upload.
    pub chunk_size: Option<u64>,
}

/// When and how often to try again after a transient failure.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub attempts: u32,
    pub first_delay: Duration,
    pub factor: u32,
}

impl Default for RetryPolicy {
    /// go-containerregistry's schedule made shorter: 0.5 s, 1.5 s, 4.5 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(500),
            factor: 3,
        }
    }
}

/// Chunked uploads use this chunk size unless the registry or the user asks for another.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 << 20;

/// A registry client for any number of registries; cheap to share between threads.
pub struct Client {
    options: HashMap<String, RegistryOptions>,
    retry: RetryPolicy,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

/// What a request sends.
#[derive(Clone, Copy)]
pub(crate) enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    /// Streamed from the file, telling the progress how many bytes were read; its size is
    /// the `Content-Length`.
    File(&'a Path, &'a dyn ByteProgress),
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client {
            options: HashMap::new(),
            retry: RetryPolicy::default(),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// Settings for one registry, keyed by `host[:port]` as written in references.
    pub fn with_registry(mut self, registry: &str, options: RegistryOptions) -> Client {
        self.options.insert(registry.to_string(), options);
        self
    }

    #[cfg(test)]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    pub(crate) fn options(&self, registry: &str) -> RegistryOptions {
        self.options.get(registry).cloned().unwrap_or_default()
    }

    /// `https://host[:port]` (or `http://` when plain HTTP was asked for).
    pub fn base_url(&self, registry: &str) -> String {
        let scheme = if self.options(registry).plain_http {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{registry}")
    }

    /// Run `op` again after a pause while it fails with a transient error.
    pub(crate) fn retrying<T>(
        &self,
        mut op: impl FnMut() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut delay = self.retry.first_delay;
        let mut attempt = 1;
        loop {
            match op() {
                Ok(value) => return Ok(value),
                Err(err) if attempt < self.retry.attempts && is_transient(&err) => {
                    std::thread::sleep(delay);
                    delay *= self.retry.factor;
                    attempt += 1;
                }
                Err(err) if attempt > 1 && is_transient(&err) => {
                    return Err(err.context(format!("gave up after {attempt} attempts")));
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn host(&self, registry: &str) -> anyhow::Result<Arc<Host>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(host) = hosts.get(registry) {
            return Ok(host.clone());
        }
        let options = self.options(registry);
        let limits = Limits::from_env()?;
        let plain_http_hosts = self
            .options
            .iter()
            .filter(|(_, o)| o.plain_http)
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect();
        let host = Arc::new(Host {
            registry: registry.to_string(),
            base_url: self.base_url(registry),
            agent: build_agent(&options, &limits)?,
            limits,
            plain_http_hosts,
            challenge: Mutex::new(None),
            credential: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        });
        hosts.insert(registry.to_string(), host.clone());
        Ok(host)
    }

    /// Whether the registry is there and accepts us for `scopes`, retried while it is
    /// unreachable: the `/v2/` ping, then a bearer token (the token server judges the
    /// credentials) or, for Basic authentication, `/v2/` again with the credentials. Push and
    /// pull start with it so that a registry that is down, or a wrong password, fails once with
    /// a clear message before any blob work.
    pub fn check_registry(&self, registry: &str, scopes: &[String]) -> anyhow::Result<()> {
        let host = self.host(registry)?;
        let challenge = self.retrying(|| host.ping())?;
        match challenge {
            Challenge::Anonymous => Ok(()),
            Challenge::Bearer { .. } => self.retrying(|| {
                host.authorization(&challenge, scopes, false)?;
                Ok(())
            }),
            Challenge::Basic => {
                let url = format!("{}/v2/", host.base_url);
                self.retrying(|| {
                    let response =
                        self.send(registry, scopes, Method::GET, &url, &[], Payload::None)?;
                    match response.status().as_u16() {
                        200..=299 => Ok(()),
                        _ => Err(status_error(&Method::GET, &url, response).into()),
                    }
                })
            }
        }
    }

    /// One authenticated request to `url` on `registry`, with `scopes` for a bearer token.
    /// A 401 leads to one more attempt with fresh authorization; other statuses are returned
    /// for the caller to judge.
    pub(crate) fn send(
        &self,
        registry: &str,
        scopes: &[String],
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> anyhow::Result<Response<Body>> {
        let host = self.host(registry)?;
        if !host.is_own(url) {
            // An upload `Location` or a redirect target on another origin (a storage service,
            // or a hostile registry's choice): it gets the request, never the credentials.
            return host.raw(&method, url, headers, payload, None);
        }
        let challenge = match host.known_challenge() {
            Some(c) => c,
            None => host.ping()?,
        };
        let authorization = host.authorization(&challenge, scopes, false)?;
        let response = host.raw(&method, url, headers, payload, authorization.as_deref())?;
        if response.status() != 401 {
            return Ok(response);
        }
        // The token expired, the registry wants another scope, or it started asking for
        // authentication: learn from this challenge and try once more.
        let header = header(&response, "www-authenticate").unwrap_or_default();
        let detail = refusal(&method, url, response);
        let challenge = match Challenge::parse(&header) {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut scopes = scopes.to_vec();
                scopes.extend(scope.filter(|s| !scopes.contains(s)));
                let challenge = Challenge::Bearer {
                    realm,
                    service,
                    scope: None,
                };
                host.set_challenge(challenge.clone());
                let authorization = host.authorization(&challenge, &scopes, true)?;
                let response =
                    host.raw(&method, url, headers, payload, authorization.as_deref())?;
                if response.status() != 401 {
                    return Ok(response);
                }
                let detail = refusal(&method, url, response);
                return Err(host.unauthorized(detail)?.into());
            }
            Some(Challenge::Basic) if challenge != Challenge::Basic => Challenge::Basic,
            _ => return Err(host.unauthorized(detail)?.into()),
        };
        host.set_challenge(challenge.clone());
        let authorization = host.authorization(&challenge, scopes, true)?;
        let response = host.raw(&method, url, headers, payload, authorization.as_deref())?;
        if response.status() == 401 {
            let detail = refusal(&method, url, response);
            return Err(host.unauthorized(detail)?.into());
        }
        Ok(response)
    }
}

/// One registry: its agent, what it asked for, and the secrets it accepted.
struct Host {
    registry: String,
    base_url: String,
    agent: Agent,
    limits: Limits,
    /// `host[:port]`s configured `plain_http`: the only ones a credential may reach unencrypted.
    plain_http_hosts: Vec<String>,
    challenge: Mutex<Option<Challenge>>,
    /// Looked up on the first challenge only, so anonymous registries never run a helper.
    credential: Mutex<Option<Option<FoundCredential>>>,
    /// Bearer tokens by their space-joined scopes.
    tokens: Mutex<HashMap<String, Token>>,
}

impl Host {
    /// Whether `url` has this registry's scheme, host and port: only then does it get the
    /// registry's `Authorization`.
    fn is_own(&self, url: &str) -> bool {
        crate::http::origin(url).is_some_and(|o| Some(o) == crate::http::origin(&self.base_url))
    }

    /// A token realm may get credentials over HTTPS, or over plain HTTP when its
    /// `host[:port]` is configured `plain_http`; anything else is refused, never sent.
    fn check_realm(&self, realm: &str) -> anyhow::Result<()> {
        let Some((scheme, host, port)) = crate::http::origin(realm) else {
            anyhow::bail!(
                "{} names the token server `{}`, which is no http(s) URL",
                self.registry,
                super::error::printable(realm)
            );
        };
        if scheme == "https" {
            return Ok(());
        }
        let named = |name: &str| {
            crate::http::origin(&format!("http://{name}"))
                .is_some_and(|(_, h, p)| h == host && p == port)
        };
        anyhow::ensure!(
            self.plain_http_hosts.iter().any(|name| named(name)),
            "{} sends gib to the token server {realm} over plain HTTP; gib does not send \
             credentials unencrypted (set `plain_http: true` for that host under `registries:` \
             in gib.yaml only if the network between is trusted)",
            self.registry
        );
        Ok(())
    }

    fn known_challenge(&self) -> Option<Challenge> {
        self.challenge
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_challenge(&self, challenge: Challenge) {
        *self.challenge.lock().unwrap_or_else(|e| e.into_inner()) = Some(challenge);
    }

    /// `GET /v2/`: 200 means anonymous access, 401 carries the challenge.
    fn ping(&self) -> anyhow::Result<Challenge> {
        let url = format!("{}/v2/", self.base_url);
        let response = self.raw(&Method::GET, &url, &[], Payload::None, None)?;
        let status = response.status().as_u16();
        let challenge = match status {
            200..=299 => Challenge::Anonymous,
            401 => {
                let text = header(&response, "www-authenticate").unwrap_or_default();
                Challenge::parse(&text).with_context(|| {
                    format!(
                        "{url} asks for authentication with an unsupported challenge `{}`",
                        printable(&text)
                    )
                })?
            }
            _ => {
                return Err(status_error(&Method::GET, &url, response).into());
            }
        };
        self.set_challenge(challenge.clone());
        Ok(challenge)
    }

    fn credential(&self) -> anyhow::Result<Option<FoundCredential>> {
        let mut cached = self.credential.lock().unwrap_or_else(|e| e.into_inner());
        if cached.is_none() {
            *cached = Some(credentials::lookup(&self.registry)?);
        }
        Ok(cached.clone().flatten())
    }

    fn require_credential(&self) -> anyhow::Result<FoundCredential> {
        self.credential()?.ok_or_else(|| {
            RegistryError::NoCredentials {
                registry: self.registry.clone(),
                searched: credentials::search_path(),
            }
            .into()
        })
    }

    /// The error for a refused request: which user, from which file.
    fn unauthorized(&self, detail: String) -> anyhow::Result<RegistryError> {
        Ok(match self.credential()? {
            Some(found) => RegistryError::Unauthorized {
                registry: self.registry.clone(),
                user: found.credential.username().to_string(),
                source_file: found.source,
                detail,
            },
            None => RegistryError::NoCredentials {
                registry: self.registry.clone(),
                searched: credentials::search_path(),
            },
        })
    }

    /// The `Authorization` header value for `scopes`, fetching a token when needed.
    fn authorization(
        &self,
        challenge: &Challenge,
        scopes: &[String],
        renew: bool,
    ) -> anyhow::Result<Option<String>> {
        match challenge {
            Challenge::Anonymous => Ok(None),
            Challenge::Basic => {
                let found = self.require_credential()?;
                match found.credential {
                    Credential::UsernamePassword { username, password } => Ok(Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{username}:{password}"))
                    ))),
                    Credential::IdentityToken(_) => anyhow::bail!(
                        "{} asks for a username and password, but {} holds an identity token \
                         for it",
                        self.registry,
                        found.source.display()
                    ),
                }
            }
            Challenge::Bearer { realm, service, .. } => {
                let key = scopes.join(" ");
                if !renew {
                    let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(token) = tokens.get(&key).filter(|t| t.is_fresh()) {
                        return Ok(Some(format!("Bearer {}", token.value)));
                    }
                }
                let token = self.fetch_token(realm, service.as_deref(), scopes)?;
                let value = format!("Bearer {}", token.value);
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, token);
                Ok(Some(value))
            }
        }
    }

    /// Ask the token server for a token: Basic credentials on a GET, an identity token as an
    /// OAuth2 refresh-token grant, or anonymously.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> anyhow::Result<Token> {
        let found = self.credential()?;
        if found.is_some() {
            self.check_realm(realm)?;
        }
        let response = match found.as_ref().map(|f| &f.credential) {
            Some(Credential::IdentityToken(refresh_token)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh_token.clone()),
                    ("client_id", "gib".to_string()),
                    ("scope", scopes.join(" ")),
                ];
                if let Some(service) = service {
                    form.push(("service", service.to_string()));
                }
                self.agent.post(realm).send_form(form)
            }
            credential => {
                let mut request = self.agent.get(realm);
                if let Some(service) = service {
                    request = request.query("service", service);
                }
                for scope in scopes {
                    request = request.query("scope", scope);
                }
                if let Some(Credential::UsernamePassword { username, password }) = credential {
                    request = request.header(
                        "authorization",
                        format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD
                                .encode(format!("{username}:{password}"))
                        ),
                    );
                }
                request.call()
            }
        }
        .map_err(|e| classify(e, &Method::GET, realm))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            let detail = describe_body(&read_small_body(response));
            return Err(self
                .unauthorized(format!("token server {realm}: {detail}"))?
                .into());
        }
        if !(200..300).contains(&status) {
            return Err(status_error(&Method::GET, realm, response).into());
        }
        let body = read_document(response, realm, "a token server's answer", 1 << 20)?;
        let answer: TokenResponse = serde_json::from_slice(&body)
            .with_context(|| format!("the token server {realm} sent an unreadable answer"))?;
        answer
            .into_token()
            .with_context(|| format!("the token server {realm} sent no token"))
    }

    /// The request itself; transport failures become `RegistryError`s.
    fn raw(
        &self,
        method: &Method,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
        authorization: Option<&str>,
    ) -> anyhow::Result<Response<Body>> {
        let mut builder = ureq::http::Request::builder()
            .method(method.clone())
            .uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let invalid = |e: ureq::http::Error| anyhow::anyhow!("invalid request {method} {url}: {e}");
        // The registry may take long to answer a request with a body (it hashes the blob),
        // but not forever.
        let answer_wait = if matches!(payload, Payload::None) {
            self.limits.stall
        } else {
            self.limits.response.max(self.limits.stall)
        };
        let result = match payload {
            Payload::None => self.agent.run(builder.body(()).map_err(invalid)?),
            Payload::Bytes(bytes) => {
                let mut reader = self.limits.rate_floor(bytes);
                let builder = builder.header("content-length", bytes.len());
                let request = builder
                    .body(SendBody::from_reader(&mut reader))
                    .map_err(invalid)?;
                self.agent.run(self.with_answer_wait(request, answer_wait))
            }
            Payload::File(path, progress) => {
                let file = File::open(path)
                    .with_context(|| format!("cannot open blob {}", path.display()))?;
                let size = file
                    .metadata()
                    .with_context(|| format!("cannot read blob {}", path.display()))?
                    .len();
                let builder = builder.header("content-length", size);
                let mut reader =
                    CountingReader::new(self.limits.rate_floor(file), Some(size), progress);
                let request = builder
                    .body(SendBody::from_reader(&mut reader))
                    .map_err(invalid)?;
                self.agent.run(self.with_answer_wait(request, answer_wait))
            }
        };
        result.map_err(|e| classify(e, method, url).into())
    }

    fn with_answer_wait<B: ureq::AsSendBody>(
        &self,
        request: ureq::http::Request<B>,
        wait: Duration,
    ) -> ureq::http::Request<B> {
        self.agent
            .configure_request(request)
            .timeout_per_read(Some(wait))
            .timeout_recv_response(Some(wait))
            .build()
    }
}

fn build_agent(options: &RegistryOptions, limits: &Limits) -> anyhow::Result<Agent> {
    let tls = crate::http::tls_config(options.ca_certificate.as_deref())?;
    let config = limits
        .agent_config()
        .max_idle_connections_per_host(8)
        .tls_config(tls)
        .build();
    Ok(Agent::new_with_config(config))
}

/// Sort a transport failure into what the user should hear.
fn classify(err: ureq::Error, method: &Method, url: &str) -> RegistryError {
    let detail = printable(&err.to_string());
    let lower = format!("{err:?} {detail}").to_lowercase();
    let url = url.to_string();
    let refused = matches!(&err, ureq::Error::Io(e) if matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
    ));
    let unreachable = refused
        || matches!(
            err,
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed
        )
        || matches!(&err, ureq::Error::Timeout(t) if matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve));
    let stalled = matches!(&err, ureq::Error::Timeout(_))
        || matches!(&err, ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut);
    let detail = match &err {
        ureq::Error::Timeout(ureq::Timeout::PerRead) => "it sent nothing for too long".into(),
        ureq::Error::Timeout(ureq::Timeout::PerWrite) => "it took nothing for too long".into(),
        ureq::Error::Timeout(ureq::Timeout::RecvResponse) => "it did not answer in time".into(),
        _ => detail,
    };
    if unreachable {
        RegistryError::Unreachable { url, detail }
    } else if stalled {
        RegistryError::Stalled {
            method: method.to_string(),
            url,
            detail,
        }
    } else if matches!(err, ureq::Error::TooManyRedirects) {
        RegistryError::RedirectLoop { url }
    } else if let ureq::Error::BodyExceedsLimit(limit) = err {
        RegistryError::TooLarge {
            url,
            what: "this request",
            limit,
        }
    } else if lower.contains("certificate") || lower.contains("unknownissuer") {
        RegistryError::UntrustedCertificate { url, detail }
    } else if lower.contains("invalidcontenttype")
        || lower.contains("corrupt message")
        || lower.contains("invalidmessage")
    {
        RegistryError::NotTls { url, detail }
    } else {
        RegistryError::ConnectionLost {
            method: method.to_string(),
            url,
            detail,
        }
    }
}

/// A response header as text.
pub(crate) fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// What a 401 said: the request and the registry's error body.
fn refusal(method: &Method, url: &str, response: Response<Body>) -> String {
    let body = describe_body(&read_small_body(response));
    if body.is_empty() {
        format!("{method} {url}: HTTP 401")
    } else {
        format!("{method} {url}: HTTP 401: {body}")
    }
}

/// An error body, bounded in size and rate (it is only for the message).
pub(crate) fn read_small_body(response: Response<Body>) -> Vec<u8> {
    let mut body = Vec::new();
    Limits::from_env()
        .unwrap_or_default()
        .rate_floor(response.into_body().into_reader())
        .take(64 << 10)
        .read_to_end(&mut body)
        .ok();
    body
}

/// A document (a manifest, an index) read whole, at the minimum rate, and refused beyond
/// `limit` bytes: a permanent refusal, not a lost connection.
pub(crate) fn read_document(
    response: Response<Body>,
    url: &str,
    what: &'static str,
    limit: u64,
) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    Limits::from_env()?
        .rate_floor(response.into_body().into_reader())
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| body_error("GET", url, e))?;
    if bytes.len() as u64 > limit {
        return Err(RegistryError::TooLarge {
            url: url.to_string(),
            what,
            limit,
        }
        .into());
    }
    Ok(bytes)
}

/// The error for an unexpected status, with the registry's explanation.
pub(crate) fn status_error(method: &Method, url: &str, response: Response<Body>) -> RegistryError {
    let status = response.status().as_u16();
    RegistryError::Status {
        method: method.to_string(),
        url: url.to_string(),
        status,
        body: describe_body(&read_small_body(response)),
    }
}

/// Resolve an upload `Location` (absolute, or a path on the registry) against the base URL.
pub(crate) fn resolve_location(base_url: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        format!("{base_url}{location}")
    } else {
        format!("{base_url}/{location}")
    }
}

/// `url` with one more query parameter (the value must be URL-safe, as digests are).
pub(crate) fn with_query(url: &str, key: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{key}={value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_queries() {
        let base = "https://127.0.0.1:5000";
        assert_eq!(
            resolve_location(base, "/v2/a/blobs/uploads/u?_state=x"),
            "https://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=x"
        );
        assert_eq!(
            resolve_location(base, "https://other/up/1"),
            "https://other/up/1"
        );
        assert_eq!(
            with_query("https://h/u?_state=x", "digest", "sha256:0"),
            "https://h/u?_state=x&digest=sha256:0"
        );
        assert_eq!(
            with_query("https://h/u", "digest", "sha256:0"),
            "https://h/u?digest=sha256:0"
        );
    }

    #[test]
    fn retries_transient_failures_only() {
        let client = Client::new().with_retry(RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(1),
            factor: 2,
        });
        let status = |status| RegistryError::Status {
            method: "PUT".into(),
            url: "https://r/v2/".into(),
            status,
            body: String::new(),
        };
        let mut calls = 0;
        let value = client
            .retrying(|| {
                calls += 1;
                if calls < 3 {
                    Err(status(503).into())
                } else {
                    Ok(calls)
                }
            })
            .unwrap();
        assert_eq!(value, 3);
        // A failure that keeps failing: how many calls, and the error.
        let always = |code| {
            let mut calls = 0;
            let err = client
                .retrying(|| -> anyhow::Result<()> {
                    calls += 1;
                    Err(status(code).into())
                })
                .unwrap_err();
            (calls, err.to_string())
        };
        let (calls, err) = always(404);
        assert_eq!(calls, 1);
        assert!(err.contains("HTTP 404"));
        let (calls, err) = always(429);
        assert_eq!(calls, 3);
        assert!(err.contains("gave up after 3 attempts"));
    }

    #[test]
    fn credentials_go_to_the_registry_origin_and_plain_http_realms_only_when_configured() {
        let plain = RegistryOptions {
            plain_http: true,
            ..RegistryOptions::default()
        };
        let client = Client::new()
            .with_registry("auth.internal:8080", plain.clone())
            .with_registry("mirror.internal", plain);
        let host = client.host("registry.example.org").unwrap();
        assert!(host.is_own("https://registry.example.org/v2/a/blobs/uploads/1"));
        assert!(host.is_own("https://REGISTRY.example.org:443/v2/"));
        for elsewhere in [
            "http://registry.example.org/v2/",
            "https://registry.example.org:5000/v2/",
            "https://storage.example.org/v2/",
            "/v2/relative",
        ] {
            assert!(!host.is_own(elsewhere), "{elsewhere}");
        }
        assert!(host.check_realm("https://auth.example.org/token").is_ok());
        assert!(host.check_realm("http://auth.internal:8080/token").is_ok());
        assert!(host.check_realm("http://mirror.internal/token").is_ok());
        for refused in [
            "http://auth.example.org/token",
            "http://auth.internal/token",
            "ftp://auth.example.org/token",
        ] {
            assert!(host.check_realm(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn missing_ca_file_is_named() {
        let err =
            crate::http::root_certificates(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }
}
