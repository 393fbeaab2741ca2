//! What the engine tells whoever runs it while it works: finished steps, decisions and warnings, request logs, live
//! progress, and the tallies of a run. The engine never writes to a terminal (nor to stdout): the `kiln` binary
//! implements [`Events`] for its stderr, a test or an embedding program may collect them instead, as cargo's and
//! uv's engine crates leave their shells to the CLI.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How much a message matters; the sink decides what it shows (`-q`, `-v`, `--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A finished step (`walked DIR`, `layer … built`, `blob … uploaded`): progress, shown in plain and live modes.
    Step,
    /// Something probably wrong that did not stop the run (a YAML value kiln could not pin); shown even with `-q`.
    Warning,
    /// A decision or a warning the user should see even without progress; hidden only by `-q`.
    Note,
    /// Detail for `-v`: each HTTP request with its status and timing, retries, why a layer was reused.
    Debug,
    /// Detail for `-vv`: request and response headers (secrets masked).
    Trace,
}

/// The receiving end of the engine's events. Implementations must be cheap: the engine calls them from its worker
/// threads.
pub trait Events: Send + Sync {
    /// Whether a message of `level` would be shown (so the engine can skip building it).
    fn enabled(&self, level: Level) -> bool;
    /// A message of `level`, one line, without a `kiln:` prefix.
    fn message(&self, level: Level, msg: fmt::Arguments<'_>);
    /// A live bar for work of `total` bytes (`None`: a spinner for work of unknown size), or `None` when the sink
    /// draws no live progress.
    fn bar(&self, msg: String, total: Option<u64>) -> Option<Arc<dyn Bar>>;
}

/// One live progress bar, moved from any thread.
pub trait Bar: Send + Sync {
    fn set_position(&self, n: u64);
    /// Remove the bar (the finished step is reported as a message). Called again is a no-op.
    fn finish(&self);
}

/// Events nobody looks at: the default for tests and library callers that do not care.
#[derive(Debug, Default)]
pub struct Silent;

impl Events for Silent {
    fn enabled(&self, _: Level) -> bool {
        false
    }
    fn message(&self, _: Level, _: fmt::Arguments<'_>) {}
    fn bar(&self, _: String, _: Option<u64>) -> Option<Arc<dyn Bar>> {
        None
    }
}

/// What a build or push did, for the caller's closing summary.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub layers_built: usize,
    pub layers_reused: usize,
    /// Layers found in the target repository's recent images by diff_id (`publish::known_layers`).
    pub layers_in_registry: usize,
    pub tar_bytes: u64,
    pub blob_bytes: u64,
    pub compression: Option<String>,
    pub pushed_to: Option<String>,
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub existing: usize,
    pub mounted: usize,
}

/// The engine's handle on an [`Events`] sink and the run's [`Tally`]: cheap to clone, shared by threads.
#[derive(Clone)]
pub struct Report {
    events: Arc<dyn Events>,
    tally: Arc<Mutex<Tally>>,
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Report").finish_non_exhaustive()
    }
}

impl Default for Report {
    fn default() -> Self {
        Report::new(Arc::new(Silent))
    }
}

impl Report {
    pub fn new(events: Arc<dyn Events>) -> Report {
        Report {
            events,
            tally: Arc::default(),
        }
    }

    pub fn enabled(&self, level: Level) -> bool {
        self.events.enabled(level)
    }

    fn at(&self, level: Level, msg: fmt::Arguments<'_>) {
        if self.events.enabled(level) {
            self.events.message(level, msg);
        }
    }

    /// A finished step: see [`Level::Step`].
    pub fn step(&self, msg: fmt::Arguments<'_>) {
        self.at(Level::Step, msg);
    }

    /// A warning: see [`Level::Warning`].
    pub fn warn(&self, msg: fmt::Arguments<'_>) {
        self.at(Level::Warning, msg);
    }

    /// A decision or warning: see [`Level::Note`].
    pub fn note(&self, msg: fmt::Arguments<'_>) {
        self.at(Level::Note, msg);
    }

    /// `-v` detail: see [`Level::Debug`].
    pub fn debug(&self, msg: fmt::Arguments<'_>) {
        self.at(Level::Debug, msg);
    }

    /// `-vv` detail: see [`Level::Trace`].
    pub fn trace(&self, msg: fmt::Arguments<'_>) {
        self.at(Level::Trace, msg);
    }

    /// A live spinner (a no-op task unless the sink draws live progress).
    pub fn spinner(&self, msg: impl FnOnce() -> String) -> Task {
        self.task(msg, None)
    }

    /// A live byte bar of `total` bytes (a no-op task unless the sink draws live progress).
    pub fn bytes(&self, msg: impl FnOnce() -> String, total: u64) -> Task {
        self.task(msg, Some(total))
    }

    fn task(&self, msg: impl FnOnce() -> String, total: Option<u64>) -> Task {
        // Only a sink that shows steps draws bars; asking it costs a String otherwise.
        if !self.events.enabled(Level::Step) {
            return Task::none();
        }
        Task {
            bar: self.events.bar(msg(), total),
        }
    }

    /// Record what was done, for [`Report::tally`].
    pub fn record(&self, f: impl FnOnce(&mut Tally)) {
        f(&mut self.tally.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// What was recorded so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One live bar, or nothing: every method is then a no-op. Dropped unfinished (an error), the bar is removed, so
/// no half-drawn bar stays above the error message.
#[derive(Default)]
pub struct Task {
    bar: Option<Arc<dyn Bar>>,
}

impl Task {
    pub fn none() -> Task {
        Task { bar: None }
    }

    /// Whether a bar is drawn (progress callbacks are only worth installing then).
    pub fn is_live(&self) -> bool {
        self.bar.is_some()
    }

    pub fn set_position(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
        }
    }

    /// A handle on the same bar for another thread (no bar: a no-op handle).
    pub fn handle(&self) -> TaskHandle {
        TaskHandle {
            bar: self.bar.clone(),
        }
    }

    /// Remove the bar (the caller reports the finished step).
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A clone of a [`Task`]'s bar that only moves it (the `Task` owns removing it).
#[derive(Clone)]
pub struct TaskHandle {
    bar: Option<Arc<dyn Bar>>,
}

impl TaskHandle {
    pub fn set_position(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
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
}
