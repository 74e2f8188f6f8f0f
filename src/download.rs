//! HTTP(S) downloads: small files into memory, large ones into a resumable `.part` file.
//!
//! One blocking client (ureq, rustls with ring), trusting what `http` says: the system's
//! roots, and a `ca_certificate` (a private mirror or a self-signed host) besides them. A large download appends to its `.part`
//! file and, when the connection breaks, asks for the rest with an HTTP `Range` request, both
//! within one run (a few attempts) and across runs. SHA-512 and SHA-256 are computed while
//! the bytes are written, so the caller verifies without reading the file again.
//!
//! Not here: what a file means or whether it is trusted (`stage3::flavor`, `repository`), and
//! where it goes in the cache (the caller names the `.part` path and moves the result).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha512};

use crate::http::Limits;
use crate::printer::{ByteProgress, Printer, human_bytes};

/// How often a broken download is resumed within one run before giving up.
const ATTEMPTS: u32 = 4;

/// Why a request failed, for callers that react (a 404 on a flavor's index is a user error;
/// a broken connection is retried).
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url} was not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error(
        "{url} did not answer within {stall:?} ($GIB_HTTP_STALL_TIMEOUT), or connecting took \
         longer than $GIB_HTTP_CONNECT_TIMEOUT"
    )]
    Stalled {
        url: String,
        stall: Duration,
        #[source]
        source: ureq::Error,
    },
    #[error("cannot fetch {url}")]
    Transport {
        url: String,
        #[source]
        source: ureq::Error,
    },
    #[error("the download of {url} broke off after {bytes} bytes")]
    Interrupted {
        url: String,
        bytes: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{url} is larger than the {limit} bytes expected")]
    TooLarge { url: String, limit: u64 },
    #[error(
        "{url} declares {length} bytes, more than the {limit} gib accepts ($GIB_MAX_BLOB_SIZE)"
    )]
    Declared {
        url: String,
        length: u64,
        limit: u64,
    },
}

impl DownloadError {
    fn is_retryable(&self) -> bool {
        match self {
            // A redirect loop or a refused URL stays what it is.
            DownloadError::Transport { source, .. } => !matches!(
                source,
                ureq::Error::TooManyRedirects
                    | ureq::Error::RedirectFailed
                    | ureq::Error::BadUri(_)
                    | ureq::Error::BodyExceedsLimit(_)
            ),
            DownloadError::Interrupted { .. } | DownloadError::Stalled { .. } => true,
            DownloadError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            _ => false,
        }
    }
}

/// A finished download: the `.part` file now holds all of it.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub path: PathBuf,
    /// Lowercase hex.
    pub sha512: String,
}

/// A blocking HTTP(S) client with one set of trusted roots, bounded as `http` says.
pub struct Client {
    agent: ureq::Agent,
    limits: Limits,
}

impl Client {
    /// A client that trusts the default roots and the CA certificates in the PEM file
    /// `ca_certificate` when one is given (`http::root_certificates`).
    pub fn new(ca_certificate: Option<&Path>) -> Result<Client> {
        let tls = crate::http::tls_config(ca_certificate)?;
        let limits = Limits::from_env()?;
        let config = limits.agent_config().tls_config(tls).build();
        Ok(Client {
            agent: config.new_agent(),
            limits,
        })
    }

    /// GET `url` for reading as a stream (with its `Content-Length`, when sent), bounded by
    /// the minimum rate and refused when it declares more than the largest download allowed.
    pub fn open(&self, url: &str) -> Result<(impl Read, Option<u64>), DownloadError> {
        let response = self.call(url, None)?;
        let length = content_length(&response);
        if let Some(length) = length.filter(|l| *l > self.limits.max_blob_size) {
            return Err(DownloadError::Declared {
                url: url.to_string(),
                length,
                limit: self.limits.max_blob_size,
            });
        }
        let reader = response.into_body().into_reader();
        Ok((
            self.limits
                .rate_floor(reader)
                .take(self.limits.max_blob_size + 1),
            length,
        ))
    }

    /// The largest download accepted.
    pub fn max_size(&self) -> u64 {
        self.limits.max_blob_size
    }

    /// GET a small file (an index, a signature, a key) into memory, refusing more than `limit`
    /// bytes.
    pub fn get_small(&self, url: &str, limit: u64) -> Result<Vec<u8>, DownloadError> {
        let response = self.call(url, None)?;
        let mut body = Vec::new();
        self.limits
            .rate_floor(response.into_body().into_reader())
            .take(limit + 1)
            .read_to_end(&mut body)
            .map_err(|source| DownloadError::Interrupted {
                url: url.to_string(),
                bytes: 0,
                source,
            })?;
        if body.len() as u64 > limit {
            return Err(DownloadError::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        Ok(body)
    }

    /// Download `url` into `part`, resuming what an earlier attempt left there, with a
    /// progress bar. `expected_size`, when known, is checked and lets a complete `.part`
    /// skip the request. The `.part` file is kept when the download fails, for the next run.
    pub fn download(
        &self,
        url: &str,
        part: &Path,
        expected_size: Option<u64>,
        printer: &Printer,
    ) -> Result<Downloaded> {
        let mut attempt = 1;
        loop {
            match self.download_once(url, part, expected_size, printer) {
                Ok(done) => return Ok(done),
                Err(err) => {
                    let retryable = err
                        .downcast_ref::<DownloadError>()
                        .is_some_and(DownloadError::is_retryable);
                    if !retryable || attempt >= ATTEMPTS {
                        let kept = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
                        if retryable && kept > 0 {
                            return Err(err.context(format!(
                                "cannot download {url} ({ATTEMPTS} attempts); the {kept} bytes \
                                 received are kept in {} and the next run resumes from there",
                                part.display()
                            )));
                        }
                        return Err(err);
                    }
                    printer.warn(&format!(
                        "{:#}; resuming (attempt {} of {ATTEMPTS})",
                        err,
                        attempt + 1
                    ));
                    std::thread::sleep(Duration::from_millis(500 * u64::from(attempt)));
                    attempt += 1;
                }
            }
        }
    }

    fn download_once(
        &self,
        url: &str,
        part: &Path,
        expected_size: Option<u64>,
        printer: &Printer,
    ) -> Result<Downloaded> {
        let mut have = match fs::metadata(part) {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
            Err(err) => return Err(err).with_context(|| format!("cannot stat {}", part.display())),
        };
        if expected_size.is_some_and(|size| have > size) {
            have = 0;
        }
        if have > 0 && expected_size == Some(have) {
            return hash_existing(part, have);
        }
        let range = (have > 0).then_some(have);
        let response = self.call(url, range)?;
        let status = response.status().as_u16();
        let resumed = status == 206 && content_range_start(&response) == Some(have);
        if range.is_some() && (status == 416 || (status == 206 && !resumed)) {
            // The server's file is not the one our part began (shorter, or it answered
            // another range): start again from the first byte.
            drop(response);
            fs::remove_file(part).with_context(|| format!("cannot remove {}", part.display()))?;
            return self.download_once(url, part, expected_size, printer);
        }
        if !resumed {
            have = 0;
        }
        let remaining = content_length(&response);
        let total = remaining.map(|r| r + have).or(expected_size);
        let limit = expected_size.unwrap_or(self.limits.max_blob_size);
        if let Some(total) = total.filter(|t| *t > limit) {
            return Err(DownloadError::Declared {
                url: url.to_string(),
                length: total,
                limit,
            }
            .into());
        }

        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .with_context(|| format!("cannot open {}", part.display()))?;
        let mut sha512 = Sha512::new();
        if resumed {
            printer.detail(&format!("resuming {url} at byte {have}"));
            hash_prefix(part, have, &mut sha512)?;
        } else {
            file.set_len(0)
                .with_context(|| format!("cannot truncate {}", part.display()))?;
        }

        let progress = printer.step("Downloading", url);
        progress.bytes(have, total);
        let mut reader = self
            .limits
            .rate_floor(response.into_body().into_reader())
            .take(limit + 1 - have.min(limit));
        let mut buf = vec![0u8; 256 * 1024];
        let mut written = have;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    file.sync_data().ok();
                    return Err(DownloadError::Interrupted {
                        url: url.to_string(),
                        bytes: written,
                        source,
                    }
                    .into());
                }
            };
            written += n as u64;
            if written > limit {
                return Err(DownloadError::TooLarge {
                    url: url.to_string(),
                    limit,
                }
                .into());
            }
            file.write_all(&buf[..n])
                .with_context(|| format!("cannot write {}", part.display()))?;
            sha512.update(&buf[..n]);
            progress.bytes(written, total);
        }
        file.sync_all()
            .with_context(|| format!("cannot write {}", part.display()))?;
        if let Some(size) = expected_size
            && size != written
        {
            anyhow::bail!("{url} has {written} bytes, the index says {size}");
        }
        progress.finish("Downloaded", &format!("{url} ({})", human_bytes(written)));
        Ok(Downloaded {
            path: part.to_path_buf(),
            sha512: hex::encode(sha512.finalize()),
        })
    }

    fn call(
        &self,
        url: &str,
        range_from: Option<u64>,
    ) -> Result<ureq::http::Response<ureq::Body>, DownloadError> {
        let mut request = self.agent.get(url);
        if let Some(from) = range_from {
            request = request.header("Range", format!("bytes={from}-"));
        }
        let response = request.call().map_err(|source| match source {
            ureq::Error::Timeout(_) => DownloadError::Stalled {
                url: url.to_string(),
                stall: self.limits.stall,
                source,
            },
            source => DownloadError::Transport {
                url: url.to_string(),
                source,
            },
        })?;
        match response.status().as_u16() {
            200 | 206 => Ok(response),
            416 if range_from.is_some() => Ok(response),
            404 | 410 => Err(DownloadError::NotFound {
                url: url.to_string(),
            }),
            status => Err(DownloadError::Status {
                url: url.to_string(),
                status,
            }),
        }
    }
}

fn content_length(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The first byte of a `Content-Range: bytes FIRST-LAST/TOTAL` answer.
fn content_range_start(response: &ureq::http::Response<ureq::Body>) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    let range = value.trim().strip_prefix("bytes")?.trim();
    range.split('-').next()?.trim().parse().ok()
}

fn hash_prefix(path: &Path, len: u64, sha512: &mut Sha512) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = file.take(len);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(());
        }
        sha512.update(&buf[..n]);
    }
}

fn hash_existing(path: &Path, len: u64) -> Result<Downloaded> {
    let mut sha512 = Sha512::new();
    hash_prefix(path, len, &mut sha512)?;
    Ok(Downloaded {
        path: path.to_path_buf(),
        sha512: hex::encode(sha512.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_existing_matches_sha2() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        fs::write(&path, b"hello").unwrap();
        let done = hash_existing(&path, 5).unwrap();
        assert_eq!(done.sha512, hex::encode(Sha512::digest(b"hello")));
    }

    #[test]
    fn broken_connections_are_retried_but_not_404() {
        let broken = DownloadError::Interrupted {
            url: "u".into(),
            bytes: 1,
            source: std::io::Error::other("eof"),
        };
        assert!(broken.is_retryable());
        assert!(!DownloadError::NotFound { url: "u".into() }.is_retryable());
    }
}
