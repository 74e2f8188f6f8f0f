//! `portage:` and `repositories:`: the main ebuild repository and the overlays.

use super::*;

impl Validator<'_> {
    pub(in crate::config) fn portage(&self, raw: Option<S<RawPortage>>) -> Checked<Portage> {
        let Some(raw) = raw else {
            return Ok(default_portage());
        };
        let at = raw.referenced;
        let r = raw.value;
        let sync_type = match &r.sync_type {
            Some(s) => self.sync_type(s)?,
            None => default_sync_type(),
        };
        let uri = match (sync_type, &r.uri) {
            (SyncType::None, Some(u)) => {
                return Err(self.source.error(
                    u.referenced,
                    "`sync_type: none` uses the stage3's own tree; it takes no `uri`",
                ));
            }
            (SyncType::None, None) => None,
            (SyncType::Local, Some(u)) => Some(self.existing_dir(u, "repository")?),
            (SyncType::Local, None) => {
                return Err(self.source.error(
                    at,
                    "`sync_type: local` needs `uri:`, the repository's directory",
                ));
            }
            (_, Some(u)) => Some(self.url(u, "uri")?),
            (SyncType::Git, None) => Some(DEFAULT_PORTAGE_GIT_URI.to_string()),
            (SyncType::Rsync, None) => Some(DEFAULT_PORTAGE_RSYNC_URI.to_string()),
            // webrsync defaults to the stage3 mirror's snapshots/.
            (SyncType::Webrsync, None) => None,
        };
        let pin = r
            .pin
            .as_ref()
            .map(|p| self.repository_pin(p, sync_type))
            .transpose()?;
        let ca_certificate = match (sync_type, &r.ca_certificate) {
            (SyncType::Git | SyncType::Webrsync, Some(c)) => {
                Some(self.existing_path(c, "certificate")?)
            }
            (_, Some(c)) => {
                return Err(self.source.error(
                    c.referenced,
                    "`ca_certificate` is for a repository fetched over HTTPS (`git`, `webrsync`)",
                ));
            }
            (_, None) => None,
        };
        Ok(Portage {
            sync_type,
            uri,
            pin,
            ca_certificate,
        })
    }

    pub(super) fn repository_pin(&self, pin: &S<String>, sync_type: SyncType) -> Checked<String> {
        let value = pin.value.trim();
        let is_commit =
            value.len() >= 7 && value.len() <= 40 && value.bytes().all(|b| b.is_ascii_hexdigit());
        let ok = match sync_type {
            SyncType::Git => is_date(value) || is_commit,
            SyncType::Webrsync => is_date(value),
            SyncType::Rsync | SyncType::Local | SyncType::None => {
                return Err(self.source.error(
                    pin.referenced,
                    "`pin` needs `sync_type: git` (a date or commit) or `webrsync` (a date)",
                ));
            }
        };
        if ok {
            Ok(value.to_string())
        } else {
            Err(self.source.error_with_hint(
                pin.referenced,
                format!("`{value}` is not a snapshot date or commit"),
                "write a date as 2026-11-20 (or 20261120), a commit as its hexadecimal id",
            ))
        }
    }

    pub(super) fn repositories(&self, raw: Vec<S<RawRepository>>) -> Checked<Vec<Repository>> {
        let mut seen = BTreeSet::new();
        let mut repositories = Vec::new();
        for r in &raw {
            let repo = self.repository(r)?;
            if !seen.insert(repo.name.clone()) {
                return Err(self.source.error(
                    r.value.name.referenced,
                    format!("repository `{}` is listed twice", repo.name),
                ));
            }
            repositories.push(repo);
        }
        Ok(repositories)
    }

    pub(in crate::config) fn repository(&self, raw: &S<RawRepository>) -> Checked<Repository> {
        let r = &raw.value;
        let name = r.name.value.trim();
        if !atom::is_repository_name(name) {
            return Err(self.source.error(
                r.name.referenced,
                format!("`{name}` is not a repository name (letters, digits, `_` and `-`)"),
            ));
        }
        if name == "gentoo" {
            return Err(self.source.error_with_hint(
                r.name.referenced,
                "`gentoo` is the main repository",
                "configure it under `portage:`",
            ));
        }
        let sync_type = match &r.sync_type {
            Some(s) => self.sync_type(s)?,
            None => SyncType::Git,
        };
        let uri = match (sync_type, &r.uri) {
            (SyncType::None, _) => {
                return Err(self.source.error(
                    r.sync_type.as_ref().map_or(raw.referenced, |s| s.referenced),
                    format!("repository `{name}` needs a source; `sync_type: none` only applies to `portage:`"),
                ));
            }
            (_, None) => {
                return Err(self
                    .source
                    .error(raw.referenced, format!("repository `{name}` needs `uri:`")));
            }
            (SyncType::Local, Some(u)) => self.existing_dir(u, "repository")?,
            (_, Some(u)) => self.url(u, "uri")?,
        };
        let ca_certificate = r
            .ca_certificate
            .as_ref()
            .map(|c| self.existing_path(c, "certificate"))
            .transpose()?;
        Ok(Repository {
            name: name.to_string(),
            sync_type,
            uri: Some(uri),
            ca_certificate,
            priority: r.priority.as_ref().map(|p| p.value),
        })
    }

    pub(super) fn sync_type(&self, raw: &S<String>) -> Checked<SyncType> {
        match raw.value.trim() {
            "git" => Ok(SyncType::Git),
            "rsync" => Ok(SyncType::Rsync),
            "webrsync" => Ok(SyncType::Webrsync),
            "local" => Ok(SyncType::Local),
            "none" => Ok(SyncType::None),
            other => Err(self.choice_error(raw.referenced, "sync_type", other, &SYNC_TYPES)),
        }
    }
}

/// `2026-11-20` or `20261120`
pub(super) fn is_date(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    let dashed_ok = !s.contains('-') || (s.len() == 10 && &s[4..5] == "-" && &s[7..8] == "-");
    dashed_ok && digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit())
}
