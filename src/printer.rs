//! The one place that writes to the terminal: status lines, warnings, progress and errors.
//!
//! Logic never prints; it reports through a `Printer`. Errors print as `error:` with one
//! `caused by:` line per cause and an optional `hint:`, and map to the exit codes of the CLI:
//! 2 for a user error (bad usage or configuration), 1 for anything else.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A mistake in the user's input (gib.yaml, arguments, a path that does not exist):
/// exit code 2. Like any other error it carries advice with [`Hint::hint`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UserError {
    pub message: String,
}

impl UserError {
    pub fn new(message: impl Into<String>) -> Self {
        UserError {
            message: message.into(),
        }
    }

    /// `UserError::new(message).hint(hint)`.
    pub fn with_hint(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
        UserError::new(message).hint(hint)
    }
}

/// Advice on how to fix an error, carried by the error itself: wrap any error with
/// [`Hint::hint`] and [`Printer::fail`] prints it as `hint:`, whatever the exit code. The
/// wrapper is invisible otherwise: it displays and chains as the error it wraps.
pub struct Hinted {
    hint: String,
    error: anyhow::Error,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The wrapped error's own message; its causes follow in the chain.
        write!(f, "{}", self.error)
    }
}

impl std::fmt::Debug for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} (hint: {})", self.error, self.hint)
    }
}

impl std::error::Error for Hinted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.chain().nth(1)
    }
}

/// Attach a hint to an error (see [`Hinted`]).
pub trait Hint {
    fn hint(self, hint: impl Into<String>) -> anyhow::Error;
}

impl<E: Into<anyhow::Error>> Hint for E {
    fn hint(self, hint: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Hinted {
            hint: hint.into(),
            error: self.into(),
        })
    }
}

/// Every link of `err`'s chain, with the error a [`Hinted`] wraps in its place.
fn links(err: &anyhow::Error) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut links = Vec::new();
    for link in err.chain() {
        links.push(link);
        let mut hinted = link.downcast_ref::<Hinted>();
        while let Some(h) = hinted {
            let Some(top) = h.error.chain().next() else {
                break;
            };
            links.push(top);
            hinted = top.downcast_ref::<Hinted>();
        }
    }
    links
}

/// The hints `err` carries, outermost first (its [`Hinted`] links).
pub fn hints(err: &anyhow::Error) -> Vec<String> {
    links(err)
        .into_iter()
        .filter_map(|link| link.downcast_ref::<Hinted>().map(|h| h.hint.clone()))
        .collect()
}

/// The [`UserError`] in `err`'s chain, if any (the one that makes the exit code 2).
pub fn user_error(err: &anyhow::Error) -> Option<&UserError> {
    links(err)
        .into_iter()
        .find_map(|link| link.downcast_ref::<UserError>())
}

/// Whether `err` is a user error anywhere in its chain (exit code 2).
pub fn is_user_error(err: &anyhow::Error) -> bool {
    links(err).into_iter().any(|link| link.is::<UserError>())
}

/// Exit code for a failed build or test.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;

/// A progress bar handed out by [`Printer::bytes_progress`]; cleared when dropped.
pub struct BytesProgress(indicatif::ProgressBar);

impl BytesProgress {
    pub fn set_position(&self, bytes: u64) {
        self.0.set_position(bytes);
    }
}

impl Drop for BytesProgress {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

pub struct Printer {
    verbose: bool,
    color: bool,
    started: Instant,
    warned_once: AtomicBool,
}

impl Printer {
    pub fn new(verbose: bool) -> Self {
        Printer {
            verbose,
            color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            started: Instant::now(),
            warned_once: AtomicBool::new(false),
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// A status line: what gib is doing now, with the time since it started.
    pub fn status(&self, verb: &str, message: &str) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let verb = if self.color {
            format!("\x1b[1;32m{verb:>12}\x1b[0m")
        } else {
            format!("{verb:>12}")
        };
        eprintln!("{verb} {message} [{elapsed:.1}s]");
    }

    /// A detail only shown with `-v`.
    pub fn detail(&self, message: &str) {
        if self.verbose {
            eprintln!("             {message}");
        }
    }

    /// A line of what runs in the builder (emerge, a script), echoed as is with `-v`; it is
    /// in the build's log either way.
    pub fn builder_output(&self, line: &str) {
        if self.verbose {
            eprintln!("{line}");
        }
    }

    pub fn warn(&self, message: &str) {
        let label = if self.color {
            "\x1b[1;33mwarning\x1b[0m"
        } else {
            "warning"
        };
        eprintln!("{label}: {message}");
    }

    /// A warning printed at most once per process (e.g. "no subordinate id range").
    pub fn warn_once(&self, message: &str) {
        if !self.warned_once.swap(true, Ordering::Relaxed) {
            self.warn(message);
        }
    }

    /// Lines of a build log or a test's output, indented under the last status, as plain
    /// text (see [`plain_text`]).
    pub fn excerpt(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        for line in text.lines() {
            let _ = writeln!(err, "  | {}", plain_text(line));
        }
    }

    /// A byte-count progress bar (a download), drawn only when stderr is a terminal.
    /// `total` is the expected size when known.
    pub fn bytes_progress(&self, label: &str, total: Option<u64>) -> BytesProgress {
        if !std::io::stderr().is_terminal() {
            return BytesProgress(indicatif::ProgressBar::hidden());
        }
        let bar = match total {
            Some(len) => indicatif::ProgressBar::new(len),
            None => indicatif::ProgressBar::no_length(),
        };
        let template = "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}";
        if let Ok(style) = indicatif::ProgressStyle::default_bar().template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        BytesProgress(bar)
    }

    /// Print an error with its causes and hint; return the exit code it maps to.
    pub fn fail(&self, err: &anyhow::Error) -> ExitCode {
        let label = if self.color {
            "\x1b[1;31merror\x1b[0m"
        } else {
            "error"
        };
        eprintln!("{label}: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        for hint in hints(err) {
            eprintln!("  hint: {hint}");
        }
        ExitCode::from(if is_user_error(err) {
            EXIT_USAGE
        } else {
            EXIT_FAILURE
        })
    }
}

/// Bytes with a binary unit and one decimal (`512 B`, `5.5 MiB`), for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `line` without terminal escape sequences (gcc's and make's colours, `ESC [ … K`) and
/// other control characters but tabs: a log excerpt shows what was said, not how, and
/// cannot move the cursor or retitle the terminal.
pub fn plain_text(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                // CSI: parameters and intermediates, up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST (ESC \).
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                // A two-byte sequence (ESC =, ESC 7…).
                _ => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn excerpts_are_plain_text() {
        // What gcc writes with -fdiagnostics-color=always.
        let gcc = "\x1b[01m\x1b[Kgreet.c:3:1:\x1b[m\x1b[K \x1b[01;31m\x1b[Kerror: \x1b[m\x1b[Kexpected \
                   '\x1b[01m\x1b[K;\x1b[m\x1b[K' before '\x1b[01m\x1b[K}\x1b[m\x1b[K' token";
        assert_eq!(
            plain_text(gcc),
            "greet.c:3:1: error: expected ';' before '}' token"
        );
        assert_eq!(
            plain_text("\x1b]0;title\x07a\tb\r\x1b]8;;x\x1b\\c"),
            "a\tbc"
        );
        assert_eq!(plain_text("plain ✓ text"), "plain ✓ text");
    }

    #[test]
    fn any_error_carries_a_hint_without_choosing_the_exit_code() {
        let plain = anyhow::anyhow!("disk full").hint("free some space");
        assert_eq!(hints(&plain), ["free some space"]);
        assert!(!is_user_error(&plain));
        assert_eq!(plain.to_string(), "disk full");

        let user: anyhow::Error = Err::<(), _>(UserError::new("bad key").hint("did you mean x?"))
            .context("cannot load gib.yaml")
            .unwrap_err();
        assert_eq!(hints(&user), ["did you mean x?"]);
        assert!(is_user_error(&user));
        let chain: Vec<String> = user.chain().map(|e| e.to_string()).collect();
        assert_eq!(chain, ["cannot load gib.yaml", "bad key"]);

        let twice = anyhow::anyhow!("x").hint("inner").hint("outer");
        assert_eq!(hints(&twice), ["outer", "inner"]);
        assert!(hints(&anyhow::anyhow!("none")).is_empty());
    }
}
