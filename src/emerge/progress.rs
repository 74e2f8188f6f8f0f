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
    /// ` * ERROR: app-misc/broken-1.0::gentoo failed (compile phase):`
    Failed { package: String, phase: String },
    /// ` * The complete build log is located at '/var/log/portage/…log'.`
    BuildLog { path: String },
    /// `!!! [gib] Error fetching binhost package info from 'URL'`: Portage goes on without
    /// that binhost, so what it would have provided is compiled.
    BinhostUnreachable { url: String },
}

/// Parse one line; `None` for the lines that are only noise for the user.
pub fn parse_line(line: &str) -> Option<EmergeEvent> {
    let line = line.trim_end();
    if let Some(rest) = line.trim_start().strip_prefix(">>> Emerging ") {
        return parse_started(rest);
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
    let message = trimmed.strip_prefix("* ").unwrap_or(trimmed).trim_start();
    if let Some(rest) = message.strip_prefix("ERROR: ") {
        let (package, rest) = rest.split_once(" failed (")?;
        let phase = rest.split_once(" phase)")?.0;
        return Some(EmergeEvent::Failed {
            package: strip_repo(package).to_string(),
            phase: phase.to_string(),
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

fn strip_repo(cpv: &str) -> &str {
    cpv.split_once("::").map_or(cpv, |(cpv, _)| cpv)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                phase: "compile".into(),
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
