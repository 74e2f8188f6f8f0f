//! The one place that writes to the terminal: status lines, warnings, progress and errors.
//!
//! Logic never prints; it reports through a `Printer`. Errors print as `error:` with one
//! `caused by:` line per cause and an optional `hint:`, and map to the exit codes of the CLI:
//! 2 for a user error (bad usage or configuration), 1 for anything else.

use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

thread_local! {
    /// The image this thread builds while the run builds several at once (see
    /// [`Printer::image_scope`]).
    static IMAGE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The name of the image the current thread builds, when it is tagged.
fn current_image() -> Option<String> {
    IMAGE.with(|image| image.borrow().clone())
}

/// While alive, every line the current thread prints starts with `[image]` (see
/// [`Printer::image_scope`]).
pub struct ImageScope {
    previous: Option<String>,
}

impl Drop for ImageScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        IMAGE.with(|image| *image.borrow_mut() = previous);
    }
}

/// `[image] ` when the current thread is tagged with an image, else nothing.
fn image_tag() -> String {
    current_image()
        .map(|image| format!("[{image}] "))
        .unwrap_or_default()
}

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

/// How a logic module reports the bytes a long piece of work has done (a download, an
/// unpack, a layer, a push) without knowing who shows them: a [`Step`] on the terminal, a
/// job's stderr inside the sandbox, or nobody.
pub trait ByteProgress: Send + Sync {
    /// `done` bytes so far, of `total` when known.
    fn bytes(&self, done: u64, total: Option<u64>);
}

impl<T: ByteProgress + ?Sized> ByteProgress for &T {
    fn bytes(&self, done: u64, total: Option<u64>) {
        (**self).bytes(done, total);
    }
}

/// Nobody listens.
impl ByteProgress for () {
    fn bytes(&self, _: u64, _: Option<u64>) {}
}

/// A reader that reports how many bytes went through it.
pub struct CountingReader<R, P> {
    inner: R,
    done: u64,
    total: Option<u64>,
    progress: P,
}

impl<R, P: ByteProgress> CountingReader<R, P> {
    pub fn new(inner: R, total: Option<u64>, progress: P) -> Self {
        CountingReader {
            inner,
            done: 0,
            total,
            progress,
        }
    }
}

impl<R: std::io::Read, P: ByteProgress> std::io::Read for CountingReader<R, P> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.progress.bytes(self.done, self.total);
        Ok(n)
    }
}

/// A writer that reports how many bytes went through it.
pub struct CountingWriter<W, P> {
    inner: W,
    done: u64,
    progress: P,
}

impl<W, P: ByteProgress> CountingWriter<W, P> {
    pub fn new(inner: W, progress: P) -> Self {
        CountingWriter {
            inner,
            done: 0,
            progress,
        }
    }
}

impl<W: Write, P: ByteProgress> Write for CountingWriter<W, P> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.done += n as u64;
        self.progress.bytes(self.done, None);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One piece of work on its way (downloading the stage3, emerging an image's packages,
/// writing a layer, pushing): a live line on a terminal with what it is doing and its own
/// elapsed time, which [`Step::finish`] collapses into one finished line. Without a
/// terminal nothing is drawn: the step prints its start and its finished line, plain.
/// Dropped unfinished (an error), it leaves no line behind.
pub struct Step<'p> {
    printer: &'p Printer,
    bar: indicatif::ProgressBar,
    started: Instant,
    /// Whether it shows bytes (set by the first [`ByteProgress::bytes`]).
    counting: AtomicBool,
    /// `[image] ` on the live line of a step of an image built beside others.
    tag: String,
}

// `wide_msg` takes the width the rest leaves and cuts what does not fit: a live line that
// wrapped could not be redrawn in place.
const STEP_TEMPLATE: &str = "{spinner:.cyan.bold} {prefix:>10.cyan.bold} {wide_msg} [{elapsed}]";
const BYTES_TEMPLATE: &str = "{spinner:.cyan.bold} {prefix:>10.cyan.bold} {wide_msg} \
                              {bytes}/{total_bytes} ({bytes_per_sec}) [{elapsed}]";
const BYTES_NO_TOTAL_TEMPLATE: &str = "{spinner:.cyan.bold} {prefix:>10.cyan.bold} {wide_msg} \
                                       {bytes} ({bytes_per_sec}) [{elapsed}]";

impl Step<'_> {
    /// What the step is doing now (emerge's `3/7 dev-libs/x-1 from source`): the live
    /// line's text, or a plain line of its own without a terminal.
    pub fn message(&self, message: &str) {
        if self.bar.is_hidden() {
            self.printer.line(&self.bar.prefix(), message, None);
        } else {
            self.bar.set_message(format!("{}{message}", self.tag));
        }
    }

    /// The time since the step started.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Close the step with one finished line, `verb message [elapsed]`.
    pub fn finish(self, verb: &str, message: &str) {
        self.bar.finish_and_clear();
        self.printer
            .line(verb, message, Some(self.started.elapsed().as_secs_f64()));
    }
}

impl ByteProgress for Step<'_> {
    fn bytes(&self, done: u64, total: Option<u64>) {
        if self.bar.is_hidden() {
            return;
        }
        if !self.counting.swap(true, Ordering::Relaxed) {
            let template = if total.is_some() {
                BYTES_TEMPLATE
            } else {
                BYTES_NO_TOTAL_TEMPLATE
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                self.bar.set_style(style);
            }
        }
        if let Some(total) = total {
            self.bar.set_length(total);
        }
        self.bar.set_position(done);
    }
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// One row of the closing table of `gib build`.
pub struct SummaryRow {
    pub image: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub digest: String,
    /// `built`, `reused` or `pulled`.
    pub how: &'static str,
    pub seconds: f64,
}

pub struct Printer {
    verbose: bool,
    color: bool,
    /// The live lines, when stderr is a terminal (and progress is not turned off).
    live: Option<indicatif::MultiProgress>,
    warned_once: AtomicBool,
}

impl Printer {
    pub fn new(verbose: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Printer::with_progress(verbose, terminal)
    }

    /// A printer that draws live progress and colours only when `live` is true (and stderr
    /// is a terminal): `--progress plain` prints plain lines, with no escape codes.
    pub fn with_progress(verbose: bool, live: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Printer {
            verbose,
            color: live && terminal && std::env::var_os("NO_COLOR").is_none(),
            live: (live && terminal).then(|| {
                indicatif::MultiProgress::with_draw_target(
                    indicatif::ProgressDrawTarget::stderr_with_hz(10),
                )
            }),
            warned_once: AtomicBool::new(false),
        }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Tag the lines this thread prints with `image` until the scope is dropped: when a run
    /// builds images side by side, each image's lines (status, steps, excerpts, builder
    /// output) say whose they are. The scheduler tags each image's thread.
    pub fn image_scope(&self, image: &str) -> ImageScope {
        let previous = IMAGE.with(|current| current.borrow_mut().replace(image.to_string()));
        ImageScope { previous }
    }

    /// Print `text` (whole lines) on stderr above the live lines.
    fn print(&self, text: &str) {
        let tag = image_tag();
        let tagged;
        let text = if tag.is_empty() {
            text
        } else {
            tagged = text
                .lines()
                .map(|line| format!("{tag}{line}\n"))
                .collect::<String>();
            tagged.as_str()
        };
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
        };
        match &self.live {
            Some(live) => live.suspend(write),
            None => write(),
        }
    }

    /// `verb message`, with `[seconds]` when given: the one shape of gib's status lines.
    fn line(&self, verb: &str, message: &str, seconds: Option<f64>) {
        let verb = if self.color {
            format!("\x1b[1;32m{verb:>12}\x1b[0m")
        } else {
            format!("{verb:>12}")
        };
        let time = seconds.map(|s| format!(" [{s:.1}s]")).unwrap_or_default();
        self.print(&format!("{verb} {message}{time}\n"));
    }

    /// A status line: what gib did or starts to do, with no time of its own (a [`Step`]
    /// carries the time of what takes time).
    pub fn status(&self, verb: &str, message: &str) {
        self.line(verb, message, None);
    }

    /// A finished line for work that took `elapsed` but had no live step of its own (an
    /// image, made of several steps).
    pub fn finished(&self, verb: &str, message: &str, elapsed: std::time::Duration) {
        self.line(verb, message, Some(elapsed.as_secs_f64()));
    }

    /// Start a step: `verb label` live on a terminal, a plain status line otherwise.
    pub fn step(&self, verb: &str, label: &str) -> Step<'_> {
        let tag = image_tag();
        let bar = match &self.live {
            Some(live) => {
                let bar = indicatif::ProgressBar::new_spinner()
                    .with_prefix(verb.to_string())
                    .with_message(format!("{tag}{label}"));
                if let Ok(style) = indicatif::ProgressStyle::with_template(STEP_TEMPLATE) {
                    bar.set_style(style);
                }
                let bar = live.add(bar);
                bar.enable_steady_tick(std::time::Duration::from_millis(100));
                bar
            }
            None => {
                self.status(verb, label);
                indicatif::ProgressBar::hidden()
                    .with_prefix(verb.to_string())
                    .with_message(label.to_string())
            }
        };
        Step {
            printer: self,
            bar,
            started: Instant::now(),
            counting: AtomicBool::new(false),
            tag,
        }
    }

    /// A detail only shown with `-v`.
    pub fn detail(&self, message: &str) {
        if self.verbose {
            self.print(&format!("             {message}\n"));
        }
    }

    /// A line of what runs in the builder (emerge, a script), echoed as is with `-v`; it is
    /// in the build's log either way.
    pub fn builder_output(&self, line: &str) {
        if self.verbose {
            self.print(&format!("{line}\n"));
        }
    }

    pub fn warn(&self, message: &str) {
        let label = if self.color {
            "\x1b[1;33mwarning\x1b[0m"
        } else {
            "warning"
        };
        self.print(&format!("{label}: {message}\n"));
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
        let mut out = String::new();
        for line in text.lines() {
            out.push_str(&format!("  | {}\n", plain_text(line)));
        }
        self.print(&out);
    }

    /// The closing table of a build: one row per image.
    pub fn summary(&self, rows: &[SummaryRow]) {
        if rows.is_empty() {
            return;
        }
        self.print(&summary_table(rows));
    }

    /// Print an error with its causes and hint; return the exit code it maps to.
    pub fn fail(&self, err: &anyhow::Error) -> ExitCode {
        let label = if self.color {
            "\x1b[1;31merror\x1b[0m"
        } else {
            "error"
        };
        let mut out = format!("{label}: {err}\n");
        for cause in err.chain().skip(1) {
            out.push_str(&format!("  caused by: {cause}\n"));
        }
        for hint in hints(err) {
            out.push_str(&format!("  hint: {hint}\n"));
        }
        self.print(&out);
        ExitCode::from(if is_user_error(err) {
            EXIT_USAGE
        } else {
            EXIT_FAILURE
        })
    }
}

/// The closing table: columns padded to their widest cell, the digest cut to its first 12
/// hex digits (as `docker images` does).
fn summary_table(rows: &[SummaryRow]) -> String {
    let header = ["IMAGE", "TAGS", "SIZE", "DIGEST", "RESULT", "TIME"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|row| {
            let digest = row.digest.strip_prefix("sha256:").unwrap_or(&row.digest);
            [
                row.image.clone(),
                if row.tags.is_empty() {
                    "-".to_string()
                } else {
                    row.tags.join(",")
                },
                human_bytes(row.size),
                digest.chars().take(12).collect(),
                row.how.to_string(),
                format!("{:.1}s", row.seconds),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let format_row = |row: &[&str]| {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if i == 2 || i == 5 {
                line.push_str(&format!("{cell:>width$}"));
            } else {
                line.push_str(&format!("{cell:<width$}"));
            }
        }
        format!("{}\n", line.trim_end())
    };
    let mut out = format_row(&header);
    for row in &cells {
        let row: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&format_row(&row));
    }
    out
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
    fn an_image_scope_tags_its_thread_only_while_it_lives() {
        let printer = Printer::with_progress(false, false);
        assert_eq!(image_tag(), "");
        {
            let _outer = printer.image_scope("base");
            assert_eq!(image_tag(), "[base] ");
            {
                let _inner = printer.image_scope("app");
                assert_eq!(image_tag(), "[app] ");
                // Another thread is not tagged.
                assert_eq!(std::thread::spawn(image_tag).join().unwrap(), "");
            }
            assert_eq!(image_tag(), "[base] ");
        }
        assert_eq!(image_tag(), "");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn the_closing_table_lines_up() {
        let row = |image: &str, tags: &[&str], size, how| SummaryRow {
            image: image.to_string(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            size,
            digest: format!("sha256:{}", "ab".repeat(32)),
            how,
            seconds: 1.25,
        };
        let table = summary_table(&[
            row("base", &["t", "latest"], 2 << 20, "reused"),
            row("application", &[], 512, "built"),
        ]);
        assert_eq!(
            table,
            "IMAGE        TAGS         SIZE  DIGEST        RESULT  TIME\n\
             base         t,latest  2.0 MiB  abababababab  reused  1.2s\n\
             application  -           512 B  abababababab  built   1.2s\n"
        );
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
