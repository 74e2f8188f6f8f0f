//! Gentoo package versions (PMS "Version specifications"): parsing and ordering.
//!
//! Used to validate versioned atoms in gib.yaml and to turn an installed package's
//! `PN-PV-PR` into the image tag (the version without `-rN`). Not a dependency resolver:
//! matching atoms against versions is Portage's job inside the builder.

use std::cmp::Ordering;
use std::fmt;

/// A suffix such as `_rc2`; the order of the variants is the PMS order
/// `_alpha < _beta < _pre < _rc < (none) < _p`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SuffixKind {
    Alpha,
    Beta,
    Pre,
    Rc,
    P,
}

impl SuffixKind {
    const ALL: [(&'static str, SuffixKind); 5] = [
        // `pre` and `p` share a prefix: try the longer word first.
        ("alpha", SuffixKind::Alpha),
        ("beta", SuffixKind::Beta),
        ("pre", SuffixKind::Pre),
        ("rc", SuffixKind::Rc),
        ("p", SuffixKind::P),
    ];
}

/// A parsed PMS version, e.g. `1.2.3a_rc1_p2-r4`.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    /// Dot-separated numeric components, kept as digit strings: PMS compares some of them
    /// as strings (leading zeros) and they may exceed any integer type.
    numbers: Vec<String>,
    letter: Option<char>,
    suffixes: Vec<(SuffixKind, String)>,
    /// The `-rN` number as digits; `None` means `-r0`.
    revision: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid Gentoo version (e.g. 1.2.3, 1.0a, 2.1_rc1, 3.12.7-r1)")]
pub struct VersionError(pub String);

impl Version {
    /// Parse `^(\d+(\.\d+)*)([a-z])?((_(alpha|beta|pre|rc|p)\d*)*)(-r\d+)?$`.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        let err = || VersionError(text.to_string());
        let (rest, revision) = match text.rfind("-r") {
            Some(i) if is_digits(&text[i + 2..]) => (&text[..i], Some(text[i + 2..].to_string())),
            _ => (text, None),
        };
        let mut parts = rest.split('_');
        let head = parts.next().ok_or_else(err)?;
        let (numeric, letter) = match head.chars().last() {
            Some(c) if c.is_ascii_lowercase() => (&head[..head.len() - 1], Some(c)),
            _ => (head, None),
        };
        let numbers: Vec<String> = numeric.split('.').map(str::to_string).collect();
        if !numbers.iter().all(|n| is_digits(n)) {
            return Err(err());
        }
        let mut suffixes = Vec::new();
        for part in parts {
            let (kind, digits) = SuffixKind::ALL
                .iter()
                .find_map(|(word, kind)| {
                    part.strip_prefix(word)
                        .filter(|d| d.is_empty() || is_digits(d))
                        .map(|d| (*kind, d))
                })
                .ok_or_else(err)?;
            suffixes.push((kind, digits.to_string()));
        }
        Ok(Version {
            text: text.to_string(),
            numbers,
            letter,
            suffixes,
            revision,
        })
    }

    /// Compare only the `-rN` revisions (`-r0` when there is none), as GLSAs' `r*` ranges do.
    pub fn cmp_revision(&self, other: &Version) -> Ordering {
        cmp_integer(
            self.revision.as_deref().unwrap_or("0"),
            other.revision.as_deref().unwrap_or("0"),
        )
    }

    /// Whether the two are one version when their revisions are left out (`1.0-r1`, `1.0-r3`).
    pub fn same_without_revision(&self, other: &Version) -> bool {
        let strip = |v: &Version| Version {
            revision: None,
            ..v.clone()
        };
        strip(self) == strip(other)
    }

    /// The version without its `-rN` revision (what gib uses as an image tag).
    pub fn without_revision(&self) -> &str {
        match self.text.rfind("-r") {
            Some(i) if self.revision.is_some() => &self.text[..i],
            _ => &self.text,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Compare two digit strings as unbounded integers (missing = 0).
fn cmp_integer(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for Version {
    /// The PMS algorithm (names.tex, "Version comparison").
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.numbers, &other.numbers);
        let first = cmp_integer(&a[0], &b[0]);
        if first != Ordering::Equal {
            return first;
        }
        for (x, y) in a.iter().zip(b.iter()).skip(1) {
            let ord = if x.starts_with('0') || y.starts_with('0') {
                // A leading zero makes the component a decimal fraction: compare as strings.
                x.trim_end_matches('0').cmp(y.trim_end_matches('0'))
            } else {
                cmp_integer(x, y)
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        let ord = a
            .len()
            .cmp(&b.len())
            .then_with(|| self.letter.cmp(&other.letter));
        if ord != Ordering::Equal {
            return ord;
        }
        for (x, y) in self.suffixes.iter().zip(other.suffixes.iter()) {
            let ord = x.0.cmp(&y.0).then_with(|| cmp_integer(&x.1, &y.1));
            if ord != Ordering::Equal {
                return ord;
            }
        }
        // One side has more suffixes: an extra `_p` is newer than none, anything else older.
        let ord = match (
            self.suffixes.get(other.suffixes.len()),
            other.suffixes.get(self.suffixes.len()),
        ) {
            (Some((SuffixKind::P, _)), _) => Ordering::Greater,
            (Some(_), _) => Ordering::Less,
            (_, Some((SuffixKind::P, _))) => Ordering::Less,
            (_, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
        cmp_integer(
            self.revision.as_deref().unwrap_or("0"),
            other.revision.as_deref().unwrap_or("0"),
        )
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equality is PMS equality: `1.010 == 1.01`, `1.0-r0 == 1.0`.
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// Split `PN-PV[-PR]` (a /var/db/pkg directory or binpkg name) into the package name, the
/// version without revision, and the revision (`r1`), if any:
/// `split_pvr("python-3.12.7-r1") == Some(("python", "3.12.7", Some("r1")))`.
///
/// The package name is everything before the first `-` that starts a valid version, which is
/// unambiguous because PMS forbids package names ending in `-<version>`.
pub fn split_pvr(pvr: &str) -> Option<(&str, &str, Option<&str>)> {
    for (i, _) in pvr.match_indices('-') {
        let (name, rest) = (&pvr[..i], &pvr[i + 1..]);
        if name.is_empty() {
            continue;
        }
        if let Ok(version) = Version::parse(rest) {
            let revision = version.revision.as_ref().map(|_| {
                let at = rest.rfind("-r").map_or(rest.len(), |r| r + 1);
                &rest[at..]
            });
            let without = &rest[..version.without_revision().len()];
            return Some((name, without, revision));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_every_part() {
        let version = v("1.2.3a_rc1_p-r2");
        assert_eq!(version.numbers, ["1", "2", "3"]);
        assert_eq!(version.letter, Some('a'));
        assert_eq!(
            version.suffixes,
            [
                (SuffixKind::Rc, "1".to_string()),
                (SuffixKind::P, String::new())
            ]
        );
        assert_eq!(version.revision.as_deref(), Some("2"));
        assert_eq!(version.without_revision(), "1.2.3a_rc1_p");
    }

    #[test]
    fn rejects_invalid_versions() {
        for bad in [
            "",
            "a",
            "1.",
            ".1",
            "1..2",
            "1.2A",
            "1.2ab",
            "1_foo",
            "1-r",
            "1-rc1",
            "1.2-r1-r2",
            "1_rc-1",
            "1 2",
            "v1",
            "1.0-r1a",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn orders_per_pms() {
        // reference/gentoo.md §6 and more; every pair (and `equal_spellings`) agrees with
        // `portage.versions.vercmp` (portage from PyPI).
        let ascending = [
            ("1.2.3_rc1-r2", "1.2.3"),
            ("1.2.3", "1.2.3-r1"),
            ("1.2.3", "1.2.3_p1"),
            ("1.9", "1.10"),
            ("1.0", "1.0a"),
            ("1.01", "1.1"),
            ("1.0_alpha", "1.0_beta"),
            ("1.0_beta", "1.0_pre"),
            ("1.0_pre", "1.0_rc"),
            ("1.0_rc", "1.0"),
            ("1.0", "1.0_p"),
            ("1.0_alpha1", "1.0_alpha2"),
            ("1.0_alpha9", "1.0_alpha10"),
            ("1.0", "1.0.0"),
            ("1.0_rc1", "1.0_rc1_p1"),
            ("1.0_rc1_alpha", "1.0_rc1"),
            ("2", "10"),
            ("1.0-r9", "1.0-r10"),
            ("99999999999999999999", "100000000000000000000"),
            ("1.2z", "1.3"),
        ];
        for (lower, higher) in ascending {
            assert!(v(lower) < v(higher), "{lower} < {higher}");
            assert!(v(higher) > v(lower), "{higher} > {lower}");
        }
    }

    #[test]
    fn equal_spellings() {
        assert_eq!(v("1.010"), v("1.01"));
        assert_eq!(v("1.0-r0"), v("1.0"));
        assert_eq!(v("01.2"), v("1.2"));
        assert_eq!(v("1.0_p"), v("1.0_p0"));
        assert_eq!(v("1.0"), v("1.00"));
    }

    #[test]
    fn splits_name_version_revision() {
        assert_eq!(
            split_pvr("python-3.12.7-r1"),
            Some(("python", "3.12.7", Some("r1")))
        );
        assert_eq!(split_pvr("glibc-2.40"), Some(("glibc", "2.40", None)));
        assert_eq!(
            split_pvr("ca-certificates-20240203.3.98"),
            Some(("ca-certificates", "20240203.3.98", None))
        );
        assert_eq!(
            split_pvr("font-ibm-type1-1.0.3-r2"),
            Some(("font-ibm-type1", "1.0.3", Some("r2")))
        );
        assert_eq!(
            split_pvr("gcc-14.2.1_p20241221"),
            Some(("gcc", "14.2.1_p20241221", None))
        );
        assert_eq!(split_pvr("python"), None);
        assert_eq!(split_pvr("-1.0"), None);
    }
}
