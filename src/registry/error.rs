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
            RegistryError::Unreachable { .. } | RegistryError::ConnectionLost { .. } => true,
            RegistryError::Status { status, .. } => {
                matches!(status, 408 | 429 | 499 | 500..=599)
            }
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
        return parsed
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
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
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
    }
}
