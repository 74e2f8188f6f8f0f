//! The registry failures the CLI reacts to (retry, hint, exit code), each naming the URL or
//! registry and quoting the registry's own error body. Never a secret.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Connection refused, DNS failure, connect timeout: the registry is down or unreachable.
    #[error("cannot connect to {url}: {detail} (is the registry running and reachable?)")]
    Unreachable { url: String, detail: String },

    /// The connection broke in the middle of an exchange (reset, EOF, timeout).
    #[error("the connection to {url} was lost during {method}: {detail}")]
    ConnectionLost {
        method: String,
        url: String,
        detail: String,
    },

    /// The peer sent or took nothing for too long, or too little: a stall or a trickle.
    #[error(
        "{url} stalled during {method}: {detail} (gib gives up on a peer silent for longer than \
         $GIB_HTTP_STALL_TIMEOUT or slower than $GIB_HTTP_MIN_RATE)"
    )]
    Stalled {
        method: String,
        url: String,
        detail: String,
    },

    #[error("{url} redirects in a loop (more than 8 redirects); gib does not follow it")]
    RedirectLoop { url: String },

    /// More bytes than gib accepts for this kind of content.
    #[error("{url} sends more than the {limit} bytes gib accepts for {what}")]
    TooLarge {
        url: String,
        what: &'static str,
        limit: u64,
    },

    #[error(
        "the TLS certificate of {url} is not trusted: {detail} (give the registry's CA \
         certificate with `ca_certificate`, or `--ca FILE`)"
    )]
    UntrustedCertificate { url: String, detail: String },

    #[error("{url} does not speak TLS: {detail} (plain HTTP must be enabled for this registry)")]
    NotTls { url: String, detail: String },

    #[error("{registry} rejected the credentials of `{user}` from {}: {detail}", source_file.display())]
    Unauthorized {
        registry: String,
        user: String,
        source_file: PathBuf,
        detail: String,
    },

    #[error(
        "{registry} requires authentication and no credentials for it were found in {}; \
         log in with `podman login {registry}` or `docker login {registry}`",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NoCredentials {
        registry: String,
        searched: Vec<PathBuf>,
    },

    #[error("{method} {url}: HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },

    #[error(
        "digest mismatch: {url} sent content with digest {actual} ({size} bytes), expected {expected}"
    )]
    DigestMismatch {
        url: String,
        expected: String,
        actual: String,
        size: u64,
    },
}

impl RegistryError {
    /// Worth another attempt after a pause: a dropped connection, 408, 429 or 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. }
            | RegistryError::ConnectionLost { .. }
            | RegistryError::Stalled { .. } => true,
            RegistryError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }
}

/// Whether an error chain has a transient registry failure at its root.
pub fn is_transient(err: &anyhow::Error) -> bool {
    err.chain()
        .find_map(|e| e.downcast_ref::<RegistryError>())
        .is_some_and(RegistryError::is_transient)
}

/// A failure while a body streams: a stall or a trickle (`TimedOut`, from the socket's
/// timeouts or the rate floor), or a connection lost.
pub fn body_error(method: &str, url: &str, err: std::io::Error) -> RegistryError {
    let detail = printable(&err.to_string());
    let (method, url) = (method.to_string(), url.to_string());
    let timed_out = err.kind() == std::io::ErrorKind::TimedOut
        || std::error::Error::source(&err)
            .and_then(|e| e.downcast_ref::<ureq::Error>())
            .is_some_and(|e| matches!(e, ureq::Error::Timeout(_)));
    if timed_out || detail.contains("timeout") {
        RegistryError::Stalled {
            method,
            url,
            detail,
        }
    } else {
        RegistryError::ConnectionLost {
            method,
            url,
            detail,
        }
    }
}

/// `text` safe for a terminal: control characters (escape sequences, carriage returns,
/// bells) shown as `\u{..}` escapes instead of acting on the user's terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A registry's error body made short and readable: the `errors[].code: message` of the
/// distribution spec when it is JSON, else the text cut to a few hundred characters.
pub fn describe_body(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    if let Ok(parsed) = serde_json::from_slice::<Errors>(body) {
        let text = parsed
            .errors
            .iter()
            .map(|e| {
                let mut s = format!("{}: {}", e.code, e.message);
                if let Some(detail) = e.detail.as_ref().filter(|d| !d.is_null()) {
                    s.push_str(&format!(" ({detail})"));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; ");
        return printable(&shorten(&text));
    }
    printable(&shorten(String::from_utf8_lossy(body).trim()))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_error_body() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:00"}]}"#;
        assert_eq!(
            describe_body(body),
            "BLOB_UNKNOWN: blob unknown to registry (\"sha256:00\")"
        );
        assert_eq!(describe_body(b"  oops \n"), "oops");
    }

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        let body = b"denied\x1b]0;owned\x07\x1b[2J\rok";
        let text = describe_body(body);
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(text, "denied\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}ok");
        let json = br#"{"errors":[{"code":"DENIED","message":"no\u001b[31m"}]}"#;
        assert_eq!(describe_body(json), "DENIED: no\\u{1b}[31m");
    }

    #[test]
    fn transient_statuses() {
        let status = |status| RegistryError::Status {
            method: "PUT".into(),
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(404).is_transient());
        assert!(!status(401).is_transient());
        assert!(!status(499).is_transient());
        assert!(status(408).is_transient());
    }
}
