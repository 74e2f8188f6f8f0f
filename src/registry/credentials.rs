//! Registry credentials from the files docker and podman write, in the order
//! go-containerregistry's keychain reads them: `$DOCKER_CONFIG/config.json` (else
//! `~/.docker/config.json`), `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `$XDG_CONFIG_HOME/containers/auth.json` (else `~/.config/containers/auth.json`).
//!
//! The `docker_credential` crate parses each file and runs `credHelpers`/`credsStore`
//! helpers (`docker-credential-<name> get`); this module owns the search order and the
//! error messages, which name the file and never contain a secret.

use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use docker_credential::{CredentialRetrievalError, DockerCredential};

/// A secret for one registry. `Debug` never shows the secret.
#[derive(Clone)]
pub enum Credential {
    UsernamePassword {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`, or a helper's `<token>` user).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::UsernamePassword { username, .. } => {
                write!(f, "UsernamePassword({username}, <redacted>)")
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

impl Credential {
    /// Who the credential is for, safe to print.
    pub fn username(&self) -> &str {
        match self {
            Credential::UsernamePassword { username, .. } => username,
            Credential::IdentityToken(_) => "<identity token>",
        }
    }
}

/// A credential and the file it came from.
#[derive(Clone, Debug)]
pub struct FoundCredential {
    pub credential: Credential,
    pub source: PathBuf,
}

/// The files searched, in order (existing or not).
pub fn search_path() -> Vec<PathBuf> {
    let env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let home = env("HOME");
    let mut files = Vec::new();
    if let Some(dir) = env("DOCKER_CONFIG").or_else(|| home.as_ref().map(|h| h.join(".docker"))) {
        files.push(dir.join("config.json"));
    }
    if let Some(file) = env("REGISTRY_AUTH_FILE") {
        files.push(file);
    }
    if let Some(dir) = env("XDG_RUNTIME_DIR") {
        files.push(dir.join("containers/auth.json"));
    }
    if let Some(dir) = env("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config"))) {
        files.push(dir.join("containers/auth.json"));
    }
    files
}

/// The first credential configured for `registry` (`host[:port]`), or `None`.
pub fn lookup(registry: &str) -> anyhow::Result<Option<FoundCredential>> {
    for file in search_path() {
        if let Some(found) = lookup_in(&file, registry)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The credential `file` holds for `registry`; `None` when the file is absent or has none.
pub fn lookup_in(file: &Path, registry: &str) -> anyhow::Result<Option<FoundCredential>> {
    let reader = match File::open(file) {
        Ok(f) => BufReader::new(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read credentials file {}: {e}", file.display()),
    };
    let credential = match docker_credential::get_credential_from_reader(reader, registry) {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Credential::UsernamePassword { username, password }
        }
        Ok(DockerCredential::IdentityToken(token)) => Credential::IdentityToken(token),
        Err(CredentialRetrievalError::NoCredentialConfigured) => return Ok(None),
        Err(e) => anyhow::bail!(
            "cannot get the credentials for {registry} from {}: {}",
            file.display(),
            describe(&e)
        ),
    };
    Ok(Some(FoundCredential {
        credential,
        source: file.to_path_buf(),
    }))
}

/// The crate's error, without the helper's stdout (which may hold a secret).
fn describe(err: &CredentialRetrievalError) -> String {
    match err {
        CredentialRetrievalError::HelperFailure { helper, stderr, .. } => {
            format!("`{helper} get` failed: {}", stderr.trim())
        }
        CredentialRetrievalError::HelperCommunicationError => {
            "cannot run the credential helper (is docker-credential-<name> on PATH?)".to_string()
        }
        CredentialRetrievalError::ConfigReadError => "the file is not valid JSON".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_auths_with_and_without_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        // base64("gib:s3cret")
        std::fs::write(
            &file,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"Z2liOnMzY3JldA=="},
                "https://reg.example.org/v1/":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let found = lookup_in(&file, "127.0.0.1:5000").unwrap().unwrap();
        assert_eq!(found.credential.username(), "gib");
        assert!(!format!("{found:?}").contains("s3cret"));
        let found = lookup_in(&file, "reg.example.org").unwrap().unwrap();
        assert_eq!(found.credential.username(), "u");
        assert!(lookup_in(&file, "other:1").unwrap().is_none());
        assert!(
            lookup_in(&dir.path().join("absent"), "x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(&file, "{not json").unwrap();
        let err = lookup_in(&file, "h:1").unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
