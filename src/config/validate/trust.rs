//! What gib trusts beyond Gentoo's pinned keys: `stage3.fingerprint` / `keyring` /
//! `ca_certificate` (an internal stage3 mirror) and `portage.fingerprint` / `keyring` (a
//! team's own snapshot key). Only gib.yaml names them, never the environment.

use super::*;
use crate::openpgp::{INFRASTRUCTURE_FINGERPRINT, RELENG_FINGERPRINT};

impl Validator<'_> {
    pub(super) fn trust(
        &self,
        stage3: Option<&S<RawStage3>>,
        portage: Option<&S<RawPortage>>,
    ) -> Checked<Trust> {
        let mut trust = Trust::gentoo();
        if let Some(raw) = stage3 {
            let r = &raw.value;
            if r.flavor.is_none() {
                let given = [&r.fingerprint, &r.keyring, &r.ca_certificate]
                    .into_iter()
                    .zip(["fingerprint", "keyring", "ca_certificate"])
                    .find_map(|(value, key)| value.as_ref().map(|v| (v, key)));
                if let Some((value, key)) = given {
                    return Err(self.source.error(
                        value.referenced,
                        format!(
                            "`{key}` applies to a stage3 `flavor` (its signed index and \
                             DIGESTS); a `url` or `path` is pinned by its `sha512`"
                        ),
                    ));
                }
            }
            trust.releng =
                self.trusted_key("stage3", &r.fingerprint, &r.keyring, RELENG_FINGERPRINT)?;
            trust.stage3_ca_certificate = r
                .ca_certificate
                .as_ref()
                .map(|c| self.existing_path(c, "certificate"))
                .transpose()?;
        }
        if let Some(raw) = portage {
            let r = &raw.value;
            let sync_type = match &r.sync_type {
                Some(s) => self.sync_type(s)?,
                None => default_sync_type(),
            };
            let key = r.fingerprint.as_ref().or(r.keyring.as_ref());
            if let Some(key) = key
                && sync_type != SyncType::Webrsync
            {
                return Err(self.source.error(
                    key.referenced,
                    "`portage.fingerprint` and `keyring` check webrsync snapshots' signatures; \
                     they need `sync_type: webrsync`",
                ));
            }
            trust.snapshots = self.trusted_key(
                "portage",
                &r.fingerprint,
                &r.keyring,
                INFRASTRUCTURE_FINGERPRINT,
            )?;
        }
        Ok(trust)
    }

    /// `<section>.fingerprint` (and its `keyring`), else the key pinned in gib.
    fn trusted_key(
        &self,
        section: &str,
        fingerprint: &Option<S<String>>,
        keyring: &Option<S<String>>,
        builtin: &str,
    ) -> Checked<TrustedKey> {
        let Some(fingerprint) = fingerprint else {
            if let Some(keyring) = keyring {
                return Err(self.source.error_with_hint(
                    keyring.referenced,
                    format!("`{section}.keyring` needs `{section}.fingerprint`"),
                    "the keyring holds the key material; the fingerprint says which key gib trusts",
                ));
            }
            return Ok(TrustedKey {
                fingerprint: builtin.to_string(),
                keyring: None,
            });
        };
        let keyring = keyring
            .as_ref()
            .map(|k| self.existing_path(k, "keyring"))
            .transpose()?;
        TrustedKey::named(&fingerprint.value, keyring).map_err(|_| {
            self.source.error_with_hint(
                fingerprint.referenced,
                format!(
                    "`{}` is not an OpenPGP v4 fingerprint",
                    fingerprint.value.trim()
                ),
                "40 hexadecimal digits, as `gpg --fingerprint` prints them (spaces are fine)",
            )
        })
    }
}
