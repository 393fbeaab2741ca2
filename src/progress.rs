//! Progress on stderr. On a terminal (or `--progress tty`), live `indicatif` bars redrawn in place: files walked,
//! tar bytes compressed per layer against the walk's total, bytes uploaded with rate and ETA. Otherwise (CI logs,
//! `--progress plain`) nothing is drawn: the caller prints one plain line per finished step instead, never a
//! control character. stdout is never touched.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ProgressArg;

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

/// The live display: one `MultiProgress` on stderr (drawn even when stderr is not a terminal if `--progress
/// tty` asked for it).
#[derive(Debug, Clone)]
pub struct Live {
    multi: MultiProgress,
}

impl Live {
    pub fn new() -> Live {
        // `console::Term` as a `TermLike` draws whatever stderr is; `ProgressDrawTarget::stderr()` would hide
        // itself on a pipe, which `--progress tty` overrides on purpose.
        let target = ProgressDrawTarget::term_like_with_hz(Box::new(console::Term::stderr()), 10);
        Live {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    /// Print a finished step above the bars.
    pub fn println(&self, line: &str) {
        let _ = self.multi.println(line);
    }

    /// A spinner for work without a known size (walking a directory).
    pub fn spinner(&self, msg: String) -> Task {
        let pb = self.multi.add(ProgressBar::new_spinner());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("static template"),
        );
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(100));
        Task { pb: Some(pb) }
    }

    /// A byte bar: `done/total`, rate and ETA.
    pub fn bytes(&self, msg: String, total: u64) -> Task {
        let pb = self.multi.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(200));
        Task { pb: Some(pb) }
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

/// One live bar, or nothing (plain and silent modes): every method is then a no-op.
#[derive(Debug, Default)]
pub struct Task {
    pb: Option<ProgressBar>,
}

impl Task {
    pub fn none() -> Task {
        Task { pb: None }
    }

    pub fn set_position(&self, n: u64) {
        if let Some(pb) = &self.pb {
            pb.set_position(n);
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.pb {
            pb.inc(n);
        }
    }

    pub fn inc_length(&self, n: u64) {
        if let Some(pb) = &self.pb {
            pb.inc_length(n);
        }
    }

    pub fn set_message(&self, msg: String) {
        if let Some(pb) = &self.pb {
            pb.set_message(msg);
        }
    }

    /// A handle on the same bar for another thread (`None` stays a no-op).
    pub fn handle(&self) -> TaskHandle {
        TaskHandle {
            pb: self.pb.clone(),
        }
    }

    /// Remove the bar (the caller prints the finished step).
    pub fn finish(&self) {
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
    }
}

/// A clone of a [`Task`]'s bar that only moves it (the `Task` owns clearing it).
#[derive(Debug, Clone)]
pub struct TaskHandle {
    pb: Option<ProgressBar>,
}

impl TaskHandle {
    pub fn set_position(&self, n: u64) {
        if let Some(pb) = &self.pb {
            pb.set_position(n);
        }
    }
}

impl Drop for Task {
    /// A task abandoned by an error must not leave a half-drawn bar above the error message.
    fn drop(&mut self) {
        if let Some(pb) = self.pb.take()
            && !pb.is_finished()
        {
            pb.finish_and_clear();
        }
    }
}

/// Human-readable bytes: `932 B`, `14.0 KiB`, `1.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Human-readable duration: `850 ms`, `3.2 s`, `2m05s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humans() {
        assert_eq!(human_bytes(932), "932 B");
        assert_eq!(human_bytes(14336), "14.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_millis(3200)), "3.2 s");
        assert_eq!(human_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn quiet_and_none_are_silent() {
        assert_eq!(Mode::resolve(ProgressArg::Tty, true), Mode::Silent);
        assert_eq!(Mode::resolve(ProgressArg::None, false), Mode::Silent);
        assert_eq!(Mode::resolve(ProgressArg::Plain, false), Mode::Plain);
        assert_eq!(Mode::resolve(ProgressArg::Tty, false), Mode::Live);
    }
}
