//! Package atoms as users write them in gib.yaml (`packages`, `package_use_flags`,
//! `accept_keywords`): validation against PMS names.tex / dependencies.tex.
//!
//! gib only checks that an atom is well-formed so that a typo fails before a long build;
//! resolving an atom to a package is Portage's job. Blockers (`!foo`) and sets (`@world`) are
//! refused because gib has no use for them in these places.

use std::fmt;

use super::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Less,
    LessOrEqual,
    Equal,
    /// `~`: any revision of the version.
    Approximate,
    GreaterOrEqual,
    Greater,
}

impl Operator {
    fn as_str(self) -> &'static str {
        match self {
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Equal => "=",
            Operator::Approximate => "~",
            Operator::GreaterOrEqual => ">=",
            Operator::Greater => ">",
        }
    }
}

/// A validated package dependency atom, e.g. `>=dev-libs/openssl-3.0:0/3=[-bindist,ssl(+)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    pub operator: Option<Operator>,
    pub category: String,
    pub package: String,
    pub version: Option<String>,
    /// `=cat/pkg-1.2*`
    pub wildcard: bool,
    /// Everything after `:` (`0`, `0/3=`, `*`, `=`).
    pub slot: Option<String>,
    /// `::repo` (a Portage extension).
    pub repository: Option<String>,
    /// The comma-separated USE dependencies inside `[...]`.
    pub use_deps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid package atom `{atom}`: {reason}")]
pub struct AtomError {
    pub atom: String,
    pub reason: String,
}

impl Atom {
    /// `category/package` without version, slot or operator.
    pub fn cp(&self) -> String {
        format!("{}/{}", self.category, self.package)
    }

    pub fn parse(text: &str) -> Result<Atom, AtomError> {
        let fail = |reason: &str| AtomError {
            atom: text.to_string(),
            reason: reason.to_string(),
        };
        if text.trim().is_empty() {
            return Err(fail("it is empty"));
        }
        if text.chars().any(char::is_whitespace) {
            return Err(fail(
                "an atom has no spaces (list several atoms as a YAML list)",
            ));
        }
        if text.starts_with('!') {
            return Err(fail("blockers (`!`, `!!`) are not allowed here"));
        }
        if text.starts_with('@') {
            return Err(fail("package sets (`@set`) are not allowed here"));
        }
        let (operator, rest) = split_operator(text);

        let (rest, use_deps) = match rest.strip_suffix(']') {
            Some(inner) => {
                let open = inner.rfind('[').ok_or_else(|| fail("`]` without `[`"))?;
                let deps: Vec<String> = inner[open + 1..].split(',').map(str::to_string).collect();
                for dep in &deps {
                    check_use_dep(dep).map_err(|reason| fail(&reason))?;
                }
                (&inner[..open], deps)
            }
            None => (rest, Vec::new()),
        };
        if rest.contains('[') || rest.contains(']') {
            return Err(fail("USE dependencies `[...]` must come last"));
        }

        let (rest, repository) = match rest.split_once("::") {
            Some((head, repo)) => {
                if !is_repository_name(repo) {
                    return Err(fail(&format!("`{repo}` is not a valid repository name")));
                }
                (head, Some(repo.to_string()))
            }
            None => (rest, None),
        };

        let (rest, slot) = match rest.split_once(':') {
            Some((head, slot)) => {
                check_slot_dep(slot).map_err(|reason| fail(&reason))?;
                (head, Some(slot.to_string()))
            }
            None => (rest, None),
        };

        let (category, name_version) = rest
            .split_once('/')
            .ok_or_else(|| fail("expected `category/package` (e.g. dev-lang/python)"))?;
        if name_version.contains('/') {
            return Err(fail("more than one `/`"));
        }
        if !is_category_name(category) {
            return Err(fail(&format!("`{category}` is not a valid category name")));
        }

        let (package, version, wildcard) = match operator {
            None => (name_version.to_string(), None, false),
            Some(op) => {
                let (name_version, wildcard) = match name_version.strip_suffix('*') {
                    Some(head) if op == Operator::Equal => (head, true),
                    Some(_) => return Err(fail("a `*` version wildcard needs the `=` operator")),
                    None => (name_version, false),
                };
                let (package, version) = split_package_version(name_version).ok_or_else(|| {
                    fail(&format!(
                        "the operator `{}` needs a version (e.g. {}{category}/{name_version}-1.0)",
                        op.as_str(),
                        op.as_str()
                    ))
                })?;
                (package.to_string(), Some(version.to_string()), wildcard)
            }
        };
        if operator.is_none() && split_package_version(&package).is_some() {
            return Err(fail(&format!(
                "a version needs an operator (e.g. ={category}/{package})"
            )));
        }
        if !is_package_name(&package) {
            return Err(fail(&format!("`{package}` is not a valid package name")));
        }
        Ok(Atom {
            operator,
            category: category.to_string(),
            package,
            version,
            wildcard,
            slot,
            repository,
            use_deps,
        })
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = self.operator {
            f.write_str(op.as_str())?;
        }
        write!(f, "{}/{}", self.category, self.package)?;
        if let Some(version) = &self.version {
            write!(f, "-{version}")?;
        }
        if self.wildcard {
            f.write_str("*")?;
        }
        if let Some(slot) = &self.slot {
            write!(f, ":{slot}")?;
        }
        if let Some(repo) = &self.repository {
            write!(f, "::{repo}")?;
        }
        if !self.use_deps.is_empty() {
            write!(f, "[{}]", self.use_deps.join(","))?;
        }
        Ok(())
    }
}

fn split_operator(text: &str) -> (Option<Operator>, &str) {
    for (prefix, op) in [
        (">=", Operator::GreaterOrEqual),
        ("<=", Operator::LessOrEqual),
        (">", Operator::Greater),
        ("<", Operator::Less),
        ("=", Operator::Equal),
        ("~", Operator::Approximate),
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return (Some(op), rest);
        }
    }
    (None, text)
}

/// Split `name-1.2.3-r1` at the first `-` that starts a valid version.
fn split_package_version(name_version: &str) -> Option<(&str, &str)> {
    name_version
        .match_indices('-')
        .map(|(i, _)| (&name_version[..i], &name_version[i + 1..]))
        .find(|(name, version)| !name.is_empty() && Version::parse(version).is_ok())
}

fn chars_in(s: &str, extra: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// PMS: `[A-Za-z0-9+_.-]`, not starting with `-`, `.` or `+`.
pub fn is_category_name(s: &str) -> bool {
    !s.is_empty() && chars_in(s, "+_.-") && !s.starts_with(['-', '.', '+'])
}

/// PMS: `[A-Za-z0-9+_-]`, not starting with `-` or `+` (the "not ending in a version" rule
/// is checked by the caller, which knows whether a version is expected).
pub fn is_package_name(s: &str) -> bool {
    !s.is_empty() && chars_in(s, "+_-") && !s.starts_with(['-', '+'])
}

/// PMS: `[A-Za-z0-9+_.-]`, not starting with `-`, `.` or `+`.
pub fn is_slot_name(s: &str) -> bool {
    !s.is_empty() && chars_in(s, "+_.-") && !s.starts_with(['-', '.', '+'])
}

/// PMS: `[A-Za-z0-9+_@-]`, starting with a letter or digit.
pub fn is_use_flag_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric()) && chars_in(s, "+_@-")
}

/// PMS: `[A-Za-z0-9_-]`, not starting with `-`.
pub fn is_repository_name(s: &str) -> bool {
    !s.is_empty() && chars_in(s, "_-") && !s.starts_with('-')
}

/// Keywords as in package.accept_keywords: `amd64`, `~amd64`, `**`, `*`, `~*`, `-*`.
pub fn is_keyword(s: &str) -> bool {
    if matches!(s, "*" | "~*" | "**" | "-*") {
        return true;
    }
    let arch = s.strip_prefix(['~', '-']).unwrap_or(s);
    !arch.is_empty() && chars_in(arch, "_-") && !arch.starts_with('-')
}

/// A word of a package.license line (portage(5)): a license name (PMS: `[A-Za-z0-9+_.-]`,
/// not starting with `-`, `.` or `+`) or an `@GROUP`, either negated with `-`, or `*`/`-*`.
pub fn is_license_token(s: &str) -> bool {
    if matches!(s, "*" | "-*") {
        return true;
    }
    let name = s.strip_prefix('-').unwrap_or(s);
    let name = name.strip_prefix('@').unwrap_or(name);
    !name.is_empty() && chars_in(name, "+_.-") && !name.starts_with(['-', '.', '+'])
}

/// `:*`, `:=`, `:SLOT`, `:SLOT=`, `:SLOT/SUBSLOT`, `:SLOT/SUBSLOT=`.
fn check_slot_dep(slot: &str) -> Result<(), String> {
    if slot == "*" || slot == "=" {
        return Ok(());
    }
    let name = slot.strip_suffix('=').unwrap_or(slot);
    let valid = match name.split_once('/') {
        Some((slot, sub)) => is_slot_name(slot) && is_slot_name(sub),
        None => is_slot_name(name),
    };
    if valid {
        Ok(())
    } else {
        Err(format!("`:{slot}` is not a valid slot dependency"))
    }
}

/// 4-style USE dependencies: `flag`, `-flag`, `flag=`, `!flag=`, `flag?`, `!flag?`, each
/// flag optionally followed by a default `(+)` or `(-)`.
fn check_use_dep(dep: &str) -> Result<(), String> {
    let invalid = || format!("`{dep}` is not a valid USE dependency");
    let (negated, rest) = match dep.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, dep),
    };
    let (rest, conditional) = match rest.strip_suffix(['=', '?']) {
        Some(head) => (head, true),
        None => (rest, false),
    };
    if negated && !conditional {
        return Err(invalid());
    }
    let (rest, minus) = match rest.strip_prefix('-') {
        Some(head) => (head, true),
        None => (rest, false),
    };
    if minus && (negated || conditional) {
        return Err(invalid());
    }
    let flag = rest
        .strip_suffix("(+)")
        .or_else(|| rest.strip_suffix("(-)"))
        .unwrap_or(rest);
    if is_use_flag_name(flag) {
        Ok(())
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Both lists agree with `portage.dep.Atom(…, allow_repo=True)` (portage from PyPI).
    #[test]
    fn accepts_pms_atoms() {
        for good in [
            "dev-lang/python",
            "sys-libs/glibc",
            "app-misc/ca-certificates",
            "=dev-lang/python-3.12.7",
            "=dev-lang/python-3.12.7-r1",
            ">=dev-libs/openssl-3.0:0/3=[-bindist,ssl(+)]",
            "~app-misc/foo-1.2",
            "=dev-lang/python-3.12*",
            "<sys-devel/gcc-15",
            "dev-lang/python:3.12",
            "dev-lang/python:*",
            "dev-libs/foo:=",
            "dev-libs/foo:0=",
            "www-servers/nginx::gentoo",
            "dev-libs/foo[bar,baz=,!qux?,-quux,x(-)]",
            "x11-libs/gtk+",
            "dev-perl/Foo-Bar",
            "media-fonts/font-ibm-type1",
            "=media-fonts/font-ibm-type1-1.0.3-r2",
            "virtual/libc",
            "dev-lang/python:3.12::gentoo[sqlite]",
        ] {
            Atom::parse(good).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn parses_the_parts() {
        let atom = Atom::parse(">=dev-libs/openssl-3.0:0/3=[-bindist,ssl(+)]").unwrap();
        assert_eq!(atom.operator, Some(Operator::GreaterOrEqual));
        assert_eq!(atom.cp(), "dev-libs/openssl");
        assert_eq!(atom.version.as_deref(), Some("3.0"));
        assert_eq!(atom.slot.as_deref(), Some("0/3="));
        assert_eq!(atom.use_deps, ["-bindist", "ssl(+)"]);
        assert_eq!(
            atom.to_string(),
            ">=dev-libs/openssl-3.0:0/3=[-bindist,ssl(+)]"
        );

        let atom = Atom::parse("=media-fonts/font-ibm-type1-1.0.3-r2").unwrap();
        assert_eq!(atom.package, "font-ibm-type1");
        assert_eq!(atom.version.as_deref(), Some("1.0.3-r2"));
    }

    #[test]
    fn rejects_malformed_atoms() {
        for bad in [
            "",
            "  ",
            "python",
            "dev-lang/",
            "/python",
            "dev-lang/python/3",
            "dev-lang/python-3.12",
            ">=dev-lang/python",
            "=dev-lang/python-",
            ">=dev-lang/python-3.12*",
            "dev-lang/pyth on",
            "-dev/foo",
            "dev-lang/-python",
            "dev-lang/python:",
            "dev-lang/python:-1",
            "dev-lang/python::",
            "dev-lang/python[",
            "dev-lang/python[]",
            "dev-lang/python[!foo]",
            "dev-lang/python[-foo?]",
            "dev-lang/python[foo]:3",
            "!dev-lang/python",
            "@world",
            "dev-lang/pyth%n",
            "=dev-lang/python-3.x",
        ] {
            assert!(Atom::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn names() {
        assert!(is_use_flag_name("python_targets_python3_12"));
        assert!(is_use_flag_name("l10n_en-GB"));
        assert!(!is_use_flag_name("-foo"));
        assert!(!is_use_flag_name(""));
        assert!(is_keyword("~amd64"));
        assert!(is_keyword("**"));
        assert!(is_keyword("-*"));
        assert!(!is_keyword("~"));
        assert!(!is_keyword("amd 64"));
        assert!(is_repository_name("my_overlay-2"));
        assert!(!is_repository_name("my.overlay"));
    }
}
