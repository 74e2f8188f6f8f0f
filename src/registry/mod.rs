//! Pushing images to and pulling parents from registries over the distribution API (OCI
//! distribution spec), with docker/podman credentials, bearer tokens and per-registry TLS.
//!
//! Not an OCI writer: images come and go as blobs in a directory laid out like an OCI
//! layout's `blobs/` (`<blobs_dir>/sha256/<hex>`); `oci/` and `output/` own the rest. Digests,
//! descriptors, platforms and media types are the shared ones of `oci::spec`.
//! Entry points: [`push_image`] and [`pull_image`], both given a [`Client`]:
//!
//! ```text
//! let client = Client::new().with_registry("registry.example.org", RegistryOptions { .. });
//! let manifest = Descriptor::of_manifest_blob(&blobs_dir, &digest)?;   // or the writer's own
//! let report = push_image(&client, &blobs_dir, &manifest, &target, &tags, &[parent_ref], &())?;
//! let parent = pull_image(&client, &from_ref, &Platform::host(), &blobs_dir)?;
//! ```
//!
//! Threads: up to four per push or pull, all joined before it returns; no async runtime.
//! Credentials come from the docker/podman files (see `credentials`); there is no
//! environment variable for a CA: `RegistryOptions::ca_certificate` (gib.yaml) says it, trusted
//! besides the system roots as every `ca_certificate` is (`crate::http`), and
//! `SSL_CERT_FILE` replaces the system bundle as usual.

mod auth;
mod client;
mod credentials;
mod error;
mod manifest;
mod pull;
mod push;
mod reference;
mod referrers;

// The public API (`gib build --push`, `gib push`, `from:` a registry, `gib __registry`).
pub use client::{Client, RegistryOptions};
pub use pull::{pull_image, pull_manifest_and_config};
pub use push::{PushReport, check_push_access, push_image, push_referrers_tag, tag_image};
pub use reference::{Reference, validate_tag};
pub use referrers::Referrer;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Run `work` on every item with at most `jobs` threads; stop handing out items after the
/// first failure and return it.
fn for_each_parallel<T: Sync>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<()> {
    if items.len() <= 1 {
        return items.iter().try_for_each(&work);
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len()) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    if let Err(err) = work(item) {
                        failed.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(err);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_runs_all_and_reports_a_failure() {
        let done = AtomicUsize::new(0);
        let items: Vec<u32> = (0..20).collect();
        for_each_parallel(&items, 4, |_| {
            done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(done.load(Ordering::Relaxed), 20);
        let err = for_each_parallel(&items, 4, |i| {
            anyhow::ensure!(*i != 3, "item 3 failed");
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "item 3 failed");
    }
}
