//! stderr: the engine's events as kiln shows them. On a terminal (or `--progress tty`), live `indicatif` bars
//! redrawn in place — files walked, tar bytes compressed per layer against the walk's total, bytes uploaded with
//! rate and ETA — with finished steps printed above them. Otherwise (CI logs, `--progress plain`) one plain line
//! per finished step, never a control character. Notes and warnings in every mode but `-q`; a summary at the end.
//! stdout is never touched (`output`).

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressArg;
use crate::output::escape_controls;
use kiln_engine::Published;
use kiln_engine::events::{Bar, Events, Level, Tally, human_bytes, human_duration};

/// How stderr shows work in progress, once `--progress`, `-q` and the terminal are taken into account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live bars redrawn in place; finished steps printed above them.
    Live,
    /// One line per finished step.
    Plain,
    /// No progress at all (`--progress none`, `-q`).
    Silent,
}

impl Mode {
    pub fn resolve(arg: ProgressArg, quiet: bool) -> Mode {
        if quiet {
            return Mode::Silent;
        }
        match arg {
            ProgressArg::None => Mode::Silent,
            ProgressArg::Plain => Mode::Plain,
            ProgressArg::Tty => Mode::Live,
            ProgressArg::Auto => {
                let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
                if std::io::stderr().is_terminal() && !dumb {
                    Mode::Live
                } else {
                    Mode::Plain
                }
            }
        }
    }
}

/// kiln's stderr as an [`Events`] sink.
pub struct Terminal {
    quiet: bool,
    verbose: u8,
    mode: Mode,
    /// The live display: one `MultiProgress` (drawn even when stderr is not a terminal if `--progress tty`
    /// asked for it).
    live: Option<MultiProgress>,
    start: Instant,
}

impl Terminal {
    pub fn new(quiet: bool, verbose: u8, progress: ProgressArg) -> Terminal {
        let mode = Mode::resolve(progress, quiet);
        // `console::Term` as a `TermLike` draws whatever stderr is; `ProgressDrawTarget::stderr()` would hide
        // itself on a pipe, which `--progress tty` overrides on purpose.
        let live = (mode == Mode::Live).then(|| {
            let target =
                ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10);
            MultiProgress::with_draw_target(target)
        });
        Terminal {
            quiet,
            verbose,
            mode,
            live,
            start: Instant::now(),
        }
    }

    /// One `kiln: …` line on stderr, above the live bars when there are some. Control characters are escaped
    /// (`output::escape_controls`): messages carry paths, image names and a registry's words.
    fn line(&self, msg: fmt::Arguments<'_>) {
        let text = msg.to_string();
        let text = escape_controls(&text);
        match &self.live {
            Some(l) => {
                let _ = l.println(format!("kiln: {text}"));
            }
            None => eprintln!("kiln: {text}"),
        }
    }

    /// The closing summary of a build or push (not with `-q`): layers and sizes, the push, the version and why,
    /// the wall time.
    pub fn summary(&self, s: &Tally, p: &Published) {
        if self.quiet {
            return;
        }
        let layers = s.layers_built + s.layers_reused + s.layers_in_registry;
        if layers > 0 {
            let ratio = if s.tar_bytes > 0 {
                format!(
                    " ({:.0}%)",
                    100.0 * s.blob_bytes as f64 / s.tar_bytes as f64
                )
            } else {
                String::new()
            };
            let registry = match s.layers_in_registry {
                0 => String::new(),
                n => format!(", {n} found in the registry"),
            };
            self.line(format_args!(
                "summary: {layers} layer{} ({} compressed, {} unchanged from the layer cache{registry}): {} of tar -> {} {}{ratio}",
                if layers == 1 { "" } else { "s" },
                s.layers_built,
                s.layers_reused,
                human_bytes(s.tar_bytes),
                human_bytes(s.blob_bytes),
                s.compression.as_deref().unwrap_or(""),
            ));
        }
        if let Some(to) = &s.pushed_to {
            self.line(format_args!(
                "summary: pushed to {to}: {} blob{} uploaded ({}), {} already there (skipped), {} mounted",
                s.uploaded,
                if s.uploaded == 1 { "" } else { "s" },
                human_bytes(s.uploaded_bytes),
                s.existing,
                s.mounted
            ));
        }
        match (&p.version, &p.why) {
            (Some(v), Some(why)) => self.line(format_args!("summary: version {v}: {why}")),
            (Some(v), None) => self.line(format_args!("summary: version {v}")),
            _ => {}
        }
        self.line(format_args!(
            "summary: published {} in {}",
            p.deploy_reference(),
            human_duration(self.start.elapsed())
        ));
    }
}

impl Events for Terminal {
    fn enabled(&self, level: Level) -> bool {
        match level {
            Level::Step => self.mode != Mode::Silent,
            Level::Warning => true,
            Level::Note => !self.quiet,
            Level::Debug => self.verbose > 0 && !self.quiet,
            Level::Trace => self.verbose > 1 && !self.quiet,
        }
    }

    fn message(&self, level: Level, msg: fmt::Arguments<'_>) {
        match level {
            Level::Warning => self.line(format_args!("warning: {msg}")),
            _ => self.line(msg),
        }
    }

    fn bar(&self, msg: String, total: Option<u64>) -> Option<Arc<dyn Bar>> {
        let multi = self.live.as_ref()?;
        let pb = match total {
            None => {
                let pb = multi.add(ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .expect("static template"),
                );
                pb.enable_steady_tick(Duration::from_millis(100));
                pb
            }
            Some(total) => {
                let pb = multi.add(ProgressBar::new(total));
                pb.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                pb.enable_steady_tick(Duration::from_millis(200));
                pb
            }
        };
        pb.set_message(msg);
        Some(Arc::new(LiveBar(pb)))
    }
}

/// One indicatif bar.
struct LiveBar(ProgressBar);

impl Bar for LiveBar {
    fn set_position(&self, n: u64) {
        self.0.set_position(n);
    }

    fn finish(&self) {
        if !self.0.is_finished() {
            self.0.finish_and_clear();
        }
    }
}

/// A question on stderr, the cursor left after it for the answer (`kiln login`'s password prompt).
pub fn prompt(text: &str) {
    eprint!("{text}");
}

/// Ends a prompt's line when the answer was typed without echo (the user's Enter was not shown either).
pub fn end_prompt() {
    eprintln!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_and_none_are_silent() {
        assert_eq!(Mode::resolve(ProgressArg::Tty, true), Mode::Silent);
        assert_eq!(Mode::resolve(ProgressArg::None, false), Mode::Silent);
        assert_eq!(Mode::resolve(ProgressArg::Plain, false), Mode::Plain);
        assert_eq!(Mode::resolve(ProgressArg::Tty, false), Mode::Live);
    }
}
