//! What kiln says on stdout: results only (one reference per tag, or one JSON object), through one writer with one
//! policy, and the error report on stderr.

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;

use crate::cli::OutputFormat;
use kiln_engine::Published;
use kiln_engine::{Error, Result};

/// Where `Error::Io` says stdout failed.
const STDOUT: &str = "standard output";

/// stdout. Every result goes through [`Stdout::print`], so one policy holds for every command: a write error is
/// an error naming stdout (a full disk exits 1 with a message, never 0 with nothing printed), and a closed pipe
/// (`kiln inspect … | head -1`) ends the command quietly with exit 0 ([`is_broken_pipe`], as ripgrep does).
pub struct Stdout;

impl Stdout {
    pub fn print(text: &str) -> Result<()> {
        Self::write(text.as_bytes())
    }

    /// Bytes as they are (a document kiln read, e.g. an SBOM): no escaping, no newline added.
    pub fn write(bytes: &[u8]) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|e| Error::io(STDOUT, e))
    }
}

/// Findings that are a command's result but belong on stderr (`kiln check`'s `FILE:LINE: …` lines, which CI
/// problem matchers read): one line each, no `kiln:` prefix, control characters escaped.
pub fn print_findings<T: std::fmt::Display>(findings: &[T]) {
    let mut err = std::io::stderr().lock();
    for f in findings {
        let _ = writeln!(err, "{}", escape_controls(&f.to_string()));
    }
}

/// Whether `e` is stdout's reader going away: not a failure of kiln's (the reader has what it wanted).
pub fn is_broken_pipe(e: &Error) -> bool {
    match e {
        Error::Io { path, source } => {
            source.kind() == std::io::ErrorKind::BrokenPipe && path.as_os_str() == STDOUT
        }
        Error::Context { source, .. } => is_broken_pipe(source),
        _ => false,
    }
}

/// One JSON document and a newline.
pub fn json_line(value: &impl Serialize) -> String {
    format!(
        "{}\n",
        serde_json::to_string(value).expect("kiln's result types serialize")
    )
}

/// A build's or push's result: the references (the version's first), or the JSON object.
pub fn print_published(p: &Published, format: OutputFormat) -> Result<()> {
    Stdout::print(&match format {
        OutputFormat::Text => p.references.iter().map(|r| format!("{r}\n")).collect(),
        OutputFormat::Json => json_line(p),
    })
}

/// `--ref-file PATH`: the deploy reference and a newline, for later CI steps, written atomically.
pub fn write_ref_file(p: &Published, path: &std::path::Path) -> Result<()> {
    kiln_engine::fsx::write_atomic(
        path,
        format!("{}\n", p.deploy_reference()).as_bytes(),
        kiln_engine::fsx::WriteOptions::new(),
    )
}

/// The error as printed: `kiln: error: WHAT`, one `caused by:` line per cause that adds something (a cause whose
/// text the line above already contains — an I/O error under the path that failed — is left out), then the next
/// step when there is one. Every line is [`escape_controls`]ed: causes carry a registry's own words.
pub fn error_report(e: &Error) -> String {
    let mut out = format!("kiln: error: {}\n", escape_controls(&e.to_string()));
    let mut last = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !last.contains(&text) {
            out.push_str(&format!("  caused by: {}\n", escape_controls(&text)));
        }
        last = text;
        src = s.source();
    }
    if let Some(h) = e.hint() {
        out.push_str(&format!("  hint: {}\n", escape_controls(&h)));
    }
    out
}

/// Text bound for a terminal, made unable to act on it: control characters (C0 but tab, DEL, C1) are written as
/// escapes (`\x1b`, `\r`, `\n`, `\u{9b}`). Registries put their own words in errors and headers; raw, an ESC
/// sequence could retitle the terminal or hide text, and a CR or LF could forge a `kiln: …` line in a CI log.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if is_control(c) && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_report_drops_repeated_causes_and_adds_the_next_step() {
        let e = Error::io("nodir", std::io::Error::from(std::io::ErrorKind::NotFound))
            .context("reading build output nodir");
        let r = error_report(&e);
        assert_eq!(r.matches("not found").count(), 1, "{r}");
        assert!(
            r.starts_with("kiln: error: reading build output nodir\n  caused by: nodir: "),
            "{r}"
        );
        assert!(r.contains("hint: check the path nodir"), "{r}");
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape_controls("plain: ok\ttab é"), "plain: ok\ttab é");
        assert_eq!(
            escape_controls("a\x1b]0;pwned\x07b\r\nkiln: summary: forged\u{9b}2J\x7f"),
            "a\\x1b]0;pwned\\x07b\\r\\nkiln: summary: forged\\u{9b}2J\\x7f"
        );
        let e = Error::Usage("denied\x1b[2J".into()).context("pushing\rkiln: ok");
        let r = error_report(&e);
        assert!(!r.contains('\x1b') && !r.contains('\r'), "{r:?}");
    }

    #[test]
    fn only_stdout_s_broken_pipe_is_quiet() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(
            &Error::io(STDOUT, pipe()).context("printing")
        ));
        assert!(!is_broken_pipe(&Error::io("/tmp/x", pipe())));
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(!is_broken_pipe(&Error::io(STDOUT, full)));
    }
}
