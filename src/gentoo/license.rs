//! Gentoo LICENSE expressions (PMS "Dependency specification format" applied to licenses) and
//! their translation to SPDX license expressions.
//!
//! For the SBOM. Gentoo names its licenses after the files in the repository's `licenses/`;
//! the common ones map to SPDX identifiers, the rest become `LicenseRef-Gentoo-<name>`, which
//! the SBOM declares so the document stays valid. Not a license-acceptance checker
//! (ACCEPT_LICENSE is Portage's job).

use std::collections::BTreeSet;

use anyhow::{Result, bail};

/// Gentoo license name -> SPDX expression, one tab-separated pair a line. Names absent here
/// become LicenseRefs. A data file so the SBOM integration test can validate every entry.
const SPDX_BY_GENTOO: &str = include_str!("spdx-licenses.tsv");

/// A Gentoo LICENSE expression as written: names, `|| ( … )`, `flag? ( … )`, `( … )`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LicenseSpec {
    License(String),
    AllOf(Vec<LicenseSpec>),
    AnyOf(Vec<LicenseSpec>),
    IfUse {
        flag: String,
        enabled: bool,
        then: Vec<LicenseSpec>,
    },
}

/// A Gentoo LICENSE value translated to SPDX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpdxLicense {
    /// An SPDX license expression, or `NOASSERTION` when the package names no license.
    pub expression: String,
    /// The Gentoo names that became `LicenseRef-Gentoo-…`, as (ref id, Gentoo name).
    pub license_refs: BTreeSet<(String, String)>,
}

/// Parse a LICENSE value into its top-level list (an implicit all-of).
pub fn parse_license(text: &str) -> Result<Vec<LicenseSpec>> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let mut at = 0;
    let specs = parse_group(&tokens, &mut at, text)?;
    if at != tokens.len() {
        bail!("unbalanced `)` in LICENSE `{text}`");
    }
    Ok(specs)
}

fn parse_group(tokens: &[&str], at: &mut usize, text: &str) -> Result<Vec<LicenseSpec>> {
    let mut specs = Vec::new();
    while let Some(&token) = tokens.get(*at) {
        if token == ")" {
            return Ok(specs);
        }
        *at += 1;
        let spec = if token == "||" || token == "(" || token.ends_with('?') {
            if token != "(" {
                expect(tokens, at, "(", text)?;
            }
            let inner = parse_group(tokens, at, text)?;
            expect(tokens, at, ")", text)?;
            if token == "||" {
                LicenseSpec::AnyOf(inner)
            } else if token == "(" {
                LicenseSpec::AllOf(inner)
            } else {
                let flag = token.trim_end_matches('?');
                let (flag, enabled) = match flag.strip_prefix('!') {
                    Some(flag) => (flag, false),
                    None => (flag, true),
                };
                if flag.is_empty() {
                    bail!("`{token}` names no USE flag in LICENSE `{text}`");
                }
                LicenseSpec::IfUse {
                    flag: flag.to_string(),
                    enabled,
                    then: inner,
                }
            }
        } else {
            LicenseSpec::License(token.to_string())
        };
        specs.push(spec);
    }
    Ok(specs)
}

fn expect(tokens: &[&str], at: &mut usize, want: &str, text: &str) -> Result<()> {
    if tokens.get(*at) != Some(&want) {
        bail!("expected `{want}` in LICENSE `{text}`");
    }
    *at += 1;
    Ok(())
}

/// Translate a Gentoo LICENSE value to SPDX, taking `flag? ( … )` groups by the package's
/// enabled USE flags.
pub fn spdx_license(text: Option<&str>, use_flags: &[String]) -> Result<SpdxLicense> {
    let mut license_refs = BTreeSet::new();
    let specs = match text {
        Some(text) => parse_license(text)?,
        None => Vec::new(),
    };
    let expression = join(&specs, " AND ", use_flags, &mut license_refs)
        .unwrap_or_else(|| "NOASSERTION".to_string());
    Ok(SpdxLicense {
        expression,
        license_refs,
    })
}

/// The SPDX form of one list, joined by `operator`; `None` when nothing applies.
fn join(
    specs: &[LicenseSpec],
    operator: &str,
    use_flags: &[String],
    refs: &mut BTreeSet<(String, String)>,
) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for spec in specs {
        let part = match spec {
            LicenseSpec::License(name) => Some(spdx_name(name, refs)),
            LicenseSpec::AllOf(inner) => join(inner, " AND ", use_flags, refs),
            LicenseSpec::AnyOf(inner) => join(inner, " OR ", use_flags, refs),
            LicenseSpec::IfUse {
                flag,
                enabled,
                then,
            } => {
                if use_flags.iter().any(|f| f == flag) == *enabled {
                    join(then, " AND ", use_flags, refs)
                } else {
                    None
                }
            }
        };
        if let Some(part) = part
            && !parts.contains(&part)
        {
            parts.push(part);
        }
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(
            parts
                .iter()
                .map(|p| {
                    // WITH binds tighter than AND and OR: only compound parts need parentheses.
                    if p.contains(" AND ") || p.contains(" OR ") {
                        format!("({p})")
                    } else {
                        p.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(operator),
        ),
    }
}

fn spdx_name(gentoo: &str, refs: &mut BTreeSet<(String, String)>) -> String {
    let mapped = SPDX_BY_GENTOO
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('\t'))
        .find(|(name, _)| *name == gentoo);
    if let Some((_, spdx)) = mapped {
        return spdx.to_string();
    }
    let id = license_ref(gentoo);
    refs.insert((id.clone(), gentoo.to_string()));
    id
}

/// `LicenseRef-Gentoo-<name>`; SPDX allows letters, digits, `.` and `-` after the prefix.
pub fn license_ref(gentoo: &str) -> String {
    let mut id = String::from("LicenseRef-Gentoo-");
    for c in gentoo.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => id.push(c),
            '+' => id.push_str("-plus"),
            _ => id.push('-'),
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spdx(text: &str, use_flags: &[&str]) -> String {
        let flags: Vec<String> = use_flags.iter().map(|f| f.to_string()).collect();
        spdx_license(Some(text), &flags).unwrap().expression
    }

    #[test]
    fn maps_common_names() {
        assert_eq!(spdx("GPL-2", &[]), "GPL-2.0-only");
        assert_eq!(
            spdx("GPL-2+ LGPL-2.1+", &[]),
            "GPL-2.0-or-later AND LGPL-2.1-or-later"
        );
        assert_eq!(
            spdx("BSD ZLIB openssl PSF-2 Boost-1.0", &[]),
            "BSD-3-Clause AND Zlib AND OpenSSL AND PSF-2.0 AND BSL-1.0"
        );
        assert_eq!(spdx("Artistic", &[]), "Artistic-1.0-Perl");
    }

    #[test]
    fn any_of_becomes_or_and_nesting_is_parenthesised() {
        assert_eq!(
            spdx("|| ( Artistic GPL-1+ )", &[]),
            "Artistic-1.0-Perl OR GPL-1.0-or-later"
        );
        assert_eq!(
            spdx("MIT || ( Apache-2.0 GPL-2 )", &[]),
            "MIT AND (Apache-2.0 OR GPL-2.0-only)"
        );
        assert_eq!(
            spdx("|| ( ( MIT ISC ) Apache-2.0-with-LLVM-exceptions )", &[]),
            "(MIT AND ISC) OR Apache-2.0 WITH LLVM-exception"
        );
    }

    #[test]
    fn use_conditionals_follow_the_package_use() {
        let text = "MIT ssl? ( openssl ) !ssl? ( GPL-3 )";
        assert_eq!(spdx(text, &["ssl"]), "MIT AND OpenSSL");
        assert_eq!(spdx(text, &[]), "MIT AND GPL-3.0-only");
        assert_eq!(spdx("doc? ( FDL-1.3 )", &[]), "NOASSERTION");
    }

    #[test]
    fn unknown_names_become_declared_license_refs() {
        let result = spdx_license(Some("MIT public-domain inner-net gtk+_x"), &[]).unwrap();
        assert_eq!(
            result.expression,
            "MIT AND LicenseRef-Gentoo-public-domain AND LicenseRef-Gentoo-inner-net AND LicenseRef-Gentoo-gtk-plus-x"
        );
        assert_eq!(
            result
                .license_refs
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            [
                "LicenseRef-Gentoo-gtk-plus-x",
                "LicenseRef-Gentoo-inner-net",
                "LicenseRef-Gentoo-public-domain"
            ]
        );
    }

    #[test]
    fn rejects_unbalanced_groups() {
        for bad in ["|| MIT", "( MIT", "MIT )", "? ( MIT )"] {
            assert!(spdx_license(Some(bad), &[]).is_err(), "{bad}");
        }
        assert_eq!(spdx_license(None, &[]).unwrap().expression, "NOASSERTION");
    }
}
