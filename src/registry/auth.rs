//! The registry's authentication challenge (`WWW-Authenticate`) and bearer tokens
//! (distribution's token spec: `GET realm?service=&scope=` with Basic credentials, or the OAuth2
//! `refresh_token` grant for identity tokens; the answer holds `token` or `access_token`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How a registry wants to be authenticated, from its `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `/v2/` answered 200: no authentication.
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the registry asked for in this challenge, if any.
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parse `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, params) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(params);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            }),
            _ => None,
        }
    }
}

/// `key="value", key=value` pairs; quoted values may hold commas and `\"`.
fn parse_params(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    params
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
}

impl Token {
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.expires
    }
}

/// The token endpoint's answer.
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    /// Seconds; the spec's default is 60.
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        // Renew a little early so a token does not expire in the middle of an upload request.
        let lifetime = self.expires_in.unwrap_or(60).max(10);
        Some(Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime) - Duration::from_secs(5),
        })
    }
}

/// The scope that lets a client pull (and, with `push`, push) one repository.
pub fn repository_scope(repository: &str, push: bool) -> String {
    if push {
        format!("repository:{repository}:pull,push")
    } else {
        format!("repository:{repository}:pull")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example.org/token",service="registry.example.org",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.example.org/token".into(),
                service: Some("registry.example.org".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
    }

    #[test]
    fn basic_and_unknown() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Negotiate"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }

    #[test]
    fn token_or_access_token() {
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(t.into_token().unwrap().value, "abc");
        let t: TokenResponse = serde_json::from_str(r#"{"token":"x","expires_in":300}"#).unwrap();
        assert!(t.into_token().unwrap().is_fresh());
        let t: TokenResponse = serde_json::from_str(r#"{}"#).unwrap();
        assert!(t.into_token().is_none());
    }
}
