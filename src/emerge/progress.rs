//! Reading emerge's output as it streams: which package is being built (n of N), whether it
//! came from a binary package, and, when a build fails, which package failed and where its
//! build log is. Pure text parsing; emerge runs with NOCOLOR so no escape codes reach here.

/// One thing worth telling the user, recognised in a line of emerge's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmergeEvent {
    /// `>>> Emerging (2 of 5) dev-libs/libgreet-1.0::gentoo for /staging/`
    Started {
        index: u32,
        total: u32,
        /// `category/name-version`
        package: String,
        /// true for `Emerging binary`: taken from the binary package cache, not compiled.
        binary: bool,
        /// true when the package goes into the image root, false for the builder's own `/`.
        into_image: bool,
    },
    /// ` * ERROR: app-misc/broken-1.0::gentoo failed (compile phase):`, ` * Fetch failed for
    /// 'CPV'` (the fetch phase), or `>>> Failed to emerge CPV for /staging/, Log file:`
    /// (no phase: the package's log, shown next, may name it).
    Failed {
        package: String,
        phase: Option<String>,
    },
    /// ` * The complete build log is located at '/var/log/portage/…log'.`
    BuildLog { path: String },
    /// `!!! [gib] Error fetching binhost package info from 'URL'`: Portage goes on without
    /// that binhost, so what it would have provided is compiled.
    BinhostUnreachable { url: String },
    /// `!!! Fetched file: F VERIFY FAILED!` (a download) or `!!! Previously fetched file: 'F'`
    /// (already in DISTDIR): the distfile's bytes do not match the Manifest. The next three
    /// lines say how (`Reason`, `Got`, `Expected`).
    DistfileVerifyFailed { file: String },
    /// `!!! Reason: Failed on BLAKE2B verification`
    DigestReason { reason: String },
    /// `!!! Got:      <digest>`
    DigestGot { value: String },
    /// `!!! Expected: <digest>`
    DigestExpected { value: String },
    /// `emerge: there are no ebuilds to satisfy "ATOM" for /staging/.` (or `no binary
    /// packages`, `no ebuilds built with USE flags`): nothing matches ATOM.
    NoMatch { atom: String },
    /// `(dependency required by "CPV::repo" [ebuild])`, after [`EmergeEvent::NoMatch`]: the
    /// atom is a dependency of CPV, not one gib asked for.
    RequiredBy { package: String },
    /// `emerge: Maybe you meant any of these: A, B?` or `emerge: Maybe you meant A?`
    SimilarNames { names: Vec<String> },
}

/// A distfile whose bytes differ from its Manifest entry, as Portage reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DistfileMismatch {
    pub file: String,
    /// What differs: a hash name (`BLAKE2B`, `SHA512`) or Portage's own words (`size`).
    pub what: String,
    pub got: String,
    pub expected: String,
}

impl DistfileMismatch {
    /// Fold one event into the mismatch being read (`current`); a new `VERIFY FAILED`
    /// starts over, so the last one reported wins.
    pub fn note(current: &mut Option<DistfileMismatch>, event: &EmergeEvent) {
        match event {
            EmergeEvent::DistfileVerifyFailed { file } => {
                *current = Some(DistfileMismatch {
                    file: file.clone(),
                    ..DistfileMismatch::default()
                });
            }
            EmergeEvent::DigestReason { reason } => {
                if let Some(m) = current {
                    m.what = reason
                        .strip_prefix("Failed on ")
                        .and_then(|r| r.strip_suffix(" verification"))
                        .map(str::to_string)
                        .unwrap_or_else(|| reason.clone());
                }
            }
            EmergeEvent::DigestGot { value } => {
                if let Some(m) = current {
                    m.got = value.clone();
                }
            }
            EmergeEvent::DigestExpected { value } => {
                if let Some(m) = current {
                    m.expected = value.clone();
                }
            }
            _ => {}
        }
    }
}

impl std::fmt::Display for DistfileMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "distfile {} does not match its Manifest", self.file)?;
        if !self.what.is_empty() {
            write!(
                f,
                ": {} is {}, the Manifest says {}",
                self.what, self.got, self.expected
            )?;
        }
        Ok(())
    }
}

/// Parse one line; `None` for the lines that are only noise for the user.
pub fn parse_line(line: &str) -> Option<EmergeEvent> {
    let line = line.trim_end();
    if let Some(rest) = line.trim_start().strip_prefix(">>> Emerging ") {
        return parse_started(rest);
    }
    if let Some(rest) = line.trim_start().strip_prefix(">>> Failed to emerge ") {
        let package = rest.split([' ', ',']).next()?;
        return Some(EmergeEvent::Failed {
            package: strip_repo(package).to_string(),
            phase: None,
        });
    }
    let trimmed = line.trim_start();
    if let Some(rest) = trimmed.strip_prefix("!!! [")
        && let Some((_, rest)) = rest.split_once("] Error fetching binhost package info from '")
    {
        let url = rest.split_once('\'')?.0;
        return Some(EmergeEvent::BinhostUnreachable {
            url: url.to_string(),
        });
    }
    if let Some(event) = parse_fetch_message(trimmed) {
        return Some(event);
    }
    if let Some(event) = parse_no_match(trimmed) {
        return Some(event);
    }
    let message = trimmed.strip_prefix("* ").unwrap_or(trimmed).trim_start();
    // Fetch failures are reported apart from the phases: ` * Fetch failed for 'CPV', Log
    // file:` and the log's path quoted alone on the next line.
    if let Some(rest) = message.strip_prefix("Fetch failed for '") {
        let package = rest.split_once('\'')?.0;
        return Some(EmergeEvent::Failed {
            package: strip_repo(package).to_string(),
            phase: Some("fetch".to_string()),
        });
    }
    // The log's path quoted alone, after ` * ` or `>>> `.
    if let Some(path) = message
        .trim_start_matches(">>>")
        .trim_start()
        .strip_prefix('\'')
        .and_then(|m| m.strip_suffix('\''))
        .filter(|p| p.starts_with('/') && p.ends_with(".log"))
    {
        return Some(EmergeEvent::BuildLog {
            path: path.to_string(),
        });
    }
    if let Some(rest) = message.strip_prefix("ERROR: ") {
        let (package, rest) = rest.split_once(" failed (")?;
        let phase = rest.split_once(" phase)")?.0;
        return Some(EmergeEvent::Failed {
            package: strip_repo(package).to_string(),
            phase: Some(phase.to_string()),
        });
    }
    if let Some(rest) = message.strip_prefix("The complete build log is located at '") {
        let path = rest.split_once('\'')?.0;
        return Some(EmergeEvent::BuildLog {
            path: path.to_string(),
        });
    }
    None
}

/// Portage's `!!!` lines about a distfile that failed its Manifest check (fetch.py).
fn parse_fetch_message(line: &str) -> Option<EmergeEvent> {
    let rest = line.strip_prefix("!!! ")?;
    if let Some(file) = rest
        .strip_prefix("Fetched file: ")
        .and_then(|r| r.strip_suffix(" VERIFY FAILED!"))
    {
        return Some(EmergeEvent::DistfileVerifyFailed {
            file: file.to_string(),
        });
    }
    if let Some(file) = rest
        .strip_prefix("Previously fetched file: '")
        .and_then(|r| r.strip_suffix('\''))
    {
        return Some(EmergeEvent::DistfileVerifyFailed {
            file: file.to_string(),
        });
    }
    let (key, value) = rest.split_once(':')?;
    let value = value.trim().to_string();
    match key {
        "Reason" => Some(EmergeEvent::DigestReason { reason: value }),
        "Got" => Some(EmergeEvent::DigestGot { value }),
        "Expected" => Some(EmergeEvent::DigestExpected { value }),
        _ => None,
    }
}

fn parse_started(rest: &str) -> Option<EmergeEvent> {
    let (binary, rest) = match rest.strip_prefix("binary ") {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let rest = rest.strip_prefix('(')?;
    let (counts, rest) = rest.split_once(") ")?;
    let (index, total) = counts.split_once(" of ")?;
    let mut words = rest.split_whitespace();
    let package = strip_repo(words.next()?).to_string();
    let into_image = match (words.next(), words.next()) {
        (Some("for"), Some(root)) => !root.trim_end_matches('/').is_empty(),
        _ => false,
    };
    Some(EmergeEvent::Started {
        index: index.trim().parse().ok()?,
        total: total.trim().parse().ok()?,
        package,
        binary,
        into_image,
    })
}

/// depgraph's report of an atom nothing satisfies, and its search for similar names.
fn parse_no_match(line: &str) -> Option<EmergeEvent> {
    if let Some(rest) = line.strip_prefix("emerge: there are no ")
        && let Some((_, rest)) = rest.split_once(" to satisfy \"")
    {
        let atom = rest.split_once('"')?.0;
        return Some(EmergeEvent::NoMatch {
            atom: atom.to_string(),
        });
    }
    if let Some(rest) = line.strip_prefix("(dependency required by \"") {
        let package = rest.split_once('"')?.0;
        return Some(EmergeEvent::RequiredBy {
            package: strip_repo(package).to_string(),
        });
    }
    let names = line
        .strip_prefix("emerge: Maybe you meant any of these: ")
        .or_else(|| line.strip_prefix("emerge: Maybe you meant "))?
        .trim_end_matches('?');
    Some(EmergeEvent::SimilarNames {
        names: names.split(", ").map(str::to_string).collect(),
    })
}

fn strip_repo(cpv: &str) -> &str {
    cpv.split_once("::").map_or(cpv, |(cpv, _)| cpv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atom_nothing_satisfies_and_the_names_emerge_suggests() {
        assert_eq!(
            parse_line(
                "emerge: there are no ebuilds to satisfy \"app-misc/greeet\" for /staging/."
            ),
            Some(EmergeEvent::NoMatch {
                atom: "app-misc/greeet".into()
            })
        );
        assert_eq!(
            parse_line(
                "emerge: there are no ebuilds built with USE flags to satisfy \">=dev-libs/x-2[foo]\"."
            ),
            Some(EmergeEvent::NoMatch {
                atom: ">=dev-libs/x-2[foo]".into()
            })
        );
        assert_eq!(
            parse_line("(dependency required by \"app-misc/y-1.0::gentoo\" [ebuild])"),
            Some(EmergeEvent::RequiredBy {
                package: "app-misc/y-1.0".into()
            })
        );
        assert_eq!(
            parse_line(
                "emerge: Maybe you meant any of these: app-misc/greet, app-misc/broken, app-misc/unfree-greeting?"
            ),
            Some(EmergeEvent::SimilarNames {
                names: vec![
                    "app-misc/greet".into(),
                    "app-misc/broken".into(),
                    "app-misc/unfree-greeting".into()
                ]
            })
        );
        assert_eq!(
            parse_line("emerge: Maybe you meant app-misc/greet?"),
            Some(EmergeEvent::SimilarNames {
                names: vec!["app-misc/greet".into()]
            })
        );
    }

    #[test]
    fn started_into_the_image_root() {
        assert_eq!(
            parse_line(">>> Emerging (2 of 5) dev-libs/libgreet-1.0::gentoo for /staging/"),
            Some(EmergeEvent::Started {
                index: 2,
                total: 5,
                package: "dev-libs/libgreet-1.0".into(),
                binary: false,
                into_image: true,
            })
        );
    }

    #[test]
    fn started_binary_into_the_builder() {
        assert_eq!(
            parse_line(">>> Emerging binary (1 of 3) dev-util/greet-tools-1.0-r1::gentoo"),
            Some(EmergeEvent::Started {
                index: 1,
                total: 3,
                package: "dev-util/greet-tools-1.0-r1".into(),
                binary: true,
                into_image: false,
            })
        );
    }

    #[test]
    fn failure_and_its_log() {
        assert_eq!(
            parse_line(" * ERROR: app-misc/broken-1.0::gentoo failed (compile phase):"),
            Some(EmergeEvent::Failed {
                package: "app-misc/broken-1.0".into(),
                phase: Some("compile".into()),
            })
        );
        assert_eq!(
            parse_line(
                " * The complete build log is located at '/var/log/portage/app-misc:broken-1.0:20261121-120102.log'."
            ),
            Some(EmergeEvent::BuildLog {
                path: "/var/log/portage/app-misc:broken-1.0:20261121-120102.log".into()
            })
        );
    }

    #[test]
    fn a_distfile_that_fails_its_manifest() {
        let lines = [
            ">>> Downloading 'http://127.0.0.1:8080/distfiles/hello-2.10.tar.gz'",
            "!!! Fetched file: hello-2.10.tar.gz VERIFY FAILED!",
            "!!! Reason: Failed on BLAKE2B verification",
            "!!! Got:      0123",
            "!!! Expected: 4567",
            "Refetching... File renamed to '/var/cache/distfiles/hello-2.10.tar.gz._checksum_failure_.x'",
            "!!! Couldn't download 'hello-2.10.tar.gz'. Aborting.",
            " * Fetch failed for 'app-misc/hello-2.10', Log file:",
            " *  '/var/log/portage/app-misc:hello-2.10:20261207-120000.log'",
        ];
        let mut mismatch = None;
        let mut events = Vec::new();
        for line in lines {
            if let Some(event) = parse_line(line) {
                DistfileMismatch::note(&mut mismatch, &event);
                events.push(event);
            }
        }
        let mismatch = mismatch.unwrap();
        assert_eq!(
            mismatch.to_string(),
            "distfile hello-2.10.tar.gz does not match its Manifest: \
             BLAKE2B is 0123, the Manifest says 4567"
        );
        assert!(events.contains(&EmergeEvent::Failed {
            package: "app-misc/hello-2.10".into(),
            phase: Some("fetch".into())
        }));
        // What emerge says when the fetch ran in the background, before the log's text.
        assert_eq!(
            parse_line(">>> Failed to emerge app-misc/hello-2.10 for /staging/, Log file:"),
            Some(EmergeEvent::Failed {
                package: "app-misc/hello-2.10".into(),
                phase: None
            })
        );
        assert_eq!(
            parse_line(">>>  '/var/log/portage/app-misc:hello-2.10:20261207-122523.log'"),
            Some(EmergeEvent::BuildLog {
                path: "/var/log/portage/app-misc:hello-2.10:20261207-122523.log".into()
            })
        );
        assert!(events.contains(&EmergeEvent::BuildLog {
            path: "/var/log/portage/app-misc:hello-2.10:20261207-120000.log".into()
        }));
        assert_eq!(
            parse_line("!!! Previously fetched file: 'hello-2.10.tar.gz'"),
            Some(EmergeEvent::DistfileVerifyFailed {
                file: "hello-2.10.tar.gz".into()
            })
        );
    }

    #[test]
    fn unreachable_binhost() {
        assert_eq!(
            parse_line("!!! [gib] Error fetching binhost package info from 'http://127.0.0.1:9/'"),
            Some(EmergeEvent::BinhostUnreachable {
                url: "http://127.0.0.1:9/".into()
            })
        );
    }

    #[test]
    fn noise_is_ignored() {
        assert_eq!(
            parse_line(">>> Installing (1 of 1) app-misc/greet-1.0::gentoo"),
            None
        );
        assert_eq!(parse_line(" * Package:    app-misc/broken-1.0:0"), None);
        assert_eq!(parse_line(">>> Emerging (x of y) nonsense"), None);
        assert_eq!(parse_line(""), None);
    }
}
