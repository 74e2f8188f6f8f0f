//! `audit:` (and `images.*.audit:`): the severity that fails a build, and the advisories
//! accepted, each with its reason.

use super::*;
use crate::gentoo::glsa::{normalize_id, parse_fail_on};

impl Validator<'_> {
    /// The file's `audit:`; left out, [`default_audit`].
    pub(super) fn audit(&self, raw: Option<S<RawAudit>>) -> Checked<AuditPolicy> {
        let mut policy = default_audit();
        if let Some(raw) = raw {
            let over = self.audit_override(Some(raw))?;
            if let Some(fail_on) = over.fail_on {
                policy.fail_on = fail_on;
            }
            policy.ignore = over.ignore;
        }
        Ok(policy)
    }

    /// An `audit:` as written: its keys checked, nothing defaulted.
    pub(super) fn audit_override(&self, raw: Option<S<RawAudit>>) -> Checked<AuditOverride> {
        let Some(raw) = raw else {
            return Ok(AuditOverride::default());
        };
        let raw = raw.value;
        let fail_on = match &raw.fail_on {
            Some(f) => Some(parse_fail_on(f.value.trim()).ok_or_else(|| {
                self.choice_error(f.referenced, "fail_on", &f.value, &AUDIT_FAIL_ON)
            })?),
            None => None,
        };
        let mut ignore: Vec<IgnoredAdvisory> = Vec::new();
        for entry in raw.ignore.unwrap_or_default() {
            let at = entry.referenced;
            let entry = entry.value;
            let id = normalize_id(&entry.id.value).ok_or_else(|| {
                self.source.error_with_hint(
                    entry.id.referenced,
                    format!("`{}` is not a GLSA id", entry.id.value),
                    "write it as Gentoo does, e.g. GLSA-202401-01",
                )
            })?;
            let reason = match &entry.reason {
                Some(r) if !r.value.trim().is_empty() => r.value.trim().to_string(),
                _ => {
                    return Err(self.source.error_with_hint(
                        entry.reason.as_ref().map_or(at, |r| r.referenced),
                        format!("the ignore of {id} has no reason"),
                        "say why the advisory does not matter for this image, e.g. \
                         reason: \"the vulnerable tool is not in the image's PATH\"",
                    ));
                }
            };
            if ignore.iter().any(|i| i.id == id) {
                return Err(self
                    .source
                    .error(entry.id.referenced, format!("{id} is ignored twice")));
            }
            ignore.push(IgnoredAdvisory { id, reason });
        }
        Ok(AuditOverride { fail_on, ignore })
    }
}
